// PollUntil: the one way tests wait for something another thread or process
// does. No sleeps as synchronisation: poll a condition with a deadline, and
// say what was awaited when it never came.
//
//   ASSERT_TRUE(PollUntil([&] { return node->stats().notices >= 100; }, 30s,
//                         "100 notices consumed"))
//       << "node consumed " << node->stats().notices;
//   -> timed out after 30000 ms waiting for 100 notices consumed
//      node consumed 40
//
// Header-only; every test target can include it.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <string_view>
#include <thread>
#include <type_traits>

namespace seg::testing {

// Calls `done()` until it returns true or `timeout` has passed, sleeping
// `interval` between calls (0 when `done` blocks by itself, e.g. polls a
// Kafka consumer for a while). `done` is called at least once, and once more
// at the deadline. Stops early when `done` raised a fatal gtest failure (an
// ASSERT_* in a helper it called). Fails naming `what`.
template <typename Predicate>
::testing::AssertionResult PollUntil(
    Predicate&& done, std::chrono::milliseconds timeout, std::string_view what,
    std::chrono::milliseconds interval = std::chrono::milliseconds(10)) {
  static_assert(std::is_convertible_v<std::invoke_result_t<Predicate&>, bool>,
                "PollUntil's predicate returns bool");
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  const auto deadline = start + timeout;
  const bool had_fatal = ::testing::Test::HasFatalFailure();
  while (true) {
    if (done()) return ::testing::AssertionSuccess();
    if (!had_fatal && ::testing::Test::HasFatalFailure()) {
      return ::testing::AssertionFailure() << "stopped waiting for " << what << ": fatal failure";
    }
    const auto now = Clock::now();
    if (now >= deadline) break;
    std::this_thread::sleep_for(std::min<Clock::duration>(interval, deadline - now));
  }
  return ::testing::AssertionFailure()
         << "timed out after " << timeout.count() << " ms waiting for " << what;
}

}  // namespace seg::testing
