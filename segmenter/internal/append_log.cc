#include "segmenter/internal/append_log.h"

#include <algorithm>

namespace seg::segmenter {

void AppendLog::Record(int32_t partition, int64_t high, int64_t tick) {
  if (high < 0) return;  // nothing fetched yet
  std::deque<Sample>& samples = samples_[partition];
  // An equal or lower watermark tells nothing new: the earlier tick stays the answer.
  if (!samples.empty() && high <= samples.back().high) return;
  samples.push_back(Sample{high, tick});
  if (samples.size() > kMaxSamples) samples.pop_front();
}

int64_t AppendLog::AppendedBy(int32_t partition, int64_t offset, int64_t received_tick) const {
  auto it = samples_.find(partition);
  if (it == samples_.end()) return received_tick;
  const std::deque<Sample>& samples = it->second;
  auto first = std::upper_bound(samples.begin(), samples.end(), offset,
                                [](int64_t o, const Sample& s) { return o < s.high; });
  if (first == samples.end()) return received_tick;
  return std::min(first->tick, received_tick);
}

}  // namespace seg::segmenter
