// The past-day cache of seg-stats (StatsQueryOptions::past_day_cache_ms)
// against a real redis-server over real gRPC, with time driven by a
// FakeClock: sketches of days before yesterday are served from memory until
// their TTL passes (late events show up at most that much later), yesterday
// and today are always read, 0 turns the cache off, and Redis being down is
// still UNAVAILABLE for any range that needs it.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <chrono>

#include "common/clock.h"
#include "proto/stats.grpc.pb.h"
#include "stats/service/stats_service.h"
#include "stats/writer/stats_writer.h"
#include "tests/harness/redis_server.h"
#include "tests/harness/status_matchers.h"

namespace seg::stats {
namespace {

namespace v1 = ::seg::stats::v1;

constexpr int64_t kNowMs = 1714953600000 + 12 * 3600 * 1000;  // 2024-05-06 12:00 UTC
constexpr Day kToday = 20240506, kYesterday = 20240505, kOld = 20240501;
constexpr int kTtlMs = 60000;
// A few hundred users: HyperLogLog is within a user or two; the changes the
// tests look for are 10 or more.
constexpr double kSlack = 3;

class StatsCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto redis = testing::LocalRedis::Start();
    SEG_ASSERT_OK(redis);
    redis_ = std::move(*redis);
    StatsWriterOptions wo;
    wo.redis.node.port = redis_->port();
    wo.hll_retention_days = 0;  // days of 2024: past the default retention
    auto writer = NewStatsWriter(wo);
    SEG_ASSERT_OK(writer);
    writer_ = std::move(*writer);
  }

  // Adds users [from, to) to segment "cats" on `day`.
  void Add(Day day, int from, int to) {
    std::vector<UserUpdate> batch;
    for (int i = from; i < to; ++i) batch.push_back({"user-" + std::to_string(i), {{"cats", day}}});
    Status s = writer_->WriteBatch(batch);
    SEG_ASSERT_OK(s);
  }

  std::unique_ptr<StatsServer> Start(int cache_ms) {
    StatsQueryOptions q;
    q.redis.node.port = redis_->port();
    q.require_registered = false;
    q.past_day_cache_ms = cache_ms;
    q.clock = &clock_;
    StatsServerOptions so;
    so.port = 0;
    auto server = StartStatsServer(so, q, nullptr);
    SEG_EXPECT_OK(server);
    if (!server.ok()) return nullptr;
    stub_ = v1::SegmentStats::NewStub(grpc::CreateChannel(
        "127.0.0.1:" + std::to_string((*server)->port()), grpc::InsecureChannelCredentials()));
    return std::move(*server);
  }

  grpc::Status UnionStatus(Day from, Day to, v1::Estimate* e = nullptr) {
    v1::SegmentSetRequest req;
    req.add_segments("cats");
    req.mutable_days()->set_from(FormatDay(from));
    req.mutable_days()->set_to(FormatDay(to));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    v1::Estimate ignored;
    return stub_->Union(&ctx, req, e ? e : &ignored);
  }
  // Union of "cats" over [from, to].
  double Union(Day from, Day to) {
    v1::Estimate e;
    grpc::Status st = UnionStatus(from, to, &e);
    SEG_EXPECT_OK(st);
    return e.value();
  }

  FakeClock clock_{kNowMs};
  std::unique_ptr<testing::LocalRedis> redis_;
  std::unique_ptr<StatsWriter> writer_;
  std::unique_ptr<v1::SegmentStats::Stub> stub_;
};

TEST_F(StatsCacheTest, OldDaysAreStaleAtMostTheTtlRecentDaysNever) {
  Add(kOld, 0, 100);
  Add(kYesterday, 1000, 1050);
  Add(kToday, 2000, 2010);
  auto server = Start(kTtlMs);
  ASSERT_NE(server, nullptr);
  EXPECT_NEAR(Union(kOld, kToday), 160, kSlack);

  // Late events: an old day (cached) and yesterday/today (never cached).
  Add(kOld, 100, 130);
  Add(kYesterday, 1050, 1060);
  Add(kToday, 2010, 2015);
  EXPECT_NEAR(Union(kOld, kToday), 175, kSlack) << "yesterday and today must be read every time";
  EXPECT_NEAR(Union(kOld, kOld), 100, kSlack)
      << "the old day is served from the cache within its TTL";

  clock_.AdvanceMs(kTtlMs + 1);
  EXPECT_NEAR(Union(kOld, kOld), 130, kSlack) << "after the TTL the old day is read again";
  EXPECT_NEAR(Union(kOld, kToday), 205, kSlack);
}

TEST_F(StatsCacheTest, AbsentOldDaysAreCachedAsEmptyForTheTtlToo) {
  auto server = Start(kTtlMs);
  ASSERT_NE(server, nullptr);
  EXPECT_EQ(Union(kOld, kOld), 0);
  Add(kOld, 0, 40);
  EXPECT_EQ(Union(kOld, kOld), 0);
  clock_.AdvanceMs(kTtlMs + 1);
  EXPECT_NEAR(Union(kOld, kOld), 40, kSlack);
}

TEST_F(StatsCacheTest, ZeroTurnsItOffEveryQueryReadsRedis) {
  Add(kOld, 0, 100);
  auto server = Start(0);
  ASSERT_NE(server, nullptr);
  EXPECT_NEAR(Union(kOld, kOld), 100, kSlack);
  Add(kOld, 100, 130);
  EXPECT_NEAR(Union(kOld, kOld), 130, kSlack);
}

// Redis down: a range that includes yesterday or today still needs Redis
// (UNAVAILABLE); one over cached old days is answered from memory.
TEST_F(StatsCacheTest, RedisDownIsUnavailableUnlessEveryDayIsCached) {
  Add(kOld, 0, 100);
  Add(kToday, 2000, 2010);
  auto server = Start(kTtlMs);
  ASSERT_NE(server, nullptr);
  EXPECT_NEAR(Union(kOld, kToday), 110, kSlack);
  SEG_ASSERT_OK(redis_->Stop());
  EXPECT_EQ(UnionStatus(kOld, kToday).error_code(), grpc::StatusCode::UNAVAILABLE);
  SEG_EXPECT_OK(UnionStatus(kOld, kOld));
  clock_.AdvanceMs(kTtlMs + 1);
  EXPECT_EQ(UnionStatus(kOld, kOld).error_code(), grpc::StatusCode::UNAVAILABLE);
}

}  // namespace
}  // namespace seg::stats
