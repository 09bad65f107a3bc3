// Redis killed and restarted without persistence (issue #17 part 3): the
// segmenter notices the lost data through the stats epochs and counts the
// users it segments afterwards again; `segctl stats rebuild` counts the
// rest from their `counted` marks. Sizes end where the no-fault run was
// (within the HyperLogLog interval). Real parts: the librdkafka mock
// cluster, the Thrift2 store server, redis-server (and a 3-master Redis
// Cluster for the segctl binary), the shipped LuaJIT scripts.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <thread>

#include "common/event_codec.h"
#include "common/hash.h"
#include "common/kafka.h"
#include "common/metrics.h"
#include "proto/events.pb.h"
#include "proto/segmentation.pb.h"
#include "segmenter/script_host/script_host.h"
#include "segmenter/segmenter.h"
#include "stats/redis_cluster/redis_cluster.h"
#include "stats/writer/stats_writer.h"
#include "store/server/store_server.h"
#include "store/store.h"
#include "tests/harness/kafka_cluster.h"
#include "tests/harness/poll.h"
#include "tests/harness/process.h"
#include "tests/harness/redis_cluster.h"
#include "tests/harness/redis_server.h"
#include "tests/harness/segmenter_group.h"
#include "tests/harness/status_matchers.h"
#include "tests/served_store.h"
#include "tools/segctl/stats_rebuild.h"

namespace seg {
namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

// Three HLL standard errors (1.04 / sqrt(16384)) of `n`, at least 2: the
// interval a size of the no-fault run must fall in.
double HllInterval(double n) { return std::max(2.0, 3 * 1.04 / 128 * n); }

class StatsLossTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto kafka = testing::MockKafkaCluster::Start(1);
    SEG_ASSERT_OK(kafka);
    kafka_ = std::move(*kafka);
    SEG_ASSERT_OK(kafka_->CreateTopic("user-changes", 4));
    SEG_ASSERT_OK(kafka_->CreateTopic("segmentation-results", 4));
    auto redis = testing::LocalRedis::Start();  // no persistence
    SEG_ASSERT_OK(redis);
    redis_ = std::move(*redis);
    auto served = testing::ServeStore(dir_.path() + "/store");
    SEG_ASSERT_OK(served);
    server_ = std::move(served->server);
    store_ = std::move(served->client);

