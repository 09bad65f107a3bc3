// Batched HLL calls (FCALL seg_add_users_v2, issue #18) against a real
// redis-server and a local 3-master Redis Cluster: the same users written
// with one call per user (seg_add_user) and with batched calls, into two key
// prefixes, give identical sketches (registers, PFCOUNT, expiry); keys split
// over calls and over Lua's unpack limit; calls grouped per cluster slot; a
// call that failed half-way is resent whole; a malformed call changes
// nothing; old and new writers run side by side on one library.
#include <gtest/gtest.h>

#include <map>
#include <random>
#include <set>

#include "common/clock.h"
#include "common/hash.h"
#include "stats/hll/hll.h"
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

Day DaysAgo(int n) { return DayFromUnixMs(Clock::Real()->NowMs() - int64_t{n} * 86'400'000); }

// The bench's shape: every user gets `per_user` distinct segment-days drawn
// from `segments` segments x `days` days (today and before), seeded.
std::vector<UserUpdate> DrawUsers(int from, int to, int per_user = 5, int segments = 120,
                                  int days = 2, uint64_t seed = 18) {
  std::mt19937_64 rng(seed + static_cast<uint64_t>(from));
  std::uniform_int_distribution<int> pick(0, segments * days - 1);
  std::vector<UserUpdate> out;
  for (int i = from; i < to; ++i) {
    UserUpdate u;
    u.user_id = "user-" + std::to_string(i);
    std::set<int> chosen;
    while (static_cast<int>(chosen.size()) < per_user) chosen.insert(pick(rng));
    for (int p : chosen)
      u.adds.push_back({"seg" + std::to_string(p % segments), DaysAgo(p / segments)});
    out.push_back(std::move(u));
  }
  return out;
}

Status WriteInBatches(StatsWriter* writer, const std::vector<UserUpdate>& users, size_t batch) {
  for (size_t i = 0; i < users.size(); i += batch) {
    size_t n = std::min(batch, users.size() - i);
    SEG_RETURN_IF_ERROR(writer->WriteBatch(std::span<const UserUpdate>(users.data() + i, n)));
  }
  return Status::OK();
}

// One stored sketch: its registers, PFCOUNT and EXPIRETIME.
struct Stored {
  HyperLogLog hll;
  int64_t pfcount = -1;
  int64_t expire_time = -3;
};

// Every key under "<prefix>:" on every master, by the rest of its name
// ("{shard}:segment:day"), so that two prefixes compare key by key.
std::map<std::string, Stored> ReadAll(RedisRouter* router, const std::string& prefix) {
  std::vector<std::string> keys;
  Status s = router->ForEachMaster([&](RedisConnection& conn) -> Status {
    SEG_ASSIGN_OR_RETURN(RedisReply r, conn.Command({"KEYS", prefix + ":*"}));
    for (const auto& k : r.elements) {
      if (!k.str.ends_with(":epoch")) keys.push_back(k.str);  // the stats epochs
    }
    return Status::OK();
  });
  SEG_EXPECT_OK(s);
  std::map<std::string, Stored> out;
  for (const auto& key : keys) {
    std::vector<RoutedCommand> reads = {
        {key, {"GET", key}}, {key, {"PFCOUNT", key}}, {key, {"EXPIRETIME", key}}};
    auto r = router->Pipeline(reads);
    SEG_EXPECT_OK(r);
    if (!r.ok()) continue;
    auto hll = HyperLogLog::FromRedisString((*r)[0].str);
    SEG_EXPECT_OK(hll) << key;
    if (!hll.ok()) continue;
    out[key.substr(prefix.size() + 1)] = Stored{*hll, (*r)[1].integer, (*r)[2].integer};
  }
  return out;
}

// The sketches PFADD builds from `users` (HyperLogLog::Add is PFADD), by
// the rest of the key name as in ReadAll.
std::map<std::string, HyperLogLog> Model(const std::vector<UserUpdate>& users, uint32_t shards) {
  std::map<std::string, HyperLogLog> out;
  for (const auto& u : users) {
    for (const auto& a : u.adds) {
      out[HllKey("", UserShard(u.user_id, shards), a.segment, a.day).substr(1)].Add(u.user_id);
    }
  }
  return out;
}

