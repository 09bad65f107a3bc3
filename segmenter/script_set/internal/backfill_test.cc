// Backfill against the embedded store and librdkafka's mock cluster; time is
// a FakeClock (lease expiry, rate limit), Kafka waits have deadlines.
#include "segmenter/script_set/internal/backfill.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>

#include "proto/segmentation.pb.h"
#include "segmenter/script_set/script_set.h"
#include "tests/harness/consume.h"
#include "tests/harness/kafka_cluster.h"
#include "tests/harness/process.h"
#include "tests/harness/status_matchers.h"
#include "tests/served_store.h"

namespace seg::segmenter::internal {
namespace {
namespace fs = std::filesystem;
using State = Backfill::Step::State;

constexpr int kUsers = 25;

std::string UserId(int i) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "u%03d", i);
  return buf;
}

// Forwards to a real store; runs `hook` right before the CheckAndMutate
// number `hook_at` (1-based), to interleave a competing write.
class HookedStore : public store::Store {
 public:
  explicit HookedStore(store::Store* inner) : inner_(inner) {}
  int hook_at = 0;
  std::function<void()> hook;

  Status Put(std::string_view t, const std::vector<store::RowPut>& rows) override {
    return inner_->Put(t, rows);
  }
  StatusOr<store::RowResult> Get(std::string_view t, const store::GetRequest& g) override {
    return inner_->Get(t, g);
  }
  Status MultiGet(std::string_view t, const std::vector<store::GetRequest>& g,
                  std::vector<store::RowResult>* r) override {
    return inner_->MultiGet(t, g, r);
  }
  StatusOr<bool> Exists(std::string_view t, const store::GetRequest& g) override {
    return inner_->Exists(t, g);
  }
  Status Delete(std::string_view t, const std::vector<store::RowDelete>& rows) override {
    return inner_->Delete(t, rows);
  }
  StatusOr<bool> CheckAndMutate(std::string_view t, const store::Condition& c,
                                const store::RowMutations& m) override {
    if (++cas_calls_ == hook_at && hook) hook();
    return inner_->CheckAndMutate(t, c, m);
  }
  StatusOr<std::unique_ptr<store::Scanner>> OpenScanner(std::string_view t,
                                                        const store::ScanRequest& s) override {
    return inner_->OpenScanner(t, s);
  }

 private:
  store::Store* inner_;
  int cas_calls_ = 0;
};

