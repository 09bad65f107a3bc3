// The seg-segmenter binary as separate processes against real parts: the
// librdkafka mock cluster (3 brokers), the project's Thrift2 store server,
// a local redis-server. Covers what only whole processes show: kill -9 of
// one member of the group, and SIGHUP script reloads. Waits poll a
// condition with a deadline.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "common/event_codec.h"
#include "common/kafka.h"
#include "proto/events.pb.h"
#include "proto/segmentation.pb.h"
#include "segmenter/script_host/script_host.h"
#include "store/server/store_server.h"
#include "store/store.h"
#include "tests/harness/kafka_cluster.h"
#include "tests/harness/poll.h"
#include "tests/harness/process.h"
#include "tests/harness/redis_server.h"
#include "tests/harness/segmenter_fixture.h"
#include "tests/harness/status_matchers.h"

namespace seg {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr int kNoticePartitions = 8;

// GET /metrics from 127.0.0.1:port and return the value of the unlabelled
// sample `name`; -1 when unreachable or absent.
double ScrapeMetric(int port, const std::string& name) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  timeval tv{2, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string body;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
    const std::string req = "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(req.size())) {
      char buf[8192];
      ssize_t n;
      while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) body.append(buf, static_cast<size_t>(n));
    }
  }
  ::close(fd);
  std::istringstream lines(body);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind(name + " ", 0) == 0) return std::stod(line.substr(name.size() + 1));
  }
  return -1;
}

class SegmenterProcessTest : public testing::SegmenterFixture {
 protected:
  SegmenterProcessTest() : SegmenterFixture(ProcessParts()) {}
  static Parts ProcessParts() {
    Parts parts;
    parts.notice_partitions = kNoticePartitions;
    parts.reader_assignment_strategy = "roundrobin";  // librdkafka#4312
    return parts;
  }

  void SetUp() override {
    binary_ = testing::BinaryDir() + "/segmenter/seg-segmenter";
    ASSERT_TRUE(std::filesystem::exists(binary_)) << binary_ << " not built";
    ASSERT_NO_FATAL_FAILURE(SegmenterFixture::SetUp());

    scripts_dir_ = dir_.path() + "/scripts";
    std::filesystem::create_directories(scripts_dir_);
    std::filesystem::copy_file(testing::SourceDir() + "/scripts/loves_cats.lua",
                               scripts_dir_ + "/loves_cats.lua");
    // Short sessions: the mock cluster rebalances only after about one.
    config_ = dir_.path() + "/segmenter.yaml";
    // librdkafka property names nest by their dots (common/config.h paths).
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
  }

  void TearDown() override {
    for (auto& [name, child] : segmenters_) child.Stop(milliseconds(5000));
    SegmenterFixture::TearDown();
  }

  // Starts a seg-segmenter process; its metrics port is remembered by name.
  void StartSegmenter(const std::string& name) {
    const int metrics_port = testing::PickFreePort();
    auto child = testing::ChildProcess::Start(
        {binary_, "--config", config_, "--bootstrap", kafka_->bootstrap_servers(), "--store",
         "127.0.0.1:" + std::to_string(server_->port()), "--redis",
         "127.0.0.1:" + std::to_string(redis_->port()), "--scripts", scripts_dir_, "--metrics-port",
         std::to_string(metrics_port)},
        dir_.path() + "/" + name + ".log");
    SEG_ASSERT_OK(child);
    segmenters_.emplace(name, std::move(*child));
    metrics_ports_[name] = metrics_port;
  }

  double NoticesConsumed(const std::string& name) {
    return ScrapeMetric(metrics_ports_[name], "seg_segmenter_notices_total");
  }

  std::string Log(const std::string& name) {
    std::ifstream f(dir_.path() + "/" + name + ".log");
    std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    return text.size() > 3000 ? text.substr(text.size() - 3000) : text;
  }