    segmenter::ScriptHostOptions host_options;
    host_options.scripts_dir = testing::SourceDir() + "/scripts";
    auto host = segmenter::ScriptHost::Create(host_options);
    SEG_ASSERT_OK(host);
    host_ = std::move(*host);
    auto writer = stats::NewStatsWriter(WriterOptions());
    SEG_ASSERT_OK(writer);
    writer_ = std::move(*writer);
    SEG_ASSERT_OK(writer_->LoadProcedures());  // as seg-segmenter does at start
    evaluator_ = segmenter::NewScriptHostEvaluator(host_.get());
    sink_ = segmenter::NewStatsWriterSink(writer_.get());
    segmenter::NodeOptions options;
    options.kafka = kafka_->ClientOptions("segmenter");
    options.kafka.properties["session.timeout.ms"] = "6000";
    options.kafka.properties["heartbeat.interval.ms"] = "500";
    testing::ApplyTestAssignmentStrategy(&options.kafka);
    options.read_delay_ms = 0;
    auto node = segmenter::CreateNode(options, store_.get(), evaluator_.get(), sink_.get());
    SEG_ASSERT_OK(node);
    node_ = std::move(*node);
    auto producer = kafka::Producer::Create(kafka_->ClientOptions("test-producer"));
    SEG_ASSERT_OK(producer);
    producer_ = std::move(*producer);
  }

  void TearDown() override {
    if (node_) node_->Close().IgnoreError();
    if (offsets_) offsets_->Close().IgnoreError();
  }

  stats::StatsWriterOptions WriterOptions() const {
    stats::StatsWriterOptions o;
    o.redis.node.port = redis_->port();
    o.shards = kShards;
    return o;
  }

  // `n` cat page views for `user` (3 or more: loves_cats), as ingest writes them.
  void WriteCatEvents(const std::string& user, int n) {
    store::RowPut put;
    put.row = user;
    const int64_t now = Clock::Real()->NowMs();
    for (int i = 0; i < n; ++i) {
      Event e;
      e.set_user_id(user);
      e.set_event_time_ms(now - 60'000 + i);
      e.set_type(PAGE_VIEW);
      e.set_url("https://pets.example.com/cats/" + std::to_string(i));
      e.set_event_id(user + "-" + std::to_string(now) + "-" + std::to_string(i));
      store::Cell cell;
      cell.family = "e";
      EncodeEventQualifier(e.event_time_ms(), EventDigest(e), e.type(), &cell.qualifier);
      cell.timestamp = e.event_time_ms();
      SEG_ASSERT_OK(EncodeEventValue(e, &cell.value));
      put.cells.push_back(std::move(cell));
    }
    SEG_ASSERT_OK(store_->Put("users", {put}));
  }

  void SendNotices(const std::vector<std::string>& users) {
    const int64_t acked = Clock::Real()->NowMs();
    for (const auto& user : users) {
      ChangeNotice n;
      n.set_user_id(user);
      n.set_acked_at_ms(acked);
      n.set_newest_event_time_ms(acked);
      n.set_event_count(1);
      SEG_ASSERT_OK(producer_->Produce("user-changes", user, n.SerializeAsString()));
    }
    SEG_ASSERT_OK(producer_->Flush(std::chrono::seconds(10)));
  }

  void WaitCommitted(int64_t notices) {
    int64_t committed = -1;
    ASSERT_TRUE(testing::PollUntil(
        [&] { return (committed = testing::CommittedNotices(*kafka_, 4, &offsets_)) == notices; },
        std::chrono::seconds(60), std::to_string(notices) + " committed notices",
        milliseconds(100)))
        << "committed " << committed;
  }

  // loves_cats today, summed over the shards (what seg-stats answers).
  int64_t CatsToday() {
    const stats::Day day = stats::DayFromUnixMs(Clock::Real()->NowMs());
    int64_t sum = 0;
    for (uint32_t s = 0; s < kShards; ++s) {
      auto r = testing::RedisCommandForTest(
          redis_->port(), {"PFCOUNT", stats::HllKey("hll", s, "loves_cats", day)});
      if (!r.ok()) return -1;
      sum += std::stoll(*r);
    }
    return sum;
  }

  static constexpr uint32_t kShards = 4;
  testing::TempDir dir_;
  std::unique_ptr<testing::MockKafkaCluster> kafka_;
  std::unique_ptr<testing::LocalRedis> redis_;
  std::unique_ptr<store::StoreServer> server_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<segmenter::ScriptHost> host_;
  std::unique_ptr<stats::StatsWriter> writer_;
  std::unique_ptr<segmenter::Evaluator> evaluator_;
  std::unique_ptr<segmenter::StatsSink> sink_;
  std::unique_ptr<segmenter::Node> node_;
  std::unique_ptr<kafka::Producer> producer_;
  std::unique_ptr<kafka::Consumer> offsets_;
};

