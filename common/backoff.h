// Exponential backoff with full jitter for retrying lost connections.
//
// Delay n is uniform in [c/2, c] with c = min(max, initial * 2^n) ("equal
// jitter"): it always waits at least half the ceiling, and the random half
// spreads reconnect storms when many clients lose the same server. Reset() after a
// success. Not thread-safe: one per retry loop.
//
// Cheap to construct: callers build one per call (the store clients do, per
// RPC), and most never retry. std::random_device runs cpuid, a VM exit on
// virtual machines (~5% of ingest CPU when it ran per call), so it runs
// once per process, and the generator is seeded on the first delay.
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <random>

namespace seg {

struct BackoffOptions {
  int64_t initial_ms = 50;  // first delay ceiling
  int64_t max_ms = 5000;    // cap, so a recovered server is noticed quickly
};

class Backoff {
 public:
  explicit Backoff(BackoffOptions options = {}, uint64_t seed = DefaultSeed())
      : options_(options), seed_(seed) {}

  // Next delay in milliseconds; grows until the cap.
  int64_t NextDelayMs() {
    int64_t ceiling = options_.initial_ms << (attempt_ < 20 ? attempt_ : 20);
    if (ceiling > options_.max_ms || ceiling <= 0) ceiling = options_.max_ms;
    ++attempt_;
    if (!rng_) rng_.emplace(seed_);
    std::uniform_int_distribution<int64_t> dist(ceiling / 2, ceiling);
    return dist(*rng_);
  }
  int attempts() const { return attempt_; }
  void Reset() { attempt_ = 0; }

  // Distinct per Backoff (so clients that fail together spread out), random
  // per process.
  static uint64_t DefaultSeed() {
    static const uint64_t base = std::random_device{}();
    static std::atomic<uint64_t> n{0};
    return base ^ (0x9E3779B97F4A7C15ull * (n.fetch_add(1, std::memory_order_relaxed) + 1));
  }

 private:
  BackoffOptions options_;
  uint64_t seed_;
  std::optional<std::mt19937_64> rng_;
  int attempt_ = 0;
};

}  // namespace seg
