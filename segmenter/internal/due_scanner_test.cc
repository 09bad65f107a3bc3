#include "segmenter/internal/due_scanner.h"

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "segmenter/internal/membership.h"
#include "store/store.h"
#include "tests/harness/process.h"
#include "tests/harness/status_matchers.h"

namespace seg::segmenter {
namespace {

// On the embedded store with the node's tables (a `due` table, family d).
class DueScannerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store::StoreOptions o;
    o.embedded.data_dir = dir_.path() + "/store";
    auto s = store::OpenStore(o);
    SEG_ASSERT_OK(s);
    store_ = std::move(*s);
    options_.table = "due";
    options_.family = "d";
    options_.batch_users = 3;
    options_.group_max = 5;
  }

  void PutDue(int32_t partition, int64_t due_ms, const std::string& user) {
    store::RowPut put{DueRowKey(partition, due_ms, user),
                      {{"d", "u", store::kLatestTimestamp, ""}}};
    SEG_ASSERT_OK(store_->Put("due", {put}));
  }

  static std::vector<std::string> Users(const DueRound& round) {
    std::vector<std::string> users;
    for (const auto& p : round.partitions) {
      SEG_EXPECT_OK(p.status);
      for (const auto& row : p.rows) {
        int32_t partition = 0;
        int64_t due = 0;
        std::string_view user;
        EXPECT_TRUE(ParseDueRowKey(row.row(), &partition, &due, &user));
        users.emplace_back(user);
      }
    }
    return users;
  }

  // What the node does with a round it processed whole.
  static DueOutcome AllProcessed(const DueRound& round) {
    DueOutcome outcome;
    for (const auto& p : round.partitions) {
      if (!p.more) {
        outcome.complete.push_back(p.partition);
      } else if (!p.rows.empty()) {
        outcome.last_processed[p.partition] = p.rows.back().row();
      }
    }
    return outcome;
  }

  void Delete(const DueRound& round) {
    std::vector<store::RowDelete> deletes;
    for (const auto& p : round.partitions) {
      for (const auto& row : p.rows) deletes.push_back({row.row(), {}});
    }
    SEG_ASSERT_OK(store_->Delete("due", deletes));
  }

  testing::TempDir dir_;
  std::unique_ptr<store::Store> store_;
  DueScanOptions options_;
};

TEST_F(DueScannerTest, RoundsTakeOnlyDueRowsCappedPerPartitionAndRound) {
  for (int i = 0; i < 4; ++i) PutDue(0, 1000 + i, "a" + std::to_string(i));
  for (int i = 0; i < 4; ++i) PutDue(1, 1000 + i, "b" + std::to_string(i));
  PutDue(0, 5000, "later");
  PutDue(2, 1000, "not_owned");
  DueScanner scanner(store_.get(), options_);
  const std::set<int32_t> owned{0, 1};
  DueRound round = scanner.Next(2000, owned);
  // 3 from the first partition, then 2 (the round's room) from the second.
  EXPECT_EQ(Users(round).size(), 5u);
  EXPECT_TRUE(round.partitions[0].more);
  std::set<std::string> seen;
  for (const std::string& u : Users(round)) seen.insert(u);
  while (true) {
    scanner.Apply(round.now, AllProcessed(round));
    Delete(round);
    bool more = round.partitions_left;
    for (const auto& p : round.partitions) more |= p.more;
    if (!more) break;
    round = scanner.Next(2000, owned);
    for (const std::string& u : Users(round)) EXPECT_TRUE(seen.insert(u).second) << u;
  }
  EXPECT_EQ(seen.size(), 8u);  // every due row of the owned partitions, once
  EXPECT_FALSE(seen.count("later"));
  EXPECT_FALSE(seen.count("not_owned"));
  EXPECT_EQ(Users(scanner.Next(6000, owned)), std::vector<std::string>{"later"});
}

TEST_F(DueScannerTest, PrefetchedRoundIsUsedOnlyAfterItsRoundWasApplied) {
  for (int i = 0; i < 6; ++i) PutDue(0, 1000 + i, "u" + std::to_string(i));
  DueScanner scanner(store_.get(), options_);
  const std::set<int32_t> owned{0};
  DueRound first = scanner.Next(2000, owned);
  ASSERT_EQ(Users(first), (std::vector<std::string>{"u0", "u1", "u2"}));
  DueOutcome outcome = AllProcessed(first);

  // Processing failed: the prefetch is dropped, the same rows come again.
  scanner.Prefetch(first.now, outcome, owned, 2000);
  scanner.DropPrefetch();
  EXPECT_EQ(Users(scanner.Next(2000, owned)), Users(first));

  // Processed: the prefetched round starts past the processed rows (they
  // are not deleted yet, as when the deletes are in flight).
  scanner.Prefetch(first.now, outcome, owned, 2000);
  scanner.Apply(first.now, outcome);
  EXPECT_EQ(Users(scanner.Next(2000, owned)), (std::vector<std::string>{"u3", "u4", "u5"}));
}

TEST_F(DueScannerTest, PrefetchIsDroppedWhenThePartitionsMove) {
  for (int i = 0; i < 4; ++i) PutDue(0, 1000 + i, "a" + std::to_string(i));
  PutDue(1, 1000, "b0");
  DueScanner scanner(store_.get(), options_);
  DueRound first = scanner.Next(2000, {0});
  DueOutcome outcome = AllProcessed(first);
  scanner.Prefetch(first.now, outcome, {0}, 2000);
  scanner.Apply(first.now, outcome);
  // Partition 1 was assigned meanwhile: its rows are in the next round.
  std::vector<std::string> users = Users(scanner.Next(2000, {0, 1}));
  EXPECT_NE(std::find(users.begin(), users.end(), "b0"), users.end());
  EXPECT_NE(std::find(users.begin(), users.end(), "a3"), users.end());
}

// A row due long before a partition's low-water mark (another owner's,
// written while this node did not own it) is found once the partition is
// forgotten, and by the periodic full scan.
TEST_F(DueScannerTest, RowsBelowTheLowWaterMarkComeBackOnForgetAndFullScan) {
  PutDue(0, 1'000'000, "early");
  DueScanner scanner(store_.get(), options_);
  DueRound round = scanner.Next(1'000'100, {0});
  ASSERT_EQ(Users(round), std::vector<std::string>{"early"});
  scanner.Apply(round.now, AllProcessed(round));
  Delete(round);
  PutDue(0, 1, "other_owner");
  EXPECT_TRUE(Users(scanner.Next(1'000'200, {0})).empty());  // below mark - margin
  EXPECT_EQ(Users(scanner.Next(1'000'100 + DueScanner::kFullScanEveryMs, {0})),
            std::vector<std::string>{"other_owner"});

  DueScanner other(store_.get(), options_);
  round = other.Next(1'000'100, {0});
  other.Apply(round.now, AllProcessed(round));
  EXPECT_TRUE(Users(other.Next(1'000'200, {0})).empty());
  other.Forget(0);
  EXPECT_EQ(Users(other.Next(1'000'300, {0})), std::vector<std::string>{"other_owner"});
}

}  // namespace
}  // namespace seg::segmenter
