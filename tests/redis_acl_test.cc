// The Redis ACL users documented in docs/security.md, read from that file
// (so the documentation is what is tested): the writer (function, evalsha
// and pfadd modes), seg-stats' queries and the expiry sweep work as their
// users on a real redis-server and on a 3-master Redis Cluster (CLUSTER
// SLOTS, ASKING during a slot migration); commands and keys outside each
// user's set are refused with NOPERM.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <map>
#include <sstream>

#include "common/clock.h"
#include "common/hash.h"
#include "common/metrics.h"
#include "common/redis.h"
#include "proto/stats.grpc.pb.h"
#include "stats/redis_cluster/redis_cluster.h"
#include "stats/service/stats_service.h"
#include "stats/writer/stats_writer.h"
#include "tests/harness/process.h"
#include "tests/harness/redis_cluster.h"
#include "tests/harness/redis_server.h"
#include "tests/harness/status_matchers.h"

namespace seg::stats {
namespace {

namespace v1 = ::seg::stats::v1;
using testing::LocalRedis;
using testing::LocalRedisCluster;

constexpr char kPassword[] = "acl-test-pw";

// The `user ...` lines of the ```acl block of docs/security.md, each
// password (">...") replaced by kPassword: user name -> rules.
std::map<std::string, std::string> DocumentedUsers() {
  std::ifstream in(testing::SourceDir() + "/docs/security.md");
  std::map<std::string, std::string> users;
  std::string line;
  bool in_block = false;
  while (std::getline(in, line)) {
    if (line.rfind("```", 0) == 0) {
      in_block = line == "```acl";
      continue;
    }
    if (!in_block || line.rfind("user ", 0) != 0) continue;
    std::istringstream words(line.substr(5));
    std::string name, word, rules;
    words >> name;
    while (words >> word) rules += " " + (word[0] == '>' ? std::string(">") + kPassword : word);
    users[name] = rules.substr(1);
  }
  return users;
}

RedisRouterOptions As(const std::string& user, int port) {
  RedisRouterOptions r;
  r.node.port = port;
  r.node.username = user;
  r.node.password = kPassword;
  return r;
}

// The reply of `argv` sent as `user`, e.g. "NOPERM ..." for a refusal.
std::string SendAs(const std::string& user, int port, const RedisArgv& argv) {
  RedisOptions o;
  o.port = port;
  o.username = user;
  o.password = kPassword;
  auto conn = RedisConnection::Connect(o);
  if (!conn.ok()) return conn.status().ToString();
  auto r = (*conn)->Command(argv);
  if (!r.ok()) return r.status().ToString();
  return r->is_error() ? r->str : r->DebugString();
}

std::vector<UserUpdate> Users(Day day, int n) {
  std::vector<UserUpdate> out;
  for (int i = 0; i < n; ++i) {
    UserUpdate u;
    u.user_id = "acl-user-" + std::to_string(i);
    u.adds.push_back({"cats", day});
    if (i % 2 == 0) u.adds.push_back({"dogs", day});
    out.push_back(std::move(u));
  }
  return out;
}

std::string DayText(Day d) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "%04u-%02u-%02u", d / 10000, d / 100 % 100, d % 100);
  return buf;
}

// Writes as seg-writer in `mode` (batched calls or one per user), registers
// segments; OK or the error.
Status WriteAs(const RedisRouterOptions& redis, StatsCallMode mode, Day day,
               bool batched_calls = true) {
  StatsWriterOptions o;
  o.redis = redis;
  o.mode = mode;
  o.batched_calls = batched_calls;
  o.shards = 4;
  SEG_ASSIGN_OR_RETURN(auto writer, NewStatsWriter(o));
  SEG_RETURN_IF_ERROR(writer->LoadProcedures());
  if (writer->mode() != mode) return InternalError("writer fell back from its mode");
  SEG_RETURN_IF_ERROR(writer->RegisterSegments({{"cats", "pets.lua@1"}, {"dogs", "pets.lua@1"}}));
  auto users = Users(day, 200);
  return writer->WriteBatch(users);
}

