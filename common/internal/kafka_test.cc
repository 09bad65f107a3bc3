// Integration tests of the Kafka adapter against librdkafka's mock cluster
// (real Kafka protocol over loopback TCP), and of the kafka-local tool.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/config.h"
#include "common/kafka.h"
#include "tests/harness/consume.h"
#include "tests/harness/kafka_cluster.h"
#include "tests/harness/poll.h"
#include "tests/harness/process.h"
#include "tests/harness/status_matchers.h"

namespace seg::kafka {
namespace {

using namespace std::chrono_literals;
using seg::testing::MockKafkaCluster;

constexpr int kMessages = 10'000;
constexpr int kKeys = 200;

struct Record {
  std::string key;
  int seq = 0;  // position of this message among its key's messages
  int32_t partition = -1;
  int64_t offset = -1;
};

std::string Key(int i) { return "user-" + std::to_string(i % kKeys); }

// Produces kMessages keyed messages "<key>|<seq>", tag = global index.
void ProduceRange(Producer& producer, const std::string& topic, int from, int to) {
  for (int i = from; i < to; ++i) {
    std::string key = Key(i);
    std::string value = key + "|" + std::to_string(i / kKeys);
    HeaderView headers[] = {{"source", "test"}};
    SEG_ASSERT_OK(producer.Produce(topic, key, value, headers, static_cast<uint64_t>(i)));
  }
}

Record ToRecord(const Message& m) {
  Record r;
  r.key = std::string(m.key());
  std::string_view v = m.value();
  r.seq = std::stoi(std::string(v.substr(v.find('|') + 1)));
  r.partition = m.partition();
  r.offset = m.offset();
  return r;
}

// With the product's assignment strategy unless SEG_TEST_ASSIGNMENT_STRATEGY
// overrides it (tools/stress-kafka.sh); `strategy`, when given, wins over both.
std::unique_ptr<Consumer> MakeConsumer(const MockKafkaCluster& cluster, const std::string& group,
                                       Consumer::RebalanceCallback cb = nullptr,
                                       const std::string& strategy = "") {
  KafkaOptions options = cluster.ClientOptions("consumer-" + group);
  // The mock only rebalances after about a session timeout.
  options.properties["session.timeout.ms"] = "6000";
  options.properties["heartbeat.interval.ms"] = "500";
  seg::testing::ApplyTestAssignmentStrategy(&options);
  if (!strategy.empty()) options.properties["partition.assignment.strategy"] = strategy;
  auto consumer = Consumer::Create(options, group, std::move(cb));
  SEG_EXPECT_OK(consumer);
  return consumer.ok() ? std::move(consumer).value() : nullptr;
}

// Polls until `want` messages arrived (fails when `timeout` passes first);
// stores offsets of the first `store_limit` messages only, a batch at a time.
std::vector<Record> Consume(Consumer& consumer, size_t want, std::chrono::milliseconds timeout,
                            size_t store_limit = SIZE_MAX) {
  std::vector<Record> out;
  EXPECT_TRUE(seg::testing::PollUntil(
      [&] {
        if (out.size() >= want) return true;
        auto batch = consumer.PollBatch(500, 200ms);
        SEG_EXPECT_OK(batch);
        if (!batch.ok()) return true;  // stops at the first error, reported above
        size_t storable =
            out.size() < store_limit ? std::min(batch->size(), store_limit - out.size()) : 0;
        SEG_EXPECT_OK(consumer.StoreOffsets(batch->messages().subspan(0, storable)));
        for (const Message& m : *batch) {
          EXPECT_EQ(m.header("source").value_or(""), "test");
          out.push_back(ToRecord(m));
        }
        return out.size() >= want;
      },
      timeout, std::to_string(want) + " messages", 0ms))
      << out.size() << " consumed";
  return out;
}

// Within each key the sequence numbers increase by one from `first[key]`.
void ExpectPerKeyOrder(const std::vector<Record>& records, std::map<std::string, int>* next) {
  for (const Record& r : records) {
    int& expected = (*next)[r.key];
    ASSERT_EQ(r.seq, expected) << "key " << r.key << " out of order or duplicated";
    ++expected;
  }
}

void ExpectAllKeysComplete(const std::map<std::string, int>& next) {
  ASSERT_EQ(next.size(), static_cast<size_t>(kKeys));
  for (const auto& [key, n] : next) EXPECT_EQ(n, kMessages / kKeys) << key;
}

std::vector<TopicPartition> Partitions(const std::string& topic, int n) {
  std::vector<TopicPartition> out;
  for (int p = 0; p < n; ++p) out.push_back({topic, p});
  return out;
}

class KafkaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto cluster = MockKafkaCluster::Start(3);
    SEG_ASSERT_OK(cluster);
    cluster_ = std::move(cluster).value();
    SEG_ASSERT_OK(cluster_->CreateTopic("events", 8, 3));
  }

