// Clock: the time source for everything that compares or stores times, so
// tests can drive time with FakeClock instead of sleeping. Thread-safe.
#pragma once

#include <atomic>
#include <cstdint>

#include "common/status.h"

namespace seg {

class Config;

class Clock {
 public:
  virtual ~Clock() = default;
  // Wall-clock Unix epoch milliseconds (event times, acknowledgements).
  virtual int64_t NowMs() const = 0;
  // Monotonic microseconds for durations and deadlines.
  virtual int64_t MonotonicUs() const = 0;

  // The process-wide real clock.
  static Clock* Real();

  // Shifts the real clock's NowMs() by `offset_ms` in this process; its
  // MonotonicUs() is untouched. For tests of clock skew between machines
  // (the chaos run puts seg-ingest's clock seconds off the segmenters').
  static void SetRealOffsetMs(int64_t offset_ms);
  static int64_t RealOffsetMs();
};

// Reads `clock.offset_ms` (default 0, at most one day either way) and
// applies it with Clock::SetRealOffsetMs: the key seg-ingest and
// seg-segmenter read at startup.
Status ApplyClockOffset(Config& config);

// A clock that moves only when told to.
class FakeClock : public Clock {
 public:
  explicit FakeClock(int64_t now_ms = 1'700'000'000'000) : now_ms_(now_ms), mono_us_(0) {}
  int64_t NowMs() const override { return now_ms_.load(); }
  int64_t MonotonicUs() const override { return mono_us_.load(); }
  void AdvanceMs(int64_t ms) {
    now_ms_ += ms;
    mono_us_ += ms * 1000;
  }
  void SetNowMs(int64_t ms) { now_ms_ = ms; }

 private:
  std::atomic<int64_t> now_ms_;
  std::atomic<int64_t> mono_us_;
};

}  // namespace seg
