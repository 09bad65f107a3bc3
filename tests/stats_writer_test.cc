// StatsWriter against a real redis-server and a local 3-master Redis
// Cluster: counts match the distinct users put in, with batched calls
// (seg_add_users_v3, the default; v2 with epochs off) and one call per user (seg_add_user);
// calls survive Redis losing its functions/scripts, AUTH works, the PFADD
// baseline agrees. tests/stats_batched_test.cc compares the two call shapes
// register by register.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <set>

#include "common/hash.h"
#include "stats/redis_cluster/redis_cluster.h"
#include "stats/writer/stats_writer.h"
#include "tests/harness/poll.h"
#include "tests/harness/redis_cluster.h"
#include "tests/harness/redis_server.h"
#include "tests/harness/status_matchers.h"

namespace seg::stats {
namespace {

using testing::LocalRedis;
using testing::LocalRedisCluster;
using testing::LocalRedisOptions;
using testing::RedisCommandForTest;

constexpr Day kDay0 = 20240501;
const std::vector<std::string> kSegments = {"cats", "dogs", "cars"};

// User i is in cats if i%2==0, dogs if i%3==0, cars if i%5==0 (a few in none),
// seen on day kDay0 + i%3 (and also on the next day when i%7==0).
std::vector<UserUpdate> MakeUsers(int from, int to) {
  std::vector<UserUpdate> out;
  for (int i = from; i < to; ++i) {
    UserUpdate u;
    u.user_id = "user-" + std::to_string(i);
    std::vector<Day> days = {kDay0 + static_cast<Day>(i % 3)};
    if (i % 7 == 0) days.push_back(kDay0 + static_cast<Day>((i + 1) % 3));
    for (Day d : days) {
      if (i % 2 == 0) u.adds.push_back({"cats", d});
      if (i % 3 == 0) u.adds.push_back({"dogs", d});
      if (i % 5 == 0) u.adds.push_back({"cars", d});
    }
    out.push_back(std::move(u));
  }
  return out;
}

// Distinct users per "segment:day".
std::map<std::string, std::set<std::string>> Truth(const std::vector<UserUpdate>& users) {
  std::map<std::string, std::set<std::string>> t;
  for (const auto& u : users) {
    for (const auto& a : u.adds) t[a.segment + ":" + std::to_string(a.day)].insert(u.user_id);
  }
  return t;
}

void Merge(std::map<std::string, std::set<std::string>>* into,
           const std::map<std::string, std::set<std::string>>& from) {
  for (const auto& [k, v] : from) (*into)[k].insert(v.begin(), v.end());
}

// `epoch_redos` (optional): a batch answered "stats epoch changed" is sent
// again (what a segmenter does after segmenting it again) and counted here.
Status WriteInBatches(StatsWriter* writer, const std::vector<UserUpdate>& users, size_t batch,
                      int* epoch_redos = nullptr) {
  for (size_t i = 0; i < users.size(); i += batch) {
    size_t n = std::min(batch, users.size() - i);
    Status s = writer->WriteBatch(std::span<const UserUpdate>(users.data() + i, n));
    if (epoch_redos != nullptr && IsEpochChange(s)) {
      ++*epoch_redos;
      s = writer->WriteBatch(std::span<const UserUpdate>(users.data() + i, n));
    }
    SEG_RETURN_IF_ERROR(s);
  }
  return Status::OK();
}

// Sum over shards of PFCOUNT of each segment-day, compared with the truth:
// each shard's count is within HyperLogLog error (1.04/sqrt(16384) = 0.81%
// standard error), so the sum is within 3% (small sets are near exact).
void ExpectCountsMatch(RedisRouter* router, uint32_t shards,
                       const std::map<std::string, std::set<std::string>>& truth) {
  for (const auto& [segday, users] : truth) {
    size_t colon = segday.rfind(':');
    std::string segment = segday.substr(0, colon);
    Day day = static_cast<Day>(std::stoul(segday.substr(colon + 1)));
    int64_t total = 0;
    for (uint32_t s = 0; s < shards; ++s) {
      std::string key = HllKey("hll", s, segment, day);
      auto r = router->Command(key, {"PFCOUNT", key});
      SEG_ASSERT_OK(r);
      ASSERT_TRUE(r->is_integer()) << r->DebugString();
      total += r->integer;
    }
    double want = static_cast<double>(users.size());
    EXPECT_NEAR(static_cast<double>(total), want, std::max(2.0, 0.03 * want)) << segday;
  }
}

std::unique_ptr<RedisRouter> SingleRouter(int port, const std::string& password = "") {
  RedisRouterOptions o;
  o.node.port = port;
  o.node.password = password;
  auto r = NewRedisRouter(o);
  SEG_EXPECT_OK(r);
  return r.ok() ? std::move(*r) : nullptr;
}

StatsWriterOptions WriterOptions(int port, uint32_t shards, StatsCallMode mode,
                                 bool batched_calls = true) {
  StatsWriterOptions o;
  o.redis.node.port = port;
  o.shards = shards;
  o.mode = mode;
  o.batched_calls = batched_calls;
  o.hll_retention_days = 0;  // days of 2024: past the default retention
  return o;
}

TEST(StatsDaysTest, ParsesFormatsAndRejectsDays) {
  EXPECT_EQ(*ParseDay("2024-02-29"), 20240229u);
  EXPECT_EQ(*ParseDay("20240301"), 20240301u);
  EXPECT_FALSE(ParseDay("2023-02-29").ok());
  EXPECT_FALSE(ParseDay("2024-13-01").ok());
  EXPECT_FALSE(ParseDay("2024/01/01").ok());
  EXPECT_FALSE(ParseDay("").ok());
  EXPECT_EQ(FormatDay(20240105), "2024-01-05");
  EXPECT_EQ(EpochDaysToDay(DayToEpochDays(20240228) + 1), 20240229u);
  EXPECT_EQ(EpochDaysToDay(DayToEpochDays(20231231) + 1), 20240101u);
  EXPECT_EQ(DayFromUnixMs(0), 19700101u);
  EXPECT_EQ(DayFromUnixMs(1714521600000), 20240501u);  // 2024-05-01T00:00:00Z
  EXPECT_EQ(HllKey("hll", 7, "cats", 20240501), "hll:{7}:cats:20240501");
  EXPECT_FALSE(ParseDay("20240230").ok());
  EXPECT_FALSE(ParseDay("19691231").ok());
  EXPECT_EQ(RedisKeySlot(HllKey("hll", 7, "cats", 20240501)),
            RedisKeySlot(HllKey("hll", 7, "dogs", 20240502)));
}

TEST(StatsWriterLuaTest, LibrarySourceIsCompiledIn) {
  std::string_view lua = StatsFunctionsLua();
  EXPECT_TRUE(lua.starts_with("#!lua name=segstats"));
  EXPECT_NE(lua.find("'seg_add_user'"), std::string_view::npos);
  EXPECT_NE(lua.find("'seg_add_users_v2'"), std::string_view::npos);
}

// How a writer calls Redis: the transport and the call shape.
struct WriterMode {
  StatsCallMode mode;
  bool batched_calls;
  std::string name;
};
std::string ModeName(const ::testing::TestParamInfo<WriterMode>& info) { return info.param.name; }
const WriterMode kFunctionBatched{StatsCallMode::kFunction, true, "Function"};
const WriterMode kEvalshaBatched{StatsCallMode::kEvalsha, true, "Evalsha"};
const WriterMode kFunctionPerUser{StatsCallMode::kFunction, false, "FunctionPerUser"};
const WriterMode kEvalshaPerUser{StatsCallMode::kEvalsha, false, "EvalshaPerUser"};

class StatsWriterModeTest : public ::testing::TestWithParam<WriterMode> {};

TEST_P(StatsWriterModeTest, PfcountEqualsDistinctUsersWithinHllError) {
  auto redis = LocalRedis::Start();
  SEG_ASSERT_OK(redis);
  const uint32_t shards = 4;
  auto writer = NewStatsWriter(
      WriterOptions((*redis)->port(), shards, GetParam().mode, GetParam().batched_calls));
  SEG_ASSERT_OK(writer);
  auto users = MakeUsers(0, 12000);
  SEG_ASSERT_OK(WriteInBatches(writer->get(), users, 500));

  auto router = SingleRouter((*redis)->port());
  ExpectCountsMatch(router.get(), shards, Truth(users));
  size_t keys = 0;
  for (const auto& u : users) keys += u.adds.size();
  EXPECT_EQ((*writer)->counters().keys, static_cast<int64_t>(keys));
  if (GetParam().mode != StatsCallMode::kPfaddPerRoundTrip) {
    if (GetParam().batched_calls) {
      // One Redis: every shard's keys in one group, and a batch's ~590 adds
      // fit one call: one call per batch.
      EXPECT_EQ((*writer)->counters().calls, 24);
    } else {
      // One call per user that had something to add.
      int64_t callers = 0;
      for (const auto& u : users) callers += !u.adds.empty();
      EXPECT_EQ((*writer)->counters().calls, callers);
    }
    // 24 pipelines + 1 registry.
    EXPECT_LE((*writer)->counters().round_trips, 26);
  }
  // The registry lists every segment seen.
  auto registered = RedisCommandForTest((*redis)->port(), {"HKEYS", "segments:registry"});
  SEG_ASSERT_OK(registered);
  for (const auto& s : kSegments) EXPECT_NE(registered->find(s), std::string::npos) << s;

  // A replayed batch changes nothing.
  int64_t changed_before = (*writer)->counters().changed;
  SEG_ASSERT_OK(WriteInBatches(writer->get(), users, 500));
  EXPECT_EQ((*writer)->counters().changed, changed_before);
  ExpectCountsMatch(router.get(), shards, Truth(users));
}

INSTANTIATE_TEST_SUITE_P(
    Modes, StatsWriterModeTest,
    ::testing::Values(kFunctionBatched, kEvalshaBatched, kFunctionPerUser, kEvalshaPerUser,
                      WriterMode{StatsCallMode::kPfaddPerRoundTrip, false, "PfaddBaseline"}),
    ModeName);

class StatsWriterRestartTest : public ::testing::TestWithParam<WriterMode> {};

// Redis restarted mid-run without persistence: the data and the function
// cache are gone. The next batch's calls answer "Function not found" /
// NOSCRIPT; the writer reloads and resends, and the counts match what was
// written since the restart. Replaying the earlier batches (what a segmenter
// does for uncommitted offsets) restores the rest.
TEST_P(StatsWriterRestartTest, CallsRecoverAfterRestartAndCountsMatch) {
  auto redis = LocalRedis::Start();
  SEG_ASSERT_OK(redis);
  auto writer =
      NewStatsWriter(WriterOptions((*redis)->port(), 2, GetParam().mode, GetParam().batched_calls));
  SEG_ASSERT_OK(writer);
  auto first = MakeUsers(0, 4000);
  auto second = MakeUsers(4000, 8000);
  SEG_ASSERT_OK(WriteInBatches(writer->get(), first, 400));
  EXPECT_EQ((*writer)->counters().reloads, 0);

  const std::string epoch_before((*writer)->Epoch("user-0").value_or("none"));
  SEG_ASSERT_OK((*redis)->Restart());
  int redos = 0;
  Status s = WriteInBatches(writer->get(), second, 400, &redos);
  SEG_ASSERT_OK(s);
  EXPECT_GE((*writer)->counters().reloads, 1);
  if (GetParam().batched_calls) {
    // The first batch met both shards' epochs gone: its adds are done, and
    // it is answered ABORTED once so that the caller counts its users again.
    EXPECT_EQ(redos, 1);
    EXPECT_EQ((*writer)->counters().epoch_changes, 2);
    EXPECT_FALSE(epoch_before.empty());
    EXPECT_NE(epoch_before, std::string(*(*writer)->Epoch("user-0")));
  } else {
    EXPECT_EQ(redos, 0);  // per-user calls keep no epochs
    EXPECT_FALSE((*writer)->Epoch("user-0").has_value());
  }
  auto router = SingleRouter((*redis)->port());
  ExpectCountsMatch(router.get(), 2, Truth(second));

  SEG_ASSERT_OK(WriteInBatches(writer->get(), first, 400));
  auto all = Truth(first);
  Merge(&all, Truth(second));
  ExpectCountsMatch(router.get(), 2, all);
}

// The data stays but the function/script cache is flushed (FUNCTION FLUSH,
// SCRIPT FLUSH): calls recover and nothing is lost.
TEST_P(StatsWriterRestartTest, CallsRecoverAfterFlushAndCountsMatch) {
  auto redis = LocalRedis::Start();
  SEG_ASSERT_OK(redis);
  auto writer =
      NewStatsWriter(WriterOptions((*redis)->port(), 1, GetParam().mode, GetParam().batched_calls));
  SEG_ASSERT_OK(writer);
  auto first = MakeUsers(0, 3000);
  auto second = MakeUsers(3000, 6000);
  SEG_ASSERT_OK(WriteInBatches(writer->get(), first, 300));
  SEG_ASSERT_OK(RedisCommandForTest((*redis)->port(), {"FUNCTION", "FLUSH"}));
  SEG_ASSERT_OK(RedisCommandForTest((*redis)->port(), {"SCRIPT", "FLUSH"}));
  SEG_ASSERT_OK(WriteInBatches(writer->get(), second, 300));
  EXPECT_EQ((*writer)->counters().reloads, 1);
  auto all = Truth(first);
  Merge(&all, Truth(second));
  auto router = SingleRouter((*redis)->port());
  ExpectCountsMatch(router.get(), 1, all);
}

INSTANTIATE_TEST_SUITE_P(Modes, StatsWriterRestartTest,
                         ::testing::Values(kFunctionBatched, kEvalshaBatched, kFunctionPerUser,
                                           kEvalshaPerUser),
                         ModeName);

TEST(StatsWriterTest, RedisDownIsUnavailableAndRecovers) {
  auto redis = LocalRedis::Start();
  SEG_ASSERT_OK(redis);
  StatsWriterOptions o = WriterOptions((*redis)->port(), 1, StatsCallMode::kFunction);
  o.redis.node.reconnect_initial_ms = 1;
  o.redis.node.reconnect_max_ms = 1;
  auto writer = NewStatsWriter(o);
  SEG_ASSERT_OK(writer);
  auto users = MakeUsers(0, 100);
  SEG_ASSERT_OK(WriteInBatches(writer->get(), users, 100));
  SEG_ASSERT_OK((*redis)->Stop());
  Status down = WriteInBatches(writer->get(), users, 100);
  EXPECT_EQ(down.code(), StatusCode::kUnavailable) << down;
  SEG_ASSERT_OK((*redis)->Restart());
  // The backoff window is 1 ms; poll with a deadline rather than sleeping.
  Status s;
  EXPECT_TRUE(seg::testing::PollUntil(
      [&] { return (s = WriteInBatches(writer->get(), users, 100)).ok(); },
      std::chrono::seconds(10), "a write after the restart", std::chrono::milliseconds(0)))
      << s;
}

TEST(StatsWriterTest, AuthWithPasswordAndRefusesWrongOne) {
  LocalRedisOptions ro;
  ro.password = "s3cret";
  auto redis = LocalRedis::Start(ro);
  SEG_ASSERT_OK(redis);
  StatsWriterOptions o = WriterOptions((*redis)->port(), 1, StatsCallMode::kFunction);
  o.redis.node.password = "s3cret";
  auto writer = NewStatsWriter(o);
  SEG_ASSERT_OK(writer);
  auto users = MakeUsers(0, 500);
  SEG_ASSERT_OK(WriteInBatches(writer->get(), users, 250));
  auto router = SingleRouter((*redis)->port(), "s3cret");
  ExpectCountsMatch(router.get(), 1, Truth(users));

  o.redis.node.password = "wrong";
  auto bad = NewStatsWriter(o);
  Status s = bad.ok() ? WriteInBatches(bad->get(), users, 250) : bad.status();
  EXPECT_EQ(s.code(), StatusCode::kUnauthenticated) << s;
}

TEST(StatsWriterTest, RejectsMalformedUpdatesBeforeSending) {
  auto redis = LocalRedis::Start();
  SEG_ASSERT_OK(redis);
  auto writer = NewStatsWriter(WriterOptions((*redis)->port(), 1, StatsCallMode::kFunction));
  SEG_ASSERT_OK(writer);
  std::vector<UserUpdate> bad_day = {{"u1", {{"cats", 20241301}}}};
  EXPECT_EQ((*writer)->WriteBatch(bad_day).code(), StatusCode::kInvalidArgument);
  std::vector<UserUpdate> no_user = {{"", {{"cats", kDay0}}}};
  EXPECT_EQ((*writer)->WriteBatch(no_user).code(), StatusCode::kInvalidArgument);
  std::vector<UserUpdate> no_segment = {{"u1", {{"", kDay0}}}};
  EXPECT_EQ((*writer)->WriteBatch(no_segment).code(), StatusCode::kInvalidArgument);
  for (Day day : {20240230u, 20230229u, 20240100u, 20240132u, 19691231u, 100000000u}) {
    std::vector<UserUpdate> u = {{"u1", {{"cats", kDay0}, {"cats", day}}}};
    EXPECT_EQ((*writer)->WriteBatch(u).code(), StatusCode::kInvalidArgument) << day;
  }
  EXPECT_EQ((*writer)->counters().round_trips, 0);
}

TEST(StatsWriterTest, RegisterSegmentsRecordsScripts) {
  auto redis = LocalRedis::Start();
  SEG_ASSERT_OK(redis);
  auto writer = NewStatsWriter(WriterOptions((*redis)->port(), 1, StatsCallMode::kFunction));
  SEG_ASSERT_OK(writer);
  SEG_ASSERT_OK((*writer)->RegisterSegments({{"cats", "pets.lua@3"}}));
  auto v = RedisCommandForTest((*redis)->port(), {"HGET", "segments:registry", "cats"});
  SEG_ASSERT_OK(v);
  EXPECT_EQ(*v, "pets.lua@3");
  // A later first sighting does not overwrite it (HSETNX).
  std::vector<UserUpdate> u = {{"u1", {{"cats", kDay0}}}};
  SEG_ASSERT_OK((*writer)->WriteBatch(u));
  EXPECT_EQ(*RedisCommandForTest((*redis)->port(), {"HGET", "segments:registry", "cats"}),
            "pets.lua@3");
}

TEST(StatsWriterClusterTest, CountsMatchThroughThreeMasterCluster) {
  auto cluster = LocalRedisCluster::Start();
  SEG_ASSERT_OK(cluster);
  const uint32_t shards = 16;
  StatsWriterOptions o;
  o.redis.cluster = true;
  o.redis.seeds = {"127.0.0.1:" + std::to_string((*cluster)->node(0).port())};
  o.shards = shards;
  o.hll_retention_days = 0;  // days of 2024: past the default retention
  auto writer = NewStatsWriter(o);
  SEG_ASSERT_OK(writer);
  auto users = MakeUsers(0, 9000);
  SEG_ASSERT_OK(WriteInBatches(writer->get(), users, 500));
  // One round trip per node per batch: 18 batches x 3 masters, plus the
  // registry and the epochs read at start.
  EXPECT_LE((*writer)->counters().round_trips, 18 + 2);

  RedisRouterOptions ro = o.redis;
  auto router = NewRedisRouter(ro);
  SEG_ASSERT_OK(router);
  ExpectCountsMatch(router->get(), shards, Truth(users));
  // The shards really are spread over the masters, and the function is on each.
  for (int n = 0; n < (*cluster)->size(); ++n) {
    auto size = RedisCommandForTest((*cluster)->node(n).port(), {"DBSIZE"});
    SEG_ASSERT_OK(size);
    EXPECT_GT(std::stoll(*size), 0) << "node " << n;
  }

  // Every master loses its functions: calls recover.
  for (int n = 0; n < (*cluster)->size(); ++n) {
    SEG_ASSERT_OK(RedisCommandForTest((*cluster)->node(n).port(), {"FUNCTION", "FLUSH"}));
  }
  auto more = MakeUsers(9000, 12000);
  SEG_ASSERT_OK(WriteInBatches(writer->get(), more, 500));
  EXPECT_GE((*writer)->counters().reloads, 1);
  auto all = Truth(users);
  Merge(&all, Truth(more));
  ExpectCountsMatch(router->get(), shards, all);
}

}  // namespace
}  // namespace seg::stats