  std::unique_ptr<Producer> MakeProducer(std::map<std::string, std::string> extra = {}) {
    KafkaOptions options = cluster_->ClientOptions("producer");
    for (auto& [k, v] : extra) options.properties[k] = v;
    auto producer = Producer::Create(options);
    SEG_EXPECT_OK(producer);
    return producer.ok() ? std::move(producer).value() : nullptr;
  }

  std::unique_ptr<MockKafkaCluster> cluster_;
};

TEST(KafkaOptionsTest, LoadsFromConfig) {
  auto config = Config::FromString(
      "kafka:\n  bootstrap_servers: a:1,b:2\n  client_id: ingest\n"
      "  properties:\n    sasl:\n      mechanism: PLAIN\n    linger:\n      ms: 20\n",
      "test.yaml");
  SEG_ASSERT_OK(config);
  KafkaOptions options;
  SEG_ASSERT_OK(options.LoadFrom(*config, "kafka"));
  EXPECT_EQ(options.bootstrap_servers, "a:1,b:2");
  EXPECT_EQ(options.client_id, "ingest");
  EXPECT_EQ(options.properties["sasl.mechanism"], "PLAIN");
  EXPECT_EQ(options.properties["linger.ms"], "20");
  SEG_EXPECT_OK(config->CheckNoUnknownKeys());
}