void ExpectSameSketches(const std::map<std::string, Stored>& want,
                        const std::map<std::string, Stored>& got) {
  ASSERT_EQ(want.size(), got.size());
  for (const auto& [key, w] : want) {
    auto it = got.find(key);
    ASSERT_NE(it, got.end()) << key;
    EXPECT_TRUE(w.hll == it->second.hll) << key << ": registers differ";
    EXPECT_EQ(w.pfcount, it->second.pfcount) << key;
    EXPECT_EQ(w.expire_time, it->second.expire_time) << key;
  }
}

void ExpectModel(const std::map<std::string, HyperLogLog>& want,
                 const std::map<std::string, Stored>& got) {
  ASSERT_EQ(want.size(), got.size());
  for (const auto& [key, hll] : want) {
    auto it = got.find(key);
    ASSERT_NE(it, got.end()) << key;
    EXPECT_TRUE(hll == it->second.hll) << key << ": registers differ";
    EXPECT_EQ(static_cast<int64_t>(hll.Estimate()), it->second.pfcount) << key;
  }
}

StatsWriterOptions Options(int port, const std::string& prefix, bool batched, uint32_t shards) {
  StatsWriterOptions o;
  o.redis.node.port = port;
  o.key_prefix = prefix;
  o.batched_calls = batched;
  o.shards = shards;
  o.update_registry = false;
  return o;  // retention 400: today's and yesterday's keys get an expiry
}

std::unique_ptr<RedisRouter> SingleRouter(int port) {
  RedisRouterOptions o;
  o.node.port = port;
  auto r = NewRedisRouter(o);
  SEG_EXPECT_OK(r);
  return r.ok() ? std::move(*r) : nullptr;
}

TEST(StatsBatchedConfigTest, LoadsCallShapeFromConfig) {
  StatsWriterOptions defaults;
  EXPECT_TRUE(defaults.batched_calls);
  EXPECT_EQ(defaults.max_call_adds, 4096);
  auto config = Config::FromString(
      "stats:\n  batched_calls: false\n  max_call_adds: 100\n  max_call_retries: 0\n", "t.yaml");
  SEG_ASSERT_OK(config);
  StatsWriterOptions o;
  SEG_ASSERT_OK(o.LoadFrom(*config, "stats"));
  EXPECT_FALSE(o.batched_calls);
  EXPECT_EQ(o.max_call_adds, 100);
  EXPECT_EQ(o.max_call_retries, 0);
  for (const char* text : {"stats:\n  max_call_adds: 0\n", "stats:\n  max_call_retries: -1\n"}) {
    auto bad = Config::FromString(text, "t.yaml");
    SEG_ASSERT_OK(bad);
    EXPECT_FALSE(StatsWriterOptions().LoadFrom(*bad, "stats").ok()) << text;
  }
}

class StatsBatchedTest : public ::testing::TestWithParam<StatsCallMode> {};

