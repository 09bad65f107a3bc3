#include "common/clock.h"

#include <glog/logging.h>

#include <chrono>
#include <string>

#include "common/config.h"

namespace seg {
namespace {
std::atomic<int64_t> g_offset_ms{0};

class RealClock : public Clock {
 public:
  int64_t NowMs() const override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
               .count() +
           g_offset_ms.load(std::memory_order_relaxed);
  }
  int64_t MonotonicUs() const override {
    return std::chrono::duration_cast<std::chrono::microseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
};
}  // namespace

Clock* Clock::Real() {
  static RealClock clock;
  return &clock;
}

void Clock::SetRealOffsetMs(int64_t offset_ms) { g_offset_ms.store(offset_ms); }
int64_t Clock::RealOffsetMs() { return g_offset_ms.load(); }

Status ApplyClockOffset(Config& config) {
  int64_t offset_ms = 0;
  SEG_RETURN_IF_ERROR(config.Get("clock.offset_ms", &offset_ms));
  constexpr int64_t kDayMs = 86'400'000;
  if (offset_ms < -kDayMs || offset_ms > kDayMs) {
    return InvalidArgumentError(config.source() + ": clock.offset_ms " +
                                std::to_string(offset_ms) + " outside [-86400000, 86400000]");
  }
  Clock::SetRealOffsetMs(offset_ms);
  if (offset_ms != 0) LOG(WARNING) << "clock.offset_ms: this process's clock is " << offset_ms
                                   << " ms off the machine's (a test setting)";
  return Status::OK();
}

}  // namespace seg
