// seg-segmenter processes with scripts.source=store against real parts (the
// librdkafka mock cluster, seg-store's Thrift2 server, a local
// redis-server): the first node bootstraps the store with its scripts.dir,
// a node started later with an older directory adopts the stored set, a
// push reaches every node, and one backfill sends a DEFINITION_CHANGE
// notice per stored user. Waits poll a condition with a deadline.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>
#include <tuple>

#include "common/kafka.h"
#include "proto/segmentation.pb.h"
#include "segmenter/script_set/internal/backfill.h"
#include "segmenter/script_set/script_set.h"
#include "store/server/store_server.h"
#include "store/store.h"
#include "tests/harness/kafka_cluster.h"
#include "tests/harness/poll.h"
#include "tests/harness/process.h"
#include "tests/harness/redis_server.h"
#include "tests/harness/status_matchers.h"
#include "tests/served_store.h"

namespace seg {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
namespace fs = std::filesystem;

constexpr int kUsers = 30;

// GET /metrics from 127.0.0.1:port; the value of the unlabelled sample
// `name`, -1 when unreachable or absent.
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

// Runs a command to completion (30 s deadline); exit code and its output.
std::pair<int, std::string> RunTool(const std::vector<std::string>& argv, const std::string& log) {
  std::filesystem::remove(log);
  auto child = testing::ChildProcess::Start(argv, log);
  if (!child.ok()) return {-1, child.status().ToString()};
  auto code = child->Wait(std::chrono::seconds(30));
  std::ifstream in(log);
  std::stringstream ss;
  ss << in.rdbuf();
  return {code.ok() ? *code : -1, ss.str()};
}

class SegmenterScriptsProcessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    binary_ = testing::BinaryDir() + "/segmenter/seg-segmenter";
    ASSERT_TRUE(fs::exists(binary_)) << binary_ << " not built";
    auto kafka = testing::MockKafkaCluster::Start(1);
    SEG_ASSERT_OK(kafka);
    kafka_ = std::move(*kafka);
    SEG_ASSERT_OK(kafka_->CreateTopic("user-changes", 4));
    SEG_ASSERT_OK(kafka_->CreateTopic("segmentation-results", 2));
    auto redis = testing::LocalRedis::Start();
    SEG_ASSERT_OK(redis);
    redis_ = std::move(*redis);
    auto served = testing::ServeStore(dir_.path() + "/store");
    SEG_ASSERT_OK(served);
    server_ = std::move(served->server);
    store_ = std::move(served->client);

    config_ = dir_.path() + "/segmenter.yaml";
    std::ofstream(config_) << "kafka:\n"
                              "  properties:\n"
                              "    session: {timeout: {ms: 6000}}\n"
                              "    heartbeat: {interval: {ms: 500}}\n"
                              "    topic: {metadata: {refresh: {interval: {ms: 1000}}}}\n"
                              "segmenter:\n"
                              "  read_delay_ms: 0\n"
                              "scripts:\n"
                              "  source: store\n"
                              "  sync_interval_ms: 200\n"
                              "  reload_check_interval_ms: 0\n"
                              "backfill:\n"
                              "  users_per_s: 1000\n"
                              "  lease_ms: 5000\n"
                              "  start_delay_ms: 500\n";
  }

  void TearDown() override {
    for (auto& [name, child] : segmenters_) child.Stop(milliseconds(5000));
  }

  // A scripts dir with loves_cats.lua plus `extra` (name -> source).
  std::string ScriptsDir(const std::string& name, const std::map<std::string, std::string>& extra) {
    std::string d = dir_.path() + "/" + name;
    fs::create_directories(d);
    fs::copy_file(testing::SourceDir() + "/scripts/loves_cats.lua", d + "/loves_cats.lua");
    for (const auto& [file, text] : extra) std::ofstream(d + "/" + file) << text;
    return d;
  }

  static std::string Everyone(const std::string& version) {
    return "return segment_script { name = 'everyone', version = '" + version +
           "', segments = {'everyone'}, evaluate = function(user) return {'everyone'} end }\n";
  }

  void Start(const std::string& name, const std::string& scripts,
             const std::vector<std::string>& extra = {}) {
    metrics_ports_[name] = testing::PickFreePort();
    std::vector<std::string> argv = {binary_,
                                     "--config",
                                     config_,
                                     "--bootstrap",
                                     kafka_->bootstrap_servers(),
                                     "--store",
                                     "127.0.0.1:" + std::to_string(server_->port()),
                                     "--redis",
                                     "127.0.0.1:" + std::to_string(redis_->port()),
                                     "--scripts",
                                     scripts,
                                     "--metrics-port",
                                     std::to_string(metrics_ports_[name])};
    argv.insert(argv.end(), extra.begin(), extra.end());
    auto child = testing::ChildProcess::Start(argv, dir_.path() + "/" + name + ".log");
    SEG_ASSERT_OK(child);
    segmenters_.emplace(name, std::move(*child));
  }

  std::string Log(const std::string& name) {
    std::ifstream in(dir_.path() + "/" + name + ".log");
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

  void WaitLog(const std::string& name, const std::string& needle, seconds timeout) {
    bool found = false;
    ASSERT_TRUE(testing::PollUntil(
        [&] {
          found = Log(name).find(needle) != std::string::npos;
          return found || !segmenters_.at(name).running();
        },
        timeout, "'" + needle + "' in " + name + "'s log", milliseconds(50)))
        << Log(name);
    ASSERT_TRUE(found) << name << " exited:\n" << Log(name);
  }

  void WaitJobDone(const std::string& version, seconds timeout) {
    int64_t published = -1;
    ASSERT_TRUE(testing::PollUntil(
        [&] {
          auto job = segmenter::internal::ReadBackfillStatus(store_.get(), {});
          SEG_EXPECT_OK(job);
          if (!job.ok()) return true;
          published = job->published;
          return job->target == version && job->done;
        },
        timeout, "the backfill of " + version, milliseconds(50)));
    EXPECT_EQ(published, kUsers);
  }

  testing::TempDir dir_;
  std::string binary_, config_;
  std::unique_ptr<testing::MockKafkaCluster> kafka_;
  std::unique_ptr<testing::LocalRedis> redis_;
  std::unique_ptr<store::StoreServer> server_;
  std::unique_ptr<store::Store> store_;
  std::map<std::string, testing::ChildProcess> segmenters_;
  std::map<std::string, int> metrics_ports_;
};