// The acceptance test: the same 20,000 users (5 segment-days each
// from 120 segments x 2 days) through seg_add_user, one call per user, and
// through seg_add_users_v2, into two prefixes: every key has the same
// registers, PFCOUNT and expiry. Also with calls of 97 adds (keys split over
// calls), and both equal the sketches PFADD builds client-side.
TEST_P(StatsBatchedTest, CountsAreIdenticalToOneCallPerUser) {
  auto redis = LocalRedis::Start();
  SEG_ASSERT_OK(redis);
  const int port = (*redis)->port();
  const uint32_t shards = 4;
  auto users = DrawUsers(0, 20000);
  // A user twice in a batch and a segment-day twice for one user: harmless.
  users[10].adds.push_back(users[10].adds.front());
  users.insert(users.begin() + 20, users[11]);

  StatsWriterOptions per_user = Options(port, "old", false, shards);
  per_user.mode = GetParam();
  auto old_writer = NewStatsWriter(per_user);
  SEG_ASSERT_OK(old_writer);
  SEG_ASSERT_OK(WriteInBatches(old_writer->get(), users, 2000));

  StatsWriterOptions batched = Options(port, "new", true, shards);
  batched.mode = GetParam();
  auto new_writer = NewStatsWriter(batched);
  SEG_ASSERT_OK(new_writer);
  SEG_ASSERT_OK(WriteInBatches(new_writer->get(), users, 2000));

  batched.key_prefix = "tiny";
  batched.max_call_adds = 97;
  auto tiny_writer = NewStatsWriter(batched);
  SEG_ASSERT_OK(tiny_writer);
  SEG_ASSERT_OK(WriteInBatches(tiny_writer->get(), users, 2000));
  EXPECT_EQ((*new_writer)->mode(), GetParam());

  int64_t adds = 0;
  for (const auto& u : users) adds += static_cast<int64_t>(u.adds.size());
  for (auto* w : {old_writer->get(), new_writer->get(), tiny_writer->get()}) {
    EXPECT_EQ(w->counters().keys, adds);
  }
  // One Redis: one group per batch, ceil(adds / 4096) calls (3 for 2,000 users).
  int64_t calls = 0;
  for (size_t b = 0; b < users.size(); b += 2000) {
    int64_t batch_adds = 0;
    for (size_t i = b; i < std::min(users.size(), b + 2000); ++i) {
      batch_adds += static_cast<int64_t>(users[i].adds.size());
    }
    calls += (batch_adds + 4095) / 4096;
  }
  EXPECT_EQ((*old_writer)->counters().calls, static_cast<int64_t>(users.size()));
  EXPECT_EQ((*new_writer)->counters().calls, calls);
  // 11 batches (20,001 users), plus the epochs read at start.
  EXPECT_EQ((*new_writer)->counters().round_trips, 12);
  EXPECT_GE((*tiny_writer)->counters().calls, adds / 97);
  // Every key flagged once for its expiry by each writer.
  EXPECT_EQ((*new_writer)->counters().expiry_checks, (*old_writer)->counters().expiry_checks);

  auto router = SingleRouter(port);
  auto old_keys = ReadAll(router.get(), "old");
  EXPECT_EQ(old_keys.size(), 4u * 120 * 2);
  ExpectSameSketches(old_keys, ReadAll(router.get(), "new"));
  ExpectSameSketches(old_keys, ReadAll(router.get(), "tiny"));
  ExpectModel(Model(users, shards), old_keys);
  for (const auto& [key, stored] : old_keys) {
    Day day = static_cast<Day>(std::stoul(key.substr(key.size() - 8)));
    ASSERT_EQ(stored.expire_time, HllExpireAtUnixS(day, 400)) << key;
  }

  // A replayed batch changes nothing.
  int64_t changed = (*new_writer)->counters().changed;
  SEG_ASSERT_OK(WriteInBatches(new_writer->get(), users, 2000));
  EXPECT_EQ((*new_writer)->counters().changed, changed);
}

INSTANTIATE_TEST_SUITE_P(Modes, StatsBatchedTest,
                         ::testing::Values(StatsCallMode::kFunction, StatsCallMode::kEvalsha),
                         [](const auto& info) {
                           return info.param == StatsCallMode::kFunction ? "Function" : "Evalsha";
                         });

// More members for one key in one call than Lua can unpack at once (the
// procedure PFADDs them in slices).
TEST(StatsBatchedTest, OneKeyWithMoreMembersThanLuaUnpacks) {
  auto redis = LocalRedis::Start();
  SEG_ASSERT_OK(redis);
  StatsWriterOptions o = Options((*redis)->port(), "hll", true, 1);
  o.max_call_adds = 30000;
  auto writer = NewStatsWriter(o);
  SEG_ASSERT_OK(writer);
  std::vector<UserUpdate> users;
  for (int i = 0; i < 25000; ++i) {
    users.push_back({"user-" + std::to_string(i), {{"cats", DaysAgo(0)}, {"dogs", DaysAgo(1)}}});
  }
  SEG_ASSERT_OK(WriteInBatches(writer->get(), users, 12000));
  EXPECT_EQ((*writer)->counters().calls, 3);  // 24,000 + 24,000 + 2,000 adds
  auto router = SingleRouter((*redis)->port());
  ExpectModel(Model(users, 1), ReadAll(router.get(), "hll"));
}