TEST(KafkaOptionsTest, BadPropertyIsInvalidArgument) {
  KafkaOptions options;
  options.properties["no.such.property"] = "1";
  auto producer = Producer::Create(options);
  ASSERT_FALSE(producer.ok());
  EXPECT_EQ(producer.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(producer.status().message().find("no.such.property"), std::string_view::npos);
}

// 10k keyed messages arrive in per-key order; a restarted member of the group
// resumes after the committed offsets and re-reads only the uncommitted part.
TEST_F(KafkaTest, ProduceConsumeAndResumeFromCommittedOffsets) {
  auto producer = MakeProducer();
  ASSERT_TRUE(producer);
  ProduceRange(*producer, "events", 0, kMessages);
  SEG_ASSERT_OK(producer->Flush(30s));
  auto reports = producer->PollDeliveries();
  ASSERT_EQ(reports.size(), static_cast<size_t>(kMessages));
  std::set<uint64_t> tags;
  for (const auto& r : reports) {
    SEG_EXPECT_OK(r.status);
    tags.insert(r.tag);
  }
  EXPECT_EQ(tags.size(), static_cast<size_t>(kMessages));

  constexpr size_t kStored = 6000;
  std::vector<Record> first;
  {
    auto consumer = MakeConsumer(*cluster_, "g1");
    ASSERT_TRUE(consumer);
    SEG_ASSERT_OK(consumer->Subscribe({"events"}));
    // Read past kStored, but mark only the first kStored as processed.
    first = Consume(*consumer, kStored + 1000, 30s, kStored);
    ASSERT_GE(first.size(), kStored + 1000);
    SEG_ASSERT_OK(consumer->Commit(true));
    auto committed = consumer->Committed(Partitions("events", 8), 5s);
    SEG_ASSERT_OK(committed);
    int64_t total = 0;
    for (const auto& [tp, offset] : *committed) total += std::max<int64_t>(offset, 0);
    EXPECT_EQ(total, static_cast<int64_t>(kStored));
    SEG_ASSERT_OK(consumer->Close());
  }
  first.resize(kStored);  // what the restarted member must not see again

  auto second_consumer = MakeConsumer(*cluster_, "g1");
  ASSERT_TRUE(second_consumer);
  SEG_ASSERT_OK(second_consumer->Subscribe({"events"}));
  std::vector<Record> second = Consume(*second_consumer, kMessages - kStored, 30s);
  ASSERT_EQ(second.size(), kMessages - kStored);
  // Nothing beyond the uncommitted part shows up late.
  auto extra = second_consumer->PollBatch(100, 500ms);
  SEG_ASSERT_OK(extra);
  EXPECT_TRUE(extra->empty());
  EXPECT_EQ(second_consumer->Lag(), 0);

  std::map<std::string, int> next;
  ExpectPerKeyOrder(first, &next);
  ExpectPerKeyOrder(second, &next);
  ExpectAllKeysComplete(next);
}

// A broker goes down mid-stream while producing, another while consuming:
// the producer holds and retries instead of dropping, and after recovery
// every message is there exactly once, in per-key order.
TEST_F(KafkaTest, BrokerOutageLosesNothing) {
  auto producer = MakeProducer();
  ASSERT_TRUE(producer);
  ProduceRange(*producer, "events", 0, kMessages / 2);
  SEG_ASSERT_OK(producer->Flush(30s));
  size_t delivered = producer->PollDeliveries().size();
  EXPECT_EQ(delivered, static_cast<size_t>(kMessages / 2));

  SEG_ASSERT_OK(cluster_->BrokerDown(2));
  ProduceRange(*producer, "events", kMessages / 2, kMessages);
  // Wait until the other brokers took their share while broker 2's
  // partitions are stuck: the outage is really in the middle of the stream.
  size_t ok_during_outage = 0, failed = 0;
  EXPECT_TRUE(seg::testing::PollUntil(
      [&] {
        for (const auto& r : producer->PollDeliveries(100ms)) {
          (r.status.ok() ? ok_during_outage : failed)++;
        }
        return ok_during_outage > 0 && producer->InFlight() > 0 &&
               ok_during_outage + producer->InFlight() >= kMessages / 2;
      },
      20s, "the other brokers' share delivered while broker 2 is down", 0ms));
  EXPECT_GT(ok_during_outage, 0u);
  EXPECT_GT(producer->InFlight(), 0);
  EXPECT_EQ(failed, 0u);
  SEG_ASSERT_OK(cluster_->BrokerUp(2));
  Status flushed = producer->Flush(30s);
  SEG_ASSERT_OK(flushed);
  for (const auto& r : producer->PollDeliveries()) SEG_EXPECT_OK(r.status);

  // The outage below is of a partition leader, not of the group's
  // coordinator (losing that stops the whole group until it returns).
  SEG_ASSERT_OK(cluster_->SetGroupCoordinator("g-outage", 1));
  auto consumer = MakeConsumer(*cluster_, "g-outage");
  ASSERT_TRUE(consumer);
  SEG_ASSERT_OK(consumer->Subscribe({"events"}));
  std::vector<Record> got = Consume(*consumer, kMessages / 2, 30s);
  ASSERT_GE(got.size(), static_cast<size_t>(kMessages / 2));
  // The consumer side of an outage: the others' partitions keep flowing,
  // and broker 3's resume once it is back.
  SEG_ASSERT_OK(cluster_->BrokerDown(3));
  std::vector<Record> during = Consume(*consumer, 100, 10s);
  EXPECT_GE(during.size(), 100u);
  SEG_ASSERT_OK(cluster_->BrokerUp(3));
  got.insert(got.end(), during.begin(), during.end());
  std::vector<Record> rest = Consume(*consumer, kMessages - got.size(), 30s);
  got.insert(got.end(), rest.begin(), rest.end());
  ASSERT_EQ(got.size(), static_cast<size_t>(kMessages));
  auto extra = consumer->PollBatch(100, 500ms);
  SEG_ASSERT_OK(extra);
  EXPECT_TRUE(extra->empty()) << "duplicates after the outage";
  std::map<std::string, int> next;
  ExpectPerKeyOrder(got, &next);
  ExpectAllKeysComplete(next);
}

// Flush says how many messages could not be delivered, and why.
TEST_F(KafkaTest, FlushReportsFailedMessages) {
  auto producer = MakeProducer({{"message.timeout.ms", "1000"}});
  ASSERT_TRUE(producer);

  // A topic the cluster says does not exist.
  SEG_ASSERT_OK(cluster_->CreateTopic("gone", 2, 1));
  cluster_->SetTopicError("gone", RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART);
  for (int i = 0; i < 7; ++i) SEG_ASSERT_OK(producer->Produce("gone", Key(i), "x", {}, i));
  Status s = producer->Flush(10s);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("7 messages failed"), std::string_view::npos) << s;
  auto reports = producer->PollDeliveries();
  ASSERT_EQ(reports.size(), 7u);
  for (const auto& r : reports) EXPECT_FALSE(r.status.ok());

  // All brokers down.
  SEG_ASSERT_OK(cluster_->BrokerDown(-1));
  for (int i = 0; i < 20; ++i) SEG_ASSERT_OK(producer->Produce("events", Key(i), "x"));
  s = producer->Flush(10s);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("20 messages failed"), std::string_view::npos) << s;
  SEG_ASSERT_OK(cluster_->BrokerUp(-1));

  // Too large for the client: refused at once, not later.
  std::string huge(2 << 20, 'x');
  Status big = producer->Produce("events", "k", huge);
  EXPECT_EQ(big.code(), StatusCode::kInvalidArgument) << big;
}