// Queries as seg-stats through the gRPC service: size, union,
// intersection, series, segment list. OK or the first error.
Status QueryAs(const RedisRouterOptions& redis, bool server_side_merge, Day day) {
  StatsQueryOptions q;
  q.redis = redis;
  q.shards = 4;
  q.server_side_merge = server_side_merge;
  q.past_day_cache_ms = 0;
  StatsServerOptions so;
  so.port = 0;
  SEG_ASSIGN_OR_RETURN(auto server, StartStatsServer(so, q, nullptr));
  auto stub = v1::SegmentStats::NewStub(grpc::CreateChannel(
      "127.0.0.1:" + std::to_string(server->port()), grpc::InsecureChannelCredentials()));
  auto ctx = [] {
    auto c = std::make_unique<grpc::ClientContext>();
    c->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    return c;
  };
  auto check = [](const grpc::Status& st, const char* what) {
    return st.ok() ? Status::OK() : InternalError(std::string(what) + ": " + st.error_message());
  };
  v1::SegmentSizeRequest size;
  size.set_segment("cats");
  size.mutable_days()->set_from(DayText(day));
  v1::Estimate e;
  SEG_RETURN_IF_ERROR(check(stub->SegmentSize(ctx().get(), size, &e), "SegmentSize"));
  if (e.value() < 150) return InternalError("cats estimated at " + std::to_string(e.value()));
  v1::SegmentSetRequest set;
  set.add_segments("cats");
  set.add_segments("dogs");
  *set.mutable_days() = size.days();
  SEG_RETURN_IF_ERROR(check(stub->Union(ctx().get(), set, &e), "Union"));
  SEG_RETURN_IF_ERROR(check(stub->Intersection(ctx().get(), set, &e), "Intersection"));
  v1::SizeSeriesReply series;
  SEG_RETURN_IF_ERROR(check(stub->SizeSeries(ctx().get(), size, &series), "SizeSeries"));
  v1::ListSegmentsReply list;
  SEG_RETURN_IF_ERROR(
      check(stub->ListSegments(ctx().get(), v1::ListSegmentsRequest(), &list), "ListSegments"));
  if (list.segments_size() != 2) return InternalError("ListSegments: " + list.ShortDebugString());
  server->Shutdown(0);
  return Status::OK();
}

Status SweepAs(const RedisRouterOptions& redis) {
  SEG_ASSIGN_OR_RETURN(auto router, NewRedisRouter(redis));
  SEG_ASSIGN_OR_RETURN(ExpirySweepReport report,
                       SweepHllExpiry(router.get(), "hll", 400, Clock::Real()->NowMs() / 1000));
  if (report.scanned == 0) return InternalError("the sweep saw no keys");
  return Status::OK();
}

bool Refused(const std::string& reply) { return reply.find("NOPERM") != std::string::npos; }

TEST(RedisAclTest, DocumentedUsersRunTheProductAndNothingElse) {
  auto users = DocumentedUsers();
  ASSERT_EQ(users.size(), 3u) << "docs/security.md should define seg-writer, seg-stats, seg-ops";
  ASSERT_TRUE(users.contains("seg-writer") && users.contains("seg-stats") &&
              users.contains("seg-ops"));
  testing::LocalRedisOptions ro;
  for (const auto& [name, rules] : users) ro.extra_config.push_back("user " + name + " " + rules);
  auto redis = LocalRedis::Start(ro);
  SEG_ASSERT_OK(redis);
  const int port = (*redis)->port();
  const Day today = DayFromUnixMs(Clock::Real()->NowMs());

  // The product's paths, each as its user.
  for (auto mode :
       {StatsCallMode::kFunction, StatsCallMode::kEvalsha, StatsCallMode::kPfaddPerRoundTrip}) {
    Status s = WriteAs(As("seg-writer", port), mode, today);
    SEG_EXPECT_OK(s) << "writer mode " << static_cast<int>(mode);
  }
  for (auto mode : {StatsCallMode::kFunction, StatsCallMode::kEvalsha}) {
    Status s = WriteAs(As("seg-writer", port), mode, today, /*batched_calls=*/false);
    SEG_EXPECT_OK(s) << "per-user writer mode " << static_cast<int>(mode);
  }
  // The function set expiries (EXPIREAT inside FCALL, as seg-writer).
  std::string ttl = *testing::RedisCommandForTest(
      port, {"TTL", HllKey("hll", UserShard("acl-user-0", 4), "cats", today)});
  EXPECT_GT(std::stoll(ttl), 0) << ttl;
  for (bool server_side : {false, true}) {
    Status s = QueryAs(As("seg-stats", port), server_side, today);
    SEG_EXPECT_OK(s) << "server_side_merge " << server_side;
  }
  Status s = SweepAs(As("seg-ops", port));
  SEG_EXPECT_OK(s);

  // What no product user may do.
  const std::string key = HllKey("hll", 0, "cats", today);
  for (const char* user : {"seg-writer", "seg-stats", "seg-ops"}) {
    SCOPED_TRACE(user);
    EXPECT_TRUE(Refused(SendAs(user, port, {"FLUSHALL"})));
    EXPECT_TRUE(Refused(SendAs(user, port, {"KEYS", "*"})));
    EXPECT_TRUE(Refused(SendAs(user, port, {"CONFIG", "GET", "dir"})));
    EXPECT_TRUE(Refused(SendAs(user, port, {"DEL", key})));
    EXPECT_TRUE(Refused(SendAs(user, port, {"FUNCTION", "FLUSH"})));
    EXPECT_TRUE(Refused(SendAs(user, port, {"SET", "other:key", "x"})));
  }
  // Each user's commands, but not the others'; keys outside the patterns.
  EXPECT_TRUE(Refused(SendAs("seg-writer", port, {"MGET", key})));
  EXPECT_TRUE(Refused(SendAs("seg-writer", port, {"PFADD", "other:key", "u"})));
  EXPECT_TRUE(Refused(SendAs("seg-stats", port, {"PFADD", key, "u"})));
  EXPECT_TRUE(Refused(SendAs("seg-stats", port, {"HSET", "segments:registry", "x", "y"})));
  EXPECT_TRUE(Refused(SendAs("seg-stats", port, {"MGET", "other:key"})));
  EXPECT_TRUE(Refused(SendAs("seg-ops", port, {"PFADD", key, "u"})));
  EXPECT_TRUE(Refused(SendAs("seg-ops", port, {"HGETALL", "segments:registry"})));
  // The refusals changed nothing: the sketch still counts.
  EXPECT_EQ(*testing::RedisCommandForTest(port, {"EXISTS", key}), "1");
}