// Redis Cluster, 16 shards over 3 masters: one call per slot a batch
// touches, one round trip per batch, and the same sketches as per-user calls.
TEST(StatsBatchedClusterTest, OneCallPerSlotAndIdenticalToPerUserCalls) {
  auto cluster = LocalRedisCluster::Start();
  SEG_ASSERT_OK(cluster);
  const uint32_t shards = 16;
  auto options = [&](const std::string& prefix, bool batched) {
    StatsWriterOptions o = Options(0, prefix, batched, shards);
    o.redis.cluster = true;
    o.redis.seeds = {"127.0.0.1:" + std::to_string((*cluster)->node(0).port())};
    return o;
  };
  auto users = DrawUsers(0, 8000);
  auto old_writer = NewStatsWriter(options("old", false));
  SEG_ASSERT_OK(old_writer);
  SEG_ASSERT_OK(WriteInBatches(old_writer->get(), users, 2000));
  auto new_writer = NewStatsWriter(options("new", true));
  SEG_ASSERT_OK(new_writer);
  SEG_ASSERT_OK(WriteInBatches(new_writer->get(), users, 2000));

  // Each batch: ~625 adds per shard, one call per distinct slot.
  int64_t calls = 0;
  for (size_t b = 0; b < users.size(); b += 2000) {
    std::set<int> slots;
    for (size_t i = b; i < b + 2000; ++i) {
      slots.insert(RedisKeySlot("{" + std::to_string(UserShard(users[i].user_id, shards)) + "}"));
    }
    calls += static_cast<int64_t>(slots.size());
  }
  EXPECT_EQ((*new_writer)->counters().calls, calls);
  // One pipeline per batch, plus the epochs read at start.
  EXPECT_EQ((*new_writer)->counters().round_trips, 5);

  auto router = NewRedisRouter(options("old", false).redis);
  SEG_ASSERT_OK(router);
  auto old_keys = ReadAll(router->get(), "old");
  EXPECT_GT(old_keys.size(), shards * 120 * 2 * 99 / 100);  // ~10 adds per key: a few missed
  ExpectSameSketches(old_keys, ReadAll(router->get(), "new"));
  ExpectModel(Model(users, shards), old_keys);
  // Every master holds some of them.
  for (int n = 0; n < (*cluster)->size(); ++n) {
    auto size = RedisCommandForTest((*cluster)->node(n).port(), {"DBSIZE"});
    SEG_ASSERT_OK(size);
    EXPECT_GT(std::stoll(*size), 0) << "node " << n;
  }

  // Shard 0's slot moves to another master with its keys: the writers'
  // maps are stale, their calls for it answer MOVED and go to the new owner.
  const int slot = RedisKeySlot("{0}");
  auto owner = (*cluster)->SlotOwner(slot);
  SEG_ASSERT_OK(owner);
  SEG_ASSERT_OK((*cluster)->MigrateSlot(slot, (*owner + 1) % 3));
  auto more = DrawUsers(8000, 10000);
  SEG_ASSERT_OK((*old_writer)->WriteBatch(more));
  SEG_ASSERT_OK((*new_writer)->WriteBatch(more));
  users.insert(users.end(), more.begin(), more.end());
  old_keys = ReadAll(router->get(), "old");
  ExpectSameSketches(old_keys, ReadAll(router->get(), "new"));
  ExpectModel(Model(users, shards), old_keys);
}

// A router that makes batched calls fail the way a half-run script does:
// the first `failures` seg_add_users_v2 calls it sees are cut to their first
// key (which Redis really runs), then answered with a transient error.
class HalfFailingRouter : public RedisRouter {
 public:
  HalfFailingRouter(std::unique_ptr<RedisRouter> inner, int failures, std::string error)
      : inner_(std::move(inner)), failures_(failures), error_(std::move(error)) {}