// The fault: 600 users (even ones love cats), all segmented; Redis
// is killed and starts empty; half of them get a new event and are
// segmented again (the pipeline continuing), then the rebuild runs. Before
// the fix the re-segmented users added nothing (their marks said counted)
// and the size stayed near 0 until the next day. Now: the re-segmented cat
// users are counted again at once, and after the rebuild the size equals
// the no-fault run's within the HLL interval; a second rebuild changes nothing.
TEST_F(StatsLossTest, SizesMatchTheNoFaultRunAfterRestartAndRebuild) {
  constexpr int kUsers = 600;
  std::vector<std::string> all, resegmented;
  for (int i = 0; i < kUsers; ++i) {
    all.push_back("loss-" + std::to_string(i));
    WriteCatEvents(all.back(), i % 2 == 0 ? 3 : 1);
    if (i < kUsers / 2) resegmented.push_back(all.back());
  }
  metrics::Counter recounts = metrics::GetCounter("seg_segmenter_stats_recounts_total", "");
  const double recounts_before = recounts.Value();
  std::thread runner([&] { node_->Run().IgnoreError(); });
  struct Joiner {
    segmenter::Node* node;
    std::thread* t;
    ~Joiner() {
      node->RequestStop();
      if (t->joinable()) t->join();
    }
  } joiner{node_.get(), &runner};

  SendNotices(all);
  WaitCommitted(kUsers);
  const int64_t no_fault = CatsToday();
  EXPECT_NEAR(no_fault, kUsers / 2, HllInterval(kUsers / 2));

  redis_->Kill();
  SEG_ASSERT_OK(redis_->Restart()) << redis_->LogTail();
  ASSERT_EQ(CatsToday(), 0);

  // The pipeline continues: the first half gets an event each.
  for (const auto& user : resegmented) WriteCatEvents(user, 1);
  SendNotices(resegmented);
  WaitCommitted(kUsers + kUsers / 2);
  EXPECT_EQ(writer_->counters().epoch_changes, kShards);
  EXPECT_GE(writer_->counters().epoch_aborts, 1);
  // Every re-segmented cat user had marks of the old epoch: counted again.
  EXPECT_EQ(recounts.Value() - recounts_before, kUsers / 4);
  const int64_t continued = CatsToday();
  EXPECT_NEAR(continued, kUsers / 4, HllInterval(kUsers / 4));
  node_->RequestStop();
  runner.join();
  EXPECT_EQ(node_->stats().stats_recounts, kUsers / 4);

  // The rest from their marks: the other 150 cat users. The 150 counted
  // since the loss carry the new epoch and are skipped.
  auto rebuild_writer = stats::NewStatsWriter(WriterOptions());
  SEG_ASSERT_OK(rebuild_writer);
  tools::RebuildOptions options;
  options.batch_users = 64;  // several batches
  tools::RebuildReport report;
  int progress_calls = 0;
  Status s = tools::RebuildFromCountedMarks(store_.get(), rebuild_writer->get(), options, &report,
                                            [&](const tools::RebuildReport&) { ++progress_calls; });
  SEG_ASSERT_OK(s);
  EXPECT_EQ(report.rows, kUsers);
  EXPECT_EQ(report.current, kUsers / 4);
  EXPECT_EQ(report.users, kUsers / 4);
  EXPECT_EQ(report.adds, kUsers / 4);
  EXPECT_EQ(report.bad_marks, 0);
  EXPECT_GT(progress_calls, 1);
  const int64_t rebuilt = CatsToday();
  EXPECT_NEAR(rebuilt, no_fault, HllInterval(no_fault))
      << "no-fault " << no_fault << ", continued " << continued << ", rebuilt " << rebuilt;
  std::printf(
      "loves_cats today: no-fault %lld, after the restart with the pipeline continuing "
      "(half re-segmented) %lld, after the rebuild %lld\n",
      (long long)no_fault, (long long)continued, (long long)rebuilt);

  // Idempotent, and a resumed scan (--start-row) covers the rest only.
  SEG_ASSERT_OK(
      tools::RebuildFromCountedMarks(store_.get(), rebuild_writer->get(), options, &report));
  EXPECT_EQ(CatsToday(), rebuilt);
  options.start_row = "loss-5";
  SEG_ASSERT_OK(
      tools::RebuildFromCountedMarks(store_.get(), rebuild_writer->get(), options, &report));
  EXPECT_LT(report.rows, kUsers / 2);
  EXPECT_EQ(CatsToday(), rebuilt);
}

