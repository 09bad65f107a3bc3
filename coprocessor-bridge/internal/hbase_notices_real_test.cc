// The HBase side of the bridge (coprocessor-bridge/hbase: NoticeEndpoint, a
// ReplicationEndpoint) on a real HBase 2.6.1 + Kafka 3.9.1. ctest label
// `real`; the fixture `real_notices` (coprocessor-bridge/CMakeLists.txt)
// starts `SEG_HBASE_NOTICES=1 services.sh up kafka hbase` in its own
// SEG_SERVICES_DIR and stops both afterwards.
//
// Writes go through HBase's Thrift2 gateway with the plain store client
// (store::OpenStore, thrift backend) — not seg-ingest and not the C++
// bridge — so a notice can only come from inside HBase. For every row
// written the test expects on `user-changes`:
//   - one notice with the right user id, newest cell time, cell count of
//     family `e`, kind NOTICE_WRITE and acked_at within the Put call;
//   - its bytes equal to what the C++ bridge (seg::bridge::Coalesce +
//     SerializeToString) builds for the same row and acked_at;
//   - on the partition a C++ producer (murmur2_random) picks for the key.
#include <glog/logging.h>
#include <gtest/gtest.h>

#include <unistd.h>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/kafka.h"
#include "coprocessor-bridge/bridge.h"
#include "proto/segmentation.pb.h"
#include "store/store.h"
#include "tests/harness/consume.h"
#include "tests/harness/poll.h"
#include "tests/harness/status_matchers.h"

#ifndef SEG_NOTICES_SERVICES_DIR
#define SEG_NOTICES_SERVICES_DIR ""
#endif
#ifndef SEG_SOURCE_DIR
#define SEG_SOURCE_DIR ""
#endif

namespace seg::bridge {
namespace {

constexpr int kPartitions = 6;
constexpr const char* kTopic = "user-changes";

std::string ServicesDir() {
  const char* d = std::getenv("SEG_SERVICES_DIR");
  return d && *d ? d : SEG_NOTICES_SERVICES_DIR;
}

std::map<std::string, std::string> ServicesEnv() {
  std::map<std::string, std::string> env;
  std::ifstream in(ServicesDir() + "/services.env");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("export ", 0) != 0) continue;
    auto eq = line.find('=');
    if (eq == std::string::npos) continue;
    env[line.substr(7, eq - 7)] = line.substr(eq + 1);
  }
  return env;
}

int64_t NowMs() { return Clock::Real()->NowMs(); }

struct Seen {
  std::string value;
  int32_t partition;
};

class HBaseNoticesRealTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto env = ServicesEnv();
    bootstrap_ = env["KAFKA_BOOTSTRAP"];
    ASSERT_FALSE(bootstrap_.empty()) << "no Kafka in " << ServicesDir() << "/services.env";
    ASSERT_FALSE(env["HBASE_THRIFT_PORT"].empty()) << "no HBase in " << ServicesDir();
    kafka_.bootstrap_servers = bootstrap_;
    kafka_.client_id = "hbase-notices-test";
    // More than one partition, so that landing on the right one means something.
    SEG_ASSERT_OK(
        kafka::CreateTopics(kafka_, {{kTopic, kPartitions, 1}, {"notices-probe", kPartitions, 1}}));
    store::StoreOptions so;
    so.backend = store::StoreOptions::Backend::kThrift;
    so.thrift.host = env["HBASE_THRIFT_HOST"];
    so.thrift.port = std::atoi(env["HBASE_THRIFT_PORT"].c_str());
    auto s = store::OpenStore(so);
    SEG_ASSERT_OK(s);
    store_ = std::move(*s);
    prefix_ = std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()) + "-" +
              std::to_string(NowMs()) + "-";
  }

  // Reads user-changes from the start until every key in `want` has a notice
  // or `timeout` passes; the first notice per key wins. Callers compare what
  // arrived: some wait for every key, some look whether one came in time.
  std::map<std::string, Seen> Collect(const std::set<std::string>& want,
                                      std::chrono::seconds timeout,
                                      const std::string& topic = kTopic) {
    kafka::KafkaOptions o = kafka_;
    o.properties["auto.offset.reset"] = "earliest";
    auto c = kafka::Consumer::Create(o, "hbase-notices-test-" + prefix_);
    SEG_EXPECT_OK(c);
    std::map<std::string, Seen> seen;
    if (!c.ok()) return seen;
    SEG_EXPECT_OK((*c)->Subscribe({topic}));
    ::testing::AssertionResult all_seen = testing::ConsumeUntil(
        **c, [&] { return seen.size() >= want.size(); }, timeout,
        std::to_string(want.size()) + " keys' notices on " + topic,
        [&](const kafka::Message& m) {
          std::string key(m.key());
          if (want.count(key) && !seen.count(key))
            seen[key] = Seen{std::string(m.value()), m.partition()};
        },
        {.max_messages = 500, .wait = std::chrono::milliseconds(200)});
    if (!all_seen) LOG(INFO) << all_seen.message();  // the caller judges
    (*c)->Close().IgnoreError();
    return seen;
  }

  // The partition the C++ producer (murmur2_random) gives each key, on a
  // topic with the same partition count.
  std::map<std::string, int32_t> CppPartitions(const std::set<std::string>& keys) {
    std::map<std::string, int32_t> out;
    std::vector<std::string> by_tag(keys.begin(), keys.end());
    auto p = kafka::Producer::Create(kafka_, [&](const kafka::DeliveryReport& r) {
      if (r.status.ok()) out[by_tag[r.tag]] = r.partition;
    });
    SEG_EXPECT_OK(p);
    if (!p.ok()) return out;
    SEG_EXPECT_OK((*p)->PrepareTopic("notices-probe", std::chrono::seconds(10)));
    for (size_t i = 0; i < by_tag.size(); ++i) {
      SEG_EXPECT_OK((*p)->Produce("notices-probe", by_tag[i], "x", {}, i));
    }
    SEG_EXPECT_OK((*p)->Flush(std::chrono::seconds(30)));
    return out;
  }

  std::string bootstrap_;
  kafka::KafkaOptions kafka_;
  std::unique_ptr<store::Store> store_;
  std::string prefix_;
};

struct Written {
  int64_t newest = 0;
  int64_t e_cells = 0;
};

// Rows with 1-3 cells of `e` (and sometimes an `s` cell, not counted).
std::vector<store::RowPut> MakeRows(const std::string& prefix, int n, int64_t base_ms,
                                    std::map<std::string, Written>* written) {
  std::vector<store::RowPut> rows;
  for (int i = 0; i < n; ++i) {
    store::RowPut r;
    r.row = prefix + "user" + std::to_string(i);
    Written w;
    for (int j = 0; j <= i % 3; ++j) {
      int64_t ts = base_ms + i * 1000 + (j == 1 ? 500 : j);  // newest not always last
      r.cells.push_back({"e", "q" + std::to_string(j), ts, "v"});
      w.newest = std::max(w.newest, ts);
      w.e_cells++;
    }
    if (i % 4 == 0) r.cells.push_back({"s", "state", base_ms, "x"});
    (*written)[r.row] = w;
    rows.push_back(std::move(r));
  }
  return rows;
}

