// seg-stats over real gRPC on loopback, on data loaded by StatsWriter into a
// real redis-server (and a 3-master Redis Cluster): estimates contain the
// truth, every error case has its code, single Redis and Cluster agree,
// server-side PFCOUNT agrees with the client-side merge, and a Python client
// built from proto/stats.proto alone calls every method.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "proto/stats.grpc.pb.h"
#include "stats/service/stats_service.h"
#include "stats/writer/stats_writer.h"
#include "tests/harness/poll.h"
#include "tests/harness/process.h"
#include "tests/harness/redis_cluster.h"
#include "tests/harness/redis_server.h"
#include "tests/harness/status_matchers.h"

namespace seg::stats {
namespace {

namespace v1 = ::seg::stats::v1;
using testing::LocalRedis;
using testing::LocalRedisCluster;

constexpr Day kDay0 = 20240501;  // data on 2024-05-01 .. 2024-05-03
constexpr int kUsers = 30000;

// Membership: cats i%2==0, dogs i%3==0, cars i%5==0, rare i%500==0 (a subset
// of cats and cars); seen on day kDay0 + i%3, and the next day when i%7==0.
std::vector<Day> DaysOf(int i) {
  std::vector<Day> d = {kDay0 + static_cast<Day>(i % 3)};
  if (i % 7 == 0) d.push_back(kDay0 + static_cast<Day>((i + 1) % 3));
  return d;
}
bool In(const std::string& segment, int i) {
  if (segment == "cats") return i % 2 == 0;
  if (segment == "dogs") return i % 3 == 0;
  if (segment == "cars") return i % 5 == 0;
  if (segment == "rare") return i % 500 == 0;
  return false;
}
const std::vector<std::string> kSegments = {"cats", "dogs", "cars", "rare"};

std::vector<UserUpdate> Users() {
  std::vector<UserUpdate> out;
  for (int i = 0; i < kUsers; ++i) {
    UserUpdate u;
    u.user_id = "user-" + std::to_string(i);
    for (Day d : DaysOf(i)) {
      for (const auto& s : kSegments) {
        if (In(s, i)) u.adds.push_back({s, d});
      }
    }
    out.push_back(std::move(u));
  }
  return out;
}

bool SeenIn(int i, Day from, Day to) {
  for (Day d : DaysOf(i)) {
    if (d >= from && d <= to) return true;
  }
  return false;
}

// Exact answers. `all`: intersection (true) or union (false).
double Truth(const std::vector<std::string>& segments, Day from, Day to, bool all) {
  int n = 0;
  for (int i = 0; i < kUsers; ++i) {
    if (!SeenIn(i, from, to)) continue;
    bool hit = all;
    for (const auto& s : segments) hit = all ? (hit && In(s, i)) : (hit || In(s, i));
    n += hit;
  }
  return n;
}

void Load(const RedisRouterOptions& redis, uint32_t shards) {
  StatsWriterOptions o;
  o.redis = redis;
  o.shards = shards;
  o.hll_retention_days = 0;  // days of 2024: past the default retention
  auto writer = NewStatsWriter(o);
  SEG_ASSERT_OK(writer);
  SEG_ASSERT_OK((*writer)->RegisterSegments({{"cats", "pets.lua@3"}, {"dogs", "pets.lua@3"}}));
  auto users = Users();
  for (size_t i = 0; i < users.size(); i += 1000) {
    size_t n = std::min<size_t>(1000, users.size() - i);
    Status s = (*writer)->WriteBatch(std::span<const UserUpdate>(users.data() + i, n));
    SEG_ASSERT_OK(s);
  }
}

v1::DayRange Range(const std::string& from, const std::string& to = "") {
  v1::DayRange r;
  r.set_from(from);
  r.set_to(to);
  return r;
}

#define EXPECT_CONTAINS_TRUTH(estimate, truth)                                 \
  do {                                                                         \
    const v1::Estimate& _e = (estimate);                                       \
    double _t = (truth);                                                       \
    EXPECT_LE(_e.ci95_low(), _t) << _e.ShortDebugString() << " truth " << _t;  \
    EXPECT_GE(_e.ci95_high(), _t) << _e.ShortDebugString() << " truth " << _t; \
    EXPECT_GT(_e.std_error(), 0) << _e.ShortDebugString();                     \
    EXPECT_LE(_e.ci95_low(), _e.value());                                      \
    EXPECT_GE(_e.ci95_high(), _e.value());                                     \
  } while (0)

class FakeUsers : public UserStateLookup {
 public:
  StatusOr<SegmentState> Lookup(std::string_view user_id) override {
    if (user_id != "user-6") return NotFoundError("user '" + std::string(user_id) + "' unknown");
    SegmentState s;
    s.add_segments("cats");
    s.add_segments("dogs");
    s.set_script_set_version("v42");
    s.set_segmented_at_ms(1714600000000);
    s.set_data_watermark_ms(1714599999000);
    return s;
  }
};

struct Server {
  std::unique_ptr<StatsServer> server;
  std::unique_ptr<v1::SegmentStats::Stub> stub;
  std::string target;
};

Server StartServer(const StatsQueryOptions& query, StatsServerOptions opts = {},
                   std::shared_ptr<grpc::ChannelCredentials> creds = nullptr,
                   grpc::ChannelArguments args = {}) {
  opts.port = 0;
  Server s;
  auto started = StartStatsServer(opts, query, std::make_shared<FakeUsers>());
  SEG_EXPECT_OK(started);
  if (!started.ok()) return s;
  s.server = std::move(*started);
  s.target = "127.0.0.1:" + std::to_string(s.server->port());
  if (!creds) creds = grpc::InsecureChannelCredentials();
  s.stub = v1::SegmentStats::NewStub(grpc::CreateCustomChannel(s.target, creds, args));
  return s;
}

std::unique_ptr<grpc::ClientContext> Ctx(int timeout_ms = 10000) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(timeout_ms));
  return ctx;
}

