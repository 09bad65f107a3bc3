// Stats epochs (issue #17 part 3): the writer notices that Redis lost its
// data, on a real redis-server and on a local 3-master Redis Cluster where
// one master restarts empty; seg_add_users_v3's contract called directly.
// The segmenter's side (counting users again) is tests/stats_loss_test.cc.
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "common/hash.h"
#include "common/metrics.h"
#include "stats/redis_cluster/redis_cluster.h"
#include "stats/writer/stats_writer.h"
#include "tests/harness/redis_cluster.h"
#include "tests/harness/redis_server.h"
#include "tests/harness/status_matchers.h"

namespace seg::stats {
namespace {

using testing::LocalRedis;
using testing::LocalRedisCluster;
using testing::RedisCommandForTest;

constexpr Day kDay = 20240501;

std::vector<UserUpdate> Users(int from, int to, bool with_adds) {
  std::vector<UserUpdate> out;
  for (int i = from; i < to; ++i) {
    UserUpdate& u = out.emplace_back();
    u.user_id = "epoch-user-" + std::to_string(i);
    if (with_adds) u.adds.push_back({"cats", kDay});
  }
  return out;
}

StatsWriterOptions Options(uint32_t shards) {
  StatsWriterOptions o;
  o.shards = shards;
  o.hll_retention_days = 0;  // a day of 2024
  o.update_registry = false;
  return o;
}

// The epochs Epoch() reports for every shard, by shard.
std::map<uint32_t, std::string> KnownEpochs(const StatsWriter& writer, uint32_t shards, int users) {
  std::map<uint32_t, std::string> out;
  for (int i = 0; i < users; ++i) {
    const std::string id = "epoch-user-" + std::to_string(i);
    out[UserShard(id, shards)] = std::string(writer.Epoch(id).value_or("none"));
  }
  return out;
}

// Users whose counted marks were trusted (nothing to add) still check their
// shard's epoch: after FLUSHALL the batch is answered ABORTED, once, and the
// writer knows the new epochs. A writer that started after the loss reads
// the same ones. The metric counts the changes.
TEST(StatsEpochTest, NothingToAddStillDetectsALoss) {
  auto redis = LocalRedis::Start();
  SEG_ASSERT_OK(redis);
  const int port = (*redis)->port();
  const uint32_t shards = 4;
  StatsWriterOptions o = Options(shards);
  o.redis.node.port = port;
  auto writer = NewStatsWriter(o);
  SEG_ASSERT_OK(writer);
  SEG_ASSERT_OK((*writer)->WriteBatch(Users(0, 200, true)));
  const auto before = KnownEpochs(**writer, shards, 200);
  ASSERT_EQ(before.size(), shards);
  for (const auto& [shard, epoch] : before) {
    EXPECT_FALSE(epoch.empty()) << shard;
    EXPECT_EQ(*RedisCommandForTest(port, {"GET", EpochKey("hll", shard)}), epoch);
  }
  // Nothing lost: checks only, no abort, and no HLL key written.
  SEG_ASSERT_OK((*writer)->WriteBatch(Users(0, 200, false)));
  EXPECT_EQ((*writer)->counters().epoch_aborts, 0);

  metrics::Counter changes = metrics::GetCounter("seg_stats_writer_epoch_changes_total", "");
  const double changes_before = changes.Value();
  SEG_ASSERT_OK(RedisCommandForTest(port, {"FLUSHALL"}));
  Status s = (*writer)->WriteBatch(Users(0, 200, false));
  EXPECT_TRUE(IsEpochChange(s)) << s;
  EXPECT_EQ((*writer)->counters().epoch_changes, shards);
  EXPECT_EQ((*writer)->counters().epoch_aborts, 1);
  EXPECT_EQ(changes.Value() - changes_before, shards);
  const auto after = KnownEpochs(**writer, shards, 200);
  for (const auto& [shard, epoch] : after) {
    EXPECT_NE(epoch, before.at(shard)) << shard;
    EXPECT_EQ(*RedisCommandForTest(port, {"GET", EpochKey("hll", shard)}), epoch);
  }
  // The epoch-only calls wrote no sketch.
  EXPECT_EQ(*RedisCommandForTest(port, {"DBSIZE"}), std::to_string(shards));
  // Known now: the same batch goes through.
  SEG_ASSERT_OK((*writer)->WriteBatch(Users(0, 200, false)));
  EXPECT_EQ((*writer)->counters().epoch_aborts, 1);

  auto fresh = NewStatsWriter(o);
  SEG_ASSERT_OK(fresh);
  SEG_ASSERT_OK((*fresh)->LoadProcedures());
  EXPECT_EQ(KnownEpochs(**fresh, shards, 200), after);
}

// seg_add_users_v3 called as a writer would: a missing epoch key is created
// and reported, a stale one reported, a matching one not; the adds happen
// either way; a malformed call writes nothing (not even an epoch).
TEST(StatsEpochLuaTest, ReportsMissingAndStaleEpochsAndChecksTheLayoutFirst) {
  auto redis = LocalRedis::Start();
  SEG_ASSERT_OK(redis);
  const int port = (*redis)->port();
  StatsWriterOptions o = Options(1);
  o.redis.node.port = port;
  o.epochs = false;  // loads the library without creating epoch keys
  auto writer = NewStatsWriter(o);
  SEG_ASSERT_OK(writer);
  SEG_ASSERT_OK((*writer)->LoadProcedures());
  const std::string e0 = "hll:{0}:epoch", e1 = "hll:{1}:epoch";
  const std::string k0 = "hll:{0}:cats:20240501";

  for (const std::vector<std::string>& bad : std::vector<std::vector<std::string>>{
           {"FCALL", "seg_add_users_v3", "2", e0, k0, "x", "", "0", "", "1", "u1"},  // bad m
           {"FCALL", "seg_add_users_v3", "2", e0, k0, "3", "", "0", "", "1", "u1"},  // m > keys
           {"FCALL", "seg_add_users_v3", "2", e0, k0, "1", "", "0", "", "2", "u1"},  // counts
       }) {
    auto r = RedisCommandForTest(port, bad);
    EXPECT_FALSE(r.ok());
    EXPECT_NE(r.status().ToString().find("seg_add_users_v3"), std::string::npos) << r.status();
  }
  EXPECT_EQ(*RedisCommandForTest(port, {"DBSIZE"}), "0");

  // Missing: created and reported (index 1, its value).
  auto r = RedisCommandForTest(
      port, {"FCALL", "seg_add_users_v3", "2", e0, k0, "1", "", "0", "", "1", "u1"});
  SEG_ASSERT_OK(r);
  const std::string epoch0 = *RedisCommandForTest(port, {"GET", e0});
  EXPECT_EQ(*r, "1\n1\n" + epoch0);  // changed, then (1, epoch)
  // Matching: nothing reported. Stale: reported. An epoch-only call (no HLL key).
  r = RedisCommandForTest(
      port, {"FCALL", "seg_add_users_v3", "2", e0, k0, "1", epoch0, "0", "", "1", "u2"});
  EXPECT_EQ(*r, "1");
  r = RedisCommandForTest(port, {"FCALL", "seg_add_users_v3", "1", e0, "1", "old", "0", ""});
  EXPECT_EQ(*r, "0\n1\n" + epoch0);
  // Two shards, one known: only the other is reported, as index 2.
  r = RedisCommandForTest(port,
                          {"FCALL", "seg_add_users_v3", "2", e0, e1, "2", epoch0, "", "0", ""});
  const std::string epoch1 = *RedisCommandForTest(port, {"GET", e1});
  EXPECT_EQ(*r, "0\n2\n" + epoch1);
  EXPECT_EQ(*RedisCommandForTest(port, {"PFCOUNT", k0}), "2");
}

// Redis Cluster: one master restarts empty (its slots kept in nodes.conf).
// Only the shards whose slots it owns get a new epoch; the writer learns
// them in the calls of the next batch and answers ABORTED once.
TEST(StatsEpochClusterTest, OneMasterLostChangesOnlyItsShards) {
  auto cluster = LocalRedisCluster::Start();
  SEG_ASSERT_OK(cluster);
  const uint32_t shards = 16;
  StatsWriterOptions o = Options(shards);
  o.redis.cluster = true;
  o.redis.seeds = {"127.0.0.1:" + std::to_string((*cluster)->node(0).port())};
  auto writer = NewStatsWriter(o);
  SEG_ASSERT_OK(writer);
  SEG_ASSERT_OK((*writer)->WriteBatch(Users(0, 500, true)));
  const auto before = KnownEpochs(**writer, shards, 500);
  ASSERT_EQ(before.size(), shards);

  const int lost = 1;
  std::set<uint32_t> lost_shards;
  for (uint32_t shard = 0; shard < shards; ++shard) {
    auto owner = (*cluster)->SlotOwner(RedisKeySlot(EpochKey("hll", shard)));
    SEG_ASSERT_OK(owner);
    if (*owner == lost) lost_shards.insert(shard);
  }
  ASSERT_FALSE(lost_shards.empty());
  ASSERT_LT(lost_shards.size(), shards);
  (*cluster)->node(lost).Kill();
  SEG_ASSERT_OK((*cluster)->node(lost).Restart()) << (*cluster)->node(lost).LogTail();
  SEG_ASSERT_OK((*cluster)->WaitUntilOk(std::chrono::seconds(30)));
  ASSERT_EQ(*RedisCommandForTest((*cluster)->node(lost).port(), {"DBSIZE"}), "0");

  Status s = (*writer)->WriteBatch(Users(0, 500, false));
  EXPECT_TRUE(IsEpochChange(s)) << s;
  EXPECT_EQ((*writer)->counters().epoch_changes, static_cast<int64_t>(lost_shards.size()));
  const auto after = KnownEpochs(**writer, shards, 500);
  for (uint32_t shard = 0; shard < shards; ++shard) {
    if (lost_shards.contains(shard)) {
      EXPECT_NE(after.at(shard), before.at(shard)) << shard;
    } else {
      EXPECT_EQ(after.at(shard), before.at(shard)) << shard;
    }
  }
  SEG_ASSERT_OK((*writer)->WriteBatch(Users(0, 500, true)));
}

}  // namespace
}  // namespace seg::stats
