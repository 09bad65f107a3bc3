// ConsumeUntil: the one "read a Kafka topic until what the test waits for
// arrived" loop, on top of PollUntil.
//
//   std::vector<ChangeNotice> got;
//   EXPECT_TRUE(ConsumeUntil(
//       *consumer, [&] { return got.size() >= 5; }, 30s, "5 notices",
//       [&](const kafka::Message& m) { got.emplace_back().ParseFromArray(...); }));
//   -> timed out after 30000 ms waiting for 5 notices (3 messages consumed)
//
// Header-only; every test target that links seg_common can include it.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <cstddef>
#include <string_view>

#include "common/kafka.h"
#include "tests/harness/poll.h"

namespace seg::testing {

// How each poll step reads: at most `max_messages`, blocking up to `wait`.
struct ConsumePace {
  size_t max_messages = 1000;
  std::chrono::milliseconds wait{100};
};

// Polls `consumer`, handing every message to `on_message`, until `done()`
// holds (checked around each poll) or `timeout` passed. Stops at the first
// poll error and early on a fatal gtest failure in `on_message`. Fails
// naming `what` and how many messages were consumed; a caller reading what
// arrives in a window (expecting the timeout) ignores the result.
template <typename Done, typename OnMessage>
::testing::AssertionResult ConsumeUntil(kafka::Consumer& consumer, Done&& done,
                                        std::chrono::milliseconds timeout, std::string_view what,
                                        OnMessage&& on_message, ConsumePace pace = {}) {
  size_t consumed = 0;
  Status error;
  ::testing::AssertionResult waited = PollUntil(
      [&] {
        if (done()) return true;
        auto batch = consumer.PollBatch(pace.max_messages, pace.wait);
        if (!batch.ok()) {
          error = batch.status();
          return true;
        }
        for (const kafka::Message& m : *batch) {
          on_message(m);
          ++consumed;
          if (::testing::Test::HasFatalFailure()) break;
        }
        return done();
      },
      timeout, what, std::chrono::milliseconds(0));
  if (!error.ok()) {
    return ::testing::AssertionFailure()
           << "polling for " << what << " failed after " << consumed << " messages: " << error;
  }
  if (!waited) waited << " (" << consumed << " messages consumed)";
  return waited;
}

}  // namespace seg::testing
