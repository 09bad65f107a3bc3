// RedisRouter tests: slot hashing, and routing against a real local 3-master
// Redis Cluster (and a single redis-server).
#include "stats/redis_cluster/redis_cluster.h"

#include <gtest/gtest.h>

#include <chrono>
#include <set>

#include "common/metrics.h"
#include "tests/harness/redis_cluster.h"
#include "tests/harness/redis_server.h"
#include "tests/harness/status_matchers.h"

namespace seg::stats {
namespace {

using testing::LocalRedisCluster;

double CounterValue(const std::string& kind) {
  return metrics::GetCounter("seg_redis_cluster_redirects_total",
                             "Redis Cluster redirections followed", {{"kind", kind}})
      .Value();
}

TEST(RedisKeySlotTest, Crc16Vectors) {
  EXPECT_EQ(RedisCrc16("123456789"), 0x31C3);
  EXPECT_EQ(RedisCrc16(""), 0);
  EXPECT_EQ(RedisKeySlot("123456789"), 0x31C3 % 16384);
  EXPECT_EQ(RedisKeySlot("foo"), 12182);
  EXPECT_EQ(RedisKeySlot("bar"), 5061);
}

TEST(RedisKeySlotTest, HashTags) {
  EXPECT_EQ(RedisKeySlot("{user1000}.following"), RedisKeySlot("{user1000}.followers"));
  EXPECT_EQ(RedisKeySlot("{user1000}.following"), RedisKeySlot("user1000"));
  EXPECT_EQ(RedisKeySlot("foo{bar}{zap}"), RedisKeySlot("bar"));
  EXPECT_EQ(RedisKeySlot("foo{{bar}}zap"), RedisKeySlot("{bar"));
  EXPECT_EQ(RedisKeySlot("foo{}{bar}"), RedisKeySlot("foo{}{bar}"));
  EXPECT_NE(RedisKeySlot("foo{}{bar}"), RedisKeySlot("bar"));  // empty tag: whole key
  EXPECT_EQ(RedisKeySlot("hll:{17}:42:20240101"), RedisKeySlot("hll:{17}:7:20240102"));
}

class RedisClusterTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto cluster = LocalRedisCluster::Start();
    SEG_ASSERT_OK(cluster);
    cluster_ = std::move(*cluster).release();
  }
  static void TearDownTestSuite() {
    delete cluster_;
    cluster_ = nullptr;
  }
  void SetUp() override { ASSERT_NE(cluster_, nullptr); }

  std::unique_ptr<RedisRouter> Router() {
    RedisRouterOptions o;
    o.cluster = true;
    o.seeds = {"127.0.0.1:" + std::to_string(cluster_->node(1).port())};
    o.node.command_timeout_ms = 2000;
    auto router = NewRedisRouter(o);
    SEG_EXPECT_OK(router);
    return router.ok() ? std::move(*router) : nullptr;
  }

  int64_t DbSize(int node) {
    auto n = testing::RedisCommandForTest(cluster_->node(node).port(), {"DBSIZE"});
    SEG_EXPECT_OK(n);
    return n.ok() ? std::stoll(*n) : -1;
  }

  // A key with tag `prefix<n>` whose slot is owned by `node`.
  std::string KeyOnNode(const std::string& prefix, int node) {
    for (int n = 0; n < 100000; ++n) {
      std::string key = "{" + prefix + std::to_string(n) + "}:k";
      auto owner = cluster_->SlotOwner(RedisKeySlot(key));
      if (owner.ok() && *owner == node) return key;
    }
    ADD_FAILURE() << "no key found for node " << node;
    return "";
  }

  static LocalRedisCluster* cluster_;
};
LocalRedisCluster* RedisClusterTest::cluster_ = nullptr;

TEST_F(RedisClusterTest, SlotsMatchTheServer) {
  for (const std::string& key :
       std::vector<std::string>{"123456789", "foo", "{user1000}.x", "hll:{3}:17:20240101", "a{}b",
                                "x{{y}}", std::string("bin\0ary", 7)}) {
    auto server =
        testing::RedisCommandForTest(cluster_->node(0).port(), {"CLUSTER", "KEYSLOT", key});
    SEG_ASSERT_OK(server);
    EXPECT_EQ(std::stoi(*server), RedisKeySlot(key)) << key;
  }
}