// EraseIf releases exactly the selected messages and keeps the rest in
// their order (ingest drops polled-ahead messages of revoked partitions).
TEST_F(KafkaTest, BatchEraseIfKeepsTheOthersInOrder) {
  auto producer = MakeProducer();
  ASSERT_TRUE(producer);
  ProduceRange(*producer, "events", 0, 2000);
  SEG_ASSERT_OK(producer->Flush(30s));
  auto consumer = MakeConsumer(*cluster_, "erase");
  ASSERT_TRUE(consumer);
  SEG_ASSERT_OK(consumer->Subscribe({"events"}));
  Batch batch;
  ASSERT_TRUE(seg::testing::PollUntil(
      [&] {
        auto polled = consumer->PollBatch(1000, 200ms);
        SEG_EXPECT_OK(polled);
        if (!polled.ok()) return true;  // stops at the first error, reported above
        if (polled->size() > batch.size()) batch = std::move(polled).value();
        return batch.size() >= 200;
      },
      30s, "one batch of 200 messages", 0ms))
      << "largest batch " << batch.size();
  ASSERT_GE(batch.size(), 200u);
  std::vector<Record> odd;
  size_t even = 0;
  for (const Message& m : batch) {
    if (m.partition() % 2 == 0) {
      ++even;
    } else {
      odd.push_back(ToRecord(m));
    }
  }
  size_t dropped = batch.EraseIf([](const Message& m) { return m.partition() % 2 == 0; });
  EXPECT_EQ(dropped, even);
  ASSERT_EQ(batch.size(), odd.size());
  for (size_t i = 0; i < odd.size(); ++i) {
    EXPECT_EQ(ToRecord(batch[i]).key, odd[i].key);
    EXPECT_EQ(ToRecord(batch[i]).seq, odd[i].seq);
  }
  SEG_ASSERT_OK(consumer->Close());
}

// OffsetReader: the high watermarks sum to what was produced, the earliest
// offsets are 0, and the partition count comes from the metadata. (The
// mock cluster creates any topic a metadata request names, so an unknown
// topic cannot be tried here.)
TEST_F(KafkaTest, OffsetReaderGivesHighWatermarksAndPartitionCount) {
  auto producer = MakeProducer();
  ASSERT_TRUE(producer);
  ProduceRange(*producer, "events", 0, 3000);
  SEG_ASSERT_OK(producer->Flush(30s));
  auto reader = OffsetReader::Create(cluster_->ClientOptions("offsets"));
  SEG_ASSERT_OK(reader);
  auto latest = (*reader)->Offsets(Partitions("events", 8), OffsetReader::Which::kLatest, 10s);
  SEG_ASSERT_OK(latest);
  int64_t total = 0;
  for (const auto& [tp, offset] : *latest) total += offset;
  EXPECT_EQ(total, 3000);
  auto earliest = (*reader)->Offsets(Partitions("events", 8), OffsetReader::Which::kEarliest, 10s);
  SEG_ASSERT_OK(earliest);
  for (const auto& [tp, offset] : *earliest) EXPECT_EQ(offset, 0) << tp.partition;
  auto count = (*reader)->PartitionCount("events", 10s);
  SEG_ASSERT_OK(count);
  EXPECT_EQ(*count, 8);
}

// PrepareTopic fetches the topic's leaders up front; with every broker down
// it says so within its timeout instead of hanging.
TEST_F(KafkaTest, PrepareTopicLearnsLeadersOrSaysWhyNot) {
  auto producer = MakeProducer({});
  ASSERT_TRUE(producer);
  Status ready = producer->PrepareTopic("events", 10s);
  SEG_EXPECT_OK(ready);
  SEG_ASSERT_OK(cluster_->BrokerDown(-1));
  Status down = producer->PrepareTopic("events", 500ms);
  EXPECT_FALSE(down.ok());
  EXPECT_NE(down.message().find("metadata for events"), std::string_view::npos) << down;
  SEG_ASSERT_OK(cluster_->BrokerUp(-1));
}