void ExpectNotices(const std::map<std::string, Written>& written,
                   const std::map<std::string, Seen>& seen,
                   const std::map<std::string, int32_t>& cpp_partition, int64_t before_ms,
                   int64_t after_ms) {
  for (const auto& [row, w] : written) {
    auto it = seen.find(row);
    ASSERT_NE(it, seen.end()) << "no notice for " << row;
    ChangeNotice n;
    ASSERT_TRUE(n.ParseFromString(it->second.value)) << row;
    EXPECT_EQ(n.user_id(), row);
    EXPECT_EQ(n.newest_event_time_ms(), w.newest) << row;
    EXPECT_EQ(n.event_count(), uint32_t(w.e_cells)) << row;
    EXPECT_EQ(n.kind(), NOTICE_WRITE) << row;
    EXPECT_TRUE(n.script_set_version().empty()) << row;
    EXPECT_GE(n.acked_at_ms(), before_ms) << row;
    EXPECT_LE(n.acked_at_ms(), after_ms) << row;
    // Byte for byte what the C++ bridge publishes for this write.
    CommittedRow in{row, w.newest, w.e_cells};
    std::vector<ChangeNotice> expected = Coalesce({&in, 1}, n.acked_at_ms());
    ASSERT_EQ(expected.size(), 1u);
    EXPECT_EQ(expected[0].SerializeAsString(), it->second.value) << row;
    auto p = cpp_partition.find(row);
    ASSERT_NE(p, cpp_partition.end()) << row;
    EXPECT_EQ(it->second.partition, p->second) << row << ": not where the C++ producers put it";
  }
}

TEST_F(HBaseNoticesRealTest, ThriftPutsYieldOneNoticePerRowOnTheCppPartition) {
  std::map<std::string, Written> written;
  auto rows = MakeRows(prefix_, 24, 1'700'000'000'000, &written);
  // A row that writes only `s` (the segmenter's state) is not announced.
  std::string s_only = prefix_ + "state-only";
  rows.push_back({s_only, {{"s", "state", 1'700'000'000'000, "x"}}});
  int64_t before = NowMs();
  SEG_ASSERT_OK(store_->Put("users", rows));
  int64_t after = NowMs();
  std::set<std::string> want;
  for (auto& [row, w] : written) want.insert(row);
  auto cpp = CppPartitions(want);
  auto seen = Collect(want, std::chrono::seconds(60));
  ExpectNotices(written, seen, cpp, before, after);
  // Give the s-only row the same chance, then make sure it never came.
  auto late = Collect({s_only}, std::chrono::seconds(2));
  EXPECT_EQ(late.count(s_only), 0u);
  std::set<int32_t> partitions;
  for (auto& [k, v] : seen) partitions.insert(v.partition);
  EXPECT_GT(partitions.size(), 1u) << "24 users all on one partition?";
}

TEST_F(HBaseNoticesRealTest, SeparatePutsOfOneUserEachAnnounced) {
  // Two writes of the same user, seconds apart: the second notice carries
  // the second write's newest time (notices are per shipment, never lost).
  std::string row = prefix_ + "twice";
  SEG_ASSERT_OK(store_->Put("users", {{row, {{"e", "a", 1000, "v"}}}}));
  auto first = Collect({row}, std::chrono::seconds(60));
  ASSERT_EQ(first.count(row), 1u);
  SEG_ASSERT_OK(store_->Put("users", {{row, {{"e", "b", 2000, "v"}, {"e", "c", 1500, "v"}}}}));
  kafka::KafkaOptions o = kafka_;
  o.properties["auto.offset.reset"] = "earliest";
  auto c = kafka::Consumer::Create(o, "hbase-notices-test-twice-" + prefix_);
  SEG_ASSERT_OK(c);
  SEG_ASSERT_OK((*c)->Subscribe({kTopic}));
  std::vector<ChangeNotice> got;
  EXPECT_TRUE(testing::ConsumeUntil(
      **c, [&] { return got.size() >= 2; }, std::chrono::seconds(60),
      "both of " + row + "'s notices",
      [&](const kafka::Message& m) {
        if (m.key() != row) return;
        ChangeNotice n;
        ASSERT_TRUE(n.ParseFromString(std::string(m.value())));
        got.push_back(n);
      },
      {.max_messages = 500, .wait = std::chrono::milliseconds(200)}));
  (*c)->Close().IgnoreError();
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].newest_event_time_ms(), 1000);
  EXPECT_EQ(got[0].event_count(), 1u);
  EXPECT_EQ(got[1].newest_event_time_ms(), 2000);
  EXPECT_EQ(got[1].event_count(), 2u);
  EXPECT_LE(got[0].acked_at_ms(), got[1].acked_at_ms());
}

