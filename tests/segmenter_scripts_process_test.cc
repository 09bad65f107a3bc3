// seg-segmenter processes with scripts.source=store against real parts (the
// librdkafka mock cluster, seg-store's Thrift2 server, a local
// redis-server): the first node bootstraps the store with its scripts.dir,
// a node started later with an older directory adopts the stored set, a
// push reaches every node, and one backfill sends a DEFINITION_CHANGE
// notice per stored user. Waits poll a condition with a deadline.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "common/kafka.h"
#include "proto/segmentation.pb.h"
#include "segmenter/internal/backfill.h"
#include "segmenter/script_set.h"
#include "store/store.h"
#include "store/store_server.h"
#include "tests/harness/kafka_cluster.h"
#include "tests/harness/process.h"
#include "tests/harness/redis_server.h"
#include "tests/served_store.h"

namespace seg {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using std::chrono::steady_clock;
namespace fs = std::filesystem;

constexpr int kUsers = 30;

class SegmenterScriptsProcessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    binary_ = testing::BinaryDir() + "/segmenter/seg-segmenter";
    ASSERT_TRUE(fs::exists(binary_)) << binary_ << " not built";
    auto kafka = testing::MockKafkaCluster::Start(1);
    ASSERT_TRUE(kafka.ok()) << kafka.status();
    kafka_ = std::move(*kafka);
    ASSERT_TRUE(kafka_->CreateTopic("user-changes", 4).ok());
    ASSERT_TRUE(kafka_->CreateTopic("segmentation-results", 2).ok());
    auto redis = testing::LocalRedis::Start();
    ASSERT_TRUE(redis.ok()) << redis.status();
    redis_ = std::move(*redis);
    auto served = testing::ServeStore(dir_.path() + "/store");
    ASSERT_TRUE(served.ok()) << served.status();
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
                              "  lease_ms: 5000\n";
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

  void Start(const std::string& name, const std::string& scripts) {
    auto child = testing::ChildProcess::Start(
        {binary_, "--config", config_, "--bootstrap", kafka_->bootstrap_servers(), "--store",
         "127.0.0.1:" + std::to_string(server_->port()), "--redis",
         "127.0.0.1:" + std::to_string(redis_->port()), "--scripts", scripts},
        dir_.path() + "/" + name + ".log");
    ASSERT_TRUE(child.ok()) << child.status();
    segmenters_.emplace(name, std::move(*child));
  }

  std::string Log(const std::string& name) {
    std::ifstream in(dir_.path() + "/" + name + ".log");
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

  void WaitLog(const std::string& name, const std::string& needle, seconds timeout) {
    auto deadline = steady_clock::now() + timeout;
    while (Log(name).find(needle) == std::string::npos) {
      ASSERT_TRUE(segmenters_.at(name).running()) << Log(name);
      ASSERT_LT(steady_clock::now(), deadline) << "no '" << needle << "' in " << name << ":\n"
                                               << Log(name);
      std::this_thread::sleep_for(milliseconds(50));  // poll interval, not synchronisation
    }
  }

  testing::TempDir dir_;
  std::string binary_, config_;
  std::unique_ptr<testing::MockKafkaCluster> kafka_;
  std::unique_ptr<testing::LocalRedis> redis_;
  std::unique_ptr<store::StoreServer> server_;
  std::unique_ptr<store::Store> store_;
  std::map<std::string, testing::ChildProcess> segmenters_;
};

TEST_F(SegmenterScriptsProcessTest, BootstrapAdoptPushAndBackfill) {
  const std::string v1_dir = ScriptsDir("v1", {});
  const std::string old_dir = ScriptsDir("old", {{"everyone.lua", Everyone("0")}});
  const std::string v2_dir = ScriptsDir("v2", {{"everyone.lua", Everyone("2")}});
  auto v1 = segmenter::ScriptSet::ReadDir(v1_dir);
  auto old = segmenter::ScriptSet::ReadDir(old_dir);
  ASSERT_TRUE(v1.ok() && old.ok());

  Start("a", v1_dir);
  WaitLog("a", "bootstrapped the store with version " + v1->version, seconds(30));

  // Users segmented before: each has a state cell.
  std::vector<store::RowPut> rows;
  for (int i = 0; i < kUsers; ++i) {
    rows.push_back({"user" + std::to_string(i), {{"s", "state", store::kLatestTimestamp, ""}}});
  }
  ASSERT_TRUE(store_->Put("users", rows).ok());

  // A node with an older checkout adopts the stored set, never pushes it.
  Start("b", old_dir);
  WaitLog("b", "adopted version " + v1->version, seconds(30));
  segmenter::ScriptSet set(store_.get());
  auto stored = set.FetchVersion();
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(*stored, v1->version);

  // `segctl scripts push` does this: every node follows.
  auto v2 = set.Push(v2_dir);
  ASSERT_TRUE(v2.ok()) << v2.status();
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
  ASSERT_TRUE(consumer.ok());
  ASSERT_TRUE((*consumer)->Subscribe({"user-changes"}).ok());
  std::map<std::string, int> v2_notices;
  auto deadline = steady_clock::now() + seconds(60);
  while (v2_notices.size() < static_cast<size_t>(kUsers)) {
    ASSERT_LT(steady_clock::now(), deadline) << v2_notices.size() << " users notified\n"
                                             << Log("a") << Log("b");
    auto batch = (*consumer)->PollBatch(500, milliseconds(200));
    ASSERT_TRUE(batch.ok()) << batch.status();
    for (const kafka::Message& m : *batch) {
      ChangeNotice n;
      ASSERT_TRUE(n.ParseFromString(std::string(m.value())));
      if (n.kind() != NOTICE_DEFINITION_CHANGE || n.script_set_version() != v2->version) continue;
      EXPECT_EQ(m.key(), n.user_id());
      ++v2_notices[n.user_id()];
    }
  }
  (*consumer)->Close().IgnoreError();
  deadline = steady_clock::now() + seconds(30);
  while (true) {
    auto job = segmenter::internal::ReadBackfillStatus(store_.get(), {});
    ASSERT_TRUE(job.ok()) << job.status();
    if (job->done) {
      EXPECT_EQ(job->target, v2->version);
      EXPECT_EQ(job->published, kUsers);
      break;
    }
    ASSERT_LT(steady_clock::now(), deadline) << "backfill not done";
    std::this_thread::sleep_for(milliseconds(50));
  }
  EXPECT_EQ(Log("b").find("scripts: pushed"), std::string::npos) << Log("b");
  EXPECT_TRUE(segmenters_.at("a").running());
  EXPECT_TRUE(segmenters_.at("b").running());
}

}  // namespace
}  // namespace seg