  // One round: a new cat page view for each user (one store Put), then one
  // notice per user acknowledged after it. Remembers each user's newest event.
  void WriteRound(const std::vector<std::string>& users) {
    std::vector<store::RowPut> puts;
    int64_t now = Clock::Real()->NowMs();
    for (const auto& user : users) {
      int64_t& newest = newest_event_[user];
      newest = std::max(now, newest + 1);
      store::RowPut& put = puts.emplace_back();
      put.row = user;
      put.cells.push_back(EventCell(CatPageView(user, newest, std::to_string(newest))));
    }
    SEG_ASSERT_OK(store_->Put("users", puts));
    const int64_t acked = Clock::Real()->NowMs();
    for (const auto& user : users) {
      ASSERT_NO_FATAL_FAILURE(ProduceNotice(user, acked, newest_event_[user]));
    }
    SEG_ASSERT_OK(producer_->Flush(seconds(10)));
    notices_sent_ += static_cast<int64_t>(users.size());
  }

  // Reads results for up to `wait`, keeping per user the one with the newest data.
  void PollResults(milliseconds wait) {
    auto batch = results_->PollBatch(500, wait);
    SEG_ASSERT_OK(batch);
    for (const auto& m : *batch) {
      SegmentationResult r;
      ASSERT_TRUE(r.ParseFromArray(m.value().data(), static_cast<int>(m.value().size())));
      SegmentationResult& best = best_result_[r.user_id()];
      if (r.data_watermark_ms() >= best.data_watermark_ms()) best = r;
    }
  }

  // Users whose best result does not cover their newest written event.
  std::vector<std::string> Behind() {
    std::vector<std::string> behind;
    for (const auto& [user, newest] : newest_event_) {
      auto it = best_result_.find(user);
      if (it == best_result_.end() || it->second.data_watermark_ms() < newest) {
        behind.push_back(user);
      }
    }
    return behind;
  }

  void WaitAllCovered(seconds timeout) {
    ASSERT_TRUE(testing::PollUntil(
        [&] {
          if (Behind().empty()) return true;
          PollResults(milliseconds(200));
          return false;
        },
        timeout, "a result covering every user's newest data", milliseconds(0)))
        << Behind().size() << " users behind, e.g. " << Behind().front();
  }

  void WaitAllCommitted(seconds timeout) {
    // Reading results in between paces the polling of the coordinator.
    ASSERT_TRUE(WaitCommitted(notices_sent_, timeout, [&] { PollResults(milliseconds(200)); }));
  }

  std::string RegistryEntry(const std::string& segment) {
    return RedisGet({"HGET", "segments:registry", segment});
  }

  std::string ScriptSetVersionOnDisk() {
    segmenter::ScriptHostOptions options;
    options.scripts_dir = scripts_dir_;
    auto host = segmenter::ScriptHost::Create(options);
    SEG_EXPECT_OK(host);
    return host.ok() ? (*host)->script_set_version() : "";
  }

  static std::vector<std::string> Users(const std::string& prefix, int n) {
    std::vector<std::string> users;
    for (int i = 0; i < n; ++i) users.push_back(prefix + std::to_string(i));
    return users;
  }

  std::string binary_, scripts_dir_, config_;
  std::map<std::string, testing::ChildProcess> segmenters_;
  std::map<std::string, int> metrics_ports_;
  std::map<std::string, int64_t> newest_event_;
  std::map<std::string, SegmentationResult> best_result_;
  int64_t notices_sent_ = 0;
};