class StatsServiceTest : public ::testing::Test {
 protected:
  static constexpr uint32_t kShards = 4;

  static void SetUpTestSuite() {
    auto redis = LocalRedis::Start();
    SEG_ASSERT_OK(redis);
    redis_ = std::move(*redis).release();
    Load(RedisOptionsFor(), kShards);
  }
  static void TearDownTestSuite() {
    delete redis_;
    redis_ = nullptr;
  }
  static RedisRouterOptions RedisOptionsFor() {
    RedisRouterOptions r;
    r.node.port = redis_->port();
    return r;
  }
  static StatsQueryOptions Query() {
    StatsQueryOptions q;
    q.redis = RedisOptionsFor();
    q.shards = kShards;
    return q;
  }
  void SetUp() override {
    ASSERT_NE(redis_, nullptr);
    server_ = StartServer(Query());
    ASSERT_NE(server_.stub, nullptr);
  }

  v1::Estimate Size(const std::string& segment, const v1::DayRange& days, grpc::Status* status) {
    v1::SegmentSizeRequest req;
    req.set_segment(segment);
    *req.mutable_days() = days;
    v1::Estimate e;
    *status = server_.stub->SegmentSize(Ctx().get(), req, &e);
    return e;
  }
  v1::Estimate Set(bool intersection, const std::vector<std::string>& segments,
                   const v1::DayRange& days, grpc::Status* status,
                   v1::SegmentStats::Stub* stub = nullptr) {
    v1::SegmentSetRequest req;
    for (const auto& s : segments) req.add_segments(s);
    *req.mutable_days() = days;
    v1::Estimate e;
    if (!stub) stub = server_.stub.get();
    *status =
        intersection ? stub->Intersection(Ctx().get(), req, &e) : stub->Union(Ctx().get(), req, &e);
    return e;
  }

  static LocalRedis* redis_;
  Server server_;
};
LocalRedis* StatsServiceTest::redis_ = nullptr;

TEST_F(StatsServiceTest, SizesContainTheTruth) {
  grpc::Status st;
  v1::Estimate e = Size("cats", Range("2024-05-01", "2024-05-03"), &st);
  SEG_ASSERT_OK(st);
  EXPECT_EQ(e.method(), "hll");
  EXPECT_CONTAINS_TRUTH(e, Truth({"cats"}, 20240501, 20240503, false));
  e = Size("dogs", Range("2024-05-02"), &st);
  SEG_ASSERT_OK(st);
  EXPECT_CONTAINS_TRUTH(e, Truth({"dogs"}, 20240502, 20240502, false));
  // Days without data are empty, not errors.
  e = Size("cats", Range("2024-04-01", "2024-04-30"), &st);
  SEG_ASSERT_OK(st);
  EXPECT_EQ(e.value(), 0);
}