// The endpoint's Setup main (what services.sh ran) on the running cluster:
// exit status 0 = the peer was added/updated.
int RunSetup(const std::string& args) {
  const std::string dir = ServicesDir();
  std::ifstream cpf(dir + "/hbase.classpath");
  std::string cp((std::istreambuf_iterator<char>(cpf)), std::istreambuf_iterator<char>());
  while (!cp.empty() && (cp.back() == '\n' || cp.back() == '\r')) cp.pop_back();
  std::string cmd = "java -Xmx256m -cp '" + dir + "/hbase/conf:" + cp + ":" + dir +
                    "/hbase-notices/seg-hbase-notices.jar' org.segengine.notices.Setup " + args +
                    " >>'" + dir + "/hbase/notices-setup-test.log' 2>&1";
  return std::system(cmd.c_str());
}

// Setup on an existing peer (update_peer_config) reaches the running
// endpoint: notices move to the new topic without a region server restart,
// and back.
TEST_F(HBaseNoticesRealTest, UpdatingThePeerConfigMovesNoticesToTheNewTopic) {
  const std::string moved = "user-changes-moved";
  SEG_ASSERT_OK(kafka::CreateTopics(kafka_, {{moved, 2, 1}}));
  ASSERT_EQ(RunSetup("--bootstrap " + bootstrap_ + " --topic " + moved), 0);
  struct Restore {
    std::string bootstrap;
    ~Restore() {
      EXPECT_EQ(RunSetup("--bootstrap " + bootstrap), 0) << "peer left on the moved topic";
    }
  } restore{bootstrap_};
  // The endpoint applies the update asynchronously (a refresh procedure on
  // the region server): write until a row shows up on the new topic.
  // One more row written, and whether its notice came on `topic` within 5 s
  // (PollUntil stops at a failed put's fatal failure).
  int rows = 0;
  auto put_row = [&](const std::string& row) {
    SEG_ASSERT_OK(store_->Put("users", {{row, {{"e", "q", 1000, "v"}}}}));
  };
  auto announced_on = [&](const std::string& name, const std::string& topic) {
    std::string row = prefix_ + name + std::to_string(rows++);
    put_row(row);
    return !HasFatalFailure() && Collect({row}, std::chrono::seconds(5), topic).count(row) > 0;
  };
  ASSERT_TRUE(testing::PollUntil([&] { return announced_on("moved", moved); },
                                 std::chrono::seconds(60), "a notice on " + moved,
                                 std::chrono::milliseconds(0)))
      << "no notice on " << moved << " after the update";
  ASSERT_EQ(RunSetup("--bootstrap " + bootstrap_), 0);
  EXPECT_TRUE(testing::PollUntil([&] { return announced_on("back", kTopic); },
                                 std::chrono::seconds(60), std::string("a notice on ") + kTopic,
                                 std::chrono::milliseconds(0)))
      << "notices did not come back to " << kTopic;
}

