// The Kafka adapter against a real three-broker Apache Kafka 3.9.1 KRaft
// cluster (tools/services kafka3; ctest label `real`, fixture real_kafka3
// starts it and stops it). What the mock cluster cannot show: a group split
// and a hand-over by commit on revoke with the real group protocol, and a
// broker stopped and restarted under load.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "common/kafka.h"
#include "tests/harness/poll.h"
#include "tests/harness/process.h"
#include "tests/harness/status_matchers.h"

namespace seg::kafka {
namespace {

using namespace std::chrono_literals;

constexpr int kMessages = 10'000;
constexpr int kKeys = 200;
constexpr int kPartitions = 8;

std::string ServicesDir() {
  const char* dir = std::getenv("SEG_SERVICES_DIR");
  return dir ? dir : "";
}

// KAFKA3_BOOTSTRAP from the services' env file ("export K=V" lines).
std::string Bootstrap() {
  std::ifstream in(ServicesDir() + "/services.env");
  for (std::string line; std::getline(in, line);) {
    const std::string prefix = "export KAFKA3_BOOTSTRAP=";
    if (line.rfind(prefix, 0) == 0) return line.substr(prefix.size());
  }
  return "";
}

struct Record {
  std::string key;
  int seq = 0;
  int32_t partition = -1;
  int64_t offset = -1;
};

class RealKafkaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    bootstrap_ = Bootstrap();
    ASSERT_FALSE(bootstrap_.empty()) << "no KAFKA3_BOOTSTRAP in " << ServicesDir()
                                     << "/services.env (ctest fixture real_kafka3)";
    // A topic of the test's own: the fixture's cluster is shared.
    topic_ = std::string("real-") + ::testing::UnitTest::GetInstance()->current_test_info()->name();
    SEG_ASSERT_OK(CreateTopics(Options("admin"), {{topic_, kPartitions, 3}}));
  }

  KafkaOptions Options(const std::string& client_id) const {
    KafkaOptions options;
    options.bootstrap_servers = bootstrap_;
    options.client_id = client_id;
    return options;
  }

  std::unique_ptr<Consumer> MakeConsumer(const std::string& group,
                                         Consumer::RebalanceCallback cb = nullptr) {
    auto consumer = Consumer::Create(Options("consumer-" + group), group, std::move(cb));
    SEG_EXPECT_OK(consumer);
    if (!consumer.ok()) return nullptr;
    SEG_EXPECT_OK((*consumer)->Subscribe({topic_}));
    return std::move(consumer).value();
  }

  void Produce(Producer& producer, int from, int to) {
    for (int i = from; i < to; ++i) {
      const std::string key = "user-" + std::to_string(i % kKeys);
      SEG_ASSERT_OK(producer.Produce(topic_, key, key + "|" + std::to_string(i / kKeys)));
    }
  }

  // One poll; every message's offset stored (processed), records appended.
  void PollInto(Consumer& consumer, std::vector<Record>* out) {
    auto batch = consumer.PollBatch(500, 100ms);
    SEG_ASSERT_OK(batch);
    SEG_ASSERT_OK(consumer.StoreOffsets(*batch));
    for (const Message& m : *batch) {
      Record r;
      r.key = std::string(m.key());
      std::string_view v = m.value();
      r.seq = std::stoi(std::string(v.substr(v.find('|') + 1)));
      r.partition = m.partition();
      r.offset = m.offset();
      out->push_back(r);
    }
  }

  // Every key's messages exactly once and in order, across all records.
  static void ExpectExactlyOnceInOrder(std::vector<Record> records) {
    std::sort(records.begin(), records.end(), [](const Record& a, const Record& b) {
      return a.partition != b.partition ? a.partition < b.partition : a.offset < b.offset;
    });
    std::map<std::string, int> next;
    for (const Record& r : records) {
      int& expected = next[r.key];
      ASSERT_EQ(r.seq, expected) << "key " << r.key << " duplicated, lost or out of order";
      ++expected;
    }
    ASSERT_EQ(next.size(), static_cast<size_t>(kKeys));
    for (const auto& [key, n] : next) EXPECT_EQ(n, kMessages / kKeys) << key;
  }

  // tools/services/services.sh node-stop|node-start kafka3 N.
  void Node(const std::string& verb, int node) {
    auto p = testing::ChildProcess::Start({testing::SourceDir() + "/tools/services/services.sh",
                                           verb, "kafka3", std::to_string(node)},
                                          "", {"SEG_SERVICES_DIR=" + ServicesDir()});
    SEG_ASSERT_OK(p);
    auto code = p->Wait(180s);
    SEG_ASSERT_OK(code);
    ASSERT_EQ(*code, 0) << verb << " " << node;
  }

  std::string bootstrap_;
  std::string topic_;
};

