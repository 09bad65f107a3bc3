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
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/kafka.h"
#include "coprocessor-bridge/bridge.h"
#include "proto/segmentation.pb.h"
#include "store/store.h"

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
    ASSERT_TRUE(kafka::CreateTopics(kafka_, {{kTopic, kPartitions, 1}, {"notices-probe", kPartitions, 1}})
                    .ok());
    store::StoreOptions so;
    so.backend = store::StoreOptions::Backend::kThrift;
    so.thrift.host = env["HBASE_THRIFT_HOST"];
    so.thrift.port = std::atoi(env["HBASE_THRIFT_PORT"].c_str());
    auto s = store::OpenStore(so);
    ASSERT_TRUE(s.ok()) << s.status();
    store_ = std::move(*s);
    prefix_ = std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()) + "-" +
              std::to_string(NowMs()) + "-";
  }

  // Reads user-changes from the start until every key in `want` has a notice
  // or `timeout` passes; the first notice per key wins.
  std::map<std::string, Seen> Collect(const std::set<std::string>& want,
                                      std::chrono::seconds timeout) {
    kafka::KafkaOptions o = kafka_;
    o.properties["auto.offset.reset"] = "earliest";
    auto c = kafka::Consumer::Create(o, "hbase-notices-test-" + prefix_);
    EXPECT_TRUE(c.ok()) << c.status();
    std::map<std::string, Seen> seen;
    if (!c.ok()) return seen;
    EXPECT_TRUE((*c)->Subscribe({kTopic}).ok());
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (seen.size() < want.size() && std::chrono::steady_clock::now() < deadline) {
      auto batch = (*c)->PollBatch(500, std::chrono::milliseconds(200));
      if (!batch.ok()) continue;
      for (const kafka::Message& m : *batch) {
        std::string key(m.key());
        if (want.count(key) && !seen.count(key)) seen[key] = Seen{std::string(m.value()), m.partition()};
      }
    }
    (*c)->Close();
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
    EXPECT_TRUE(p.ok()) << p.status();
    if (!p.ok()) return out;
    EXPECT_TRUE((*p)->PrepareTopic("notices-probe", std::chrono::seconds(10)).ok());
    for (size_t i = 0; i < by_tag.size(); ++i) {
      EXPECT_TRUE((*p)->Produce("notices-probe", by_tag[i], "x", {}, i).ok());
    }
    EXPECT_TRUE((*p)->Flush(std::chrono::seconds(30)).ok());
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
  ASSERT_TRUE(store_->Put("users", rows).ok());
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
  ASSERT_TRUE(store_->Put("users", {{row, {{"e", "a", 1000, "v"}}}}).ok());
  auto first = Collect({row}, std::chrono::seconds(60));
  ASSERT_EQ(first.count(row), 1u);
  ASSERT_TRUE(store_->Put("users", {{row, {{"e", "b", 2000, "v"}, {"e", "c", 1500, "v"}}}}).ok());
  kafka::KafkaOptions o = kafka_;
  o.properties["auto.offset.reset"] = "earliest";
  auto c = kafka::Consumer::Create(o, "hbase-notices-test-twice-" + prefix_);
  ASSERT_TRUE(c.ok());
  ASSERT_TRUE((*c)->Subscribe({kTopic}).ok());
  std::vector<ChangeNotice> got;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (got.size() < 2 && std::chrono::steady_clock::now() < deadline) {
    auto batch = (*c)->PollBatch(500, std::chrono::milliseconds(200));
    if (!batch.ok()) continue;
    for (const kafka::Message& m : *batch) {
      if (m.key() != row) continue;
      ChangeNotice n;
      ASSERT_TRUE(n.ParseFromString(std::string(m.value())));
      got.push_back(n);
    }
  }
  (*c)->Close();
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].newest_event_time_ms(), 1000);
  EXPECT_EQ(got[0].event_count(), 1u);
  EXPECT_EQ(got[1].newest_event_time_ms(), 2000);
  EXPECT_EQ(got[1].event_count(), 2u);
  EXPECT_LE(got[0].acked_at_ms(), got[1].acked_at_ms());
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
    ASSERT_TRUE(store_->Put("users", rows).ok()) << "HBase refused a write while Kafka is down";
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
  while (std::getline(log, line)) refused += line.find("shipment will be retried") != std::string::npos;
  EXPECT_GT(refused, 0) << "the endpoint never refused a shipment while Kafka was down";
}

}  // namespace
}  // namespace seg::bridge