// Kafka's only broker stopped for ~25 s while writes continue: HBase keeps
// accepting them (the endpoint is off the write path), the endpoint refuses
// shipments (HBase retries them), and after the broker is back every row
// written meanwhile is announced.
TEST_F(HBaseNoticesRealTest, KafkaDownWritesContinueNoticesArriveAfterRestart) {
  const std::string services = std::string(SEG_SOURCE_DIR) + "/tools/services/services.sh";
  ASSERT_EQ(std::system((services + " node-stop kafka 1").c_str()), 0);
  std::map<std::string, Written> written;
  int64_t before = NowMs();
  int64_t slowest_put_ms = 0;
  for (int i = 0; i < 10; ++i) {
    std::map<std::string, Written> w;
    auto rows = MakeRows(prefix_ + std::to_string(i) + "-", 3, 1'700'000'000'000, &w);
    int64_t t0 = NowMs();
    SEG_ASSERT_OK(store_->Put("users", rows)) << "HBase refused a write while Kafka is down";
    slowest_put_ms = std::max(slowest_put_ms, NowMs() - t0);
    written.insert(w.begin(), w.end());
    // 10 x 2.5 s: longer than the endpoint's delivery timeout (20 s), so
    // shipments are refused (replicate() = false) and re-shipped by HBase.
    std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  }
  int64_t after = NowMs();
  EXPECT_LT(slowest_put_ms, 2000) << "a Put waited on Kafka";
  ASSERT_EQ(std::system((services + " node-start kafka 1").c_str()), 0);
  std::set<std::string> want;
  for (auto& [row, w] : written) want.insert(row);
  auto cpp = CppPartitions(want);
  auto seen = Collect(want, std::chrono::seconds(120));
  EXPECT_EQ(seen.size(), want.size());
  ExpectNotices(written, seen, cpp, before, after);
  // The outage was seen by the endpoint (not merely buffered through).
  std::ifstream log(ServicesDir() + "/hbase/master.log");
  std::string line;
  int refused = 0;
  while (std::getline(log, line))
    refused += line.find("shipment will be retried") != std::string::npos;
  EXPECT_GT(refused, 0) << "the endpoint never refused a shipment while Kafka was down";
}

// Benchmark, not run by ctest (DISABLED_): N single-row Puts one after the
// other through Thrift2; prints the notice lag (client got the Put's ack ->
// the notice is consumed) p50/p99 and the HBase JVM's CPU per 1000 puts
// (master + region server + ZooKeeper: one JVM in standalone mode). Run
// with notices off too (SEG_BENCH_NOTICES=0, HBase started without
// SEG_HBASE_NOTICES) for the CPU baseline. SEG_BENCH_PUTS (default 2000).
//   build/default/coprocessor-bridge/hbase_notices_real_test
//     --gtest_also_run_disabled_tests --gtest_filter=*Bench*  (one command)
// or bench/hbase_notices.sh, which runs the three modes.
// utime + stime (clock ticks) from a /proc/.../stat file; -1 when it is gone.
int64_t StatTicks(const std::filesystem::path& stat_path) {
  std::ifstream st(stat_path);
  std::string stat((std::istreambuf_iterator<char>(st)), std::istreambuf_iterator<char>());
  auto close = stat.rfind(')');
  if (close == std::string::npos) return -1;
  std::istringstream rest(stat.substr(close + 2));
  std::string f;
  int64_t ticks = 0;
  for (int i = 3; i <= 15; ++i) {
    rest >> f;
    if (i >= 14) ticks += std::stoll(f);
  }
  return ticks;
}

int64_t JvmCpuTicks(const std::string& pid_file) {
  std::ifstream pf(pid_file);
  std::string pid;
  pf >> pid;
  return StatTicks("/proc/" + pid + "/stat");
}

// CPU ticks of the JVM's threads by name (Linux keeps the first 15
// characters of a Java thread's name; digits are folded to '#', so that the
// 30 "RpcServer.defau" handlers or "GC Thread#3" add up under one name).
std::map<std::string, int64_t> JvmThreadTicksByName(const std::string& pid_file) {
  std::ifstream pf(pid_file);
  std::string pid;
  pf >> pid;
  std::map<std::string, int64_t> by_name;
  const std::string task_dir = "/proc/" + pid + "/task";
  for (const auto& task : std::filesystem::directory_iterator(task_dir)) {
    std::ifstream comm_file(task.path() / "comm");
    std::string comm;
    std::getline(comm_file, comm);
    int64_t ticks = StatTicks(task.path() / "stat");
    if (ticks < 0) continue;  // the thread just ended
    for (char& c : comm) {
      if (c >= '0' && c <= '9') c = '#';
      if (c == ' ') c = '_';  // one token per name in the BENCH line
    }
    by_name[comm] += ticks;
  }
  return by_name;
}

