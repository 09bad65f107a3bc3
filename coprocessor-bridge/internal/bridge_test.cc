// Bridge tests: coalescing, and both modes against the librdkafka mock
// cluster (notices really delivered, keyed by user, survive a broker outage).
#include "coprocessor-bridge/bridge.h"

#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/kafka.h"
#include "proto/segmentation.pb.h"
#include "tests/harness/consume.h"
#include "tests/harness/kafka_cluster.h"
#include "tests/harness/status_matchers.h"

namespace seg::bridge {
namespace {

using namespace std::chrono_literals;
using seg::testing::MockKafkaCluster;

TEST(CoalesceTest, OneNoticePerUserWithMaxTimeAndSummedCount) {
  std::vector<CommittedRow> rows = {
      {"alice", 100, 2}, {"bob", 50, 1}, {"alice", 300, 1}, {"alice", 200, 4}, {"", 9, 9}};
  std::vector<ChangeNotice> notices = Coalesce(rows, 1234);
  ASSERT_EQ(notices.size(), 2u);
  EXPECT_EQ(notices[0].user_id(), "alice");
  EXPECT_EQ(notices[0].newest_event_time_ms(), 300);
  EXPECT_EQ(notices[0].event_count(), 7u);
  EXPECT_EQ(notices[0].acked_at_ms(), 1234);
  EXPECT_EQ(notices[1].user_id(), "bob");
  EXPECT_EQ(notices[1].event_count(), 1u);
}

class BridgeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto cluster = MockKafkaCluster::Start(3);
    SEG_ASSERT_OK(cluster);
    cluster_ = std::move(cluster).value();
    SEG_ASSERT_OK(cluster_->CreateTopic("user-changes", 4, 3));
  }

  // Reads notices from user-changes until `want` arrived (fails after `wait`).
  std::vector<std::pair<std::string, ChangeNotice>> ReadNotices(size_t want,
                                                                std::chrono::milliseconds wait) {
    if (!consumer_) {
      kafka::KafkaOptions options = cluster_->ClientOptions("reader");
      // Short session timeout for the mock; roundrobin avoids librdkafka#4312
      // (cooperative-sticky asserts on destroy before the first assignment).
      options.properties["session.timeout.ms"] = "6000";
      options.properties["partition.assignment.strategy"] = "roundrobin";
      auto c = kafka::Consumer::Create(options, "reader");
      SEG_EXPECT_OK(c);
      consumer_ = std::move(c).value();
      SEG_EXPECT_OK(consumer_->Subscribe({"user-changes"}));
    }
    std::vector<std::pair<std::string, ChangeNotice>> out;
    EXPECT_TRUE(testing::ConsumeUntil(
        *consumer_, [&] { return out.size() >= want; }, wait,
        std::to_string(want) + " notices on user-changes",
        [&](const kafka::Message& m) {
          ChangeNotice n;
          EXPECT_TRUE(n.ParseFromArray(m.value().data(), static_cast<int>(m.value().size())));
          out.emplace_back(std::string(m.key()), n);
        }));
    return out;
  }

  std::unique_ptr<MockKafkaCluster> cluster_;
  std::unique_ptr<kafka::Consumer> consumer_;
};

TEST_F(BridgeTest, PublishReturnsAfterEveryNoticeIsDelivered) {
  FakeClock clock;
  auto notifier = ChangeNotifier::Create(cluster_->ClientOptions("bridge"), {}, &clock);
  SEG_ASSERT_OK(notifier);
  std::vector<CommittedRow> rows;
  for (int i = 0; i < 500; ++i) rows.push_back({"user-" + std::to_string(i % 100), i, 1});
  SEG_ASSERT_OK((*notifier)->Publish(rows, 777));
  NotifierStats stats = (*notifier)->stats();
  EXPECT_EQ(stats.notices_delivered, 100);
  EXPECT_EQ(stats.pending, 0);

  auto notices = ReadNotices(100, 20s);
  ASSERT_EQ(notices.size(), 100u);
  for (const auto& [key, n] : notices) {
    EXPECT_EQ(key, n.user_id());
    EXPECT_EQ(n.acked_at_ms(), 777);
    EXPECT_EQ(n.event_count(), 5u);
  }
}

TEST_F(BridgeTest, EnqueueDeliversAcrossABrokerOutage) {
  auto notifier = ChangeNotifier::Create(cluster_->ClientOptions("bridge"));
  SEG_ASSERT_OK(notifier);
  SEG_ASSERT_OK(cluster_->BrokerDown(-1));
  std::vector<CommittedRow> rows;
  for (int i = 0; i < 50; ++i) rows.push_back({"u" + std::to_string(i), 1000 + i, 1});
  (*notifier)->Enqueue(rows, 5);
  EXPECT_FALSE((*notifier)->Flush(300ms).ok());  // nothing can be delivered yet
  SEG_ASSERT_OK(cluster_->BrokerUp(-1));
  SEG_ASSERT_OK((*notifier)->Flush(30s));
  std::map<std::string, int64_t> seen;
  for (const auto& [key, n] : ReadNotices(50, 30s)) seen[key] = n.newest_event_time_ms();
  ASSERT_EQ(seen.size(), 50u);
  EXPECT_EQ(seen["u7"], 1007);
}

}  // namespace
}  // namespace seg::bridge
