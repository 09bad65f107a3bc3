// Engine behaviour beyond the contract: compaction enforces TTL and
// versions on disk, observers see committed puts, data survives reopen.
#include "store/internal/embedded_store.h"

#include <gtest/gtest.h>

#include <mutex>

#include "tests/harness/process.h"
#include "tests/harness/status_matchers.h"

namespace seg::store::internal {
namespace {

class RecordingObserver : public WriteObserver {
 public:
  void OnCommitted(const std::vector<RowChange>& changes) override {
    std::lock_guard<std::mutex> lock(mutex);
    for (const auto& c : changes) seen.push_back(c);
  }
  std::mutex mutex;
  std::vector<RowChange> seen;
};

class EmbeddedStoreTest : public ::testing::Test {
 protected:
  EmbeddedOptions Options() {
    EmbeddedOptions o;
    o.data_dir = dir_.path() + "/db";
    o.clock = &clock_;
    o.tables = {TableOptions{"t", {FamilyOptions{"a", 2, 0}, FamilyOptions{"b", 3, 1000}}}};
    o.write_buffer_bytes = 4 << 20;
    o.block_cache_bytes = 4 << 20;
    return o;
  }
  std::unique_ptr<EmbeddedStore> Open(EmbeddedOptions o) {
    auto s = EmbeddedStore::Open(o);
    SEG_EXPECT_OK(s);
    return s.ok() ? std::move(*s) : nullptr;
  }
  seg::testing::TempDir dir_;
  FakeClock clock_;
};

TEST_F(EmbeddedStoreTest, CompactionDropsExpiredCellsAndExtraVersions) {
  auto store = Open(Options());
  ASSERT_NE(store, nullptr);
  int64_t now = clock_.NowMs();
  RowPut p{"r", {}};
  for (int i = 0; i < 5; ++i) p.cells.push_back(Cell{"a", "q", now - i, "v"});
  for (int i = 0; i < 3; ++i) p.cells.push_back(Cell{"b", "q" + std::to_string(i), now, "v"});
  SEG_ASSERT_OK(store->Put("t", {p}));
  EXPECT_EQ(*store->CountRawKeysForTest("t", "a"), 5);
  EXPECT_EQ(*store->CountRawKeysForTest("t", "b"), 3);
  clock_.AdvanceMs(1001);  // b's TTL passes (expired: ts < now - ttl)
  SEG_ASSERT_OK(store->CompactAllForTest());
  EXPECT_EQ(*store->CountRawKeysForTest("t", "a"), 2);  // max_versions 2
  EXPECT_EQ(*store->CountRawKeysForTest("t", "b"), 0);
  GetRequest g;
  g.row = "r";
  g.max_versions = 5;
  auto r = store->Get("t", g);
  SEG_ASSERT_OK(r);
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ(r->cell(0).timestamp, now);
}

TEST_F(EmbeddedStoreTest, ObserverSeesCommittedPutsPerRow) {
  auto o = Options();
  auto obs = std::make_shared<RecordingObserver>();
  o.observers.push_back(obs);
  auto store = Open(o);
  ASSERT_NE(store, nullptr);
  SEG_ASSERT_OK(store->Put("t", {{"u1", {Cell{"a", "x", 10, "v"}, Cell{"a", "y", 30, "v"}}},
                                 {"u2", {Cell{"a", "x", 20, "v"}}}}));
  ASSERT_EQ(obs->seen.size(), 2u);
  EXPECT_EQ(obs->seen[0].table, "t");
  EXPECT_EQ(obs->seen[0].row, "u1");
  EXPECT_EQ(obs->seen[0].newest_timestamp, 30);
  EXPECT_EQ(obs->seen[0].cell_count, 2);
  EXPECT_EQ(obs->seen[1].row, "u2");
  // A rejected write is not reported.
  EXPECT_FALSE(store->Put("t", {{"u3", {Cell{"zz", "x", 1, "v"}}}}).ok());
  EXPECT_EQ(obs->seen.size(), 2u);
}

TEST_F(EmbeddedStoreTest, DataSurvivesReopen) {
  {
    auto store = Open(Options());
    SEG_ASSERT_OK(store->Put("t", {{"r", {Cell{"a", "q", 5, "v"}}}}));
  }
  auto store = Open(Options());
  GetRequest g;
  g.row = "r";
  auto r = store->Get("t", g);
  SEG_ASSERT_OK(r);
  ASSERT_EQ(r->size(), 1u);
  EXPECT_EQ(r->cell(0).value, "v");
}

TEST_F(EmbeddedStoreTest, RejectsBadSchemaAndSecondOpener) {
  auto o = Options();
  o.tables[0].families[0].max_versions = 0;
  EXPECT_EQ(EmbeddedStore::Open(o).status().code(), StatusCode::kInvalidArgument);
  auto first = Open(Options());
  ASSERT_NE(first, nullptr);
  EXPECT_FALSE(EmbeddedStore::Open(Options()).ok());  // RocksDB LOCK held
}

TEST_F(EmbeddedStoreTest, QualifiersWithoutFamiliesAreRejected) {
  auto store = Open(Options());
  GetRequest g;
  g.row = "r";
  g.qualifiers = {"q"};
  EXPECT_EQ(store->Get("t", g).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace seg::store::internal
