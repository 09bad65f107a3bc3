// The parts both segmenter integration suites run against: the node
// in-process (segmenter_node_test) and seg-segmenter binaries
// (segmenter_process_test). A 3-broker librdkafka mock cluster with
// user-changes and segmentation-results, a local redis-server, the project's
// Thrift2 store server, a notice producer and a results reader that has
// joined its group before the test starts. Derived fixtures add segmenters;
// their SetUp() calls this one first, their TearDown() stops segmenters and
// then calls this one. Header-only: the suites link the libraries it uses.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/event_codec.h"
#include "common/kafka.h"
#include "proto/events.pb.h"
#include "store/server/store_server.h"
#include "store/store.h"
#include "tests/harness/kafka_cluster.h"
#include "tests/harness/poll.h"
#include "tests/harness/process.h"
#include "tests/harness/redis_server.h"
#include "tests/harness/segmenter_group.h"
#include "tests/harness/status_matchers.h"
#include "tests/served_store.h"

namespace seg::testing {

// What differs between the suites' parts.
struct SegmenterParts {
  int notice_partitions = 4;
  bool redis_persistence = false;          // for tests that restart redis-server
  std::string reader_assignment_strategy;  // "" = ApplyTestAssignmentStrategy's
};

class SegmenterFixture : public ::testing::Test {
 protected:
  using Parts = SegmenterParts;
  explicit SegmenterFixture(Parts parts = {}) : parts_(std::move(parts)) {}

  void SetUp() override {
    auto kafka = MockKafkaCluster::Start(3);
    SEG_ASSERT_OK(kafka);
    kafka_ = std::move(*kafka);
    SEG_ASSERT_OK(kafka_->CreateTopic("user-changes", parts_.notice_partitions));
    SEG_ASSERT_OK(kafka_->CreateTopic("segmentation-results", 4));
    LocalRedisOptions redis_options;
    redis_options.persistence = parts_.redis_persistence;
    auto redis = LocalRedis::Start(redis_options);
    SEG_ASSERT_OK(redis);
    redis_ = std::move(*redis);

    auto served = ServeStore(dir_.path() + "/store");
    SEG_ASSERT_OK(served);
    server_ = std::move(served->server);
    store_ = std::move(served->client);

    auto producer = kafka::Producer::Create(kafka_->ClientOptions("test-producer"));
    SEG_ASSERT_OK(producer);
    producer_ = std::move(*producer);
    kafka::KafkaOptions reader = GroupMemberOptions("reader");
    if (!parts_.reader_assignment_strategy.empty()) {
      reader.properties["partition.assignment.strategy"] = parts_.reader_assignment_strategy;
    }
    ASSERT_NO_FATAL_FAILURE(JoinResultsReader(reader, /*expect_no_results=*/true, &results_));
  }

  void TearDown() override {
    if (results_) results_->Close().IgnoreError();
    if (offsets_) offsets_->Close().IgnoreError();
  }

  // Options of a consumer group member that notices a lost member quickly:
  // the mock cluster rebalances only after about one session timeout.
  kafka::KafkaOptions GroupMemberOptions(const std::string& client_id) const {
    kafka::KafkaOptions options = kafka_->ClientOptions(client_id);
    options.properties["session.timeout.ms"] = "6000";
    options.properties["heartbeat.interval.ms"] = "500";
    ApplyTestAssignmentStrategy(&options);
    return options;
  }

  // The cell ingest writes for `e` (family e).
  static store::Cell EventCell(const Event& e) {
    store::Cell cell;
    cell.family = "e";
    EncodeEventQualifier(e.event_time_ms(), EventDigest(e), e.type(), &cell.qualifier);
    cell.timestamp = e.event_time_ms();
    SEG_EXPECT_OK(EncodeEventValue(e, &cell.value)) << "event " << e.event_id();
    return cell;
  }

  // A cat page view of `user` at `time_ms` (the shipped loves_cats script counts them).
  static Event CatPageView(const std::string& user, int64_t time_ms, const std::string& id) {
    Event e;
    e.set_user_id(user);
    e.set_event_time_ms(time_ms);
    e.set_type(PAGE_VIEW);
    e.set_url("https://pets.example.com/cats/" + id);
    e.set_event_id(user + "-" + id);
    return e;
  }

  // Produces a change notice for `user` (not flushed).
  void ProduceNotice(const std::string& user, int64_t acked_at_ms, int64_t newest_event_ms,
                     uint32_t count = 1) {
    ChangeNotice n;
    n.set_user_id(user);
    n.set_acked_at_ms(acked_at_ms);
    n.set_newest_event_time_ms(newest_event_ms);
    n.set_event_count(count);
    SEG_ASSERT_OK(producer_->Produce("user-changes", user, n.SerializeAsString()));
  }

  // Sum of the segmenter group's committed offsets on user-changes, read by
  // a consumer that never joins the group; -1 on error.
  int64_t CommittedNotices() {
    return seg::testing::CommittedNotices(*kafka_, parts_.notice_partitions, &offsets_);
  }

  // Until the group has committed exactly `notices`; `between` runs between
  // two reads of the offsets (default: 100 ms apart).
  ::testing::AssertionResult WaitCommitted(int64_t notices, std::chrono::milliseconds timeout,
                                           const std::function<void()>& between = nullptr) {
    int64_t committed = -1;
    auto result = PollUntil(
        [&] {
          if (between) between();
          return (committed = CommittedNotices()) == notices;
        },
        timeout, std::to_string(notices) + " committed notices",
        between ? std::chrono::milliseconds(0) : std::chrono::milliseconds(100));
    if (!result) result << "; committed " << committed;
    return result;
  }

  std::string RedisGet(const std::vector<std::string>& command) {
    auto reply = RedisCommandForTest(redis_->port(), command);
    return reply.ok() ? *reply : "";
  }

  const Parts parts_;
  TempDir dir_;
  std::unique_ptr<MockKafkaCluster> kafka_;
  std::unique_ptr<LocalRedis> redis_;
  std::unique_ptr<store::StoreServer> server_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<kafka::Producer> producer_;
  std::unique_ptr<kafka::Consumer> results_;
  std::unique_ptr<kafka::Consumer> offsets_;
};

}  // namespace seg::testing