// Redis Cluster: the same users on every master (ACL SETUSER); the slot
// map (CLUSTER SLOTS) and ASK redirections (ASKING, while a slot migrates)
// work as them.
TEST(RedisAclTest, DocumentedUsersOnRedisCluster) {
  auto users = DocumentedUsers();
  auto cluster = LocalRedisCluster::Start();
  SEG_ASSERT_OK(cluster);
  for (int port : (*cluster)->ports()) {
    for (const auto& [name, rules] : users) {
      std::vector<std::string> argv = {"ACL", "SETUSER", name};
      std::istringstream words(rules);
      for (std::string w; words >> w;) argv.push_back(w);
      auto r = testing::RedisCommandForTest(port, argv);
      SEG_ASSERT_OK(r);
    }
  }
  const Day today = DayFromUnixMs(Clock::Real()->NowMs());
  auto as = [&](const std::string& user) {
    RedisRouterOptions r = As(user, (*cluster)->ports()[0]);
    r.cluster = true;
    r.seeds = {"127.0.0.1:" + std::to_string((*cluster)->ports()[0])};
    return r;
  };
  // A slot whose keys will be new during a migration: ASK -> ASKING.
  const int slot = RedisKeySlot(HllKey("hll", 2, "cats", today));
  auto owner = (*cluster)->SlotOwner(slot);
  SEG_ASSERT_OK(owner);
  SEG_ASSERT_OK((*cluster)->BeginSlotMigration(slot, (*owner + 1) % (*cluster)->size()));
  // One key per command while the slot migrates (a multi-key call on keys
  // not yet moved gets TRYAGAIN, whoever sends it).
  auto asks = metrics::GetCounter("seg_redis_cluster_redirects_total",
                                  "Redis Cluster redirections followed", {{"kind", "ask"}});
  const double asks0 = asks.Value();
  Status s = WriteAs(as("seg-writer"), StatsCallMode::kPfaddPerRoundTrip, today);
  SEG_EXPECT_OK(s);
  EXPECT_GT(asks.Value(), asks0) << "no ASK redirection was followed";
  SEG_ASSERT_OK((*cluster)->FinishSlotMigration(slot, (*owner + 1) % (*cluster)->size()));
  s = WriteAs(as("seg-writer"), StatsCallMode::kFunction, today);
  SEG_EXPECT_OK(s);
  s = QueryAs(as("seg-stats"), false, today);
  SEG_EXPECT_OK(s);
  s = SweepAs(as("seg-ops"));
  SEG_EXPECT_OK(s);
  EXPECT_TRUE(Refused(SendAs("seg-stats", (*cluster)->ports()[0], {"CLUSTER", "RESET"})));
}

}  // namespace
}  // namespace seg::stats