  StatusOr<RedisReply> Command(std::string_view key, const RedisArgv& argv) override {
    return inner_->Command(key, argv);
  }
  StatusOr<std::vector<RedisReply>> Pipeline(const std::vector<RoutedCommand>& commands) override {
    std::vector<RoutedCommand> sent = commands;
    std::vector<bool> failed(commands.size(), false);
    for (size_t i = 0; i < sent.size(); ++i) {
      RedisArgv& argv = sent[i].argv;
      if (argv.size() < 3 || argv[1] != "seg_add_users_v2") continue;
      calls_seen.push_back(argv);
      if (failures_ == 0) continue;
      --failures_;
      failed[i] = true;
      // FCALL f n k1..kn days flags c1..cn members -> FCALL f 1 k1 days flag1 c1 <c1 members>
      const size_t n = std::stoul(argv[2]);
      const std::string& flags = argv[4 + n];
      const size_t c1 = std::stoul(argv[5 + n]);
      RedisArgv cut = {argv[0],    argv[1],     "1",
                       argv[3],    argv[3 + n], flags.empty() ? "" : flags.substr(0, 1),
                       argv[5 + n]};
      cut.insert(cut.end(), argv.begin() + static_cast<long>(5 + 2 * n),
                 argv.begin() + static_cast<long>(5 + 2 * n + c1));
      argv = std::move(cut);
    }
    SEG_ASSIGN_OR_RETURN(std::vector<RedisReply> replies, inner_->Pipeline(sent));
    for (size_t i = 0; i < replies.size(); ++i) {
      if (failed[i]) {
        EXPECT_FALSE(replies[i].is_error()) << replies[i].DebugString();
        replies[i] = RedisReply::Error(error_);
      }
    }
    return replies;
  }
  Status ForEachMaster(const std::function<Status(RedisConnection&)>& fn) override {
    return inner_->ForEachMaster(fn);
  }
  StatusOr<std::vector<std::string>> Masters() override { return inner_->Masters(); }
  bool is_cluster() const override { return inner_->is_cluster(); }

  std::vector<RedisArgv> calls_seen;  // every seg_add_users_v2 call, as the writer sent it

 private:
  std::unique_ptr<RedisRouter> inner_;
  int failures_;
  std::string error_;
};

// A call that ran half-way and failed transiently is sent again whole
// (same keys, members and expiry flags); the result equals per-user calls.
TEST(StatsBatchedFailureTest, HalfRunCallIsResentWhole) {
  auto redis = LocalRedis::Start();
  SEG_ASSERT_OK(redis);
  const int port = (*redis)->port();
  auto users = DrawUsers(0, 3000);
  StatsWriterOptions o = Options(port, "new", true, 1);
  o.max_call_adds = 1000;  // several calls per batch: only the first fails
  o.epochs = false;        // the v2 layout HalfFailingRouter cuts
  auto flaky = std::make_unique<HalfFailingRouter>(SingleRouter(port), 1,
                                                   "BUSY Redis is busy running a script (test)");
  HalfFailingRouter* router = flaky.get();
  auto writer = NewStatsWriter(o, std::move(flaky));
  SEG_ASSERT_OK(WriteInBatches(writer.get(), users, 3000));
  EXPECT_EQ(writer->counters().retries, 1);
  EXPECT_EQ(writer->counters().round_trips, 2);
  // 15,000 adds: 15 calls, then the first again, unchanged.
  ASSERT_EQ(router->calls_seen.size(), 16u);
  EXPECT_EQ(router->calls_seen[15], router->calls_seen[0]);
  EXPECT_EQ(writer->counters().calls, 15);
  EXPECT_EQ(writer->counters().keys, 15000);

  auto reference = NewStatsWriter(Options(port, "old", false, 1));
  SEG_ASSERT_OK(reference);
  SEG_ASSERT_OK(WriteInBatches(reference->get(), users, 3000));
  auto plain = SingleRouter(port);
  ExpectSameSketches(ReadAll(plain.get(), "old"), ReadAll(plain.get(), "new"));
}

// A call that keeps failing transiently fails the batch UNAVAILABLE after
// max_call_retries resends; replaying the batch (what the segmenter does)
// then completes it.
TEST(StatsBatchedFailureTest, RetriesRunOutThenReplayCompletes) {
  auto redis = LocalRedis::Start();
  SEG_ASSERT_OK(redis);
  const int port = (*redis)->port();
  auto users = DrawUsers(0, 500);
  auto flaky = std::make_unique<HalfFailingRouter>(SingleRouter(port), 4,
                                                   "LOADING Redis is loading the dataset (test)");
  StatsWriterOptions o = Options(port, "new", true, 1);
  o.epochs = false;  // the v2 layout HalfFailingRouter cuts
  auto writer = NewStatsWriter(o, std::move(flaky));
  Status s = writer->WriteBatch(users);
  EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s;
  EXPECT_EQ(writer->counters().retries, 3);
  EXPECT_EQ(writer->counters().calls, 0);
  SEG_ASSERT_OK(writer->WriteBatch(users));
  auto plain = SingleRouter(port);
  ExpectModel(Model(users, 1), ReadAll(plain.get(), "new"));
}

