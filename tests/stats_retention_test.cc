// Retention of the HyperLogLog day keys (stats.hll_retention_days) against a
// real redis-server and a local 3-master Redis Cluster: the procedure gives
// every key it creates EXPIREAT <end of day + retention> (FCALL and the
// EVALSHA fallback), and `segctl stats expire-sweep` / SweepHllExpiry gives
// pre-existing keys theirs, deletes keys past retention and is idempotent.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>

#include "common/clock.h"
#include "common/hash.h"
#include "stats/redis_cluster/redis_cluster.h"
#include "stats/writer/stats_writer.h"
#include "tests/harness/process.h"
#include "tests/harness/redis_cluster.h"
#include "tests/harness/redis_server.h"
#include "tests/harness/status_matchers.h"

namespace seg::stats {
namespace {

using testing::LocalRedis;
using testing::LocalRedisCluster;
using testing::RedisCommandForTest;

Day DaysAgo(int n) { return DayFromUnixMs(Clock::Real()->NowMs() - int64_t{n} * 86'400'000); }

int64_t NowS() { return Clock::Real()->NowMs() / 1000; }

// EXPIRETIME (Redis 7): the absolute expiry in Unix seconds, -1 none, -2 no key.
int64_t ExpireTime(int port, const std::string& key) {
  auto r = RedisCommandForTest(port, {"EXPIRETIME", key});
  SEG_EXPECT_OK(r);
  return r.ok() ? std::stoll(*r) : -3;
}

TEST(HllRetentionTest, ExpiryIsTheEndOfTheDayPlusRetention) {
  EXPECT_EQ(HllExpireAtUnixS(20240501, 0), 1714608000);  // 2024-05-02T00:00:00Z
  EXPECT_EQ(HllExpireAtUnixS(20240501, 400), 1714608000 + 400 * 86400);
  EXPECT_EQ(HllExpireAtUnixS(20241231, 1), HllExpireAtUnixS(20250101, 0));
  EXPECT_EQ(HllExpireAtUnixS(20240228, 2), HllExpireAtUnixS(20240301, 0));  // via 02-29
  EXPECT_EQ(StatsWriterOptions().hll_retention_days, 400);
}

TEST(HllRetentionTest, LoadsRetentionFromConfig) {
  auto config = Config::FromString("stats:\n  hll_retention_days: 30\n", "t.yaml");
  SEG_ASSERT_OK(config);
  StatsWriterOptions o;
  SEG_ASSERT_OK(o.LoadFrom(*config, "stats"));
  EXPECT_EQ(o.hll_retention_days, 30);
  auto bad = Config::FromString("stats:\n  hll_retention_days: -1\n", "t.yaml");
  SEG_ASSERT_OK(bad);
  EXPECT_FALSE(StatsWriterOptions().LoadFrom(*bad, "stats").ok());
}

// (transport, batched_calls): both call shapes set the same expiry.
class HllRetentionModeTest : public ::testing::TestWithParam<std::tuple<StatsCallMode, bool>> {};

TEST_P(HllRetentionModeTest, NewKeysExpireAtTheEndOfTheirDayPlusRetention) {
  auto redis = LocalRedis::Start();
  SEG_ASSERT_OK(redis);
  const int port = (*redis)->port();
  StatsWriterOptions o;
  o.redis.node.port = port;
  o.mode = std::get<0>(GetParam());
  o.batched_calls = std::get<1>(GetParam());
  o.hll_retention_days = 400;
  auto writer = NewStatsWriter(o);
  SEG_ASSERT_OK(writer);
  const Day today = DaysAgo(0), last_week = DaysAgo(7), too_old = DaysAgo(402);
  // A key that exists from before retention (no TTL) and one with its own TTL.
  const std::string legacy = HllKey("hll", 0, "dogs", today);
  const std::string own_ttl = HllKey("hll", 0, "cars", today);
  SEG_ASSERT_OK(RedisCommandForTest(port, {"PFADD", legacy, "old-user"}));
  SEG_ASSERT_OK(RedisCommandForTest(port, {"PFADD", own_ttl, "old-user"}));
  SEG_ASSERT_OK(RedisCommandForTest(port, {"EXPIREAT", own_ttl, std::to_string(NowS() + 3600)}));

  std::vector<UserUpdate> batch = {
      {"u1", {{"cats", today}, {"cats", last_week}, {"dogs", today}, {"cars", today}}},
      {"u2", {{"cats", today}, {"birds", too_old}}}};
  SEG_ASSERT_OK((*writer)->WriteBatch(batch));
  EXPECT_EQ((*writer)->mode(), std::get<0>(GetParam()));

  EXPECT_EQ(ExpireTime(port, HllKey("hll", 0, "cats", today)), HllExpireAtUnixS(today, 400));
  EXPECT_EQ(ExpireTime(port, HllKey("hll", 0, "cats", last_week)),
            HllExpireAtUnixS(last_week, 400));
  // The legacy key changed (u1 is new to it), so it got its expiry too.
  EXPECT_EQ(ExpireTime(port, legacy), HllExpireAtUnixS(today, 400));
  // An existing TTL is kept (NX): the expiry does not move once set.
  EXPECT_NEAR(ExpireTime(port, own_ttl), NowS() + 3600, 5);
  // A day already past retention: not written at all.
  EXPECT_EQ(ExpireTime(port, HllKey("hll", 0, "birds", too_old)), -2);
  EXPECT_EQ((*writer)->counters().past_retention, 1);

  // Writing the same users again changes nothing, expiry included.
  SEG_ASSERT_OK((*writer)->WriteBatch(batch));
  EXPECT_EQ(ExpireTime(port, HllKey("hll", 0, "cats", today)), HllExpireAtUnixS(today, 400));
  EXPECT_EQ(*RedisCommandForTest(port, {"PFCOUNT", HllKey("hll", 0, "cats", today)}), "2");
}

TEST_P(HllRetentionModeTest, KeyRecreatedAfterItsCheckGetsItsExpiryAtTheNextRecheck) {
  auto redis = LocalRedis::Start();
  SEG_ASSERT_OK(redis);
  const int port = (*redis)->port();
  const Day today = DaysAgo(0);
  const std::string key = HllKey("hll", 0, "cats", today);
  for (int64_t recheck_ms : {int64_t{3'600'000}, int64_t{0}}) {
    StatsWriterOptions o;
    o.redis.node.port = port;
    o.mode = std::get<0>(GetParam());
    o.batched_calls = std::get<1>(GetParam());
    o.ttl_recheck_ms = recheck_ms;
    auto writer = NewStatsWriter(o);
    SEG_ASSERT_OK(writer);
    std::vector<UserUpdate> first = {{"u1", {{"cats", today}}}};
    SEG_ASSERT_OK((*writer)->WriteBatch(first));
    EXPECT_EQ(ExpireTime(port, key), HllExpireAtUnixS(today, 400));
    SEG_ASSERT_OK(RedisCommandForTest(port, {"DEL", key}));  // e.g. FLUSHALL
    std::vector<UserUpdate> second = {{"u2", {{"cats", today}}}};
    SEG_ASSERT_OK((*writer)->WriteBatch(second));
    // Within the recheck interval the writer does not ask again (the sweep or
    // the next interval fixes it); with 0 it asks on every batch.
    EXPECT_EQ(ExpireTime(port, key), recheck_ms > 0 ? -1 : HllExpireAtUnixS(today, 400))
        << recheck_ms;
    SEG_ASSERT_OK(RedisCommandForTest(port, {"DEL", key}));
  }
}

TEST_P(HllRetentionModeTest, RetentionZeroKeepsKeysForever) {
  auto redis = LocalRedis::Start();
  SEG_ASSERT_OK(redis);
  StatsWriterOptions o;
  o.redis.node.port = (*redis)->port();
  o.mode = std::get<0>(GetParam());
  o.batched_calls = std::get<1>(GetParam());
  o.hll_retention_days = 0;
  auto writer = NewStatsWriter(o);
  SEG_ASSERT_OK(writer);
  std::vector<UserUpdate> batch = {{"u1", {{"cats", 20240501}}}};
  SEG_ASSERT_OK((*writer)->WriteBatch(batch));
  EXPECT_EQ(ExpireTime((*redis)->port(), HllKey("hll", 0, "cats", 20240501)), -1);
}

INSTANTIATE_TEST_SUITE_P(Modes, HllRetentionModeTest,
                         ::testing::Combine(::testing::Values(StatsCallMode::kFunction,
                                                              StatsCallMode::kEvalsha),
                                            ::testing::Bool()),
                         [](const auto& info) {
                           return std::string(std::get<0>(info.param) == StatsCallMode::kFunction
                                                  ? "Function"
                                                  : "Evalsha") +
                                  (std::get<1>(info.param) ? "" : "PerUser");
                         });

std::pair<int, std::string> RunCommand(const std::string& cmd) {
  std::string out;
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return {-1, ""};
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  int rc = pclose(p);
  return {WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, out};
}

TEST(HllExpireSweepTest, SetsTtlsOnOldKeysDeletesExpiredOnesAndIsIdempotent) {
  std::string segctl = testing::BinaryDir() + "/tools/segctl";
  ASSERT_EQ(access(segctl.c_str(), X_OK), 0) << "segctl not built at " << segctl;
  auto redis = LocalRedis::Start();
  SEG_ASSERT_OK(redis);
  const int port = (*redis)->port();
  const Day today = DaysAgo(0), old = DaysAgo(100), too_old = DaysAgo(500);
  const std::string k_today = HllKey("hll", 3, "cats", today);
  const std::string k_old = HllKey("hll", 3, "cats", old);
  const std::string k_too_old = HllKey("hll", 3, "cats", too_old);
  const std::string k_has_ttl = HllKey("hll", 3, "dogs", today);
  const std::string k_not_a_day = "hll:{3}:cats:latest";
  const std::string k_other = "other:{3}:cats:20240501";  // not under the prefix
  for (const auto& k : {k_today, k_old, k_too_old, k_has_ttl, k_not_a_day, k_other}) {
    SEG_ASSERT_OK(RedisCommandForTest(port, {"PFADD", k, "u1"}));
  }
  const int64_t own = NowS() + 7200;
  SEG_ASSERT_OK(RedisCommandForTest(port, {"EXPIREAT", k_has_ttl, std::to_string(own)}));

  const std::string base = segctl + " stats expire-sweep --port " + std::to_string(port) + " ";
  auto [rc, out] = RunCommand(base + "--json --scan-count 2");
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("\"masters\":1,\"scanned\":5,\"had_ttl\":1,\"set\":2,\"expired\":1,"
                     "\"not_a_day\":1,\"vanished\":0,\"retention_days\":400"),
            std::string::npos)
      << out;
  EXPECT_EQ(ExpireTime(port, k_today), HllExpireAtUnixS(today, 400));
  EXPECT_EQ(ExpireTime(port, k_old), HllExpireAtUnixS(old, 400));
  EXPECT_EQ(ExpireTime(port, k_too_old), -2);  // past retention: gone
  EXPECT_EQ(ExpireTime(port, k_has_ttl), own);
  EXPECT_EQ(ExpireTime(port, k_not_a_day), -1);
  EXPECT_EQ(ExpireTime(port, k_other), -1);