// Parameter: true = through the Thrift2 client to seg-store's server (the
// production path), false = the embedded engine.
class BackfillTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    if (GetParam()) {
      auto served = testing::ServeStore(dir_.path() + "/store");
      SEG_ASSERT_OK(served);
      server_ = std::move(served->server);
      store_ = std::move(served->client);
    } else {
      store::StoreOptions o;
      o.embedded.data_dir = dir_.path() + "/store";
      auto s = store::OpenStore(o);
      SEG_ASSERT_OK(s);
      store_ = std::move(*s);
    }

    // Every segmented user has a state cell; one user has events only
    // (never segmented) and must not be sent.
    std::vector<store::RowPut> rows;
    for (int i = 0; i < kUsers; ++i) {
      rows.push_back({UserId(i),
                      {{"s", "state", store::kLatestTimestamp, "x"},
                       {"e", "ev", store::kLatestTimestamp, "y"}}});
    }
    rows.push_back({"u_events_only", {{"e", "ev", store::kLatestTimestamp, "y"}}});
    SEG_ASSERT_OK(store_->Put("users", rows));

    auto kafka = testing::MockKafkaCluster::Start(1);
    SEG_ASSERT_OK(kafka);
    kafka_ = std::move(*kafka);
    SEG_ASSERT_OK(kafka_->CreateTopic("user-changes", 4));
    auto producer =
        kafka::Producer::Create(kafka_->ClientOptions("backfill"), [this](const auto& r) {
          if (r.status.ok()) ++delivered_;
        });
    SEG_ASSERT_OK(producer);
    producer_ = std::move(*producer);
  }

  std::string Push(const std::string& segment) {
    std::string d = dir_.path() + "/scripts-" + segment;
    fs::create_directories(d);
    std::ofstream(d + "/s.lua") << "return segment_script { name = 's', version = '1', "
                                   "segments = {'"
                                << segment << "'}, evaluate = function(user) return {} end }\n";
    ScriptSetOptions set_options;
    set_options.clock = &clock_;  // backfill:started_at on the test's clock
    ScriptSet set(store_.get(), set_options);
    auto r = set.Push(d);
    SEG_EXPECT_OK(r);
    return r.ok() ? r->version : "";
  }

  BackfillOptions Options(const std::string& owner) {
    BackfillOptions o;
    o.owner_id = owner;
    o.clock = &clock_;
    o.users_per_s = 0;
    o.start_delay_ms = 0;  // StartsAfterTheDelay covers the delay
    o.lease_ms = 10'000;
    o.scan_batch_rows = 4;  // several round trips per step
    o.flush_timeout_ms = 10'000;
    return o;
  }

  // Steps until the job is finished; at most `max_steps`.
  void RunToEnd(Backfill& b, int64_t per_step, int max_steps = 100) {
    for (int i = 0; i < max_steps; ++i) {
      auto step = b.RunSome(per_step);
      SEG_ASSERT_OK(step);
      if (step->state == State::kFinished) return;
      ASSERT_EQ(step->state, State::kProgress);
    }
    FAIL() << "backfill did not finish in " << max_steps << " steps";
  }

  // Reads the whole topic from the start (a fresh group) until `want`
  // notices arrived (deadline 30 s).
  std::vector<std::pair<std::string, ChangeNotice>> ReadNotices(size_t want) {
    kafka::KafkaOptions o = kafka_->ClientOptions("reader");
    o.properties["session.timeout.ms"] = "6000";
    o.properties["heartbeat.interval.ms"] = "500";
    auto consumer = kafka::Consumer::Create(o, "reader-" + std::to_string(++groups_));
    SEG_EXPECT_OK(consumer);
    std::vector<std::pair<std::string, ChangeNotice>> out;
    if (!consumer.ok()) return out;
    SEG_EXPECT_OK((*consumer)->Subscribe({"user-changes"}));
    EXPECT_TRUE(testing::ConsumeUntil(
        **consumer, [&] { return out.size() >= want; }, std::chrono::seconds(30),
        std::to_string(want) + " notices on user-changes",
        [&](const kafka::Message& m) {
          ChangeNotice n;
          EXPECT_TRUE(n.ParseFromString(std::string(m.value())));
          out.emplace_back(std::string(m.key()), std::move(n));
        },
        {.max_messages = 500, .wait = std::chrono::milliseconds(200)}));
    (*consumer)->Close().IgnoreError();
    return out;
  }

  testing::TempDir dir_;
  FakeClock clock_;
  std::unique_ptr<store::StoreServer> server_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<testing::MockKafkaCluster> kafka_;
  std::unique_ptr<kafka::Producer> producer_;
  std::atomic<int> delivered_{0};
  int groups_ = 0;
};

TEST_P(BackfillTest, NoJobIsIdle) {
  Backfill b(store_.get(), producer_.get(), Options("a"));
  auto step = b.RunSome(100);
  SEG_ASSERT_OK(step);
  EXPECT_EQ(step->state, State::kIdle);
}

TEST_P(BackfillTest, PublishesOneNoticePerStoredUser) {
  const std::string v = Push("cat");
  Backfill b(store_.get(), producer_.get(), Options("a"));
  RunToEnd(b, 10);
  EXPECT_EQ(delivered_.load(), kUsers);  // every Produce acknowledged once: no extras
  auto notices = ReadNotices(kUsers);
  ASSERT_EQ(notices.size(), static_cast<size_t>(kUsers));
  std::map<std::string, int> per_user;
  for (const auto& [key, n] : notices) {
    EXPECT_EQ(key, n.user_id());
    EXPECT_EQ(n.kind(), NOTICE_DEFINITION_CHANGE);
    EXPECT_EQ(n.script_set_version(), v);
    EXPECT_EQ(n.acked_at_ms(), clock_.NowMs());
    ++per_user[key];
  }
  ASSERT_EQ(per_user.size(), static_cast<size_t>(kUsers));
  for (int i = 0; i < kUsers; ++i) EXPECT_EQ(per_user[UserId(i)], 1) << UserId(i);

  auto job = ReadBackfillStatus(store_.get(), Options("a"));
  SEG_ASSERT_OK(job);
  EXPECT_TRUE(job->done);
  EXPECT_EQ(job->published, kUsers);
  EXPECT_EQ(job->cursor, UserId(kUsers - 1));
  EXPECT_EQ(job->lease_owner, "");  // released when done
  // Done stays done.
  auto again = b.RunSome(10);
  SEG_ASSERT_OK(again);
  EXPECT_EQ(again->state, State::kIdle);
  EXPECT_EQ(delivered_.load(), kUsers);
}