// A key of the wrong type in the middle of a call: the PFADDs before it
// stay (Redis does not roll a script back), the batch fails
// FAILED_PRECONDITION, and once the key is fixed the replayed batch gives
// exactly the per-user result.
TEST(StatsBatchedFailureTest, HardErrorFailsTheBatchAndReplayRepairs) {
  auto redis = LocalRedis::Start();
  SEG_ASSERT_OK(redis);
  const int port = (*redis)->port();
  auto users = DrawUsers(0, 2000);
  const std::string& bad_segment = users[0].adds[2].segment;
  const std::string bad = HllKey("new", 0, bad_segment, users[0].adds[2].day);
  SEG_ASSERT_OK(RedisCommandForTest(port, {"SET", bad, "not a sketch"}));
  auto writer = NewStatsWriter(Options(port, "new", true, 1));
  SEG_ASSERT_OK(writer);
  Status s = (*writer)->WriteBatch(users);
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition) << s;
  EXPECT_NE(s.ToString().find("WRONGTYPE"), std::string::npos) << s;
  // The keys before the bad one were written.
  EXPECT_GT(std::stoll(*RedisCommandForTest(port, {"DBSIZE"})), 1);

  SEG_ASSERT_OK(RedisCommandForTest(port, {"DEL", bad}));
  SEG_ASSERT_OK((*writer)->WriteBatch(users));
  auto reference = NewStatsWriter(Options(port, "old", false, 1));
  SEG_ASSERT_OK(reference);
  SEG_ASSERT_OK((*reference)->WriteBatch(users));
  auto plain = SingleRouter(port);
  ExpectSameSketches(ReadAll(plain.get(), "old"), ReadAll(plain.get(), "new"));
}

// The procedure checks the whole layout before its first write.
TEST(StatsBatchedLuaTest, MalformedCallsChangeNothingAndWellFormedOnesCount) {
  auto redis = LocalRedis::Start();
  SEG_ASSERT_OK(redis);
  const int port = (*redis)->port();
  auto writer = NewStatsWriter(Options(port, "hll", true, 1));
  SEG_ASSERT_OK(writer);
  SEG_ASSERT_OK((*writer)->LoadProcedures());
  auto functions = RedisCommandForTest(port, {"FUNCTION", "LIST"});
  SEG_ASSERT_OK(functions);
  EXPECT_NE(functions->find("seg_add_user\n"), std::string::npos) << *functions;
  EXPECT_NE(functions->find("seg_add_users_v2"), std::string::npos) << *functions;

  const Day today = DaysAgo(0);
  const std::string k1 = "hll:{0}:cats:20240501", k2 = HllKey("hll", 0, "dogs", today);
  const std::vector<std::vector<std::string>> bad = {
      {"FCALL", "seg_add_users_v2", "2", k1, k2, "0", ""},                  // no counts
      {"FCALL", "seg_add_users_v2", "2", k1, k2, "0", "", "1", "1", "u1"},  // 1 member for 2
      {"FCALL", "seg_add_users_v2", "2", k1, k2, "0", "", "1", "x", "u1", "u2"},
      {"FCALL", "seg_add_users_v2", "2", k1, k2, "0", "", "1", "-1", "u1"},
      {"FCALL", "seg_add_users_v2", "2", k1, k2, "0", "", "1.5", "0.5", "u1", "u2"},
      {"FCALL", "seg_add_users_v2", "2", k1, k2, "0", "1", "1", "1", "u1", "u2"},  // 1 flag
      {"FCALL", "seg_add_users_v2", "1", k1, "0", "", "1", "u1", "u2"},            // 1 extra
  };
  for (const auto& argv : bad) {
    auto r = RedisCommandForTest(port, argv);
    EXPECT_FALSE(r.ok()) << argv.size();
    EXPECT_NE(r.status().ToString().find("seg_add_users_v2"), std::string::npos) << r.status();
  }
  EXPECT_EQ(*RedisCommandForTest(port, {"EXISTS", k1, k2}), "0");

  // k1 gets u1, u2; k2 gets u2, u3, u4 and its expiry (retention 30).
  auto r = RedisCommandForTest(port, {"FCALL", "seg_add_users_v2", "2", k1, k2, "30", "01", "2",
                                      "3", "u1", "u2", "u2", "u3", "u4"});
  SEG_ASSERT_OK(r);
  EXPECT_EQ(*r, "2");  // both sketches changed
  EXPECT_EQ(*RedisCommandForTest(port, {"PFCOUNT", k1}), "2");
  EXPECT_EQ(*RedisCommandForTest(port, {"PFCOUNT", k2}), "3");
  EXPECT_EQ(*RedisCommandForTest(port, {"EXPIRETIME", k1}), "-1");
  EXPECT_EQ(*RedisCommandForTest(port, {"EXPIRETIME", k2}),
            std::to_string(HllExpireAtUnixS(today, 30)));
  // Again: nothing changes; a key with no members is allowed.
  r = RedisCommandForTest(port,
                          {"FCALL", "seg_add_users_v2", "2", k1, k2, "", "", "2", "0", "u1", "u2"});
  SEG_ASSERT_OK(r);
  EXPECT_EQ(*r, "0");
}