TEST_F(StatsServiceTest, UnionsContainTheTruth) {
  grpc::Status st;
  v1::Estimate e = Set(false, {"cats", "dogs", "cars"}, Range("2024-05-01", "2024-05-03"), &st);
  SEG_ASSERT_OK(st);
  EXPECT_EQ(e.method(), "hll-union");
  EXPECT_CONTAINS_TRUTH(e, Truth({"cats", "dogs", "cars"}, 20240501, 20240503, false));
  e = Set(false, {"dogs", "cars"}, Range("2024-05-01", "2024-05-02"), &st);
  SEG_ASSERT_OK(st);
  EXPECT_CONTAINS_TRUTH(e, Truth({"dogs", "cars"}, 20240501, 20240502, false));
}

TEST_F(StatsServiceTest, IntersectionsContainTheTruth) {
  grpc::Status st;
  v1::Estimate e = Set(true, {"cats", "dogs"}, Range("2024-05-01", "2024-05-03"), &st);
  SEG_ASSERT_OK(st);
  EXPECT_EQ(e.method(), "joint-mle");
  EXPECT_FALSE(e.too_uncertain()) << e.ShortDebugString();
  EXPECT_CONTAINS_TRUTH(e, Truth({"cats", "dogs"}, 20240501, 20240503, true));

  e = Set(true, {"cats", "dogs", "cars"}, Range("2024-05-01", "2024-05-03"), &st);
  SEG_ASSERT_OK(st);
  EXPECT_EQ(e.method(), "joint-mle-inclusion-exclusion");
  EXPECT_CONTAINS_TRUTH(e, Truth({"cats", "dogs", "cars"}, 20240501, 20240503, true));
}

// Calls from several clients at once: each borrows its own router from the
// pool while they share the registry and the past-day cache (these days are
// past days). Every answer equals the one a single client got. The tsan stage
// of tools/dev test runs this under ThreadSanitizer.
TEST_F(StatsServiceTest, ConcurrentCallsGetTheAnswersOfOneClient) {
  const v1::DayRange days = Range("2024-05-01", "2024-05-03");
  const std::vector<std::string> segments = {"cats", "dogs", "cars"};
  auto call = [&](int kind, grpc::Status* st) {
    switch (kind) {
      case 0:
        return Size("cats", days, st);
      case 1:
        return Set(false, segments, days, st);
      default:
        return Set(true, {"cats", "dogs"}, days, st);
    }
  };
  std::vector<v1::Estimate> expected(3);
  for (int kind = 0; kind < 3; ++kind) {
    grpc::Status st;
    expected[kind] = call(kind, &st);
    SEG_ASSERT_OK(st);
  }
  // A fresh server: its pool, registry copy and cache start empty, so the
  // clients race to fill them.
  server_ = StartServer(Query());
  ASSERT_NE(server_.stub, nullptr);
  std::atomic<int> failed{0};
  std::atomic<int> differed{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < 6; ++t) {
    clients.emplace_back([&, t] {
      for (int i = 0; i < 12; ++i) {
        int kind = (t + i) % 3;
        grpc::Status st;
        v1::Estimate e = call(kind, &st);
        if (!st.ok()) {
          ++failed;
        } else if (e.value() != expected[kind].value() || e.method() != expected[kind].method()) {
          ++differed;
        }
      }
    });
  }
  for (auto& c : clients) c.join();
  EXPECT_EQ(failed.load(), 0);
  EXPECT_EQ(differed.load(), 0);
}

TEST_F(StatsServiceTest, SmallOverlapIsFlaggedTooUncertain) {
  grpc::Status st;
  // rare ∩ dogs: 20 users against segments of 60 and 10,000.
  v1::Estimate e = Set(true, {"rare", "dogs"}, Range("2024-05-01", "2024-05-03"), &st);
  SEG_ASSERT_OK(st);
  EXPECT_TRUE(e.too_uncertain()) << e.ShortDebugString();
  EXPECT_FALSE(e.note().empty());
  EXPECT_LE(e.ci95_low(), Truth({"rare", "dogs"}, 20240501, 20240503, true));
  EXPECT_GE(e.ci95_high(), Truth({"rare", "dogs"}, 20240501, 20240503, true));
}