  // Again: nothing left to do.
  std::tie(rc, out) = RunCommand(base + "--json");
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("\"scanned\":4,\"had_ttl\":3,\"set\":0,\"expired\":0,\"not_a_day\":1"),
            std::string::npos)
      << out;
  EXPECT_EQ(ExpireTime(port, k_old), HllExpireAtUnixS(old, 400));
  // Human output and a bad command line.
  std::tie(rc, out) = RunCommand(base);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("0 TTLs set"), std::string::npos) << out;
  std::tie(rc, out) = RunCommand(base + "--retention-days 0");
  EXPECT_EQ(rc, 2) << out;
}

TEST(HllExpireSweepTest, WriterAndSweepOnThreeMasterCluster) {
  auto cluster = LocalRedisCluster::Start();
  SEG_ASSERT_OK(cluster);
  const uint32_t shards = 16;
  StatsWriterOptions o;
  o.redis.cluster = true;
  o.redis.seeds = {"127.0.0.1:" + std::to_string((*cluster)->node(0).port())};
  o.shards = shards;
  o.hll_retention_days = 0;  // as before retention existed
  auto legacy_writer = NewStatsWriter(o);
  SEG_ASSERT_OK(legacy_writer);
  const Day today = DaysAgo(0), old = DaysAgo(30);
  std::vector<UserUpdate> users;
  for (int i = 0; i < 400; ++i) {
    users.push_back({"user-" + std::to_string(i), {{"cats", old}, {"dogs", old}}});
  }
  SEG_ASSERT_OK((*legacy_writer)->WriteBatch(users));
  o.hll_retention_days = 400;
  auto writer = NewStatsWriter(o);
  SEG_ASSERT_OK(writer);
  std::vector<UserUpdate> fresh;
  for (int i = 0; i < 400; ++i) fresh.push_back({"user-" + std::to_string(i), {{"cats", today}}});
  SEG_ASSERT_OK((*writer)->WriteBatch(fresh));

  // Every shard's keys: today's expire (the writer), the old ones not yet.
  std::set<uint32_t> used;
  for (const auto& u : users) used.insert(UserShard(u.user_id, shards));
  auto owner_port = [&](const std::string& key) {
    auto node = (*cluster)->SlotOwner(static_cast<int>(RedisKeySlot(key)));
    SEG_EXPECT_OK(node);
    return (*cluster)->node(node.ok() ? *node : 0).port();
  };
  for (uint32_t s : used) {
    std::string k = HllKey("hll", s, "cats", today);
    EXPECT_EQ(ExpireTime(owner_port(k), k), HllExpireAtUnixS(today, 400)) << k;
    k = HllKey("hll", s, "cats", old);
    EXPECT_EQ(ExpireTime(owner_port(k), k), -1) << k;
  }

  auto router = NewRedisRouter(o.redis);
  SEG_ASSERT_OK(router);
  auto report = SweepHllExpiry(router->get(), "hll", 400, NowS(), 10);
  SEG_ASSERT_OK(report);
  EXPECT_EQ(report->masters, 3);
  // Besides the day keys, every shard's stats epoch key (docs/stats.md "Lost
  // Redis data"): matched by the prefix, never given an expiry.
  EXPECT_EQ(report->not_a_day, static_cast<int64_t>(shards));
  EXPECT_EQ(report->scanned, static_cast<int64_t>(used.size() * 3 + shards));
  EXPECT_EQ(report->had_ttl, static_cast<int64_t>(used.size()));
  EXPECT_EQ(report->set, static_cast<int64_t>(used.size() * 2));
  for (uint32_t s : used) {
    for (const char* seg : {"cats", "dogs"}) {
      std::string k = HllKey("hll", s, seg, old);
      EXPECT_EQ(ExpireTime(owner_port(k), k), HllExpireAtUnixS(old, 400)) << k;
    }
  }
  auto again = SweepHllExpiry(router->get(), "hll", 400, NowS(), 10);
  SEG_ASSERT_OK(again);
  EXPECT_EQ(again->set, 0);
  EXPECT_EQ(again->had_ttl, static_cast<int64_t>(used.size() * 3));
}

}  // namespace
}  // namespace seg::stats