TEST_F(RedisClusterTest, KnowsThreeMasters) {
  auto router = Router();
  ASSERT_NE(router, nullptr);
  EXPECT_TRUE(router->is_cluster());
  auto masters = router->Masters();
  SEG_ASSERT_OK(masters);
  std::set<std::string> got(masters->begin(), masters->end());
  std::set<std::string> want;
  for (int port : cluster_->ports()) want.insert("127.0.0.1:" + std::to_string(port));
  EXPECT_EQ(got, want);
}

TEST_F(RedisClusterTest, PipelinedWritesAndReadsAcrossMasters) {
  auto router = Router();
  ASSERT_NE(router, nullptr);
  std::vector<int64_t> before;
  for (int i = 0; i < 3; ++i) before.push_back(DbSize(i));

  constexpr int kN = 3000;
  std::vector<RoutedCommand> writes;
  for (int i = 0; i < kN; ++i) {
    std::string key = "pipe:" + std::to_string(i);
    writes.push_back({key, {"SET", key, "v" + std::to_string(i)}});
  }
  auto written = router->Pipeline(writes);
  SEG_ASSERT_OK(written);
  ASSERT_EQ(written->size(), static_cast<size_t>(kN));
  for (const auto& r : *written) ASSERT_EQ(r.str, "OK") << r.DebugString();

  int64_t total = 0;
  for (int i = 0; i < 3; ++i) {
    int64_t added = DbSize(i) - before[i];
    EXPECT_GT(added, kN / 6) << "node " << i << " got too few keys";
    total += added;
  }
  EXPECT_EQ(total, kN);

  std::vector<RoutedCommand> reads;
  for (int i = kN - 1; i >= 0; --i) {  // a different order than written
    std::string key = "pipe:" + std::to_string(i);
    reads.push_back({key, {"GET", key}});
  }
  auto got = router->Pipeline(reads);
  SEG_ASSERT_OK(got);
  for (int i = 0; i < kN; ++i) {
    ASSERT_EQ((*got)[i].str, "v" + std::to_string(kN - 1 - i));
  }

  auto one = router->Command("pipe:7", {"GET", "pipe:7"});
  SEG_ASSERT_OK(one);
  EXPECT_EQ(one->str, "v7");
  auto any = router->Command("", {"PING"});
  SEG_ASSERT_OK(any);
  EXPECT_EQ(any->str, "PONG");
}

TEST_F(RedisClusterTest, SameHashTagMultiKeyCommandsWork) {
  auto router = Router();
  ASSERT_NE(router, nullptr);
  std::string a = "hll:{u7}:1:20240101", b = "hll:{u7}:2:20240101";
  auto replies = router->Pipeline({
      {a, {"PFADD", a, "x", "y"}},
      {b, {"PFADD", b, "y", "z"}},
      {a, {"PFCOUNT", a, b}},
      {"{u7}", {"MSET", "{u7}:m1", "1", "{u7}:m2", "2"}},
      {"plain-a", {"MGET", "plain-a", "plain-b"}},  // different slots
  });
  SEG_ASSERT_OK(replies);
  EXPECT_EQ((*replies)[2].integer, 3);
  EXPECT_EQ((*replies)[3].str, "OK");
  ASSERT_TRUE((*replies)[4].is_error());
  EXPECT_EQ((*replies)[4].str.rfind("CROSSSLOT", 0), 0u) << (*replies)[4].str;
}

