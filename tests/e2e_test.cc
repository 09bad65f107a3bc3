// End to end: the whole product (tests/harness/local_stack.h: mock Kafka,
// redis-server, seg-store, seg-ingest, two seg-segmenters, seg-stats) under
// seg-loadgen's traffic (users, bursts, history, bots, late events,
// duplicates, malformed messages), every message kept. Once the pipeline is
// quiet (ingest and segmenter groups caught up, every user's latest result
// covering its newest event), it checks:
//   (a) every user's final result on segmentation-results equals a direct
//       evaluation of the shipped scripts over that user's distinct valid
//       events at the result's own "now"; users the blacklist flagged end on
//       a bot result, and only users that sent enough events are flagged;
//   (b) every malformed message is in events-deadletter with the reason the
//       generator labelled it with, and nothing else is;
//   (c) seg-stats' per-segment day sizes (gRPC) match the distinct users the
//       results put in each segment that day, within the HLL error bound;
//   (d) a partner consumer group reading segmentation-results from the
//       beginning sees the same final results;
//   (e) membership over time: besides the shipped scripts the segmenters run
//       a test-only script with a short window (kWindowMs); every user who
//       entered it exits once its page views are older than the window, with
//       a SCHEDULE result no sooner than its newest page view + the window
//       and at most kExitSlackMs after that.
#include <glog/logging.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <thread>

#include "common/clock.h"
#include "common/event_codec.h"
#include "common/ingest_watermark.h"
#include "common/kafka.h"
#include "proto/events.pb.h"
#include "proto/segmentation.pb.h"
#include "proto/stats.grpc.pb.h"
#include "segmenter/script_host/script_host.h"
#include "segmenter/segmenter.h"
#include "store/store.h"
#include "tests/harness/local_stack.h"
#include "tests/harness/status_matchers.h"
#include "tools/chaos/direct_evaluation.h"
#include "tools/loadgen/traffic.h"

namespace seg {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using SteadyClock = std::chrono::steady_clock;

constexpr int32_t kUsers = 3000;
constexpr int kMessages = 40'000;
constexpr int64_t kBotThreshold = 100;  // events per minute (segmenter.bot_blacklist)
constexpr int64_t kDayMs = 24 * 3600 * 1000LL;
constexpr int kHistoryDays = 60;            // NodeOptions::history_days
constexpr size_t kMaxEventsPerUser = 2000;  // NodeOptions::max_events_per_user

// The test-only window script (e): member while it has a page view within
// kWindowMs. All page views are sent within ~1 s and are stored (the pipeline
// quiet) ~4 s after the traffic starts, before the first window edge, so an
// exit never races a page view still in flight; the exits come while (a) to
// (c) are checked, adding ~2 s to the run.
constexpr int64_t kWindowMs = 8'000;
constexpr int64_t kExitSlackMs = 5'000;  // due scan (1 s) + a batch, with room
constexpr char kWindowSegment[] = "e2e_active_now";
std::string WindowScript() {
  const std::string window = std::to_string(kWindowMs);
  return "local RECENT = filter { type = \"page_view\", within_ms = " + window +
         " }\n"
         "return segment_script {\n"
         "  name = \"e2e_active_now\", version = \"1\", segments = { \"e2e_active_now\" },\n"
         "  description = \"Test only (tests/e2e_test.cc): a page view within " +
         window +
         " ms\",\n"
         "  evaluate = function(user)\n"
         "    if user:any(RECENT) then return { \"e2e_active_now\" } end\n"
         "    return {}\n"
         "  end,\n"
         "}\n";
}

using chaos::Cells;

// Reads a topic in a consumer group of its own from the beginning.
class TopicReader {
 public:
  TopicReader(testing::LocalStack* stack, const std::string& topic, const std::string& group)
      : stack_(stack), topic_(topic) {
    auto options = stack->KafkaClientOptions(group);
    options.properties["session.timeout.ms"] = "6000";
    options.properties["heartbeat.interval.ms"] = "500";
    auto consumer = kafka::Consumer::Create(options, group);
    SEG_EXPECT_OK(consumer);
    if (!consumer.ok()) return;
    consumer_ = std::move(*consumer);
    SEG_EXPECT_OK(consumer_->Subscribe({topic}));
  }
  ~TopicReader() {
    if (consumer_) consumer_->Close().IgnoreError();
  }

