// Exponential backoff with full jitter for retrying lost connections.
//
// Delay n is uniform in [c/2, c] with c = min(max, initial * 2^n) ("equal
// jitter"): it always waits at least half the ceiling, and the random half
// spreads reconnect storms when many clients lose the same server. Reset() after a
// success. Not thread-safe: one per retry loop.
#pragma once

#include <cstdint>
#include <random>

namespace seg {

struct BackoffOptions {
  int64_t initial_ms = 50;  // first delay ceiling
  int64_t max_ms = 5000;    // cap, so a recovered server is noticed quickly
};

class Backoff {
 public:
  explicit Backoff(BackoffOptions options = {}, uint64_t seed = std::random_device{}())
      : options_(options), rng_(seed) {}

  // Next delay in milliseconds; grows until the cap.
  int64_t NextDelayMs() {
    int64_t ceiling = options_.initial_ms << (attempt_ < 20 ? attempt_ : 20);
    if (ceiling > options_.max_ms || ceiling <= 0) ceiling = options_.max_ms;
    ++attempt_;
    std::uniform_int_distribution<int64_t> dist(ceiling / 2, ceiling);
    return dist(rng_);
  }
  int attempts() const { return attempt_; }
  void Reset() { attempt_ = 0; }

 private:
  BackoffOptions options_;
  std::mt19937_64 rng_;
  int attempt_ = 0;
};

}  // namespace seg