TEST_F(RedisClusterTest, FollowsMovedAfterSlotMigration) {
  auto router = Router();
  ASSERT_NE(router, nullptr);
  std::string key = KeyOnNode("moved", 0);
  int slot = RedisKeySlot(key);
  auto set = router->Pipeline({{key, {"SET", key, "before"}}, {key, {"PFADD", key + "h", "u"}}});
  SEG_ASSERT_OK(set);
  ASSERT_EQ((*set)[0].str, "OK");

  SEG_ASSERT_OK(cluster_->MigrateSlot(slot, 2));
  ASSERT_EQ(*cluster_->SlotOwner(slot), 2);

  double moved_before = CounterValue("moved");
  auto get = router->Command(key, {"GET", key});  // stale map: node 0 answers MOVED
  SEG_ASSERT_OK(get);
  EXPECT_EQ(get->str, "before");
  EXPECT_EQ(CounterValue("moved"), moved_before + 1);

  // The map was refreshed: no further redirection.
  auto again = router->Pipeline({{key, {"SET", key, "after"}}, {key, {"GET", key}}});
  SEG_ASSERT_OK(again);
  EXPECT_EQ((*again)[1].str, "after");
  EXPECT_EQ(CounterValue("moved"), moved_before + 1);
  EXPECT_EQ(*testing::RedisCommandForTest(cluster_->node(2).port(), {"GET", key}), "after");
}

TEST_F(RedisClusterTest, FollowsAskDuringMigration) {
  auto router = Router();
  ASSERT_NE(router, nullptr);
  std::string key = KeyOnNode("ask", 1);
  int slot = RedisKeySlot(key);
  SEG_ASSERT_OK(cluster_->BeginSlotMigration(slot, 0));

  double ask_before = CounterValue("ask");
  // The key does not exist on the owner yet: it answers ASK, the router
  // retries on the importing node with ASKING.
  auto set = router->Command(key, {"SET", key, "imported"});
  SEG_ASSERT_OK(set);
  EXPECT_EQ(set->str, "OK") << set->DebugString();
  EXPECT_EQ(CounterValue("ask"), ask_before + 1);
  auto get = router->Command(key, {"GET", key});
  SEG_ASSERT_OK(get);
  EXPECT_EQ(get->str, "imported");

  SEG_ASSERT_OK(cluster_->FinishSlotMigration(slot, 0));
  auto after = router->Command(key, {"GET", key});
  SEG_ASSERT_OK(after);
  EXPECT_EQ(after->str, "imported");
}

TEST_F(RedisClusterTest, ForEachMasterLoadsFunctions) {
  auto router = Router();
  ASSERT_NE(router, nullptr);
  const std::string library =
      "#!lua name=segtest\n"
      "redis.register_function('seg_pfadd_all', function(keys, args)\n"
      "  local n = 0\n"
      "  for _, k in ipairs(keys) do n = n + redis.call('PFADD', k, args[1]) end\n"
      "  return n\n"
      "end)\n";
  int calls = 0;
  Status loaded = router->ForEachMaster([&](RedisConnection& conn) -> Status {
    ++calls;
    SEG_ASSIGN_OR_RETURN(RedisReply r, conn.Command({"FUNCTION", "LOAD", "REPLACE", library}));
    return r.ToStatus();
  });
  SEG_ASSERT_OK(loaded);
  EXPECT_EQ(calls, 3);

  // One FCALL per user tag, whatever node owns it.
  std::vector<RoutedCommand> calls_by_user;
  for (int u = 0; u < 50; ++u) {
    std::string tag = "{" + std::to_string(u) + "}";
    std::string k1 = "hll:" + tag + ":1:20240101", k2 = "hll:" + tag + ":2:20240101";
    calls_by_user.push_back({k1, {"FCALL", "seg_pfadd_all", "2", k1, k2, "user" + tag}});
  }
  auto replies = router->Pipeline(calls_by_user);
  SEG_ASSERT_OK(replies);
  for (const auto& r : *replies) EXPECT_EQ(r.integer, 2) << r.DebugString();
}