  // Hands what has arrived within `wait` to `fn(message)`.
  template <typename Fn>
  Status Poll(milliseconds wait, Fn fn) {
    if (!consumer_) return InternalError("no consumer");
    SEG_ASSIGN_OR_RETURN(kafka::Batch batch, consumer_->PollBatch(5000, wait));
    for (const kafka::Message& m : batch) {
      fn(m);
      int64_t& next = next_[m.partition()];
      next = std::max(next, m.offset() + 1);
    }
    return Status::OK();
  }

  // Polls until every partition was read up to its current end offset.
  template <typename Fn>
  Status ReadToEnd(SteadyClock::time_point deadline, Fn fn) {
    SEG_ASSIGN_OR_RETURN(std::vector<int64_t> ends, stack_->EndOffsets(topic_));
    while (true) {
      bool done = true;
      for (size_t p = 0; p < ends.size(); ++p) done = done && next_[p] >= ends[p];
      if (done) return Status::OK();
      if (SteadyClock::now() > deadline) return DeadlineExceededError(topic_ + " not read to end");
      SEG_RETURN_IF_ERROR(Poll(milliseconds(200), fn));
    }
  }

 private:
  testing::LocalStack* stack_;
  std::string topic_;
  std::unique_ptr<kafka::Consumer> consumer_;
  std::map<int32_t, int64_t> next_;
};

std::string Join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& s : items) out += (out.empty() ? "" : ",") + s;
  return "[" + out + "]";
}

std::string FormatDay(int32_t yyyymmdd) {
  char text[16];
  std::snprintf(text, sizeof text, "%04d-%02d-%02d", yyyymmdd / 10000, yyyymmdd / 100 % 100,
                yyyymmdd % 100);
  return text;
}

class EndToEndTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // The shipped scripts plus the window script, in a directory of the test's.
    scripts_dir_ = scripts_tmp_.path() + "/scripts";
    std::filesystem::create_directories(scripts_dir_);
    for (const auto& entry :
         std::filesystem::directory_iterator(testing::SourceDir() + "/scripts")) {
      if (entry.is_regular_file() && entry.path().extension() == ".lua") {
        std::filesystem::copy_file(entry.path(),
                                   scripts_dir_ + "/" + entry.path().filename().string());
      }
    }
    std::ofstream(scripts_dir_ + "/" + kWindowSegment + ".lua") << WindowScript();

    testing::LocalStackOptions options;
    options.scripts_dir = scripts_dir_;
    // ctest's e2e_real_test (label `real`): real Kafka and HBase + Thrift2.
    const char* real = std::getenv("SEG_E2E_REAL");
    options.real_services = real != nullptr && std::string(real) == "1";
    // e2e_real_endpoint_test: HBase's NoticeEndpoint is the only notice source.
    const char* notices = std::getenv("SEG_E2E_NOTICES");
    options.hbase_notices = notices != nullptr && std::string(notices) == "hbase";
    options.segmenter_overrides = {
        "segmenter.bot_blacklist.threshold_events=" + std::to_string(kBotThreshold),
        "segmenter.bots.sustain_ms=0",  // the spike rule: this short run has no minutes
        "segmenter.history_days=" + std::to_string(kHistoryDays),
        "segmenter.max_events_per_user=" + std::to_string(kMaxEventsPerUser),
    };
    auto stack = testing::LocalStack::Start(options);
    SEG_ASSERT_OK(stack);
    stack_ = std::move(*stack);

    segmenter::ScriptHostOptions host_options;
    host_options.scripts_dir = scripts_dir_;
    host_options.reload_check_interval_ms = 0;
    auto host = segmenter::ScriptHost::Create(host_options);
    SEG_ASSERT_OK(host);
    host_ = std::move(*host);
  }

  // Fails with every process's log tail when one has died.
  void ExpectAllRunning() {
    auto exited = stack_->Exited();
    std::string logs;
    for (const auto& name : exited) logs += "\n--- " + name + ":\n" + stack_->LogTail(name);
    ASSERT_TRUE(exited.empty()) << "processes exited:" << logs;
  }

  // Direct evaluation of the scripts over `cells` as the node would read
  // them at `now_ms` (history window, newest max_events_per_user).
  segmenter::EvaluationResult Evaluate(const std::string& user, const Cells& cells, int64_t now_ms,
                                       int64_t* watermark) {
    segmenter::EvaluationResult result;
    SEG_EXPECT_OK(chaos::DirectEvaluate(host_.get(), user, cells, now_ms,
                                        {kHistoryDays, kMaxEventsPerUser}, &result, watermark));
    return result;
  }

  testing::TempDir scripts_tmp_;
  std::string scripts_dir_;
  std::unique_ptr<testing::LocalStack> stack_;
  std::unique_ptr<segmenter::ScriptHost> host_;
};