// One member holds every partition and processes half the stream; a second
// joins. The group splits 4/4, the first member's processed offsets are
// committed when its partitions are revoked, and the second resumes exactly
// there: every message once, in order per key.
TEST_F(RealKafkaTest, GroupSplitsAndCommitOnRevokeHandsOverExactly) {
  auto producer = Producer::Create(Options("producer"));
  SEG_ASSERT_OK(producer);
  Produce(**producer, 0, kMessages);
  SEG_ASSERT_OK((*producer)->Flush(60s));

  std::vector<RebalanceEvent> events_a;
  auto a = MakeConsumer("g-split", [&](const RebalanceEvent& e) { events_a.push_back(e); });
  ASSERT_TRUE(a);
  std::vector<Record> got;
  // PollInto asserts; PollUntil stops at its first fatal failure.
  ASSERT_TRUE(seg::testing::PollUntil(
      [&] {
        if (got.size() >= kMessages / 2) return true;
        PollInto(*a, &got);
        return got.size() >= kMessages / 2;
      },
      60s, "half the stream at the first member", 0ms))
      << "first member got " << got.size();
  // The first member stops taking messages (it still serves the group) while
  // the second joins, so the hand-over falls in the middle of the stream.
  SEG_ASSERT_OK(a->Pause());
  auto b = MakeConsumer("g-split");
  ASSERT_TRUE(b);
  auto holds = [](Consumer& c) {
    auto assigned = c.Assignment();
    return assigned.ok() ? assigned->size() : size_t{0};
  };
  auto split = [&] { return holds(*a) == kPartitions / 2 && holds(*b) == kPartitions / 2; };
  ASSERT_TRUE(seg::testing::PollUntil(
      [&] {
        if (split()) return true;
        PollInto(*a, &got);
        if (!HasFatalFailure()) PollInto(*b, &got);
        return split();
      },
      90s, "the group's 4/4 split", 0ms))
      << "group did not split: " << holds(*a) << " / " << holds(*b);
  ASSERT_LT(got.size(), static_cast<size_t>(kMessages)) << "split after the stream ended";
  SEG_ASSERT_OK(a->Resume());
  ASSERT_TRUE(seg::testing::PollUntil(
      [&] {
        if (got.size() >= kMessages) return true;
        PollInto(*a, &got);
        if (!HasFatalFailure()) PollInto(*b, &got);
        return got.size() >= kMessages;
      },
      90s, "the whole stream at both members", 0ms))
      << "both members got " << got.size();
  // Nothing more: a duplicate would arrive here.
  for (int i = 0; i < 5; ++i) {
    ASSERT_NO_FATAL_FAILURE(PollInto(*a, &got));
    ASSERT_NO_FATAL_FAILURE(PollInto(*b, &got));
  }
  ASSERT_NO_FATAL_FAILURE(ExpectExactlyOnceInOrder(got));
  auto assigned_a = a->Assignment();
  auto assigned_b = b->Assignment();
  SEG_ASSERT_OK(assigned_a);
  SEG_ASSERT_OK(assigned_b);
  EXPECT_EQ(assigned_a->size(), static_cast<size_t>(kPartitions / 2));
  EXPECT_EQ(assigned_b->size(), static_cast<size_t>(kPartitions / 2));
  bool revoked = false;
  for (const auto& e : events_a) revoked |= e.kind == RebalanceEvent::Kind::kRevoked;
  EXPECT_TRUE(revoked);
  SEG_EXPECT_OK(a->Close());
  SEG_EXPECT_OK(b->Close());
}

// Broker 2 stops in the middle of the stream and comes back: the producer
// (idempotent, acks=all) delivers every message once, and a consumer reads
// all of them in order.
TEST_F(RealKafkaTest, BrokerStoppedAndRestartedUnderLoadLosesNothing) {
  auto producer = Producer::Create(Options("producer"));
  SEG_ASSERT_OK(producer);
  Produce(**producer, 0, kMessages / 2);
  ASSERT_NO_FATAL_FAILURE(Node("node-stop", 2));
  Produce(**producer, kMessages / 2, kMessages * 3 / 4);
  ASSERT_NO_FATAL_FAILURE(Node("node-start", 2));
  Produce(**producer, kMessages * 3 / 4, kMessages);
  Status flushed = (*producer)->Flush(120s);
  SEG_ASSERT_OK(flushed);
  for (const auto& r : (*producer)->PollDeliveries()) SEG_EXPECT_OK(r.status);

  auto consumer = MakeConsumer("g-outage");
  ASSERT_TRUE(consumer);
  std::vector<Record> got;
  ASSERT_TRUE(seg::testing::PollUntil(
      [&] {
        if (got.size() >= kMessages) return true;
        PollInto(*consumer, &got);
        return got.size() >= kMessages;
      },
      90s, "the whole stream", 0ms))
      << "consumed " << got.size();
  for (int i = 0; i < 5; ++i) ASSERT_NO_FATAL_FAILURE(PollInto(*consumer, &got));
  ASSERT_NO_FATAL_FAILURE(ExpectExactlyOnceInOrder(got));
  SEG_EXPECT_OK(consumer->Close());
}

}  // namespace
}  // namespace seg::kafka