TEST_F(SegmenterScriptsProcessTest, BootstrapAdoptPushAndBackfill) {
  const std::string v1_dir = ScriptsDir("v1", {});
  const std::string old_dir = ScriptsDir("old", {{"everyone.lua", Everyone("0")}});
  const std::string v2_dir = ScriptsDir("v2", {{"everyone.lua", Everyone("2")}});
  auto v1 = segmenter::ScriptSet::ReadDir(v1_dir);
  auto old = segmenter::ScriptSet::ReadDir(old_dir);
  SEG_ASSERT_OK(v1);
  SEG_ASSERT_OK(old);

  // Users segmented before scripts lived in the store: each has a state
  // cell. The bootstrap's job (v1) re-evaluates them too.
  std::vector<store::RowPut> rows;
  for (int i = 0; i < kUsers; ++i) {
    rows.push_back({"user" + std::to_string(i), {{"s", "state", store::kLatestTimestamp, ""}}});
  }
  SEG_ASSERT_OK(store_->Put("users", rows));

  Start("a", v1_dir);
  WaitLog("a", "bootstrapped the store with version " + v1->version, seconds(30));

  // The bootstrap's job runs to its end before the next push (which would
  // otherwise replace it: a newer version restarts the scan).
  WaitJobDone(v1->version, seconds(30));

  // A node with an older checkout adopts the stored set, never pushes it.
  Start("b", old_dir);
  WaitLog("b", "adopted version " + v1->version, seconds(30));
  segmenter::ScriptSet set(store_.get());
  auto stored = set.FetchVersion();
  SEG_ASSERT_OK(stored);
  EXPECT_EQ(*stored, v1->version);

  // `segctl scripts push` does this: every node follows.
  auto v2 = set.Push(v2_dir);
  SEG_ASSERT_OK(v2);
  ASSERT_TRUE(v2->changed);
  WaitLog("a", "-> " + v2->version + ", reloading", seconds(30));
  WaitLog("b", "-> " + v2->version + ", reloading", seconds(30));
  WaitLog("a", "scripts reloaded: version " + v1->version + " -> " + v2->version, seconds(30));
  WaitLog("b", "scripts reloaded: version " + v1->version + " -> " + v2->version, seconds(30));

  // One backfill, by whichever node holds the lease: every stored user gets
  // a DEFINITION_CHANGE notice for v2.
  kafka::KafkaOptions o = kafka_->ClientOptions("reader");
  o.properties["session.timeout.ms"] = "6000";
  o.properties["heartbeat.interval.ms"] = "500";
  auto consumer = kafka::Consumer::Create(o, "test-reader");
  SEG_ASSERT_OK(consumer);
  SEG_ASSERT_OK((*consumer)->Subscribe({"user-changes"}));
  std::map<std::string, int> v2_notices;
  ASSERT_TRUE(testing::PollUntil(
      [&] {
        auto batch = (*consumer)->PollBatch(500, milliseconds(200));
        SEG_EXPECT_OK(batch);
        if (!batch.ok()) return true;
        for (const kafka::Message& m : *batch) {
          ChangeNotice n;
          EXPECT_TRUE(n.ParseFromString(std::string(m.value())));
          if (n.kind() != NOTICE_DEFINITION_CHANGE || n.script_set_version() != v2->version) {
            continue;
          }
          EXPECT_EQ(m.key(), n.user_id());
          ++v2_notices[n.user_id()];
        }
        return v2_notices.size() >= static_cast<size_t>(kUsers);
      },
      seconds(60), "a v2 notice for every user", milliseconds(0)))
      << v2_notices.size() << " users notified\n"
      << Log("a") << Log("b");
  ASSERT_EQ(v2_notices.size(), static_cast<size_t>(kUsers));
  (*consumer)->Close().IgnoreError();
  segmenter::internal::BackfillStatus job;
  ASSERT_TRUE(testing::PollUntil(
      [&] {
        auto read = segmenter::internal::ReadBackfillStatus(store_.get(), {});
        SEG_EXPECT_OK(read);
        if (!read.ok()) return true;
        job = *read;
        return job.done;
      },
      seconds(30), "the backfill done", milliseconds(50)));
  EXPECT_EQ(job.target, v2->version);
  EXPECT_EQ(job.published, kUsers);
  EXPECT_EQ(Log("b").find("scripts: pushed"), std::string::npos) << Log("b");
  // /metrics: the nodes' published counters add up to the two jobs (v1's
  // from the bootstrap, v2's); nobody is running a backfill any more.
  double a = 0, b = 0, running = 0;
  ASSERT_TRUE(testing::PollUntil(
      [&] {
        a = ScrapeMetric(metrics_ports_["a"], "seg_segmenter_backfill_users_published_total");
        b = ScrapeMetric(metrics_ports_["b"], "seg_segmenter_backfill_users_published_total");
        running = ScrapeMetric(metrics_ports_["a"], "seg_segmenter_backfill_running") +
                  ScrapeMetric(metrics_ports_["b"], "seg_segmenter_backfill_running");
        return a + b == 2 * kUsers && running == 0;
      },
      seconds(30), "both backfills counted and none running", milliseconds(100)))
      << "published a=" << a << " b=" << b << " running=" << running;
  EXPECT_TRUE(segmenters_.at("a").running());
  EXPECT_TRUE(segmenters_.at("b").running());
}