// Rolling upgrade: a per-user (old) writer and a batched (new) writer share
// one Redis. An old binary starting up loads its own copy of the library
// (seg_add_user only), which drops seg_add_users_v2: the new writer sees
// "Function not found", loads the full library again and resends, and the
// old writer keeps working throughout.
TEST(StatsBatchedUpgradeTest, OldAndNewWritersRunSideBySide) {
  auto redis = LocalRedis::Start();
  SEG_ASSERT_OK(redis);
  const int port = (*redis)->port();
  const uint32_t shards = 2;
  StatsWriterOptions old_options = Options(port, "hll", false, shards);
  old_options.update_registry = true;
  auto old_writer = NewStatsWriter(old_options);
  SEG_ASSERT_OK(old_writer);
  auto new_writer = NewStatsWriter(Options(port, "hll", true, shards));
  SEG_ASSERT_OK(new_writer);

  // The library as it was before v2 (the part that matters: one function).
  const std::string old_library =
      "#!lua name=segstats\n"
      "redis.register_function{function_name = 'seg_add_user', callback = function(keys, args)\n"
      "  local changed = 0\n"
      "  for i = 1, #keys do changed = changed + redis.call('PFADD', keys[i], args[1]) end\n"
      "  return changed\n"
      "end}\n";
  std::vector<UserUpdate> all;
  for (int round = 0; round < 4; ++round) {
    auto old_users = DrawUsers(round * 2000, round * 2000 + 1000, 5, 120, 2, 1);
    auto new_users = DrawUsers(round * 2000 + 1000, round * 2000 + 2000, 5, 120, 2, 1);
    if (round == 2) {
      SEG_ASSERT_OK(RedisCommandForTest(port, {"FUNCTION", "LOAD", "REPLACE", old_library}));
    }
    SEG_ASSERT_OK((*old_writer)->WriteBatch(old_users)) << round;
    SEG_ASSERT_OK((*new_writer)->WriteBatch(new_users)) << round;
    all.insert(all.end(), old_users.begin(), old_users.end());
    all.insert(all.end(), new_users.begin(), new_users.end());
  }
  EXPECT_EQ((*old_writer)->counters().reloads, 0);
  EXPECT_EQ((*new_writer)->counters().reloads, 1);
  // The reloaded library serves both.
  auto functions = RedisCommandForTest(port, {"FUNCTION", "LIST"});
  SEG_ASSERT_OK(functions);
  EXPECT_NE(functions->find("seg_add_users_v2"), std::string::npos);
  EXPECT_NE(functions->find("seg_add_user\n"), std::string::npos);
  SEG_ASSERT_OK((*old_writer)->WriteBatch(DrawUsers(9000, 9100)));
  auto extra = DrawUsers(9000, 9100);
  all.insert(all.end(), extra.begin(), extra.end());

  auto router = SingleRouter(port);
  ExpectModel(Model(all, shards), ReadAll(router.get(), "hll"));
}

}  // namespace
}  // namespace seg::stats
