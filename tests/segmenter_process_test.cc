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
#include "segmenter/script_host.h"
#include "store/store.h"
#include "store/store_server.h"
#include "tests/harness/kafka_cluster.h"
#include "tests/harness/process.h"
#include "tests/harness/redis_server.h"
#include "tests/harness/status_matchers.h"
#include "tests/served_store.h"

namespace seg {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using std::chrono::steady_clock;

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

class SegmenterProcessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    binary_ = testing::BinaryDir() + "/segmenter/seg-segmenter";
    ASSERT_TRUE(std::filesystem::exists(binary_)) << binary_ << " not built";
    auto kafka = testing::MockKafkaCluster::Start(3);
    SEG_ASSERT_OK(kafka);
    kafka_ = std::move(*kafka);
    SEG_ASSERT_OK(kafka_->CreateTopic("user-changes", kNoticePartitions));
    SEG_ASSERT_OK(kafka_->CreateTopic("segmentation-results", 4));
    auto redis = testing::LocalRedis::Start();
    SEG_ASSERT_OK(redis);
    redis_ = std::move(*redis);

    auto served = testing::ServeStore(dir_.path() + "/store");
    SEG_ASSERT_OK(served);
    server_ = std::move(served->server);
    store_ = std::move(served->client);

    auto producer = kafka::Producer::Create(kafka_->ClientOptions("test-producer"));
    SEG_ASSERT_OK(producer);
    producer_ = std::move(*producer);
    kafka::KafkaOptions reader = kafka_->ClientOptions("reader");
    reader.properties["partition.assignment.strategy"] = "roundrobin";  // librdkafka#4312
    // A short session, as the segmenters have: under load (the ASan suite) a
    // reader with the default 45 s once got its assignment after 47 s, past
    // the first WaitAllCovered deadline.
    reader.properties["session.timeout.ms"] = "6000";
    reader.properties["heartbeat.interval.ms"] = "500";
    auto results =
        kafka::Consumer::Create(reader, "partner", [this](const kafka::RebalanceEvent& e) {
          if (e.kind == kafka::RebalanceEvent::Kind::kAssigned) reader_assigned_ = true;
        });
    SEG_ASSERT_OK(results);
    results_ = std::move(*results);
    SEG_ASSERT_OK(results_->Subscribe({"segmentation-results"}));
    // Join now, while nothing else runs, so the tests' deadlines do not pay
    // for it (as in segmenter_node_test).
    auto deadline = steady_clock::now() + seconds(30);
    while (!reader_assigned_ && steady_clock::now() < deadline) {
      auto polled = results_->PollBatch(100, milliseconds(100));
      SEG_ASSERT_OK(polled);
      ASSERT_TRUE(polled->empty()) << "results before any segmenter ran";
    }
    ASSERT_TRUE(reader_assigned_) << "results reader not assigned within 30 s";

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
    if (results_) results_->Close().IgnoreError();
    if (offsets_) offsets_->Close().IgnoreError();
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
      Event e;
      e.set_user_id(user);
      e.set_event_time_ms(newest);
      e.set_type(PAGE_VIEW);
      e.set_url("https://pets.example.com/cats/" + std::to_string(newest));
      e.set_event_id(user + "-" + std::to_string(newest));
      store::RowPut& put = puts.emplace_back();
      put.row = user;
      store::Cell& cell = put.cells.emplace_back();
      cell.family = "e";
      EncodeEventQualifier(e.event_time_ms(), EventDigest(e), e.type(), &cell.qualifier);
      cell.timestamp = e.event_time_ms();
      SEG_ASSERT_OK(EncodeEventValue(e, &cell.value));
    }
    SEG_ASSERT_OK(store_->Put("users", puts));
    const int64_t acked = Clock::Real()->NowMs();
    for (const auto& user : users) {
      ChangeNotice n;
      n.set_user_id(user);
      n.set_acked_at_ms(acked);
      n.set_newest_event_time_ms(newest_event_[user]);
      n.set_event_count(1);
      SEG_ASSERT_OK(producer_->Produce("user-changes", user, n.SerializeAsString()));
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
    auto deadline = steady_clock::now() + timeout;
    while (!Behind().empty() && steady_clock::now() < deadline) PollResults(milliseconds(200));
    auto behind = Behind();
    ASSERT_TRUE(behind.empty()) << behind.size() << " users lack a result for their newest data,"
                                << " e.g. " << behind.front();
  }

  // Sum of the group's committed offsets, read without joining the group.
  int64_t CommittedNotices() {
    if (!offsets_) {
      auto c = kafka::Consumer::Create(kafka_->ClientOptions("offsets"), "segmenter");
      if (!c.ok()) return -1;
      offsets_ = std::move(*c);
    }
    std::vector<kafka::TopicPartition> parts;
    for (int32_t p = 0; p < kNoticePartitions; ++p) parts.push_back({"user-changes", p});
    auto committed = offsets_->Committed(parts, seconds(5));
    if (!committed.ok()) return -1;
    int64_t sum = 0;
    for (const auto& [tp, offset] : *committed) sum += std::max<int64_t>(offset, 0);
    return sum;
  }

  void WaitAllCommitted(seconds timeout) {
    auto deadline = steady_clock::now() + timeout;
    int64_t committed = -1;
    while ((committed = CommittedNotices()) != notices_sent_ && steady_clock::now() < deadline) {
      PollResults(milliseconds(200));  // paces the polling of the coordinator
    }
    ASSERT_EQ(committed, notices_sent_);
  }

  std::string RegistryEntry(const std::string& segment) {
    auto reply =
        testing::RedisCommandForTest(redis_->port(), {"HGET", "segments:registry", segment});
    return reply.ok() ? *reply : "";
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

  testing::TempDir dir_;
  std::string binary_, scripts_dir_, config_;
  std::unique_ptr<testing::MockKafkaCluster> kafka_;
  std::unique_ptr<testing::LocalRedis> redis_;
  std::unique_ptr<store::StoreServer> server_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<kafka::Producer> producer_;
  std::unique_ptr<kafka::Consumer> results_;
  bool reader_assigned_ = false;
  std::unique_ptr<kafka::Consumer> offsets_;
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
  auto deadline = steady_clock::now() + seconds(40);
  while (!(NoticesConsumed("a") > 0 && NoticesConsumed("b") > 0)) {
    ASSERT_LT(steady_clock::now(), deadline)
        << "the group never split; a: " << Log("a") << "\nb: " << Log("b");
    WriteRound(users);
    PollResults(milliseconds(200));
  }
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
  auto deadline = steady_clock::now() + seconds(20);
  while (RegistryEntry("everyone") != "everyone@7") {
    ASSERT_LT(steady_clock::now(), deadline) << "registry not updated: " << Log("a");
    PollResults(milliseconds(100));
  }
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
