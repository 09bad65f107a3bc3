#include "segmenter/internal/read_policy.h"

#include <algorithm>

namespace seg::segmenter {

FollowUpRule::FollowUpRule(const NodeOptions& options)
    : adaptive_(options.read_policy == NodeOptions::ReadPolicy::kAdaptive),
      delay_ms_(options.read_delay_ms),
      min_ms_(options.read_delay_min_ms),
      max_ms_(std::max(options.read_delay_min_ms, options.read_delay_max_ms)),
      window_ms_(options.read_delay_ms) {}

int64_t FollowUpRule::FollowUpDueMs(int64_t now_ms, int64_t last_read_ms,
                                    int64_t oldest_acked_ms) const {
  if (!adaptive_) return last_read_ms + delay_ms_;
  const int64_t acked = oldest_acked_ms > 0 ? std::min(oldest_acked_ms, now_ms) : now_ms;
  return std::clamp(acked + delay_ms_, last_read_ms + min_ms_, last_read_ms + max_ms_);
}

}  // namespace seg::segmenter