TEST_F(EndToEndTest, LoadgenTrafficEndsInDirectEvaluationDeadLettersAndStats) {
  // Readers join their groups before the traffic starts (the mock cluster
  // assigns partitions only after a join round).
  TopicReader results(stack_.get(), "segmentation-results", "e2e-results");
  TopicReader deadletters(stack_.get(), "events-deadletter", "e2e-deadletters");

  // 1. Traffic: every message kept, as fast as the producer takes it.
  loadgen::TrafficOptions traffic;
  traffic.users = kUsers;
  traffic.seed = 8;
  traffic.bot_share = 0.03;  // fewer, heavier bots: ~140 messages each vs human p99 ~100
  traffic.malformed_share = 0.005;
  loadgen::TrafficGenerator generator(traffic);
  auto producer_options = stack_->KafkaClientOptions("loadgen");
  producer_options.properties["linger.ms"] = "5";
  auto producer = kafka::Producer::Create(producer_options);
  SEG_ASSERT_OK(producer);
  std::vector<loadgen::GeneratedMessage> sent(kMessages);
  const int64_t traffic_started_ms = Clock::Real()->NowMs();
  for (auto& msg : sent) {
    generator.Next(Clock::Real()->NowMs(), &msg);
    SEG_ASSERT_OK((*producer)->Produce("events", msg.key, msg.value));
  }
  SEG_ASSERT_OK((*producer)->Flush(seconds(60)));
  const int64_t traffic_ms = Clock::Real()->NowMs() - traffic_started_ms;

  // What the store should hold per user, and each user's newest event.
  std::vector<Cells> cells(kUsers);
  std::vector<int64_t> newest(kUsers, 0);
  std::vector<std::vector<int64_t>> page_views(kUsers);                     // event times, for (e)
  std::map<std::pair<std::string, std::string>, int> expected_deadletters;  // (value, reason)
  for (const auto& msg : sent) {
    if (!msg.malformed_reason.empty()) {
      ++expected_deadletters[{msg.value, msg.malformed_reason}];
      continue;
    }
    Event event;
    ASSERT_TRUE(event.ParseFromString(msg.value));
    std::string qualifier, value;
    int64_t time_ms = 0;
    SEG_ASSERT_OK(chaos::ExpectedCell(msg.value, &qualifier, &value, &time_ms));
    cells[msg.user_index][qualifier] = std::move(value);
    newest[msg.user_index] = std::max(newest[msg.user_index], time_ms);
    if (event.type() == PAGE_VIEW) page_views[msg.user_index].push_back(time_ms);
  }
  for (auto& views : page_views) std::sort(views.begin(), views.end());

  // 2. Wait until the pipeline is quiet: both groups caught up and every
  // user's latest result covers its newest event (or flags it as a bot).
  std::map<std::string, int32_t> user_index;
  for (int32_t u = 0; u < kUsers; ++u) user_index[generator.users()[u].id] = u;
  std::vector<SegmentationResult> final_results(kUsers);
  std::vector<std::string> final_bytes(kUsers);
  std::vector<bool> has_result(kUsers, false);
  // (segment, day) -> users a result put in that segment that day.
  std::map<std::pair<std::string, int32_t>, std::set<std::string>> day_members;
  int64_t result_messages = 0;
  // (e) Users a result put in the window segment, and every exit from it:
  // (segmented_at_ms, reason).
  std::vector<bool> window_entered(kUsers, false);
  std::vector<std::vector<std::pair<int64_t, ResultReason>>> window_exits(kUsers);
  auto has = [](const google::protobuf::RepeatedPtrField<std::string>& list, const char* s) {
    return std::find(list.begin(), list.end(), s) != list.end();
  };
  auto on_result = [&](const kafka::Message& m) {
    ++result_messages;
    SegmentationResult r;
    ASSERT_TRUE(r.ParseFromArray(m.value().data(), static_cast<int>(m.value().size())));
    auto it = user_index.find(r.user_id());
    ASSERT_NE(it, user_index.end()) << "result for unknown user " << r.user_id();
    if (has(r.segments(), kWindowSegment)) window_entered[it->second] = true;
    if (has(r.exited(), kWindowSegment)) {
      window_exits[it->second].emplace_back(r.segmented_at_ms(), r.reason());
    }
    if (!r.bot()) {
      for (const auto& s : r.segments()) {
        day_members[{s, segmenter::DayOf(r.segmented_at_ms())}].insert(r.user_id());
      }
    }
    final_results[it->second] = std::move(r);
    final_bytes[it->second] = std::string(m.value());
    has_result[it->second] = true;
  };
  auto uncovered = [&] {
    int n = 0;
    for (int32_t u = 0; u < kUsers; ++u) {
      if (newest[u] == 0) continue;
      const auto& r = final_results[u];
      n += has_result[u] && (r.bot() || r.data_watermark_ms() >= newest[u]) ? 0 : 1;
    }
    return n;
  };
  const auto deadline = SteadyClock::now() + seconds(200);
  int64_t ingest_lag = -1, segmenter_lag = -1;
  int missing = -1;
  while (true) {
    ExpectAllRunning();
    ASSERT_FALSE(HasFatalFailure());
    SEG_ASSERT_OK(results.Poll(milliseconds(500), on_result));
    missing = uncovered();
    if (missing == 0) {
      auto lag = stack_->GroupLag("seg-ingest", "events");
      ingest_lag = lag.ok() ? *lag : -1;
      lag = stack_->GroupLag("segmenter", "user-changes");
      segmenter_lag = lag.ok() ? *lag : -1;
      if (ingest_lag == 0 && segmenter_lag == 0) break;
    }
    ASSERT_LT(SteadyClock::now(), deadline)
        << missing << " users without a covering result; ingest lag " << ingest_lag
        << ", segmenter lag " << segmenter_lag << "\n--- ingest:\n"
        << stack_->LogTail("ingest") << "\n--- segmenter1:\n"
        << stack_->LogTail("segmenter1");
  }
  SEG_ASSERT_OK(results.ReadToEnd(deadline, on_result));
  ASSERT_EQ(uncovered(), 0);

  const int64_t quiet_ms = Clock::Real()->NowMs();

  // The ingester publishes the ingest watermark that holds window exits
  // while the pipeline is behind (docs/ARCHITECTURE.md): one for every
  // events partition, and past the last message sent once all is stored.
  {
    store::StoreOptions store_options;
    store_options.backend = store::StoreOptions::Backend::kThrift;
    store_options.thrift.port = stack_->store_port();
    auto store = store::OpenStore(store_options);
    SEG_ASSERT_OK(store);
    const int64_t traffic_ended_ms = traffic_started_ms + traffic_ms;
    IngestHorizon horizon;
    while (SteadyClock::now() < deadline) {
      store::GetRequest get;
      get.row.assign(kIngestWatermarkRow);
      get.families = {"d"};
      auto row = (*store)->Get("due", get);
      SEG_ASSERT_OK(row);
      std::vector<std::pair<std::string_view, std::string_view>> watermark_cells;
      for (store::CellView c : *row) watermark_cells.emplace_back(c.qualifier, c.value);
      horizon = ComputeIngestHorizon(watermark_cells);
      if (horizon.ms > traffic_ended_ms) break;
      std::this_thread::sleep_for(milliseconds(50));  // polls the row, bounded by the deadline
    }
    EXPECT_TRUE(horizon.published);
    EXPECT_EQ(horizon.missing, "");
    EXPECT_GT(horizon.ms, traffic_ended_ms);
  }

  // Change notices: what the blacklist counted per user.
  // Change notices: what the blacklist counted per user (ingest is
  // at-least-once, so a redelivered batch counts twice).
  std::map<std::string, std::pair<int64_t, int64_t>> notice_counts;  // notices, event_count sum
  {
    TopicReader notices(stack_.get(), "user-changes", "e2e-notices");
    SEG_ASSERT_OK(notices.ReadToEnd(deadline, [&](const kafka::Message& m) {
      ChangeNotice n;
      ASSERT_TRUE(n.ParseFromArray(m.value().data(), static_cast<int>(m.value().size())));
      auto& [count, events] = notice_counts[n.user_id()];
      ++count;
      events += n.event_count();
    }));
    int over = 0;
    for (int32_t u = 0; u < kUsers; ++u) {
      const auto& user = generator.users()[u];
      auto [count, events] = notice_counts[user.id];
      if (events > user.messages && over++ < 5) {
        LOG(INFO) << user.id << ": notices count " << events << " events in " << count
                  << " notices, generator sent " << user.messages << " messages";
      }
    }
    LOG(INFO) << "e2e: " << over << " users' notices count more events than were sent";
  }

  // (a) Final results against a direct evaluation at the result's "now".
  int mismatches = 0, flagged = 0, flagged_bots = 0, generator_bots = 0, compared = 0;
  std::map<std::string, int> members;
  for (int32_t u = 0; u < kUsers; ++u) {
    const loadgen::UserProfile& user = generator.users()[u];
    generator_bots += user.bot ? 1 : 0;
    if (newest[u] == 0) {
      EXPECT_FALSE(has_result[u]) << user.id << " has a result but no valid event";
      continue;
    }
    const SegmentationResult& r = final_results[u];
    if (r.bot()) {
      ++flagged;
      flagged_bots += user.bot ? 1 : 0;
      EXPECT_EQ(r.reason(), BOT);
      EXPECT_TRUE(r.segments().empty());
      // The rate rule never over-counts (fewer events than the threshold in
      // all of a user's notices cannot flag it); the row rules (client
      // rotation, crawl cadence) flag only the generator's bots.
      EXPECT_TRUE(user.bot || notice_counts[user.id].second >= kBotThreshold)
          << user.id << " flagged as a bot (" << user.messages << " messages)";
      continue;
    }
    ++compared;
    // SCHEDULE: a window lapsed after the user's last event (e).
    EXPECT_TRUE(r.reason() == SEGMENTED || r.reason() == SCHEDULE)
        << user.id << ": " << ResultReason_Name(r.reason());
    EXPECT_TRUE(r.failed_scripts().empty()) << user.id << ": " << r.failed_scripts(0);
    EXPECT_EQ(r.script_set_version(), host_->script_set_version());
    int64_t watermark = 0;
    segmenter::EvaluationResult direct =
        Evaluate(user.id, cells[u], r.segmented_at_ms(), &watermark);
    std::vector<std::string> got(r.segments().begin(), r.segments().end());
    EXPECT_EQ(r.data_watermark_ms(), watermark) << user.id << ": the result missed events";
    if (got != direct.segments) {
      ++mismatches;
      ADD_FAILURE() << user.id << ": pipeline " << Join(got) << " vs direct "
                    << Join(direct.segments) << " (" << cells[u].size() << " events, decided "
                    << Join(user.decided_segments) << ")";
      if (mismatches > 10) break;
    }
    for (const auto& s : got) ++members[s];
    // What the generator alone decides holds, unless the deciding event fell
    // out of the newest events the node reads.
    if (cells[u].size() <= kMaxEventsPerUser) {
      for (const auto& d : user.decided_segments) {
        EXPECT_TRUE(std::count(got.begin(), got.end(), d)) << user.id << " should be in " << d;
      }
    }
  }
  EXPECT_EQ(mismatches, 0);
  // Bots send ~130 messages each within seconds: the blacklist must see most.
  EXPECT_GE(flagged_bots, generator_bots * 3 / 4)
      << flagged_bots << " of " << generator_bots << " bots flagged";
  for (const auto& script : host_->scripts()) {
    for (const auto& segment : script.segments) {
      if (segment == kWindowSegment) continue;  // everyone left it (e)
      EXPECT_GT(members[segment], 0) << "no user ended in " << segment;
    }
  }
  LOG(INFO) << "e2e: " << kMessages << " messages, " << result_messages << " results, " << compared
            << " users compared, " << flagged << " flagged (" << flagged_bots << " of "
            << generator_bots << " bots)";

  // (b) Dead letters: exactly the malformed messages, each with its reason.
  std::map<std::pair<std::string, std::string>, int> deadlettered;
  SEG_ASSERT_OK(deadletters.ReadToEnd(deadline, [&](const kafka::Message& m) {
    DeadLetter d;
    ASSERT_TRUE(d.ParseFromArray(m.value().data(), static_cast<int>(m.value().size())));
    ++deadlettered[{d.original(), d.reason()}];
  }));
  EXPECT_FALSE(expected_deadletters.empty());
  EXPECT_EQ(deadlettered.size(), expected_deadletters.size());
  for (const auto& [key, n] : expected_deadletters) {
    auto it = deadlettered.find(key);
    EXPECT_TRUE(it != deadlettered.end() && it->second == n)
        << "malformed message (" << key.second << ") dead-lettered "
        << (it == deadlettered.end() ? 0 : it->second) << " times, sent " << n;
  }

  // (c) Day sizes from seg-stats against the users the results counted.
  auto stub = stats::v1::SegmentStats::NewStub(
      grpc::CreateChannel(stack_->stats_target(), grpc::InsecureChannelCredentials()));
  std::set<int32_t> days;
  for (const auto& [key, users] : day_members) days.insert(key.second);
  int within_ci = 0, queried = 0;
  for (int32_t day : days) {
    for (const auto& script : host_->scripts()) {
      for (const auto& segment : script.segments) {
        stats::v1::SegmentSizeRequest request;
        request.set_segment(segment);
        request.mutable_days()->set_from(FormatDay(day));
        request.mutable_days()->set_to(FormatDay(day));
        stats::v1::Estimate estimate;
        grpc::ClientContext context;
        context.set_deadline(std::chrono::system_clock::now() + seconds(10));
        grpc::Status status = stub->SegmentSize(&context, request, &estimate);
        SEG_ASSERT_OK(status) << segment;
        const double truth = static_cast<double>(day_members[{segment, day}].size());
        ++queried;
        within_ci += truth >= estimate.ci95_low() && truth <= estimate.ci95_high() ? 1 : 0;
        // HLL bound: 3 standard errors (the reported one, at least 1.04/sqrt(m)
        // with m = 2^14 registers), plus one user for rounding.
        const double bound =
            3 * std::max(estimate.std_error(), truth * 1.04 / std::sqrt(16384.0)) + 1;
        EXPECT_NEAR(estimate.value(), truth, bound)
            << segment << " on " << FormatDay(day) << ": ci95 [" << estimate.ci95_low() << ", "
            << estimate.ci95_high() << "]";
      }
    }
  }
  LOG(INFO) << "e2e: " << within_ci << " of " << queried << " day sizes inside their 95% interval";

  // (e) The window segment's members exit with no new event: wait (bounded:
  // the last page view's edge + the slack) until no user's final result
  // holds it, bots aside (they left on their BOT result). (a) to (c) ran
  // meanwhile; (d) needs the final results.
  std::vector<int32_t> window_users;
  int64_t last_edge_ms = 0;
  for (int32_t u = 0; u < kUsers; ++u) {
    if (!window_entered[u] || final_results[u].bot()) continue;
    window_users.push_back(u);
    if (!page_views[u].empty())
      last_edge_ms = std::max(last_edge_ms, page_views[u].back() + kWindowMs);
  }
  auto still_in_window = [&] {
    int n = 0;
    for (int32_t u : window_users) n += has(final_results[u].segments(), kWindowSegment) ? 1 : 0;
    return n;
  };
  const int64_t wait_started_ms = Clock::Real()->NowMs();
  while (still_in_window() > 0 && Clock::Real()->NowMs() < last_edge_ms + 2 * kExitSlackMs) {
    ExpectAllRunning();
    ASSERT_FALSE(HasFatalFailure());
    SEG_ASSERT_OK(results.Poll(milliseconds(500), on_result));
  }
  SEG_ASSERT_OK(results.ReadToEnd(SteadyClock::now() + seconds(30), on_result));
  LOG(INFO) << "e2e: traffic took " << traffic_ms << " ms, the pipeline was quiet "
            << quiet_ms - traffic_started_ms << " ms after it started; " << window_users.size()
            << " users entered " << kWindowSegment << "; waited "
            << Clock::Real()->NowMs() - wait_started_ms
            << " ms more for their exits after (a) to (c)";

  // (d) A partner group reading from the beginning sees the same final results.
  TopicReader partner(stack_.get(), "segmentation-results", "e2e-partner");
  std::map<std::string, std::string> partner_final;
  SEG_ASSERT_OK(partner.ReadToEnd(SteadyClock::now() + seconds(60), [&](const kafka::Message& m) {
    partner_final[std::string(m.key())] = std::string(m.value());
  }));
  int partner_users = 0;
  for (int32_t u = 0; u < kUsers; ++u) {
    if (!has_result[u]) continue;
    ++partner_users;
    const std::string& id = generator.users()[u].id;
    auto it = partner_final.find(id);
    ASSERT_NE(it, partner_final.end()) << id;
    EXPECT_EQ(it->second, final_bytes[u]) << id;
  }
  EXPECT_EQ(partner_final.size(), static_cast<size_t>(partner_users));

  // (e) Every exit from the window segment comes no sooner than the user's
  // newest page view by then + the window (an earlier one would be a wrong
  // result); the final one is a SCHEDULE result within kExitSlackMs of the
  // last page view's edge.
  EXPECT_GE(window_users.size(), static_cast<size_t>(kUsers / 4))
      << "too few users entered " << kWindowSegment;
  int64_t max_late_ms = 0;
  int early = 0;
  for (int32_t u : window_users) {
    const std::string& id = generator.users()[u].id;
    const std::vector<int64_t>& views = page_views[u];
    ASSERT_FALSE(views.empty()) << id << " entered " << kWindowSegment << " without a page view";
    EXPECT_FALSE(has(final_results[u].segments(), kWindowSegment))
        << id << " still in " << kWindowSegment << " " << Clock::Real()->NowMs() - views.back()
        << " ms after its last page view";
    ASSERT_FALSE(window_exits[u].empty()) << id;
    for (const auto& [at_ms, reason] : window_exits[u]) {
      auto after = std::upper_bound(views.begin(), views.end(), at_ms);
      if (after == views.begin()) continue;  // no page view yet: nothing to be early for
      const int64_t edge_ms = *std::prev(after) + kWindowMs;
      if (at_ms < edge_ms && early++ < 10) {
        ADD_FAILURE() << id << " exited " << kWindowSegment << " " << edge_ms - at_ms
                      << " ms before its window's edge (" << ResultReason_Name(reason)
                      << "; the pipeline was quiet " << quiet_ms - traffic_started_ms
                      << " ms after the traffic started, the window is " << kWindowMs << " ms)";
      }
    }
    const auto& [exit_ms, exit_reason] = window_exits[u].back();
    EXPECT_EQ(exit_reason, SCHEDULE) << id;
    const int64_t late_ms = exit_ms - (views.back() + kWindowMs);
    max_late_ms = std::max(max_late_ms, late_ms);
    EXPECT_LE(late_ms, kExitSlackMs) << id << " exited " << kWindowSegment << " late";
  }
  EXPECT_EQ(early, 0);
  LOG(INFO) << "e2e: " << window_users.size() << " exits from " << kWindowSegment << ", the latest "
            << max_late_ms << " ms after its edge";
}

}  // namespace
}  // namespace seg
