// Membership over time with whole processes on the real clock: the
// seg-store binary (RocksDB), two seg-segmenter processes, a redis-server and
// librdkafka's mock cluster (in this process, as in segmenter_process_test).
// A user enters a one-minute window segment with a back-dated page view;
// before the window's edge every process is killed with SIGKILL and started
// again (seg-store on its old port and data dir). The due row lives in the
// store, so the restarted group still fires the exit (reason SCHEDULE),
// never before the edge and within a bounded time after it. Waits poll a
// condition with a deadline; nothing sleeps to synchronise.
#include <glog/logging.h>
#include <gtest/gtest.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "common/clock.h"
#include "common/event_codec.h"
#include "common/kafka.h"
#include "proto/events.pb.h"
#include "proto/segmentation.pb.h"
#include "segmenter/internal/membership.h"
#include "store/store.h"
#include "tests/harness/kafka_cluster.h"
#include "tests/harness/poll.h"
#include "tests/harness/process.h"
#include "tests/harness/redis_server.h"
#include "tests/harness/segmenter_group.h"
#include "tests/harness/status_matchers.h"

namespace seg {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using std::chrono::steady_clock;

constexpr int kNoticePartitions = 8;
constexpr int64_t kMinuteMs = 60'000;
constexpr int64_t kDayMs = 86'400'000;
constexpr int64_t kHistoryDays = 60;  // NodeOptions::history_days

// Member while it has a page view within the last minute.
constexpr char kWindowScript[] = R"(
local RECENT = filter { type = "page_view", within_minutes = 1 }
return segment_script {
  name = "active_minute", version = "1", segments = { "active_minute" },
  evaluate = function(user)
    if user:any(RECENT) then return { "active_minute" } end
    return {}
  end,
})";

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

bool Has(const google::protobuf::RepeatedPtrField<std::string>& list, const std::string& s) {
  return std::find(list.begin(), list.end(), s) != list.end();
}

class MembershipProcessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* bin : {"/store/seg-store", "/segmenter/seg-segmenter"}) {
      ASSERT_TRUE(std::filesystem::exists(testing::BinaryDir() + bin)) << bin << " not built";
    }
    auto kafka = testing::MockKafkaCluster::Start(3);
    SEG_ASSERT_OK(kafka);
    kafka_ = std::move(*kafka);
    SEG_ASSERT_OK(kafka_->CreateTopic("user-changes", kNoticePartitions));
    SEG_ASSERT_OK(kafka_->CreateTopic("segmentation-results", 4));
    auto redis = testing::LocalRedis::Start();
    SEG_ASSERT_OK(redis);
    redis_ = std::move(*redis);

    store_port_ = testing::PickFreePort();
    ASSERT_NO_FATAL_FAILURE(StartStore());

    scripts_dir_ = dir_.path() + "/scripts";
    std::filesystem::create_directories(scripts_dir_);
    std::ofstream(scripts_dir_ + "/active_minute.lua") << kWindowScript;
    // Short sessions: the mock cluster rebalances only after about one.
    config_ = dir_.path() + "/segmenter.yaml";
    std::ofstream(config_) << "kafka:\n"
                              "  properties:\n"
                              "    session: {timeout: {ms: 6000}}\n"
                              "    heartbeat: {interval: {ms: 500}}\n"
                              "    reconnect: {backoff: {ms: 20, max: {ms: 200}}}\n"
                              "    topic: {metadata: {refresh: {interval: {ms: 1000}}}}\n"
                              "segmenter:\n"
                              "  read_delay_ms: 0\n"
                              "  batch_max_notices: 50\n"
                              "  batch_max_ms: 50\n"
                              "scripts:\n"
                              "  reload_check_interval_ms: 0\n";

    auto producer = kafka::Producer::Create(kafka_->ClientOptions("test-producer"));
    SEG_ASSERT_OK(producer);
    producer_ = std::move(*producer);
    kafka::KafkaOptions reader = kafka_->ClientOptions("reader");
    reader.properties["session.timeout.ms"] = "6000";
    reader.properties["heartbeat.interval.ms"] = "500";
    ASSERT_NO_FATAL_FAILURE(
        testing::JoinResultsReader(reader, /*expect_no_results=*/false, &results_));
  }

  void TearDown() override {
    for (auto& [name, child] : segmenters_) child.Stop(milliseconds(5000));
    store_process_.Stop(milliseconds(5000));
    if (results_) results_->Close().IgnoreError();
    if (offsets_) offsets_->Close().IgnoreError();
  }

  // seg-store on store_port_ with its data under the test's dir (the same
  // port and data dir every time), and a fresh client to it.
  void StartStore() {
    store_.reset();
    auto child = testing::ChildProcess::Start(
        {testing::BinaryDir() + "/store/seg-store", "--data-dir", dir_.path() + "/store", "--port",
         std::to_string(store_port_)},
        dir_.path() + "/store.log");
    SEG_ASSERT_OK(child);
    store_process_ = std::move(*child);
    ASSERT_TRUE(testing::PollUntil(
        [&] {
          return testing::WaitForTcpPort(store_port_, milliseconds(200)).ok() ||
                 !store_process_.running();
        },
        seconds(30), "seg-store listening", milliseconds(0)))
        << ReadFile(dir_.path() + "/store.log");
    ASSERT_TRUE(store_process_.running()) << "seg-store exited; log:\n"
                                          << ReadFile(dir_.path() + "/store.log");
    store::StoreOptions client;
    client.backend = store::StoreOptions::Backend::kThrift;
    client.thrift.port = store_port_;
    auto opened = store::OpenStore(client);
    SEG_ASSERT_OK(opened);
    store_ = std::move(*opened);
  }

  void StartSegmenter(const std::string& name) {
    auto child = testing::ChildProcess::Start(
        {testing::BinaryDir() + "/segmenter/seg-segmenter", "--config", config_, "--bootstrap",
         kafka_->bootstrap_servers(), "--store", "127.0.0.1:" + std::to_string(store_port_),
         "--redis", "127.0.0.1:" + std::to_string(redis_->port()), "--scripts", scripts_dir_},
        LogPath(name));
    SEG_ASSERT_OK(child);
    segmenters_[name] = std::move(*child);
  }

  std::string LogPath(const std::string& name) { return dir_.path() + "/" + name + ".log"; }
  std::string LogTail(const std::string& name) {
    std::string text = ReadFile(LogPath(name));
    return text.size() > 3000 ? text.substr(text.size() - 3000) : text;
  }

  // Until every named segmenter logged a partition assignment.
  void WaitAssigned(const std::vector<std::string>& names, seconds timeout) {
    const auto deadline = steady_clock::now() + timeout;
    for (const auto& name : names) {
      bool assigned = false;
      ASSERT_TRUE(testing::PollUntil(
          [&] {
            assigned = ReadFile(LogPath(name)).find(": assigned ") != std::string::npos;
            if (assigned || !segmenters_[name].running()) return true;
            PollResults(milliseconds(100));  // paces the wait
            return false;
          },
          std::chrono::duration_cast<milliseconds>(deadline - steady_clock::now()),
          name + "'s assignment", milliseconds(0)))
          << LogTail(name);
      ASSERT_TRUE(assigned) << name << " exited:\n" << LogTail(name);
    }
  }

  // kill -9 and reap.
  static void Kill9(testing::ChildProcess* child) {
    child->Signal(SIGKILL);
    auto code = child->Wait(seconds(10));
    SEG_ASSERT_OK(code);
    EXPECT_EQ(*code, 128 + SIGKILL);
  }

  // One page view of `user` at `time_ms`, written as ingest would, and its notice.
  void WriteEventAndNotify(const std::string& user, int64_t time_ms) {
    Event e;
    e.set_user_id(user);
    e.set_event_time_ms(time_ms);
    e.set_type(PAGE_VIEW);
    e.set_url("https://news.example.com/a");
    e.set_event_id(user + "-" + std::to_string(time_ms));
    store::RowPut put;
    put.row = user;
    store::Cell& cell = put.cells.emplace_back();
    cell.family = "e";
    EncodeEventQualifier(e.event_time_ms(), EventDigest(e), e.type(), &cell.qualifier);
    cell.timestamp = e.event_time_ms();
    SEG_ASSERT_OK(EncodeEventValue(e, &cell.value));
    SEG_ASSERT_OK(store_->Put("users", {put}));
    ChangeNotice n;
    n.set_user_id(user);
    n.set_acked_at_ms(Clock::Real()->NowMs());
    n.set_newest_event_time_ms(time_ms);
    n.set_event_count(1);
    SEG_ASSERT_OK(producer_->Produce("user-changes", user, n.SerializeAsString()));
    SEG_ASSERT_OK(producer_->Flush(seconds(10)));
  }

  // Appends what arrives within `wait` to received_, in arrival order.
  void PollResults(milliseconds wait) {
    auto batch = results_->PollBatch(100, wait);
    SEG_ASSERT_OK(batch);
    for (const auto& m : *batch) {
      SegmentationResult& r = received_.emplace_back();
      ASSERT_TRUE(r.ParseFromArray(m.value().data(), static_cast<int>(m.value().size())));
    }
  }

  // Polls until `done(result)` holds for a received result of `user` (index
  // into received_ returned), or until the wall clock passes `deadline_ms`.
  template <typename Done>
  int WaitResult(const std::string& user, int64_t deadline_ms, Done done) {
    size_t seen = 0;
    while (true) {
      for (; seen < received_.size(); ++seen) {
        if (received_[seen].user_id() == user && done(received_[seen])) {
          return static_cast<int>(seen);
        }
      }
      if (Clock::Real()->NowMs() >= deadline_ms) return -1;
      PollResults(milliseconds(200));
      if (HasFatalFailure()) return -1;
    }
  }

  // Sum of the segmenter group's committed offsets, read without joining it.
  int64_t CommittedNotices() {
    return testing::CommittedNotices(*kafka_, kNoticePartitions, &offsets_);
  }

  // The user's due times (any partition).
  std::vector<int64_t> DueTimes(const std::string& user) {
    std::vector<int64_t> out;
    auto scanner = store_->OpenScanner("due", store::ScanRequest{});
    SEG_EXPECT_OK(scanner);
    if (!scanner.ok()) return out;
    std::vector<store::RowResult> rows;
    while ((*scanner)->NextBatch(&rows).ok() && !rows.empty()) {
      for (const auto& row : rows) {
        int32_t partition = 0;
        int64_t due = 0;
        std::string_view id;
        if (segmenter::ParseDueRowKey(row.row(), &partition, &due, &id) && id == user) {
          out.push_back(due);
        }
      }
    }
    (*scanner)->Close().IgnoreError();
    return out;
  }

  // The scenario of both tests (see them below).
  void KillAllBetweenEntryAndEdge(bool restart_after_edge);

  testing::TempDir dir_;
  std::string scripts_dir_, config_;
  int store_port_ = 0;
  std::unique_ptr<testing::MockKafkaCluster> kafka_;
  std::unique_ptr<testing::LocalRedis> redis_;
  testing::ChildProcess store_process_;
  std::unique_ptr<store::Store> store_;
  std::map<std::string, testing::ChildProcess> segmenters_;
  std::unique_ptr<kafka::Producer> producer_;
  std::unique_ptr<kafka::Consumer> results_;
  std::unique_ptr<kafka::Consumer> offsets_;
  std::vector<SegmentationResult> received_;
};