// A full local queue makes Produce wait a bounded time, then say so.
TEST_F(KafkaTest, FullQueueIsResourceExhaustedAfterBoundedWait) {
  KafkaOptions options = cluster_->ClientOptions("producer");
  options.properties["queue.buffering.max.messages"] = "5";
  options.queue_full_wait_ms = 300;
  auto producer = Producer::Create(options);
  SEG_ASSERT_OK(producer);
  SEG_ASSERT_OK(cluster_->BrokerDown(-1));
  for (int i = 0; i < 5; ++i) SEG_ASSERT_OK((*producer)->Produce("events", Key(i), "v"));
  auto start = std::chrono::steady_clock::now();
  Status full = (*producer)->Produce("events", "k", "v");
  EXPECT_EQ(full.code(), StatusCode::kResourceExhausted) << full;
  EXPECT_GE(std::chrono::steady_clock::now() - start, 300ms);
  SEG_ASSERT_OK(cluster_->BrokerUp(-1));
  Status flushed = (*producer)->Flush(20s);
  SEG_EXPECT_OK(flushed);
}

// Two members of one group (A first, then B) under `strategy` ("": the
// product's, or SEG_TEST_ASSIGNMENT_STRATEGY's) split the partitions without
// overlap and together read every message once. `a_events`: A's rebalance
// events up to then (not those of its close).
// Subscribes `consumer` to "events" and polls until it owns all 8 partitions.
void SubscribeAndOwnAllPartitions(Consumer* consumer, const char* who) {
  SEG_ASSERT_OK(consumer->Subscribe({"events"}));
  ASSERT_TRUE(seg::testing::PollUntil(
      [&] {
        auto polled = consumer->PollBatch(10, 100ms);
        SEG_EXPECT_OK(polled);
        return !polled.ok() || consumer->Assignment()->size() >= 8;
      },
      20s, std::string(who) + "'s assignment of 8 partitions", 0ms));
  ASSERT_EQ(consumer->Assignment()->size(), 8u);
}

void SplitPartitionsBetweenTwoConsumers(MockKafkaCluster& cluster, const std::string& group,
                                        const std::string& strategy,
                                        std::vector<RebalanceEvent>* a_events) {
  std::vector<RebalanceEvent> events_a, events_b;
  auto a = MakeConsumer(
      cluster, group, [&](const RebalanceEvent& e) { events_a.push_back(e); }, strategy);
  auto b = MakeConsumer(
      cluster, group, [&](const RebalanceEvent& e) { events_b.push_back(e); }, strategy);
  ASSERT_TRUE(a && b);
  ASSERT_NO_FATAL_FAILURE(SubscribeAndOwnAllPartitions(a.get(), "a"));

  SEG_ASSERT_OK(b->Subscribe({"events"}));
  std::vector<TopicPartition> pa, pb;
  Status polled;
  EXPECT_TRUE(seg::testing::PollUntil(
      [&] {
        polled = a->PollBatch(10, 50ms).status();
        if (polled.ok()) polled = b->PollBatch(10, 50ms).status();
        if (!polled.ok()) return true;  // asserted below
        pa = a->Assignment().value();
        pb = b->Assignment().value();
        return !pa.empty() && !pb.empty() && pa.size() + pb.size() == 8;
      },
      30s, "the 8 partitions split between a and b", 0ms))
      << pa.size() << " + " << pb.size();
  SEG_ASSERT_OK(polled);
  ASSERT_FALSE(pa.empty());
  ASSERT_FALSE(pb.empty());
  std::set<TopicPartition> all(pa.begin(), pa.end());
  all.insert(pb.begin(), pb.end());
  EXPECT_EQ(all.size(), 8u) << "overlapping assignment";
  ASSERT_FALSE(events_b.empty());
  EXPECT_EQ(events_b.front().kind, RebalanceEvent::Kind::kAssigned);

  auto producer = Producer::Create(cluster.ClientOptions("producer"));
  SEG_ASSERT_OK(producer);
  constexpr int kCount = 2000;
  for (int i = 0; i < kCount; ++i) SEG_ASSERT_OK((*producer)->Produce("events", Key(i), "v"));
  SEG_ASSERT_OK((*producer)->Flush(10s));
  size_t got_a = 0, got_b = 0;
  EXPECT_TRUE(seg::testing::PollUntil(
      [&] {
        auto batch_a = a->PollBatch(500, 50ms);
        auto batch_b = b->PollBatch(500, 50ms);
        SEG_EXPECT_OK(batch_a);
        SEG_EXPECT_OK(batch_b);
        if (!batch_a.ok() || !batch_b.ok()) return true;  // reported above
        got_a += batch_a->size();
        got_b += batch_b->size();
        return got_a + got_b >= kCount;
      },
      20s, std::to_string(kCount) + " messages between a and b", 0ms));
  EXPECT_EQ(got_a + got_b, static_cast<size_t>(kCount));
  EXPECT_GT(got_a, 0u);
  EXPECT_GT(got_b, 0u);
  *a_events = events_a;
}