// What a thread does, from its name: the replication source's reader and
// shipper run under "RS_REFRESH_PEER...", the endpoint's producer under
// "kafka-producer-network-thread"; "zookeeper" is the ZooKeeper server that
// standalone HBase runs inside its JVM (production runs it on machines of
// its own; a shipment's log-position update is one of its writes).
const char* ThreadGroup(const std::string& name) {
  auto starts = [&](const char* p) { return name.rfind(p, 0) == 0; };
  if (starts("RS_REFRESH_PEER")) return "replication";
  if (starts("kafka-producer")) return "producer";
  if (starts("GC_Thread") || starts("G#_")) return "gc";
  if (starts("C#_Compiler")) return "jit";
  if (starts("SyncThread") || starts("ProcessThread") || starts("NIOWorkerThread") ||
      starts("NIOServerCxnFac") || starts("SessionTracker") || starts("ConnnectionExpi") ||
      starts("RequestThrottle")) {
    return "zookeeper";
  }
  return "other";
}

TEST_F(HBaseNoticesRealTest, DISABLED_BenchLagAndCpu) {
  const char* n_env = std::getenv("SEG_BENCH_PUTS");
  const int n = n_env ? std::atoi(n_env) : 2000;
  // Puts per second, paced (0: as fast as they go). The modes are compared
  // at one offered rate: the JVM's background CPU per second (chores, GC,
  // the WAL reader's polls) then weighs the same per put in every mode.
  const char* rate_env = std::getenv("SEG_BENCH_PUT_RATE");
  const double put_rate = rate_env ? std::atof(rate_env) : 0;
  const char* on_env = std::getenv("SEG_BENCH_NOTICES");
  const bool notices = !(on_env && std::string(on_env) == "0");
  std::mutex mu;
  std::map<std::string, int64_t> acked, received;
  std::map<std::string, int64_t> produced;  // the notice's Kafka timestamp (the endpoint's send)
  std::atomic<bool> stop{false};
  std::thread consumer;
  if (notices) {
    kafka::KafkaOptions o = kafka_;
    // From the earliest offset: this run's rows carry its own prefix, so the
    // earlier runs' notices are only read past. With "latest", a consumer
    // whose position was resolved after the first notices arrived missed
    // them and the run failed.
    o.properties["auto.offset.reset"] = "earliest";
    o.properties["fetch.wait.max.ms"] = "5";
    auto c = kafka::Consumer::Create(o, "hbase-notices-bench-" + prefix_);
    SEG_ASSERT_OK(c);
    SEG_ASSERT_OK((*c)->Subscribe({kTopic}));
    // Joined before writing: the lag clock starts at each put's ack.
    ASSERT_TRUE(testing::PollUntil(
        [&] {
          (void)(*c)->PollBatch(100, std::chrono::milliseconds(100));
          auto a = (*c)->Assignment();
          return a.ok() && !a->empty();
        },
        std::chrono::seconds(10), "the bench consumer's assignment", std::chrono::milliseconds(0)));
    consumer = std::thread([&, c = std::move(*c)]() mutable {
      while (!stop) {
        auto batch = c->PollBatch(1000, std::chrono::milliseconds(50));
        if (!batch.ok()) continue;
        int64_t now = NowMs();
        std::lock_guard<std::mutex> lock(mu);
        for (const kafka::Message& m : *batch) {
          received.emplace(std::string(m.key()), now);
          produced.emplace(std::string(m.key()), m.timestamp_ms());
        }
      }
      c->Close().IgnoreError();
    });
  }
  const std::string pid_file = ServicesDir() + "/hbase/master.pid";
  int64_t cpu0 = JvmCpuTicks(pid_file);
  std::map<std::string, int64_t> threads0 = JvmThreadTicksByName(pid_file);
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < n; ++i) {
    if (put_rate > 0) {
      std::this_thread::sleep_until(t0 + std::chrono::duration_cast<std::chrono::nanoseconds>(
                                             std::chrono::duration<double>(i / put_rate)));
    }
    std::string row = prefix_ + "b" + std::to_string(i);
    SEG_ASSERT_OK(store_->Put("users", {{row, {{"e", "q", 1'700'000'000'000 + i, "v"}}}}));
    int64_t now = NowMs();
    std::lock_guard<std::mutex> lock(mu);
    acked[row] = now;
  }
  auto puts_done = std::chrono::steady_clock::now();
  double put_s = std::chrono::duration<double>(puts_done - t0).count();
  if (notices) {
    EXPECT_TRUE(testing::PollUntil(
        [&] {
          std::lock_guard<std::mutex> lock(mu);
          size_t got = 0;
          for (auto& [k, t] : acked) got += received.count(k);
          return got == acked.size();
        },
        std::chrono::seconds(120), "every put's notice", std::chrono::milliseconds(50)));
  }
  // The same measured tail on and off: 2 s after the last put (on: all
  // notices arrived well within it, or the run fails below).
  std::this_thread::sleep_until(puts_done + std::chrono::seconds(2));
  int64_t cpu1 = JvmCpuTicks(pid_file);
  std::map<std::string, int64_t> threads1 = JvmThreadTicksByName(pid_file);
  stop = true;
  if (consumer.joinable()) consumer.join();
  double cpu_s = double(cpu1 - cpu0) / double(sysconf(_SC_CLK_TCK));
  std::printf(
      "BENCH notices=%d puts=%d put_rate=%.0f/s hbase_jvm_cpu=%.2fs cpu_per_1000_puts=%.3fs\n",
      notices, n, n / put_s, cpu_s, cpu_s * 1000.0 / n);
  // A thread that ended during the run takes its ticks with it: floor at 0.
  std::map<std::string, double> by_group, by_name;
  for (const auto& [name, t1] : threads1) {
    auto t0 = threads0.find(name);
    double d = std::max<int64_t>(0, t1 - (t0 == threads0.end() ? 0 : t0->second)) /
               double(sysconf(_SC_CLK_TCK)) * 1000.0 / n;
    by_group[ThreadGroup(name)] += d;
    by_name[name] += d;
  }
  std::printf("BENCH threads_cpu_per_1000_puts");
  for (const char* g : {"replication", "producer", "gc", "jit", "zookeeper", "other"}) {
    std::printf(" %s=%.4fs", g, by_group[g]);
  }
  std::printf("\nBENCH thread_names_cpu_per_1000_puts");
  for (const auto& [name, d] : by_name) {
    if (d >= 0.0005) std::printf(" %s=%.4fs", name.c_str(), d);
  }
  std::printf("\n");
  if (notices) {
    std::vector<int64_t> lag;
    for (auto& [k, t] : acked) {
      auto it = received.find(k);
      if (it != received.end()) lag.push_back(it->second - t);
    }
    ASSERT_EQ(lag.size(), acked.size()) << "notices missing";
    // Where in the run the slow notices were: the worst lag per tenth of
    // the puts, in put order (a stall at the start differs from one later).
    // The part until the endpoint sent it (the notice's Kafka timestamp)
    // and the part until this consumer read it.
    std::printf("BENCH notice_lag_max_ms_by_tenth (ack->read, ack->sent)");
    for (int tenth = 0; tenth < 10; ++tenth) {
      int64_t worst = 0, worst_sent = 0;
      for (int i = tenth * n / 10; i < (tenth + 1) * n / 10; ++i) {
        std::string row = prefix_ + "b" + std::to_string(i);
        worst = std::max(worst, received.at(row) - acked.at(row));
        worst_sent = std::max(worst_sent, produced.at(row) - acked.at(row));
      }
      std::printf(" %lld/%lld", (long long)worst, (long long)worst_sent);
    }
    std::printf("\n");
    std::sort(lag.begin(), lag.end());
    auto pct = [&](double p) { return lag[std::min(lag.size() - 1, size_t(p * lag.size()))]; };
    std::printf("BENCH notice_lag_ms p50=%lld p99=%lld max=%lld\n", (long long)pct(0.5),
                (long long)pct(0.99), (long long)lag.back());
  }
}

}  // namespace
}  // namespace seg::bridge