// Two processes share the group; one is killed with SIGKILL mid-stream. The
// survivor takes over its partitions (after the session timeout), replays
// the uncommitted batch, and every user gets a result covering its newest
// event; all offsets end up committed.
TEST_F(SegmenterProcessTest, SurvivorTakesOverAfterKill9) {
  const auto users = Users("k", 160);
  StartSegmenter("a");
  StartSegmenter("b");
  // Stream rounds until both members consume: the split takes ~a session timeout.
  ASSERT_TRUE(testing::PollUntil(
      [&] {
        if (NoticesConsumed("a") > 0 && NoticesConsumed("b") > 0) return true;
        WriteRound(users);
        PollResults(milliseconds(200));
        return false;
      },
      seconds(40), "both members consuming", milliseconds(0)))
      << "a: " << Log("a") << "\nb: " << Log("b");
  // Mid-stream: a few more rounds, then kill -9 one member between rounds.
  for (int i = 0; i < 3; ++i) WriteRound(users);
  segmenters_["a"].Signal(SIGKILL);
  auto killed = segmenters_["a"].Wait(seconds(10));
  SEG_ASSERT_OK(killed);
  EXPECT_EQ(*killed, 128 + SIGKILL);
  const double b_before = NoticesConsumed("b");
  for (int i = 0; i < 3; ++i) WriteRound(users);

  WaitAllCovered(seconds(45));
  WaitAllCommitted(seconds(20));
  ASSERT_TRUE(segmenters_["b"].running()) << Log("b");
  EXPECT_GT(NoticesConsumed("b"), b_before);
  for (const auto& user : users) {
    const auto& r = best_result_[user];
    EXPECT_EQ(r.segments_size(), 1) << user;  // >= 3 cat pages: loves_cats
  }
}

// SIGHUP reloads the scripts directory in the running process: results after
// it carry the new script-set version and the new script's segment, the
// registry seg-stats lists is updated, and the notices in flight during the
// reload are all processed and committed.
TEST_F(SegmenterProcessTest, SighupReloadsScriptsAndRegistry) {
  const auto users = Users("h", 40);
  StartSegmenter("a");
  const std::string v1 = ScriptSetVersionOnDisk();
  for (int i = 0; i < 3; ++i) WriteRound(users);
  WaitAllCovered(seconds(45));
  for (const auto& user : users) {
    EXPECT_EQ(best_result_[user].script_set_version(), v1) << user;
  }
  EXPECT_EQ(RegistryEntry("loves_cats"), "loves_cats@1.2.0");
  EXPECT_EQ(RegistryEntry("everyone"), "(nil)");
  // --metrics-port without an address: /metrics on loopback only.
  EXPECT_EQ(testing::ListeningAddresses(metrics_ports_["a"]),
            std::vector<std::string>{"127.0.0.1"});

  std::ofstream(scripts_dir_ + "/everyone.lua")
      << "return segment_script {\n"
         "  name = \"everyone\", version = \"7\", segments = { \"everyone\" },\n"
         "  evaluate = function(user) return { \"everyone\" } end,\n"
         "}\n";
  const std::string v2 = ScriptSetVersionOnDisk();
  ASSERT_NE(v1, v2);
  // Notices in flight while the reload happens.
  WriteRound(users);
  segmenters_["a"].Signal(SIGHUP);
  ASSERT_TRUE(testing::PollUntil(
      [&] {
        if (RegistryEntry("everyone") == "everyone@7") return true;
        PollResults(milliseconds(100));
        return false;
      },
      seconds(20), "the registry entry everyone@7", milliseconds(0)))
      << Log("a");
  EXPECT_EQ(RegistryEntry("loves_cats"), "loves_cats@1.2.0");

  const auto before_round = newest_event_;
  WriteRound(users);
  WaitAllCovered(seconds(45));
  WaitAllCommitted(seconds(20));
  for (const auto& user : users) {
    const SegmentationResult& r = best_result_[user];
    EXPECT_EQ(r.script_set_version(), v2) << user;
    EXPECT_GT(r.data_watermark_ms(), before_round.at(user));
    std::set<std::string> segments(r.segments().begin(), r.segments().end());
    EXPECT_EQ(segments, (std::set<std::string>{"everyone", "loves_cats"})) << user;
  }
  ASSERT_TRUE(segmenters_["a"].running()) << Log("a");
}

}  // namespace
}  // namespace seg