bool IsCooperative(const std::string& strategy) {
  return strategy.find("cooperative") != std::string::npos;
}

// Eager: A gave all of its partitions back before the split.
void ExpectRevokedAll(const std::vector<RebalanceEvent>& events) {
  bool revoked_all = false;
  for (const auto& e : events) {
    if (e.kind == RebalanceEvent::Kind::kRevoked && e.partitions.size() == 8u) revoked_all = true;
  }
  EXPECT_TRUE(revoked_all);
}

// Cooperative: A gave partitions up incrementally, never all of them.
void ExpectRevokedSomeNeverAll(const std::vector<RebalanceEvent>& events) {
  bool revoked_some = false;
  for (const auto& e : events) {
    if (e.kind == RebalanceEvent::Kind::kRevoked) {
      revoked_some = true;
      EXPECT_LT(e.partitions.size(), 8u);
    }
  }
  EXPECT_TRUE(revoked_some);
}

// The default (eager roundrobin; or the strategy SEG_TEST_ASSIGNMENT_STRATEGY
// names, whose revocations are checked instead).
TEST_F(KafkaTest, TwoConsumersSplitPartitions) {
  std::vector<RebalanceEvent> events_a;
  ASSERT_NO_FATAL_FAILURE(SplitPartitionsBetweenTwoConsumers(*cluster_, "g-split", "", &events_a));
  if (IsCooperative(seg::testing::TestAssignmentStrategy())) {
    ExpectRevokedSomeNeverAll(events_a);
  } else {
    ExpectRevokedAll(events_a);
  }
}

// cooperative-sticky stays available through the properties (kafka.h) and
// still moves partitions incrementally: the consumer uses
// incremental_assign/unassign for it.
TEST_F(KafkaTest, TwoConsumersCooperativeStickySplitPartitionsIncrementally) {
  std::vector<RebalanceEvent> events_a;
  ASSERT_NO_FATAL_FAILURE(SplitPartitionsBetweenTwoConsumers(*cluster_, "g-split-coop",
                                                             "cooperative-sticky", &events_a));
  ExpectRevokedSomeNeverAll(events_a);
}

// Closing a member before its first assignment arrived (e.g. SIGTERM right
// after start) must neither abort inside librdkafka nor hang. With
// cooperative-sticky (SEG_TEST_ASSIGNMENT_STRATEGY) this is librdkafka #4312:
// the sticky assignor's state is destroyed before it was ever set. Timings
// cover: before the join, during JoinGroup, during SyncGroup, and after the
// assignment; with and without another member already owning the partitions
// (then the join waits for a rebalance).
TEST_F(KafkaTest, CloseBeforeFirstAssignmentIsCleanAndBounded) {
  for (bool with_owner : {false, true}) {
    for (auto poll_for : {0ms, 50ms, 200ms, 1000ms}) {
      SCOPED_TRACE("poll " + std::to_string(poll_for.count()) + " ms");
      std::string group =
          "g-early-close-" + std::to_string(with_owner) + "-" + std::to_string(poll_for.count());
      SCOPED_TRACE(group);
      std::unique_ptr<Consumer> owner;
      if (with_owner) {
        owner = MakeConsumer(*cluster_, group);
        ASSERT_TRUE(owner);
        ASSERT_NO_FATAL_FAILURE(SubscribeAndOwnAllPartitions(owner.get(), "the owner"));
      }
      std::vector<RebalanceEvent> events;
      auto consumer =
          MakeConsumer(*cluster_, group, [&](const RebalanceEvent& e) { events.push_back(e); });
      ASSERT_TRUE(consumer);
      SEG_ASSERT_OK(consumer->Subscribe({"events"}));
      {
        auto batch = consumer->PollBatch(10, poll_for);  // released before Close
        SEG_ASSERT_OK(batch);
      }
      auto start = std::chrono::steady_clock::now();
      SEG_EXPECT_OK(consumer->Close());
      EXPECT_LT(std::chrono::steady_clock::now() - start, 15s);
      // Nothing was stored, so nothing may have been committed.
      consumer.reset();
      if (owner) {
        auto committed = owner->Committed(Partitions("events", 8), 5s);
        SEG_ASSERT_OK(committed);
        for (const auto& [tp, offset] : *committed) EXPECT_LT(offset, 0) << tp.partition;
        SEG_EXPECT_OK(owner->Close());
      }
    }
  }
}