// `tools/dev demo` + editing scripts/: a change of the local directory while
// running is pushed (when the change watch is on) and then loaded.
TEST_F(SegmenterScriptsProcessTest, LocalEditIsPushedAndLoaded) {
  const std::string local = ScriptsDir("local", {});
  auto v1 = segmenter::ScriptSet::ReadDir(local);
  SEG_ASSERT_OK(v1);
  Start("a", local, {"--set", "scripts.reload_check_interval_ms=200"});
  WaitLog("a", "bootstrapped the store with version " + v1->version, seconds(30));
  std::ofstream(local + "/everyone.lua") << Everyone("3");
  auto v2 = segmenter::ScriptSet::ReadDir(local);
  SEG_ASSERT_OK(v2);
  WaitLog("a", "scripts: pushed " + local + " (change in " + local + "): version " + v2->version,
          seconds(30));
  WaitLog("a", "scripts reloaded: version " + v1->version + " -> " + v2->version, seconds(30));
  // A broken edit is not pushed; the stored set stays.
  std::ofstream(local + "/broken.lua") << "return segment_script {";
  WaitLog("a", "scripts: not pushing " + local, seconds(30));
  segmenter::ScriptSet set(store_.get());
  auto stored = set.FetchVersion();
  SEG_ASSERT_OK(stored);
  EXPECT_EQ(*stored, v2->version);
}

// segctl scripts push / status against the running seg-store.
TEST_F(SegmenterScriptsProcessTest, SegctlScriptsPushAndStatus) {
  const std::string segctl = testing::BinaryDir() + "/tools/segctl";
  ASSERT_TRUE(fs::exists(segctl)) << segctl << " not built";
  const std::string store = "127.0.0.1:" + std::to_string(server_->port());
  const std::string log = dir_.path() + "/segctl.log";
  const std::string good = ScriptsDir("good", {});
  const std::string bad = ScriptsDir("bad", {{"broken.lua", "return segment_script {"}});
  auto version = segmenter::ScriptSet::ReadDir(good);
  SEG_ASSERT_OK(version);

  auto [code, out] = RunTool({segctl, "scripts", "--store", store, "status"}, log);
  EXPECT_EQ(code, 0) << out;
  EXPECT_NE(out.find("no script set stored"), std::string::npos) << out;

  std::tie(code, out) = RunTool({segctl, "scripts", "--store", store, "push", good}, log);
  EXPECT_EQ(code, 0) << out;
  EXPECT_NE(out.find("pushed version " + version->version), std::string::npos) << out;

  std::tie(code, out) = RunTool({segctl, "scripts", "--store", store, "push", bad}, log);
  EXPECT_EQ(code, 1) << out;
  EXPECT_NE(out.find("broken.lua"), std::string::npos) << out;

  std::tie(code, out) = RunTool({segctl, "scripts", "--store", store, "--json", "status"}, log);
  EXPECT_EQ(code, 0) << out;
  EXPECT_NE(out.find("\"version\":\"" + version->version + "\""), std::string::npos) << out;
  EXPECT_NE(out.find("\"target\":\"" + version->version + "\",\"done\":false"), std::string::npos)
      << out;
}

}  // namespace
}  // namespace seg
