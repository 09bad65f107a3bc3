// Integration tests of common/redis.h against a real local redis-server.
#include "common/redis.h"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "common/metrics.h"
#include "tests/harness/poll.h"
#include "tests/harness/redis_server.h"
#include "tests/harness/status_matchers.h"

namespace seg {
namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;
using testing::LocalRedis;
using testing::LocalRedisOptions;

RedisOptions OptionsFor(const LocalRedis& redis) {
  RedisOptions o;
  o.host = "127.0.0.1";
  o.port = redis.port();
  o.password = redis.options().password;
  o.connect_timeout_ms = 500;
  o.command_timeout_ms = 300;
  o.reconnect_initial_ms = 20;
  o.reconnect_max_ms = 200;
  return o;
}

std::unique_ptr<LocalRedis> StartRedis(LocalRedisOptions options = {}) {
  auto redis = LocalRedis::Start(options);
  SEG_EXPECT_OK(redis);
  return redis.ok() ? std::move(*redis) : nullptr;
}

double ElapsedMs(steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(steady_clock::now() - start).count();
}

TEST(LocalRedisTest, StartsAnswersAndStops) {
  auto redis = StartRedis();
  ASSERT_NE(redis, nullptr);
  EXPECT_GT(redis->port(), 0);
  auto pong = testing::RedisCommandForTest(redis->port(), {"PING"});
  SEG_ASSERT_OK(pong);
  EXPECT_EQ(*pong, "PONG");
  // No persistence unless asked.
  auto save = testing::RedisCommandForTest(redis->port(), {"CONFIG", "GET", "save"});
  SEG_ASSERT_OK(save);
  EXPECT_EQ(*save, "save\n");
  SEG_ASSERT_OK(redis->Stop());
  EXPECT_FALSE(redis->running());
  EXPECT_FALSE(testing::RedisCommandForTest(redis->port(), {"PING"}).ok());
}

TEST(RedisTest, CommandRoundTrip) {
  auto redis = StartRedis();
  ASSERT_NE(redis, nullptr);
  auto conn = RedisConnection::Connect(OptionsFor(*redis));
  SEG_ASSERT_OK(conn);
  RedisConnection& c = **conn;

  std::string binary("a\0b\r\nc", 6);
  auto set = c.Command({"SET", "k", binary});
  SEG_ASSERT_OK(set);
  EXPECT_TRUE(set->is_status());
  EXPECT_EQ(set->str, "OK");

  auto get = c.Command({"GET", "k"});
  SEG_ASSERT_OK(get);
  ASSERT_TRUE(get->is_string());
  EXPECT_EQ(get->str, binary);

  auto missing = c.Command({"GET", "nope"});
  SEG_ASSERT_OK(missing);
  EXPECT_TRUE(missing->is_nil());

  auto pfadd = c.Command({"PFADD", "hll", "u1", "u2", "u3"});
  SEG_ASSERT_OK(pfadd);
  EXPECT_TRUE(pfadd->is_integer());
  EXPECT_EQ(pfadd->integer, 1);
  auto count = c.Command({"PFCOUNT", "hll"});
  SEG_ASSERT_OK(count);
  EXPECT_EQ(count->integer, 3);

  SEG_ASSERT_OK(c.Command({"RPUSH", "list", "x", "y"}));
  auto range = c.Command({"LRANGE", "list", "0", "-1"});
  SEG_ASSERT_OK(range);
  ASSERT_TRUE(range->is_array());
  ASSERT_EQ(range->elements.size(), 2u);
  EXPECT_EQ(range->elements[1].str, "y");
  EXPECT_EQ(range->DebugString(), "[\"x\", \"y\"]");

  // A server error is an in-band reply, not a transport failure.
  auto wrong = c.Command({"INCR", "list"});
  SEG_ASSERT_OK(wrong);
  ASSERT_TRUE(wrong->is_error());
  EXPECT_EQ(wrong->str.rfind("WRONGTYPE", 0), 0u);
  EXPECT_EQ(wrong->ToStatus().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(RedisErrorToStatus("NOSCRIPT No matching script").code(), StatusCode::kNotFound);
  EXPECT_EQ(RedisErrorToStatus("MOVED 3999 127.0.0.1:6381").code(), StatusCode::kAborted);

  auto empty = c.Command({});
  EXPECT_EQ(empty.status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(c.connected());  // a rejected argument does not cost the connection

  std::string text = metrics::RenderText();
  EXPECT_NE(text.find("seg_redis_command_latency_seconds"), std::string::npos);
  EXPECT_NE(text.find("seg_redis_errors_total"), std::string::npos);
}

TEST(RedisTest, PipelineOfTenThousandCommandsInOneCall) {
  auto redis = StartRedis();
  ASSERT_NE(redis, nullptr);
  auto conn = RedisConnection::Connect(OptionsFor(*redis));
  SEG_ASSERT_OK(conn);
  constexpr int kN = 10000;
  std::vector<RedisArgv> writes;
  for (int i = 0; i < kN; ++i) {
    writes.push_back({"SET", "key:" + std::to_string(i), "value:" + std::to_string(i)});
  }
  auto written = (*conn)->Pipeline(writes);
  SEG_ASSERT_OK(written);
  ASSERT_EQ(written->size(), static_cast<size_t>(kN));
  for (const auto& r : *written) ASSERT_EQ(r.str, "OK");

  std::vector<RedisArgv> reads;
  for (int i = 0; i < kN; ++i) reads.push_back({"GET", "key:" + std::to_string(i)});
  reads.push_back({"INCR", "key:0"});  // an error in the middle of a batch stays in its slot
  reads.push_back({"DBSIZE"});
  auto got = (*conn)->Pipeline(reads);
  SEG_ASSERT_OK(got);
  ASSERT_EQ(got->size(), static_cast<size_t>(kN + 2));
  for (int i = 0; i < kN; ++i) ASSERT_EQ((*got)[i].str, "value:" + std::to_string(i));
  EXPECT_TRUE((*got)[kN].is_error());
  EXPECT_EQ((*got)[kN + 1].integer, kN);

  auto none = (*conn)->Pipeline({});
  SEG_ASSERT_OK(none);
  EXPECT_TRUE(none->empty());
}

// A few commands of many arguments each (the stats writer's batched calls),
// an empty argument and a 1 MB one: formatted and flushed piecewise, and the
// server sees exactly the arguments given. PipelineRefs sends the same way.
TEST(RedisTest, LargeCommandsGoThroughIntact) {
  auto redis = StartRedis();
  ASSERT_NE(redis, nullptr);
  auto conn = RedisConnection::Connect(OptionsFor(*redis));
  SEG_ASSERT_OK(conn);
  std::vector<RedisArgv> commands;
  for (int c = 0; c < 3; ++c) {
    RedisArgv rpush = {"RPUSH", "list:" + std::to_string(c)};
    for (int i = 0; i < 50000; ++i) rpush.push_back(std::to_string(c * 100000 + i));
    rpush.emplace_back();  // an empty element
    commands.push_back(std::move(rpush));
  }
  const std::string big(1 << 20, 'x');
  commands.push_back({"SET", "big", big});
  commands.push_back({"LLEN", "list:2"});
  auto replies = (*conn)->Pipeline(commands);
  SEG_ASSERT_OK(replies);
  ASSERT_EQ(replies->size(), 5u);
  for (int c = 0; c < 3; ++c) EXPECT_EQ((*replies)[c].integer, 50001) << c;
  EXPECT_EQ((*replies)[3].str, "OK");
  EXPECT_EQ((*replies)[4].integer, 50001);
  // PipelineRefs: the same, on commands held elsewhere.
  const RedisArgv a = {"LINDEX", "list:1", "49999"}, b = {"LINDEX", "list:1", "50000"},
                  c = {"STRLEN", "big"};
  const RedisArgv* refs[] = {&a, &b, &c};
  auto got = (*conn)->PipelineRefs(refs);
  SEG_ASSERT_OK(got);
  EXPECT_EQ((*got)[0].str, "149999");
  EXPECT_TRUE((*got)[1].is_string());
  EXPECT_EQ((*got)[1].str, "");
  EXPECT_EQ((*got)[2].integer, 1 << 20);
}

TEST(RedisTest, ReconnectsAfterServerRestart) {
  auto redis = StartRedis();
  ASSERT_NE(redis, nullptr);
  auto conn = RedisConnection::Connect(OptionsFor(*redis));
  SEG_ASSERT_OK(conn);
  SEG_ASSERT_OK((*conn)->Command({"SET", "a", "1"}));

  SEG_ASSERT_OK(redis->Restart());
  // The old socket is dead; the helper reconnects and resends transparently.
  auto after = (*conn)->Command({"SET", "b", "2"});
  SEG_ASSERT_OK(after);
  EXPECT_EQ(after->str, "OK");
  EXPECT_EQ((*conn)->reconnects(), 1);
  auto a = (*conn)->Command({"GET", "a"});
  SEG_ASSERT_OK(a);
  EXPECT_TRUE(a->is_nil());  // no persistence: the restart lost it

  // Same for a pipeline after a crash.
  redis->Kill();
  SEG_ASSERT_OK(redis->Restart());
  auto pipe = (*conn)->Pipeline({{"SET", "c", "3"}, {"GET", "c"}});
  SEG_ASSERT_OK(pipe);
  EXPECT_EQ((*pipe)[1].str, "3");
  EXPECT_EQ((*conn)->reconnects(), 2);
}

TEST(RedisTest, PersistenceSurvivesRestartWhenAsked) {
  LocalRedisOptions options;
  options.persistence = true;
  auto redis = StartRedis(options);
  ASSERT_NE(redis, nullptr);
  auto conn = RedisConnection::Connect(OptionsFor(*redis));
  SEG_ASSERT_OK(conn);
  SEG_ASSERT_OK((*conn)->Command({"SET", "kept", "yes"}));
  SEG_ASSERT_OK(redis->Restart());
  auto kept = (*conn)->Command({"GET", "kept"});
  SEG_ASSERT_OK(kept);
  EXPECT_EQ(kept->str, "yes");
}

TEST(RedisTest, StoppedServerGivesUnavailableQuicklyThenRecovers) {
  auto redis = StartRedis();
  ASSERT_NE(redis, nullptr);
  auto conn = RedisConnection::Connect(OptionsFor(*redis));
  SEG_ASSERT_OK(conn);
  SEG_ASSERT_OK(redis->Stop());

  auto start = steady_clock::now();
  auto down = (*conn)->Command({"PING"});
  EXPECT_EQ(down.status().code(), StatusCode::kUnavailable) << down.status();
  // Bounded by the connect timeout (refused is immediate anyway).
  EXPECT_LT(ElapsedMs(start), 2000);
  // Inside the backoff window: fails fast without dialling.
  auto again = (*conn)->Pipeline({{"PING"}, {"PING"}});
  EXPECT_EQ(again.status().code(), StatusCode::kUnavailable);

  SEG_ASSERT_OK(redis->Restart());
  // Poll: the backoff window (<= 200 ms here) must pass before a redial.
  StatusOr<RedisReply> back = UnavailableError("not tried");
  ASSERT_TRUE(testing::PollUntil([&] { return (back = (*conn)->Command({"PING"})).ok(); },
                                 milliseconds(5000), "a PING answered", milliseconds(10)))
      << back.status();
  EXPECT_EQ(back->str, "PONG");
}

TEST(RedisTest, UnresponsiveServerGivesDeadlineExceeded) {
  auto redis = StartRedis();
  ASSERT_NE(redis, nullptr);
  auto conn = RedisConnection::Connect(OptionsFor(*redis));
  SEG_ASSERT_OK(conn);
  redis->Pause();

  auto start = steady_clock::now();
  auto stuck = (*conn)->Command({"PING"});
  EXPECT_EQ(stuck.status().code(), StatusCode::kDeadlineExceeded) << stuck.status();
  EXPECT_LT(ElapsedMs(start), 2000);
  EXPECT_FALSE((*conn)->connected());  // a late reply must not be read as the next one

  start = steady_clock::now();
  std::vector<RedisArgv> batch(1000, RedisArgv{"PING"});
  auto stuck_pipe = (*conn)->Pipeline(batch);
  EXPECT_FALSE(stuck_pipe.ok());
  EXPECT_LT(ElapsedMs(start), 3000);

  // TCP still connects (kernel backlog); without AUTH nothing is asked yet,
  // so the first command is what times out.
  start = steady_clock::now();
  auto connect = RedisConnection::Connect(OptionsFor(*redis));
  SEG_ASSERT_OK(connect);
  EXPECT_EQ((*connect)->Command({"PING"}).status().code(), StatusCode::kDeadlineExceeded);
  EXPECT_LT(ElapsedMs(start), 2000);

  redis->Resume();
  StatusOr<RedisReply> back = UnavailableError("not tried");
  ASSERT_TRUE(testing::PollUntil([&] { return (back = (*conn)->Command({"PING"})).ok(); },
                                 milliseconds(5000), "a PING answered", milliseconds(10)))
      << back.status();
}

TEST(RedisTest, ConnectToClosedPortIsUnavailable) {
  RedisOptions o;
  o.port = testing::PickFreePort();
  o.connect_timeout_ms = 300;
  auto conn = RedisConnection::Connect(o);
  EXPECT_EQ(conn.status().code(), StatusCode::kUnavailable) << conn.status();
}

TEST(RedisTest, AuthWithPassword) {
  LocalRedisOptions options;
  options.password = "s3cret-pass";
  auto redis = StartRedis(options);
  ASSERT_NE(redis, nullptr);

  auto good = RedisConnection::Connect(OptionsFor(*redis));
  SEG_ASSERT_OK(good);
  SEG_ASSERT_OK((*good)->Command({"SET", "x", "1"}));

  RedisOptions wrong = OptionsFor(*redis);
  wrong.password = "not-the-password";
  auto refused = RedisConnection::Connect(wrong);
  ASSERT_EQ(refused.status().code(), StatusCode::kUnauthenticated) << refused.status();
  EXPECT_NE(refused.status().message().find("WRONGPASS"), std::string_view::npos);
  EXPECT_EQ(refused.status().message().find("not-the-password"), std::string_view::npos);

  RedisOptions none = OptionsFor(*redis);
  none.password.clear();
  auto anonymous = RedisConnection::Connect(none);
  SEG_ASSERT_OK(anonymous);
  auto noauth = (*anonymous)->Command({"GET", "x"});
  SEG_ASSERT_OK(noauth);
  EXPECT_EQ(noauth->ToStatus().code(), StatusCode::kUnauthenticated);

  // AUTH is sent again on reconnect.
  SEG_ASSERT_OK(redis->Restart());
  auto after = (*good)->Command({"SET", "y", "2"});
  SEG_ASSERT_OK(after);
  EXPECT_EQ(after->str, "OK");

  // ACL user + password.
  SEG_ASSERT_OK((*good)->Command({"ACL", "SETUSER", "alice", "on", ">alice-pw", "~*", "+@all"}));
  RedisOptions acl = OptionsFor(*redis);
  acl.username = "alice";
  acl.password = "alice-pw";
  auto alice = RedisConnection::Connect(acl);
  SEG_ASSERT_OK(alice);
  auto whoami = (*alice)->Command({"ACL", "WHOAMI"});
  SEG_ASSERT_OK(whoami);
  EXPECT_EQ(whoami->str, "alice");
  acl.password = "bad";
  auto bad_alice = RedisConnection::Connect(acl);
  EXPECT_EQ(bad_alice.status().code(), StatusCode::kUnauthenticated);

  // AUTH against a server that does not answer is bounded by the timeout.
  redis->Pause();
  auto start = steady_clock::now();
  auto stuck = RedisConnection::Connect(OptionsFor(*redis));
  EXPECT_EQ(stuck.status().code(), StatusCode::kDeadlineExceeded) << stuck.status();
  EXPECT_LT(ElapsedMs(start), 2000);
  redis->Resume();
}

TEST(RedisTest, SelectsDatabase) {
  auto redis = StartRedis();
  ASSERT_NE(redis, nullptr);
  RedisOptions o3 = OptionsFor(*redis);
  o3.db = 3;
  auto db3 = RedisConnection::Connect(o3);
  SEG_ASSERT_OK(db3);
  SEG_ASSERT_OK((*db3)->Command({"SET", "only-in-3", "1"}));
  auto db0 = RedisConnection::Connect(OptionsFor(*redis));
  SEG_ASSERT_OK(db0);
  auto missing = (*db0)->Command({"GET", "only-in-3"});
  SEG_ASSERT_OK(missing);
  EXPECT_TRUE(missing->is_nil());

  o3.db = 999;
  auto bad = RedisConnection::Connect(o3);
  EXPECT_FALSE(bad.ok());
}

TEST(RedisOptionsTest, LoadFromConfig) {
  auto config = Config::FromString(
      "redis:\n  host: 10.0.0.7\n  port: 7000\n  password: pw\n  db: 2\n"
      "  command_timeout_ms: 150\n",
      "test.yaml");
  SEG_ASSERT_OK(config);
  RedisOptions o;
  SEG_ASSERT_OK(o.LoadFrom(*config, "redis"));
  EXPECT_EQ(o.host, "10.0.0.7");
  EXPECT_EQ(o.port, 7000);
  EXPECT_EQ(o.password, "pw");
  EXPECT_EQ(o.db, 2);
  EXPECT_EQ(o.command_timeout_ms, 150);
  EXPECT_EQ(o.connect_timeout_ms, 1000);  // default kept
  SEG_EXPECT_OK(config->CheckNoUnknownKeys());

  auto bad = Config::FromString("redis:\n  port: 70000\n", "bad.yaml");
  SEG_ASSERT_OK(bad);
  RedisOptions o2;
  EXPECT_EQ(o2.LoadFrom(*bad, "redis").code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace seg
