// `segctl forget` against librdkafka's mock cluster: every user gets one
// ChangeNotice{kind = NOTICE_FORGET} keyed by its id, in the partition a
// murmur2 (Java-compatible) producer of that key would pick, i.e. the
// partition whose segmenter owns the user; the binary reports the count and
// fails (exit 1) when Kafka does not acknowledge.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "common/clock.h"
#include "common/kafka.h"
#include "proto/segmentation.pb.h"
#include "tests/harness/consume.h"
#include "tests/harness/kafka_cluster.h"
#include "tests/harness/process.h"
#include "tests/harness/status_matchers.h"
#include "tools/segctl/forget.h"

namespace seg::tools {
namespace {

using namespace std::chrono_literals;
using seg::testing::MockKafkaCluster;
using seg::testing::TempDir;

constexpr int kPartitions = 8;

// Kafka's Java murmur2 (org.apache.kafka.common.utils.Utils.murmur2), written
// out here so the test does not trust the producer it checks.
int32_t JavaMurmur2(std::string_view data) {
  const uint32_t m = 0x5bd1e995;
  const int r = 24;
  const size_t length = data.size();
  uint32_t h = 0x9747b28c ^ static_cast<uint32_t>(length);
  auto byte = [&](size_t i) { return static_cast<uint32_t>(static_cast<uint8_t>(data[i])); };
  for (size_t i = 0; i + 4 <= length; i += 4) {
    uint32_t k = byte(i) | (byte(i + 1) << 8) | (byte(i + 2) << 16) | (byte(i + 3) << 24);
    k *= m;
    k ^= k >> r;
    k *= m;
    h *= m;
    h ^= k;
  }
  const size_t tail = length & ~size_t{3};
  switch (length % 4) {
    case 3:
      h ^= byte(tail + 2) << 16;
      [[fallthrough]];
    case 2:
      h ^= byte(tail + 1) << 8;
      [[fallthrough]];
    case 1:
      h ^= byte(tail);
      h *= m;
  }
  h ^= h >> 13;
  h *= m;
  h ^= h >> 15;
  return static_cast<int32_t>(h);
}

int32_t PartitionOf(std::string_view key, int partitions) {
  return (JavaMurmur2(key) & 0x7fffffff) % partitions;
}

struct Received {
  ChangeNotice notice;
  std::string key;
  int32_t partition = -1;
};

class SegctlForgetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto cluster = MockKafkaCluster::Start(3);
    SEG_ASSERT_OK(cluster);
    cluster_ = std::move(cluster).value();
    SEG_ASSERT_OK(cluster_->CreateTopic("user-changes", kPartitions, 1));
  }

  // Reads `user-changes` from the start until `want` notices arrived (30 s at most).
  std::vector<Received> ReadNotices(size_t want) {
    kafka::KafkaOptions options = cluster_->ClientOptions("reader");
    options.properties["session.timeout.ms"] = "6000";
    auto consumer = kafka::Consumer::Create(options, "reader-" + std::to_string(++readers_));
    SEG_EXPECT_OK(consumer);
    if (!consumer.ok()) return {};
    SEG_EXPECT_OK((*consumer)->Subscribe({"user-changes"}));
    std::vector<Received> out;
    EXPECT_TRUE(seg::testing::ConsumeUntil(
        **consumer, [&] { return out.size() >= want; }, 30s,
        std::to_string(want) + " notices on user-changes",
        [&](const kafka::Message& m) {
          Received r;
          EXPECT_TRUE(
              r.notice.ParseFromArray(m.value().data(), static_cast<int>(m.value().size())));
          r.key = std::string(m.key());
          r.partition = m.partition();
          out.push_back(std::move(r));
        }));
    return out;
  }

  std::string SegctlPath() const {
    std::string bin = seg::testing::BinaryDir() + "/tools/segctl";
    return std::filesystem::exists(bin) ? bin : "";
  }

  TempDir dir_;
  std::unique_ptr<MockKafkaCluster> cluster_;
  int readers_ = 0;
};

TEST(SegctlForgetUnitTest, Murmur2MatchesKafkasReferenceValues) {
  // Values from Kafka's UtilsTest / DefaultPartitionerTest.
  EXPECT_EQ(JavaMurmur2("21"), -973932308);
  EXPECT_EQ(JavaMurmur2("foobar"), -790332482);
  EXPECT_EQ(JavaMurmur2("a-little-bit-long-string"), -985981536);
  EXPECT_EQ(JavaMurmur2("a-little-bit-longer-string"), -1486304829);
  EXPECT_EQ(JavaMurmur2("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8"), -58897971);
  EXPECT_EQ(JavaMurmur2(std::string_view("abc")), 479470107);
}

TEST(SegctlForgetUnitTest, ReadsOneIdPerLine) {
  TempDir dir;
  std::string path = dir.path() + "/ids.txt";
  std::ofstream(path) << "u1\n  u2 \r\n\n# a comment\nu3";
  auto ids = ReadUserIdFile(path);
  SEG_ASSERT_OK(ids);
  EXPECT_EQ(*ids, (std::vector<std::string>{"u1", "u2", "u3"}));
  EXPECT_FALSE(ReadUserIdFile(dir.path() + "/missing").ok());
}