void MembershipProcessTest::KillAllBetweenEntryAndEdge(bool restart_after_edge) {
  const std::string user = "windowed-user";
  const std::string segment = "active_minute";
  StartSegmenter("a");
  StartSegmenter("b");
  ASSERT_NO_FATAL_FAILURE(WaitAssigned({"a", "b"}, seconds(60)));

  constexpr int64_t kLeadMs = 12'000;
  const int64_t event_ms = Clock::Real()->NowMs() - kMinuteMs + kLeadMs;
  const int64_t edge_ms = event_ms + kMinuteMs;
  ASSERT_NO_FATAL_FAILURE(WriteEventAndNotify(user, event_ms));

  const int entered = WaitResult(
      user, edge_ms, [&](const SegmentationResult& r) { return Has(r.segments(), segment); });
  ASSERT_GE(entered, 0) << "no entry before the edge; a:\n"
                        << LogTail("a") << "\nb:\n"
                        << LogTail("b");
  const SegmentationResult entry = received_[entered];
  EXPECT_EQ(entry.reason(), SEGMENTED);
  EXPECT_TRUE(Has(entry.entered(), segment));
  // The entry's due row is stored and its notice committed: after the kill
  // the exit can come only from the due row, not from a redelivered notice.
  ASSERT_TRUE(testing::PollUntil(
      [&] {
        if (CommittedNotices() == 1 && DueTimes(user) == std::vector<int64_t>{edge_ms}) {
          return true;
        }
        PollResults(milliseconds(200));  // paces the polling
        return false;
      },
      seconds(15), "the notice committed and the due row stored", milliseconds(0)))
      << "due rows " << DueTimes(user).size();

  // kill -9 of every process, then everything comes back.
  ASSERT_NO_FATAL_FAILURE(Kill9(&segmenters_["a"]));
  ASSERT_NO_FATAL_FAILURE(Kill9(&segmenters_["b"]));
  ASSERT_NO_FATAL_FAILURE(Kill9(&store_process_));
  redis_->Kill();
  const int64_t killed_ms = Clock::Real()->NowMs();
  ASSERT_LT(killed_ms, edge_ms) << "too slow to kill before the window's edge";
  if (restart_after_edge) {
    // Everything stays down until the edge has passed: the fault window,
    // a duration, not a synchronisation.
    while (Clock::Real()->NowMs() < edge_ms + 1000) {
      std::this_thread::sleep_for(milliseconds(100));
    }
  }
  SEG_ASSERT_OK(redis_->Restart());
  ASSERT_NO_FATAL_FAILURE(StartStore());
  StartSegmenter("a2");
  StartSegmenter("b2");
  const int64_t restarted_ms = Clock::Real()->NowMs();

  const int exited = WaitResult(user, edge_ms + 30'000,
                                [&](const SegmentationResult& r) { return r.seq() > entry.seq(); });
  ASSERT_GE(exited, 0) << "no result within 30 s of the edge; a2:\n"
                       << LogTail("a2") << "\nb2:\n"
                       << LogTail("b2") << "\nstore:\n"
                       << ReadFile(dir_.path() + "/store.log");
  const SegmentationResult& exit = received_[exited];
  LOG(INFO) << "relative to the edge: killed at " << killed_ms - edge_ms << " ms, restarted at "
            << restarted_ms - edge_ms << " ms, exit segmented at "
            << exit.segmented_at_ms() - edge_ms << " ms";
  EXPECT_EQ(exit.reason(), SCHEDULE);
  EXPECT_TRUE(Has(exit.exited(), segment));
  EXPECT_FALSE(Has(exit.segments(), segment));
  EXPECT_TRUE(exit.entered().empty());
  EXPECT_GE(exit.segmented_at_ms(), edge_ms) << "exited before the window's edge";
  EXPECT_EQ(exit.data_watermark_ms(), event_ms);
  // The fired row is gone; the next one is where the event leaves the history.
  // (The segmenter deletes replaced due rows off its critical path: poll.)
  const std::vector<int64_t> want{event_ms + kHistoryDays * kDayMs};
  std::vector<int64_t> due;
  EXPECT_TRUE(testing::PollUntil([&] { return (due = DueTimes(user)) == want; }, seconds(10),
                                 "the replaced due rows deleted", milliseconds(50)));
  EXPECT_EQ(due, want);
  for (const char* name : {"a2", "b2"}) {
    EXPECT_TRUE(segmenters_[name].running()) << name << ":\n" << LogTail(name);
  }
}

// The user enters with a page view dated so that the one-minute window ends
// kLeadMs after it was written. Between the entry (its due row stored, its
// notice committed) and the edge, seg-store, redis-server and both
// segmenters die by SIGKILL; all start again, seg-store on its old port and
// data. The exit comes from the stored due row: reason SCHEDULE, not before
// the edge, at most 30 s after it (the restarted group first waits out the
// dead members' session timeout).
//
// Restarted before the edge: the new owners' due scan fires the exit.
TEST_F(MembershipProcessTest, WindowExitSurvivesKill9OfEveryProcess) {
  KillAllBetweenEntryAndEdge(/*restart_after_edge=*/false);
}

// Down while the edge passes: the new owners fire the exit as soon as they
// are assigned.
TEST_F(MembershipProcessTest, WindowExitFiresWhenEveryProcessWasDownAtTheEdge) {
  KillAllBetweenEntryAndEdge(/*restart_after_edge=*/true);
}

}  // namespace
}  // namespace seg