TEST_P(BackfillTest, ResumesFromCursorWithoutResending) {
  Push("cat");
  {
    Backfill first(store_.get(), producer_.get(), Options("a"));
    auto step = first.RunSome(10);
    SEG_ASSERT_OK(step);
    ASSERT_EQ(step->state, State::kProgress);
    EXPECT_EQ(step->published, 10);
    EXPECT_EQ(step->cursor, UserId(9));
    // Destroyed without Release(): a crash. Its lease runs out.
  }
  Backfill second(store_.get(), producer_.get(), Options("b"));
  auto blocked = second.RunSome(10);
  SEG_ASSERT_OK(blocked);
  EXPECT_EQ(blocked->state, State::kLeasedElsewhere);
  clock_.AdvanceMs(10'001);
  RunToEnd(second, 10);
  EXPECT_EQ(delivered_.load(), kUsers);
  auto notices = ReadNotices(kUsers);
  std::map<std::string, int> per_user;
  for (const auto& [key, n] : notices) ++per_user[key];
  ASSERT_EQ(per_user.size(), static_cast<size_t>(kUsers));
  for (const auto& [key, count] : per_user) EXPECT_EQ(count, 1) << key;
}

TEST_P(BackfillTest, SecondRunnerWaitsForTheLeaseThenTakesOver) {
  Push("cat");
  Backfill a(store_.get(), producer_.get(), Options("a"));
  Backfill b(store_.get(), producer_.get(), Options("b"));
  auto sa = a.RunSome(5);
  SEG_ASSERT_OK(sa);
  ASSERT_EQ(sa->state, State::kProgress);
  // While a's lease is valid (and renewed by its steps), b does nothing.
  for (int i = 0; i < 3; ++i) {
    auto sb = b.RunSome(5);
    SEG_ASSERT_OK(sb);
    EXPECT_EQ(sb->state, State::kLeasedElsewhere);
    EXPECT_EQ(sb->published, 0);
    EXPECT_GT(sb->wait_ms, 0);
    clock_.AdvanceMs(6'000);  // past half the lease: a's next step renews it
    sa = a.RunSome(5);
    SEG_ASSERT_OK(sa);
    ASSERT_EQ(sa->state, State::kProgress);
  }
  EXPECT_EQ(delivered_.load(), 20);
  // a stops stepping (stuck or dead); once its lease expires b takes over.
  clock_.AdvanceMs(10'001);
  auto sb = b.RunSome(5);
  SEG_ASSERT_OK(sb);
  EXPECT_EQ(sb->state, State::kProgress);  // the end shows in the next, empty scan
  EXPECT_EQ(sb->published, 5);
  sb = b.RunSome(5);
  SEG_ASSERT_OK(sb);
  EXPECT_EQ(sb->state, State::kFinished);
  EXPECT_EQ(sb->published, 0);
  // a's lease is gone: it neither sends nor overwrites the cursor.
  auto late = a.RunSome(5);
  SEG_ASSERT_OK(late);
  EXPECT_EQ(late->state, State::kIdle);
  EXPECT_EQ(delivered_.load(), kUsers);
}

TEST_P(BackfillTest, ReleaseLetsAnotherRunnerContinueAtOnce) {
  Push("cat");
  Backfill a(store_.get(), producer_.get(), Options("a"));
  SEG_ASSERT_OK(a.RunSome(5));
  SEG_ASSERT_OK(a.Release());
  Backfill b(store_.get(), producer_.get(), Options("b"));
  auto sb = b.RunSome(5);
  SEG_ASSERT_OK(sb);
  EXPECT_EQ(sb->state, State::kProgress);
  EXPECT_EQ(sb->cursor, UserId(9));
}

TEST_P(BackfillTest, RateLimitOnFakeClock) {
  Push("cat");
  BackfillOptions o = Options("a");
  o.users_per_s = 100;  // bucket: 10 users (100 ms worth)
  Backfill b(store_.get(), producer_.get(), o);
  auto s1 = b.RunSome(1000);
  SEG_ASSERT_OK(s1);
  EXPECT_EQ(s1->published, 10);
  auto s2 = b.RunSome(1000);
  SEG_ASSERT_OK(s2);
  EXPECT_EQ(s2->state, State::kRateLimited);
  EXPECT_EQ(s2->published, 0);
  EXPECT_GE(s2->wait_ms, 10);  // one user per 10 ms
  clock_.AdvanceMs(50);
  auto s3 = b.RunSome(1000);
  SEG_ASSERT_OK(s3);
  EXPECT_EQ(s3->published, 5);
  clock_.AdvanceMs(10'000);  // idle time does not bank more than the bucket
  auto s4 = b.RunSome(1000);
  SEG_ASSERT_OK(s4);
  EXPECT_EQ(s4->published, 10);
  EXPECT_EQ(delivered_.load(), 25);
}

TEST_P(BackfillTest, NewerVersionRestartsTheScan) {
  const std::string v1 = Push("cat");
  Backfill a(store_.get(), producer_.get(), Options("a"));
  auto s = a.RunSome(10);
  SEG_ASSERT_OK(s);
  ASSERT_EQ(s->state, State::kProgress);
  const std::string v2 = Push("dog");
  ASSERT_NE(v1, v2);
  auto job = ReadBackfillStatus(store_.get(), Options("a"));
  SEG_ASSERT_OK(job);
  EXPECT_EQ(job->target, v2);
  EXPECT_EQ(job->cursor, "");
  EXPECT_EQ(job->lease_owner, "");  // the push freed the old job's lease
  RunToEnd(a, 10);
  EXPECT_EQ(delivered_.load(), 10 + kUsers);
  auto notices = ReadNotices(10 + kUsers);
  std::map<std::string, int> v2_users;
  int v1_count = 0;
  for (const auto& [key, n] : notices) {
    if (n.script_set_version() == v2) {
      ++v2_users[key];
    } else {
      EXPECT_EQ(n.script_set_version(), v1);
      ++v1_count;
    }
  }
  EXPECT_EQ(v1_count, 10);
  EXPECT_EQ(v2_users.size(), static_cast<size_t>(kUsers));
}

TEST_P(BackfillTest, PushDuringAStepInvalidatesTheOldRunnersSave) {
  Push("cat");
  HookedStore hooked(store_.get());
  std::string v2;
  // CAS 1 takes the lease; before CAS 2 (the cursor save) a new version lands.
  hooked.hook_at = 2;
  hooked.hook = [&] { v2 = Push("dog"); };
  Backfill a(&hooked, producer_.get(), Options("a"));
  auto step = a.RunSome(10);
  SEG_ASSERT_OK(step);
  EXPECT_EQ(step->state, State::kLostLease);
  EXPECT_EQ(step->published, 10);  // sent for v1; harmless repeats
  auto job = ReadBackfillStatus(store_.get(), Options("a"));
  SEG_ASSERT_OK(job);
  EXPECT_EQ(job->target, v2);
  EXPECT_EQ(job->cursor, "");  // the v1 runner did not move v2's cursor
  EXPECT_EQ(job->published, 0);
  RunToEnd(a, 10);
  EXPECT_EQ(delivered_.load(), 10 + kUsers);
}

TEST_P(BackfillTest, StartsAfterTheDelay) {
  // Pushed "now" by the fake clock: the job waits for the nodes to load it.
  ScriptSetOptions set_options;
  set_options.clock = &clock_;
  std::string d = dir_.path() + "/delayed";
  fs::create_directories(d);
  std::ofstream(d + "/s.lua") << "return segment_script { name = 's', version = '1', segments = "
                                 "{'x'}, evaluate = function(user) return {} end }\n";
  ScriptSet set(store_.get(), set_options);
  SEG_ASSERT_OK(set.Push(d));
  BackfillOptions o = Options("a");
  o.start_delay_ms = 5000;
  Backfill b(store_.get(), producer_.get(), o);
  auto s1 = b.RunSome(10);
  SEG_ASSERT_OK(s1);
  EXPECT_EQ(s1->state, State::kStarting);
  EXPECT_EQ(s1->wait_ms, 5000);
  clock_.AdvanceMs(4999);
  auto s2 = b.RunSome(10);
  SEG_ASSERT_OK(s2);
  EXPECT_EQ(s2->state, State::kStarting);
  EXPECT_EQ(s2->wait_ms, 1);
  EXPECT_EQ(delivered_.load(), 0);
  clock_.AdvanceMs(1);
  auto s3 = b.RunSome(10);
  SEG_ASSERT_OK(s3);
  EXPECT_EQ(s3->state, State::kProgress);
  EXPECT_EQ(s3->published, 10);
}

INSTANTIATE_TEST_SUITE_P(Stores, BackfillTest, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "Thrift" : "Embedded"; });

}  // namespace
}  // namespace seg::segmenter::internal