// The same between the JoinGroup and the SyncGroup response: slow brokers
// widen that window (the mock answers the join about 3 s after the first
// member asked, plus the round trips) so that Close lands inside it.
TEST_F(KafkaTest, CloseBetweenJoinAndSyncIsCleanAndBounded) {
  for (int32_t id = 1; id <= cluster_->broker_count(); ++id) {
    SEG_ASSERT_OK(cluster_->SetBrokerRtt(id, 400));
  }
  for (auto poll_for : {4000ms, 4400ms, 4800ms, 5200ms, 5600ms}) {
    SCOPED_TRACE("poll " + std::to_string(poll_for.count()) + " ms");
    auto consumer = MakeConsumer(*cluster_, "g-sync-close-" + std::to_string(poll_for.count()));
    ASSERT_TRUE(consumer);
    SEG_ASSERT_OK(consumer->Subscribe({"events"}));
    {
      auto batch = consumer->PollBatch(10, poll_for);
      SEG_ASSERT_OK(batch);
    }
    auto start = std::chrono::steady_clock::now();
    SEG_EXPECT_OK(consumer->Close());
    EXPECT_LT(std::chrono::steady_clock::now() - start, 15s);
  }
}

// kafka-local serves the Kafka protocol to other processes and stops cleanly.
TEST(KafkaLocalTest, ServesClientsAndStopsOnSigterm) {
#ifdef SEG_KAFKA_LOCAL_BIN
  std::string binary = SEG_KAFKA_LOCAL_BIN;
#else
  std::string binary = seg::testing::BinaryDir() + "/tools/kafka-local";
#endif
  ASSERT_TRUE(std::filesystem::exists(binary))
      << binary << " not built (ctest builds every target)";
  seg::testing::TempDir dir;
  std::string port_file = dir.path() + "/kafka.bootstrap";
  auto child = seg::testing::ChildProcess::Start(
      {binary, "--brokers", "3", "--topics", "events:4,user-changes:2", "--port-file", port_file},
      dir.path() + "/kafka-local.log");
  SEG_ASSERT_OK(child);

  std::string bootstrap;
  EXPECT_TRUE(seg::testing::PollUntil(
      [&] {
        std::ifstream f(port_file);
        std::getline(f, bootstrap);
        return !bootstrap.empty() || !child->running();
      },
      10s, "the port file", 10ms));
  ASSERT_FALSE(bootstrap.empty()) << "no port file";

  // kcat, a separate client, sees the brokers and topics.
  std::string kcat_log = dir.path() + "/kcat.log";
  auto kcat =
      seg::testing::ChildProcess::Start({"kcat", "-b", bootstrap, "-L", "-m", "5"}, kcat_log);
  SEG_ASSERT_OK(kcat);
  auto kcat_rc = kcat->Wait(15s);
  SEG_ASSERT_OK(kcat_rc);
  EXPECT_EQ(*kcat_rc, 0);
  std::ifstream log(kcat_log);
  std::string metadata((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
  EXPECT_NE(metadata.find("3 brokers"), std::string::npos) << metadata;
  EXPECT_NE(metadata.find("topic \"events\" with 4 partitions"), std::string::npos) << metadata;
  EXPECT_NE(metadata.find("topic \"user-changes\" with 2 partitions"), std::string::npos);

  KafkaOptions options;
  options.bootstrap_servers = bootstrap;
  auto producer = Producer::Create(options);
  SEG_ASSERT_OK(producer);
  for (int i = 0; i < 100; ++i) SEG_ASSERT_OK((*producer)->Produce("user-changes", Key(i), "v"));
  SEG_ASSERT_OK((*producer)->Flush(10s));
  auto consumer = Consumer::Create(options, "local");
  SEG_ASSERT_OK(consumer);
  SEG_ASSERT_OK((*consumer)->Subscribe({"user-changes"}));
  size_t got = 0;
  EXPECT_TRUE(seg::testing::ConsumeUntil(
      **consumer, [&] { return got >= 100; }, 20s, "100 messages on user-changes",
      [&](const Message&) { ++got; }, {.max_messages = 100, .wait = 200ms}));
  EXPECT_EQ(got, 100u);
  SEG_ASSERT_OK((*consumer)->Close());

  child->Signal(SIGTERM);
  auto rc = child->Wait(10s);
  SEG_ASSERT_OK(rc);
  EXPECT_EQ(*rc, 0);
  EXPECT_FALSE(std::filesystem::exists(port_file));
}

// kafka-local --control: the chaos run's fault injection. A broker taken
// down holds deliveries until it is up again; request errors are taken; a
// bad command is refused with the reason, and the cluster keeps serving.
TEST(KafkaLocalTest, ControlFifoTakesTheBrokerDownAndUp) {
  std::string binary = seg::testing::BinaryDir() + "/tools/kafka-local";
  ASSERT_TRUE(std::filesystem::exists(binary)) << binary << " not built";
  seg::testing::TempDir dir;
  const std::string port_file = dir.path() + "/kafka.bootstrap";
  const std::string control = dir.path() + "/kafka.control";
  const std::string log_path = dir.path() + "/kafka-local.log";
  auto child = seg::testing::ChildProcess::Start(
      {binary, "--brokers", "1", "--topics", "t:1", "--port-file", port_file, "--control", control},
      log_path);
  SEG_ASSERT_OK(child);
  auto log_has = [&](const std::string& text) {
    return seg::testing::PollUntil(
        [&] {
          std::ifstream f(log_path);
          std::string all((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
          return all.find(text) != std::string::npos;
        },
        10s, "'" + text + "' in the log", 20ms);
  };
  std::string bootstrap;
  EXPECT_TRUE(seg::testing::PollUntil(
      [&] {
        std::ifstream f(port_file);
        std::getline(f, bootstrap);
        return !bootstrap.empty() || !child->running();
      },
      10s, "the port file", 10ms));
  ASSERT_FALSE(bootstrap.empty()) << "no port file";
  ASSERT_TRUE(std::filesystem::is_fifo(control));
  auto send = [&](const std::string& line) { std::ofstream(control) << line << "\n"; };

  KafkaOptions options;
  options.bootstrap_servers = bootstrap;
  auto producer = Producer::Create(options);
  SEG_ASSERT_OK(producer);
  SEG_ASSERT_OK((*producer)->Produce("t", "k", "before"));
  SEG_ASSERT_OK((*producer)->Flush(10s));

  send("down 1");
  ASSERT_TRUE(log_has("control: down 1"));
  SEG_ASSERT_OK((*producer)->Produce("t", "k", "during"));
  EXPECT_FALSE((*producer)->Flush(1500ms).ok()) << "delivered while the only broker was down";
  send("up 1");
  ASSERT_TRUE(log_has("control: up 1"));
  SEG_EXPECT_OK((*producer)->Flush(30s));

  send("errors produce 2 NOT_LEADER_FOR_PARTITION,_TRANSPORT");
  ASSERT_TRUE(log_has("control: errors produce 2"));
  SEG_ASSERT_OK((*producer)->Produce("t", "k", "after"));
  SEG_EXPECT_OK((*producer)->Flush(30s)) << "retriable errors are retried";
  send("down 7");
  EXPECT_TRUE(log_has("'down 7' refused: no broker 7"));
  send("errors produce 1 NO_SUCH_ERROR");
  EXPECT_TRUE(log_has("refused: unknown error NO_SUCH_ERROR"));

  child->Signal(SIGTERM);
  auto rc = child->Wait(10s);
  SEG_ASSERT_OK(rc);
  EXPECT_EQ(*rc, 0);
  EXPECT_FALSE(std::filesystem::exists(control));
}

}  // namespace
}  // namespace seg::kafka