// `segctl stats rebuild` (the binary) on a 3-master Redis Cluster with 16
// shards: states written as a segmenter would (marks of today, the epoch the
// writer reported), one master restarts empty, the rebuild re-adds exactly
// the users of the shards it held, and the sizes match the truth again.
TEST(StatsLossClusterTest, SegctlRebuildRestoresALostMaster) {
  const std::string segctl = testing::BinaryDir() + "/tools/segctl";
  ASSERT_EQ(access(segctl.c_str(), X_OK), 0) << "segctl not built at " << segctl;
  auto cluster = testing::LocalRedisCluster::Start();
  SEG_ASSERT_OK(cluster);
  testing::TempDir dir;
  constexpr uint32_t kShards = 16;
  constexpr int kUsers = 3000;
  stats::StatsWriterOptions o;
  o.redis.cluster = true;
  o.redis.seeds = {"127.0.0.1:" + std::to_string((*cluster)->node(0).port())};
  o.shards = kShards;
  auto writer = stats::NewStatsWriter(o);
  SEG_ASSERT_OK(writer);
  SEG_ASSERT_OK((*writer)->LoadProcedures());
  const stats::Day today = stats::DayFromUnixMs(Clock::Real()->NowMs());
  const int32_t yesterday =
      static_cast<int32_t>(stats::EpochDaysToDay(stats::DayToEpochDays(today) - 1));
  // User i: cats today if i % 2 == 0, dogs yesterday if i % 3 == 0.
  std::vector<stats::UserUpdate> users;
  std::vector<store::RowPut> states;
  for (int i = 0; i < kUsers; ++i) {
    stats::UserUpdate u;
    u.user_id = "c" + std::to_string(i);
    SegmentState state;
    if (i % 2 == 0) u.adds.push_back({"cats", today});
    if (i % 3 == 0) u.adds.push_back({"dogs", static_cast<stats::Day>(yesterday)});
    for (const auto& a : u.adds) state.add_counted(a.segment + ":" + std::to_string(a.day));
    state.set_counted_epoch(std::string(*(*writer)->Epoch(u.user_id)));
    store::RowPut& put = states.emplace_back();
    put.row = u.user_id;
    put.cells.push_back({"s", "m", Clock::Real()->NowMs(), state.SerializeAsString()});
    users.push_back(std::move(u));
  }
  SEG_ASSERT_OK((*writer)->WriteBatch(users));
  {
    store::StoreOptions so;
    so.embedded.data_dir = dir.path() + "/store";
    auto store = store::OpenStore(so);
    SEG_ASSERT_OK(store);
    SEG_ASSERT_OK((*store)->Put("users", states));
  }
  auto router = stats::NewRedisRouter(o.redis);
  SEG_ASSERT_OK(router);
  auto size = [&](const std::string& segment, stats::Day day) -> int64_t {
    int64_t sum = 0;
    for (uint32_t s = 0; s < kShards; ++s) {
      const std::string key = stats::HllKey("hll", s, segment, day);
      auto r = (*router)->Command(key, {"PFCOUNT", key});
      if (!r.ok()) return -1;
      sum += r->integer;
    }
    return sum;
  };
  const int64_t cats = size("cats", today), dogs = size("dogs", yesterday);
  EXPECT_NEAR(cats, kUsers / 2, HllInterval(kUsers / 2));
  EXPECT_NEAR(dogs, kUsers / 3, HllInterval(kUsers / 3));

  const int lost = 2;
  int64_t lost_users = 0;  // users with marks on the lost master's shards
  for (const auto& u : users) {
    const uint32_t shard = UserShard(u.user_id, kShards);
    auto owner = (*cluster)->SlotOwner(stats::RedisKeySlot(stats::EpochKey("hll", shard)));
    SEG_ASSERT_OK(owner);
    lost_users += *owner == lost && !u.adds.empty();
  }
  ASSERT_GT(lost_users, 0);
  (*cluster)->node(lost).Kill();
  SEG_ASSERT_OK((*cluster)->node(lost).Restart()) << (*cluster)->node(lost).LogTail();
  SEG_ASSERT_OK((*cluster)->WaitUntilOk(std::chrono::seconds(30)));
  const int64_t cats_lost = size("cats", today);
  EXPECT_LT(cats_lost, cats * 0.9) << "the lost master held no cats";

  const std::string config = dir.path() + "/seg.yaml";
  {
    std::ofstream yaml(config);
    yaml << "stats:\n  shards: " << kShards << "\n  redis:\n    cluster: true\n    seeds:\n";
    for (int port : (*cluster)->ports()) yaml << "      - \"127.0.0.1:" << port << "\"\n";
  }
  const std::string cmd = segctl + " stats rebuild --config " + config + " --store-dir " +
                          dir.path() + "/store --batch-users 500 --json 2>&1";
  FILE* pipe = popen(cmd.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string out;
  char buf[512];
  while (fgets(buf, sizeof(buf), pipe) != nullptr) out += buf;
  const int rc = pclose(pipe);
  ASSERT_EQ(WEXITSTATUS(rc), 0) << out;
  const int64_t with_marks =
      std::count_if(users.begin(), users.end(), [](const auto& u) { return !u.adds.empty(); });
  EXPECT_NE(out.find("\"rows\":" + std::to_string(kUsers) +
                     ",\"current\":" + std::to_string(with_marks - lost_users) +
                     ",\"users\":" + std::to_string(lost_users)),
            std::string::npos)
      << out;
  const int64_t cats_rebuilt = size("cats", today);
  EXPECT_NEAR(cats_rebuilt, cats, HllInterval(cats)) << "lost " << cats_lost;
  EXPECT_NEAR(size("dogs", yesterday), dogs, HllInterval(dogs));
  std::printf(
      "cats today: no-fault %lld (truth %d), one of 3 masters restarted empty %lld, "
      "after segctl stats rebuild %lld (%lld users re-added)\n",
      (long long)cats, kUsers / 2, (long long)cats_lost, (long long)cats_rebuilt,
      (long long)lost_users);
}

}  // namespace
}  // namespace seg
