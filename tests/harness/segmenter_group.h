// The Kafka side every segmenter suite watches (segmenter_node_test,
// segmenter_process_test, membership_*_test, stats_loss_test): a partner
// reading segmentation-results, and the segmenter group's committed offsets
// on user-changes. Header-only.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "common/kafka.h"
#include "tests/harness/kafka_cluster.h"
#include "tests/harness/poll.h"
#include "tests/harness/status_matchers.h"

namespace seg::testing {

// Sets `*out` to a member of group `partner` subscribed to
// segmentation-results, once the group assigned it partitions (within 30 s).
// Join before anything else runs: a reader first polled tens of seconds
// after subscribing sometimes waited out a whole read deadline for its
// assignment, and the tests' deadlines should not pay for it. Every poll
// must succeed; with `expect_no_results`, nothing may arrive meanwhile.
// Use with ASSERT_NO_FATAL_FAILURE.
inline void JoinResultsReader(const kafka::KafkaOptions& options, bool expect_no_results,
                              std::unique_ptr<kafka::Consumer>* out) {
  auto assigned = std::make_shared<std::atomic<bool>>(false);
  auto results =
      kafka::Consumer::Create(options, "partner", [assigned](const kafka::RebalanceEvent& e) {
        if (e.kind == kafka::RebalanceEvent::Kind::kAssigned) *assigned = true;
      });
  SEG_ASSERT_OK(results);
  *out = std::move(*results);
  SEG_ASSERT_OK((*out)->Subscribe({"segmentation-results"}));
  ASSERT_TRUE(PollUntil(
      [&] {
        auto polled = (*out)->PollBatch(100, std::chrono::milliseconds(100));
        SEG_EXPECT_OK(polled);
        if (expect_no_results) {
          EXPECT_TRUE(!polled.ok() || polled->empty()) << "results before any segmenter ran";
        }
        return *assigned || ::testing::Test::HasFailure();
      },
      std::chrono::seconds(30), "the results reader's assignment", std::chrono::milliseconds(0)));
  ASSERT_TRUE(*assigned);
}

// The sum of group `group`'s committed offsets on user-changes partitions
// 0..partitions-1, read by `*reader` (created on first use; it never joins
// the group); -1 on error.
inline int64_t CommittedNotices(const MockKafkaCluster& kafka, int partitions,
                                std::unique_ptr<kafka::Consumer>* reader,
                                const std::string& group = "segmenter") {
  if (!*reader) {
    auto c = kafka::Consumer::Create(kafka.ClientOptions("offsets"), group);
    if (!c.ok()) return -1;
    *reader = std::move(*c);
  }
  std::vector<kafka::TopicPartition> parts;
  for (int32_t p = 0; p < partitions; ++p) parts.push_back({"user-changes", p});
  auto committed = (*reader)->Committed(parts, std::chrono::seconds(5));
  if (!committed.ok()) return -1;
  int64_t sum = 0;
  for (const auto& [tp, offset] : *committed) sum += std::max<int64_t>(offset, 0);
  return sum;
}

}  // namespace seg::testing