TEST_F(StatsServiceTest, SeriesHasOnePointPerDayContainingTheTruth) {
  v1::SegmentSizeRequest req;
  req.set_segment("cars");
  *req.mutable_days() = Range("2024-04-30", "2024-05-03");
  v1::SizeSeriesReply reply;
  grpc::Status st = server_.stub->SizeSeries(Ctx().get(), req, &reply);
  SEG_ASSERT_OK(st);
  ASSERT_EQ(reply.points_size(), 4);
  EXPECT_EQ(reply.points(0).day(), "2024-04-30");
  EXPECT_EQ(reply.points(0).estimate().value(), 0);
  for (int d = 1; d < 4; ++d) {
    Day day = kDay0 + d - 1;
    EXPECT_EQ(reply.points(d).day(), FormatDay(day));
    EXPECT_CONTAINS_TRUTH(reply.points(d).estimate(), Truth({"cars"}, day, day, false));
  }
}

TEST_F(StatsServiceTest, ListsRegisteredSegmentsWithTheirScripts) {
  v1::ListSegmentsReply reply;
  grpc::Status st = server_.stub->ListSegments(Ctx().get(), {}, &reply);
  SEG_ASSERT_OK(st);
  std::map<std::string, v1::SegmentInfo> by_name;
  for (const auto& s : reply.segments()) by_name[s.segment()] = s;
  ASSERT_EQ(by_name.size(), kSegments.size());
  EXPECT_EQ(by_name["cats"].script(), "pets.lua");
  EXPECT_EQ(by_name["cats"].script_version(), "3");
  EXPECT_EQ(by_name["rare"].script(), "");
  EXPECT_EQ(by_name["cats"].today().method(), "hll");  // today has no data: 0
}

TEST_F(StatsServiceTest, UserSegmentsFromTheLookup) {
  v1::UserSegmentsRequest req;
  req.set_user_id("user-6");
  v1::UserSegmentsReply reply;
  grpc::Status st = server_.stub->UserSegments(Ctx().get(), req, &reply);
  SEG_ASSERT_OK(st);
  EXPECT_EQ(reply.user_id(), "user-6");
  ASSERT_EQ(reply.segments_size(), 2);
  EXPECT_EQ(reply.segments(0), "cats");
  EXPECT_EQ(reply.script_set_version(), "v42");
  EXPECT_EQ(reply.segmented_at_ms(), 1714600000000);
  req.set_user_id("nobody");
  st = server_.stub->UserSegments(Ctx().get(), req, &reply);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::NOT_FOUND);
  req.set_user_id("");
  st = server_.stub->UserSegments(Ctx().get(), req, &reply);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(StatsServiceTest, EachBadRequestHasItsCode) {
  grpc::Status st;
  Size("unicorns", Range("2024-05-01"), &st);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::NOT_FOUND) << st.error_message();
  EXPECT_NE(st.error_message().find("unicorns"), std::string::npos);
  Set(false, {"cats", "unicorns"}, Range("2024-05-01"), &st);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::NOT_FOUND);
  Set(true, {"cats", "unicorns"}, Range("2024-05-01"), &st);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::NOT_FOUND);

  Size("cats", Range("2024-05-03", "2024-05-01"), &st);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << st.error_message();
  Size("cats", Range("2023-05-01", "2024-05-01"), &st);  // 367 days
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << st.error_message();
  Size("cats", Range("2023-05-02", "2024-05-01"), &st);  // 366 days: allowed
  SEG_EXPECT_OK(st);
  Size("cats", Range("2024-02-30"), &st);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  Size("cats", Range(""), &st);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  Size("", Range("2024-05-01"), &st);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  Set(true, {"cats"}, Range("2024-05-01"), &st);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  Set(true, {"cats", "cats"}, Range("2024-05-01"), &st);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  Set(false, {}, Range("2024-05-01"), &st);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