TEST(RedisClusterAuthTest, PasswordClusterAndLostNode) {
  testing::LocalRedisClusterOptions co;
  co.password = "cluster-pw";
  auto cluster = LocalRedisCluster::Start(co);
  SEG_ASSERT_OK(cluster);
  RedisRouterOptions o;
  o.cluster = true;
  o.node.port = (*cluster)->node(0).port();  // no seeds: node.host:port is the seed
  o.node.password = "cluster-pw";
  o.node.connect_timeout_ms = 300;
  o.node.command_timeout_ms = 500;
  auto router = NewRedisRouter(o);
  SEG_ASSERT_OK(router);
  std::vector<RoutedCommand> writes;
  for (int i = 0; i < 100; ++i) {
    std::string key = "auth:" + std::to_string(i);
    writes.push_back({key, {"SET", key, "1"}});
  }
  auto written = (*router)->Pipeline(writes);
  SEG_ASSERT_OK(written);
  for (const auto& r : *written) ASSERT_EQ(r.str, "OK") << r.DebugString();

  // Moving a slot with keys needs MIGRATE ... AUTH in the harness.
  int slot = RedisKeySlot("auth:0");
  int owner = *(*cluster)->SlotOwner(slot);
  SEG_ASSERT_OK((*cluster)->MigrateSlot(slot, (owner + 1) % 3));
  auto moved = (*router)->Command("auth:0", {"GET", "auth:0"});
  SEG_ASSERT_OK(moved);
  EXPECT_EQ(moved->str, "1");

  // A master without replicas dies: its keys are unavailable, quickly.
  (*cluster)->node(2).Kill();
  auto start = std::chrono::steady_clock::now();
  auto lost = (*router)->Pipeline(writes);
  EXPECT_EQ(lost.status().code(), StatusCode::kUnavailable) << lost.status();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));

  RedisRouterOptions wrong = o;
  wrong.node.password = "nope";
  EXPECT_EQ(NewRedisRouter(wrong).status().code(), StatusCode::kUnauthenticated);
}

TEST(RedisSingleRouterTest, WrapsOneServer) {
  auto redis = testing::LocalRedis::Start();
  SEG_ASSERT_OK(redis);
  RedisRouterOptions o;
  o.node.port = (*redis)->port();
  auto router = NewRedisRouter(o);
  SEG_ASSERT_OK(router);
  EXPECT_FALSE((*router)->is_cluster());
  auto replies = (*router)->Pipeline({{"a", {"SET", "a", "1"}}, {"b", {"MGET", "a", "b"}}});
  SEG_ASSERT_OK(replies);
  ASSERT_EQ((*replies)[1].elements.size(), 2u);
  EXPECT_EQ((*replies)[1].elements[0].str, "1");  // no CROSSSLOT on a single server
  int calls = 0;
  SEG_ASSERT_OK((*router)->ForEachMaster([&](RedisConnection&) {
    ++calls;
    return Status::OK();
  }));
  EXPECT_EQ(calls, 1);
  auto masters = (*router)->Masters();
  SEG_ASSERT_OK(masters);
  EXPECT_EQ(masters->size(), 1u);
}

TEST(RedisRouterOptionsTest, LoadFromConfig) {
  auto config = Config::FromString(
      "redis:\n  cluster: true\n  seeds: [\"10.0.0.1:7000\", \"10.0.0.2:7000\"]\n"
      "  password: pw\n  max_redirects: 3\n",
      "t.yaml");
  SEG_ASSERT_OK(config);
  RedisRouterOptions o;
  SEG_ASSERT_OK(o.LoadFrom(*config, "redis"));
  EXPECT_TRUE(o.cluster);
  EXPECT_EQ(o.seeds.size(), 2u);
  EXPECT_EQ(o.node.password, "pw");
  EXPECT_EQ(o.max_redirects, 3);
  SEG_EXPECT_OK(config->CheckNoUnknownKeys());
}

TEST(RedisRouterTest, NoReachableSeedIsUnavailable) {
  RedisRouterOptions o;
  o.cluster = true;
  o.seeds = {"127.0.0.1:" + std::to_string(testing::PickFreePort())};
  o.node.connect_timeout_ms = 300;
  auto router = NewRedisRouter(o);
  EXPECT_EQ(router.status().code(), StatusCode::kUnavailable) << router.status();
}

}  // namespace
}  // namespace seg::stats