TEST_F(SegctlForgetTest, NoticesArriveKeyedByUserInTheirMurmur2Partition) {
  FakeClock clock(1'800'000'000'000);
  ForgetOptions options;
  options.kafka = cluster_->ClientOptions("forget");
  options.clock = &clock;
  std::vector<std::string> users;
  for (int i = 0; i < 200; ++i) users.push_back("user-" + std::to_string(i));
  users.push_back("user-7");          // a repeat is sent once
  users.push_back("пользователь-ü");  // any bytes
  ForgetReport report;
  SEG_ASSERT_OK(ForgetUsers(users, options, &report));
  EXPECT_EQ(report.requested, 201);
  EXPECT_EQ(report.sent, 201);
  EXPECT_EQ(report.failed, 0);

  std::vector<Received> got = ReadNotices(201);
  ASSERT_EQ(got.size(), 201u);
  std::set<std::string> seen;
  std::set<int32_t> partitions;
  for (const Received& r : got) {
    EXPECT_EQ(r.key, r.notice.user_id());
    EXPECT_EQ(r.notice.kind(), NOTICE_FORGET);
    EXPECT_EQ(r.notice.acked_at_ms(), 1'800'000'000'000);
    EXPECT_EQ(r.notice.event_count(), 0u);
    EXPECT_EQ(r.partition, PartitionOf(r.key, kPartitions)) << r.key;
    EXPECT_TRUE(seen.insert(r.key).second) << "duplicate " << r.key;
    partitions.insert(r.partition);
  }
  EXPECT_TRUE(seen.contains("пользователь-ü"));
  EXPECT_EQ(partitions.size(), static_cast<size_t>(kPartitions));  // 201 users spread

  EXPECT_EQ(ForgetUsers({"u1", ""}, options, &report).code(), StatusCode::kInvalidArgument);
}

TEST_F(SegctlForgetTest, BinaryTakesIdsFromArgumentsAndFileAndReportsTheCount) {
  std::string segctl = SegctlPath();
  ASSERT_FALSE(segctl.empty()) << "segctl not built";
  std::string ids = dir_.path() + "/ids.txt";
  std::ofstream(ids) << "file-1\nfile-2\n\nfile-3\n";
  std::string config = dir_.path() + "/seg.yaml";
  // The shared config file: keys segctl does not read are fine.
  std::ofstream(config)
      << "kafka:\n  bootstrap_servers: " << cluster_->bootstrap_servers()
      << "\ntopics:\n  changes: user-changes\nsegmenter:\n  group_id: segmenters\n"
      << "stats:\n  shards: 4\n";
  std::string log = dir_.path() + "/forget.log";
  auto child = seg::testing::ChildProcess::Start(
      {segctl, "forget", "arg-1", "arg-2", "--file", ids, "--config", config}, log);
  SEG_ASSERT_OK(child);
  auto code = child->Wait(60s);
  SEG_ASSERT_OK(code);
  std::ifstream in(log);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(*code, 0) << text;
  EXPECT_NE(text.find("forget: 5 notice(s) sent to user-changes for 5 user(s)"), std::string::npos)
      << text;
  std::vector<Received> got = ReadNotices(5);
  std::map<std::string, int32_t> by_user;
  for (const Received& r : got) {
    EXPECT_EQ(r.notice.kind(), NOTICE_FORGET);
    EXPECT_GT(r.notice.acked_at_ms(), 0);
    by_user[r.key] = r.partition;
  }
  ASSERT_EQ(by_user.size(), 5u);
  for (const auto& [user, partition] : by_user) {
    EXPECT_EQ(partition, PartitionOf(user, kPartitions)) << user;
  }

  // --set takes one value: the id after it is a user.
  auto with_set = seg::testing::ChildProcess::Start(
      {segctl, "forget", "--set", "kafka.bootstrap_servers=" + cluster_->bootstrap_servers(),
       "set-1"},
      log);
  SEG_ASSERT_OK(with_set);
  EXPECT_EQ(*with_set->Wait(60s), 0);
  std::ifstream in2(log);
  text.assign((std::istreambuf_iterator<char>(in2)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("forget: 1 notice(s) sent to user-changes for 1 user(s)"), std::string::npos)
      << text;

  // No ids: usage error.
  auto none = seg::testing::ChildProcess::Start(
      {segctl, "forget", "--bootstrap", cluster_->bootstrap_servers()}, log);
  SEG_ASSERT_OK(none);
  EXPECT_EQ(*none->Wait(30s), 2);
}

TEST_F(SegctlForgetTest, BinaryFailsWhenKafkaDoesNotAcknowledge) {
  std::string segctl = SegctlPath();
  ASSERT_FALSE(segctl.empty()) << "segctl not built";
  SEG_ASSERT_OK(cluster_->BrokerDown(-1));
  std::string log = dir_.path() + "/down.log";
  auto child =
      seg::testing::ChildProcess::Start({segctl, "forget", "u1", "u2", "--bootstrap",
                                         cluster_->bootstrap_servers(), "--timeout-ms", "1500"},
                                        log);
  SEG_ASSERT_OK(child);
  auto code = child->Wait(60s);
  SEG_ASSERT_OK(code);
  std::ifstream in(log);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(*code, 1) << text;
  EXPECT_NE(text.find("forget: 0 notice(s) sent"), std::string::npos) << text;
}

}  // namespace
}  // namespace seg::tools