// Each limit answers INVALID_ARGUMENT with its config key in the message;
// a request at the limit is served. A message over max_message_bytes is
// refused by gRPC itself (RESOURCE_EXHAUSTED) before it is decoded.
TEST_F(StatsServiceTest, LimitsAreInvalidArgumentNamingTheirKey) {
  StatsQueryOptions q = Query();
  q.max_days = 3;
  q.max_union_segments = 2;
  q.max_intersection_segments = 2;
  StatsServerOptions so;
  so.max_request_bytes = 256;
  so.max_message_bytes = 4096;
  Server limited = StartServer(q, so);
  ASSERT_NE(limited.stub, nullptr);
  auto expect_limit = [](const grpc::Status& st, const std::string& key) {
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << st.error_message();
    EXPECT_NE(st.error_message().find(key), std::string::npos) << st.error_message();
  };
  grpc::Status st;
  auto size = [&](const v1::DayRange& days) {
    v1::SegmentSizeRequest req;
    req.set_segment("cats");
    *req.mutable_days() = days;
    v1::Estimate e;
    return limited.stub->SegmentSize(Ctx().get(), req, &e);
  };
  // Days per range.
  SEG_EXPECT_OK(size(Range("2024-05-01", "2024-05-03")));
  st = size(Range("2024-05-01", "2024-05-04"));
  expect_limit(st, "4 days exceeds stats.max_days (3)");
  v1::SizeSeriesReply series;
  v1::SegmentSizeRequest sreq;
  sreq.set_segment("cats");
  *sreq.mutable_days() = Range("2024-04-01", "2024-05-01");
  expect_limit(limited.stub->SizeSeries(Ctx().get(), sreq, &series), "stats.max_days (3)");

  // Segments per union and per intersection (the limit is checked before
  // the segments are looked up: "cars" is not registered).
  Set(false, {"cats", "dogs"}, Range("2024-05-01"), &st, limited.stub.get());
  SEG_EXPECT_OK(st);
  Set(false, {"cats", "dogs", "cars"}, Range("2024-05-01"), &st, limited.stub.get());
  expect_limit(st, "3 segments in a union exceed stats.max_union_segments (2)");
  Set(true, {"cats", "dogs"}, Range("2024-05-01"), &st, limited.stub.get());
  SEG_EXPECT_OK(st);
  Set(true, {"cats", "dogs", "cars"}, Range("2024-05-01"), &st, limited.stub.get());
  expect_limit(st, "3 segments in an intersection exceed stats.max_intersection_segments (2)");
  Set(true, {"cats", "cats"}, Range("2024-05-01"), &st, limited.stub.get());
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(st.error_message().find("at least 2 distinct"), std::string::npos);

  // Request size: over max_request_bytes, then over max_message_bytes.
  Set(false, {std::string(300, 'x')}, Range("2024-05-01"), &st, limited.stub.get());
  expect_limit(st, "exceeds stats.server.max_request_bytes (256)");
  Set(false, {std::string(5000, 'x')}, Range("2024-05-01"), &st, limited.stub.get());
  EXPECT_EQ(st.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << st.error_message();
  // The channel and server carry on.
  SEG_EXPECT_OK(size(Range("2024-05-01")));
}

// The defaults are the documented ones, and bad combinations are refused.
TEST(StatsServerOptionsTest, LimitsDefaultsAndValidation) {
  StatsServerOptions so;
  EXPECT_EQ(so.host, "127.0.0.1");
  EXPECT_EQ(so.max_request_bytes, 1 << 20);
  EXPECT_EQ(so.max_message_bytes, 16 << 20);
  StatsQueryOptions q;
  EXPECT_EQ(q.max_days, 366);
  EXPECT_EQ(q.max_union_segments, 100);
  EXPECT_EQ(q.max_intersection_segments, 12);
  auto config = Config::FromString(
      "stats:\n  server:\n    max_request_bytes: 2000\n    max_message_bytes: 1500\n", "t.yaml");
  SEG_ASSERT_OK(config);
  Status s = so.LoadFrom(*config, "stats.server");
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s;
}

TEST_F(StatsServiceTest, ServerSideMergeAgreesWithClientSideMerge) {
  StatsQueryOptions q = Query();
  q.server_side_merge = true;
  Server server_side = StartServer(q);
  ASSERT_NE(server_side.stub, nullptr);
  grpc::Status a, b;
  for (const auto& segments : std::vector<std::vector<std::string>>{
           {"cats"}, {"cats", "dogs"}, {"cats", "dogs", "cars", "rare"}}) {
    v1::Estimate client = Set(false, segments, Range("2024-05-01", "2024-05-03"), &a);
    v1::Estimate server =
        Set(false, segments, Range("2024-05-01", "2024-05-03"), &b, server_side.stub.get());
    SEG_ASSERT_OK(a);
    SEG_ASSERT_OK(b);
    EXPECT_EQ(client.value(), server.value()) << segments.size();
  }
}

TEST_F(StatsServiceTest, InclusionExclusionOptionIsAvailableForComparison) {
  StatsQueryOptions q = Query();
  q.intersection_estimator = "inclusion-exclusion";
  Server ie = StartServer(q);
  ASSERT_NE(ie.stub, nullptr);
  grpc::Status st;
  v1::Estimate e =
      Set(true, {"cats", "dogs"}, Range("2024-05-01", "2024-05-03"), &st, ie.stub.get());
  SEG_ASSERT_OK(st);
  EXPECT_EQ(e.method(), "inclusion-exclusion");
  EXPECT_CONTAINS_TRUTH(e, Truth({"cats", "dogs"}, 20240501, 20240503, true));
}

TEST_F(StatsServiceTest, BearerTokenIsRequiredWhenConfigured) {
  StatsServerOptions so;
  so.bearer_token = "t0ken";
  Server guarded = StartServer(Query(), so);
  ASSERT_NE(guarded.stub, nullptr);
  v1::SegmentSizeRequest req;
  req.set_segment("cats");
  *req.mutable_days() = Range("2024-05-01");
  v1::Estimate e;
  EXPECT_EQ(guarded.stub->SegmentSize(Ctx().get(), req, &e).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  auto wrong = Ctx();
  wrong->AddMetadata("authorization", "Bearer nope!");
  EXPECT_EQ(guarded.stub->SegmentSize(wrong.get(), req, &e).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  auto right = Ctx();
  right->AddMetadata("authorization", "Bearer t0ken");
  grpc::Status st = guarded.stub->SegmentSize(right.get(), req, &e);
  SEG_EXPECT_OK(st);
  EXPECT_GT(e.value(), 0);
}

TEST_F(StatsServiceTest, RefusesInsecureRemoteBind) {
  StatsServerOptions so;
  so.host = "0.0.0.0";
  so.port = 0;
  auto s = StartStatsServer(so, Query(), nullptr);
  EXPECT_EQ(s.status().code(), StatusCode::kInvalidArgument);
}

TEST_F(StatsServiceTest, ServesOverTls) {
  ASSERT_EQ(std::system("command -v openssl >/dev/null 2>&1"), 0)
      << "openssl missing: run tools/setup-deps.sh";
  testing::TempDir dir;
  std::string cert = dir.path() + "/cert.pem", key = dir.path() + "/key.pem";
  std::string cmd =
      "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost "
      "-addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout " +
      key + " -out " + cert + " >/dev/null 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  StatsServerOptions so;
  so.tls_cert_file = cert;
  so.tls_key_file = key;
  std::ifstream in(cert);
  std::stringstream pem;
  pem << in.rdbuf();
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = pem.str();
  Server tls = StartServer(Query(), so, grpc::SslCredentials(ssl));
  ASSERT_NE(tls.stub, nullptr);
  v1::SegmentSizeRequest req;
  req.set_segment("cats");
  *req.mutable_days() = Range("2024-05-01");
  v1::Estimate e;
  grpc::Status st = tls.stub->SegmentSize(Ctx().get(), req, &e);
  SEG_EXPECT_OK(st);
  // A plaintext client cannot talk to it.
  auto plain = v1::SegmentStats::NewStub(
      grpc::CreateChannel(tls.target, grpc::InsecureChannelCredentials()));
  EXPECT_FALSE(plain->SegmentSize(Ctx(2000).get(), req, &e).ok());
}

// A Python client built from proto/stats.proto alone (protoc --python_out and
// generic unary calls with Debian's python3-grpcio under /usr/bin/python3)
// calls every method, the health service and reflection.
constexpr const char* kPythonClient = R"PY(
import sys
sys.path.insert(0, sys.argv[2])
import grpc
from proto import stats_pb2 as pb

target = sys.argv[1]
channel = grpc.insecure_channel(target)
grpc.channel_ready_future(channel).result(timeout=10)

def call(method, request, reply_type):
    fn = channel.unary_unary('/seg.stats.v1.SegmentStats/' + method,
                             request_serializer=lambda m: m.SerializeToString(),
                             response_deserializer=reply_type.FromString)
    return fn(request, timeout=10)

def check(e, what):
    assert e.ci95_low <= e.value <= e.ci95_high and e.std_error > 0, (what, e)
    print(what, int(e.value), '[%d, %d]' % (e.ci95_low, e.ci95_high), e.method)

days = pb.DayRange(**{'from': '2024-05-01', 'to': '2024-05-03'})
check(call('SegmentSize', pb.SegmentSizeRequest(segment='cats', days=days), pb.Estimate), 'size')
check(call('Union', pb.SegmentSetRequest(segments=['cats', 'dogs'], days=days), pb.Estimate), 'union')
check(call('Intersection', pb.SegmentSetRequest(segments=['cats', 'dogs'], days=days), pb.Estimate),
      'intersection')
series = call('SizeSeries', pb.SegmentSizeRequest(segment='cats', days=days), pb.SizeSeriesReply)
assert [p.day for p in series.points] == ['2024-05-01', '2024-05-02', '2024-05-03'], series
listed = call('ListSegments', pb.ListSegmentsRequest(), pb.ListSegmentsReply)
assert 'cats' in [s.segment for s in listed.segments], listed
user = call('UserSegments', pb.UserSegmentsRequest(user_id='user-6'), pb.UserSegmentsReply)
assert list(user.segments) == ['cats', 'dogs'], user
try:
    call('SegmentSize', pb.SegmentSizeRequest(segment='unicorns', days=days), pb.Estimate)
    raise SystemExit('unknown segment answered')
except grpc.RpcError as e:
    assert e.code() == grpc.StatusCode.NOT_FOUND, e
try:
    bad = pb.DayRange(**{'from': '2024-05-03', 'to': '2024-05-01'})
    call('SegmentSize', pb.SegmentSizeRequest(segment='cats', days=bad), pb.Estimate)
    raise SystemExit('reversed range answered')
except grpc.RpcError as e:
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, e

raw = lambda b: b
health = channel.unary_unary('/grpc.health.v1.Health/Check', request_serializer=raw,
                             response_deserializer=raw)(b'', timeout=10)
assert health == b'\x08\x01', health  # status: SERVING
# ServerReflectionRequest{list_services: ""} (field 7) over the bidi stream.
replies = channel.stream_stream('/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo',
                                request_serializer=raw,
                                response_deserializer=raw)(iter([b'\x3a\x00']), timeout=10)
listing = b''.join(replies)
assert b'seg.stats.v1.SegmentStats' in listing, listing
print('python client: every method OK')
)PY";

TEST_F(StatsServiceTest, PythonClientFromTheProtoCallsEveryMethod) {
  ASSERT_EQ(std::system("/usr/bin/python3 -c 'import grpc, google.protobuf' >/dev/null 2>&1"), 0)
      << "/usr/bin/python3 lacks python3-grpcio/python3-protobuf: run tools/setup-deps.sh";
  testing::TempDir dir;
  std::string gen = dir.path() + "/gen";
  std::string cmd = std::string("mkdir -p ") + gen + " && " + SEG_PROTOC +
                    " --proto_path=" + testing::SourceDir() + " --python_out=" + gen + " " +
                    testing::SourceDir() + "/proto/stats.proto";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  std::string script = dir.path() + "/client.py";
  std::ofstream(script) << kPythonClient;
  std::string log = dir.path() + "/client.log";
  auto child = testing::ChildProcess::Start({"/usr/bin/python3", script, server_.target, gen}, log);
  SEG_ASSERT_OK(child);
  auto code = child->Wait(std::chrono::seconds(60));
  std::ifstream in(log);
  std::stringstream out;
  out << in.rdbuf();
  SEG_ASSERT_OK(code) << "\n" << out.str();
  EXPECT_EQ(*code, 0) << out.str();
  EXPECT_NE(out.str().find("every method OK"), std::string::npos) << out.str();
}

// Redis down, Redis paused past the caller's deadline: the right codes, and
// service resumes when Redis is back.
TEST(StatsServiceRedisTest, RedisDownIsUnavailableAndDeadlinesAreHonoured) {
  auto redis = LocalRedis::Start();
  SEG_ASSERT_OK(redis);
  RedisRouterOptions r;
  r.node.port = (*redis)->port();
  r.node.reconnect_initial_ms = 1;
  r.node.reconnect_max_ms = 1;
  r.node.command_timeout_ms = 1500;
  StatsWriterOptions wo;
  wo.redis = r;
  wo.hll_retention_days = 0;  // days of 2024: past the default retention
  auto writer = NewStatsWriter(wo);
  SEG_ASSERT_OK(writer);
  std::vector<UserUpdate> u = {{"u1", {{"cats", kDay0}}}};
  SEG_ASSERT_OK((*writer)->WriteBatch(u));
  StatsQueryOptions q;
  q.redis = r;
  q.past_day_cache_ms = 0;  // every call must reach Redis (the cache: stats_cache_test.cc)
  Server server = StartServer(q);
  ASSERT_NE(server.stub, nullptr);
  v1::SegmentSizeRequest req;
  req.set_segment("cats");
  *req.mutable_days() = Range("2024-05-01");
  v1::Estimate e;
  SEG_ASSERT_OK(server.stub->SegmentSize(Ctx().get(), req, &e));
  EXPECT_EQ(e.value(), 1);

  // Paused Redis: the caller's 300 ms deadline wins.
  (*redis)->Pause();
  auto t0 = std::chrono::steady_clock::now();
  grpc::Status st = server.stub->SegmentSize(Ctx(300).get(), req, &e);
  auto elapsed = std::chrono::steady_clock::now() - t0;
  EXPECT_EQ(st.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << st.error_message();
  EXPECT_LT(elapsed, std::chrono::milliseconds(1500));
  (*redis)->Resume();

  SEG_ASSERT_OK((*redis)->Stop());
  st = server.stub->SegmentSize(Ctx().get(), req, &e);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE) << st.error_message();
  st = server.stub->Union(
      Ctx().get(),
      [] {
        v1::SegmentSetRequest s;
        s.add_segments("cats");
        *s.mutable_days() = Range("2024-05-01");
        return s;
      }(),
      &e);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE) << st.error_message();

  // Back up (data gone: no persistence, the registry is still cached);
  // calls answer again.
  SEG_ASSERT_OK((*redis)->Restart());
  EXPECT_TRUE(seg::testing::PollUntil(
      [&] { return (st = server.stub->SegmentSize(Ctx().get(), req, &e)).ok(); },
      std::chrono::seconds(10), "an answer after the restart", std::chrono::milliseconds(0)))
      << st.error_message();
}

// The same data through a 3-master Redis Cluster and a single Redis (same S):
// the per-shard sketches are identical, so every answer is identical.
TEST(StatsServiceClusterTest, ClusterAndSingleRedisAgree) {
  auto cluster = LocalRedisCluster::Start();
  SEG_ASSERT_OK(cluster);
  auto single = LocalRedis::Start();
  SEG_ASSERT_OK(single);
  const uint32_t shards = 8;
  RedisRouterOptions cr;
  cr.cluster = true;
  cr.seeds = {"127.0.0.1:" + std::to_string((*cluster)->node(2).port())};
  RedisRouterOptions sr;
  sr.node.port = (*single)->port();
  Load(cr, shards);
  Load(sr, shards);
  StatsQueryOptions cq, sq;
  cq.redis = cr;
  cq.shards = shards;
  sq.redis = sr;
  sq.shards = shards;
  Server cs = StartServer(cq), ss = StartServer(sq);
  ASSERT_NE(cs.stub, nullptr);
  ASSERT_NE(ss.stub, nullptr);

  v1::SegmentSetRequest set;
  set.add_segments("cats");
  set.add_segments("dogs");
  *set.mutable_days() = Range("2024-05-01", "2024-05-03");
  v1::Estimate a, b;
  SEG_ASSERT_OK(cs.stub->Union(Ctx().get(), set, &a));
  SEG_ASSERT_OK(ss.stub->Union(Ctx().get(), set, &b));
  EXPECT_EQ(a.value(), b.value());
  EXPECT_CONTAINS_TRUTH(a, Truth({"cats", "dogs"}, 20240501, 20240503, false));
  SEG_ASSERT_OK(cs.stub->Intersection(Ctx().get(), set, &a));
  SEG_ASSERT_OK(ss.stub->Intersection(Ctx().get(), set, &b));
  EXPECT_EQ(a.value(), b.value());
  EXPECT_EQ(a.ci95_low(), b.ci95_low());
  EXPECT_EQ(a.ci95_high(), b.ci95_high());
  EXPECT_CONTAINS_TRUTH(a, Truth({"cats", "dogs"}, 20240501, 20240503, true));

  v1::SegmentSizeRequest req;
  req.set_segment("cars");
  *req.mutable_days() = Range("2024-05-01", "2024-05-03");
  v1::SizeSeriesReply sa, sb;
  SEG_ASSERT_OK(cs.stub->SizeSeries(Ctx().get(), req, &sa));
  SEG_ASSERT_OK(ss.stub->SizeSeries(Ctx().get(), req, &sb));
  ASSERT_EQ(sa.points_size(), 3);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(sa.points(i).estimate().value(), sb.points(i).estimate().value());
  }
  v1::ListSegmentsReply la, lb;
  SEG_ASSERT_OK(cs.stub->ListSegments(Ctx().get(), {}, &la));
  SEG_ASSERT_OK(ss.stub->ListSegments(Ctx().get(), {}, &lb));
  EXPECT_EQ(la.segments_size(), lb.segments_size());
}

}  // namespace
}  // namespace seg::stats
