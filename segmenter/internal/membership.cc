#include "segmenter/internal/membership.h"

#include <algorithm>
#include <iterator>

#include "segmenter/segmenter.h"
#include "stats/stats_writer.h"

namespace seg::segmenter {
namespace {

// Day arithmetic is the stats writer's, so the state and the HLL keys agree.
int32_t PreviousDay(int32_t day) {
  return static_cast<int32_t>(
      stats::EpochDaysToDay(stats::DayToEpochDays(static_cast<stats::Day>(day)) - 1));
}

}  // namespace

int32_t DayOf(int64_t epoch_ms) { return static_cast<int32_t>(stats::DayFromUnixMs(epoch_ms)); }

std::string CountedKey(std::string_view segment, int32_t day) {
  std::string key(segment);
  key += ':';
  key += std::to_string(day);
  return key;
}

MembershipChange DiffMembership(const SegmentState& previous,
                                const std::vector<std::string>& current, int32_t day) {
  MembershipChange change;
  std::vector<std::string> before(previous.segments().begin(), previous.segments().end());
  std::sort(before.begin(), before.end());
  std::set_difference(current.begin(), current.end(), before.begin(), before.end(),
                      std::back_inserter(change.entered));
  std::set_difference(before.begin(), before.end(), current.begin(), current.end(),
                      std::back_inserter(change.exited));
  for (const auto& segment : current) {
    std::string key = CountedKey(segment, day);
    if (std::find(previous.counted().begin(), previous.counted().end(), key) ==
        previous.counted().end()) {
      change.to_count.push_back(segment);
    }
  }
  return change;
}

SegmentState NextState(const SegmentState& previous, const std::vector<std::string>& current,
                       const MembershipChange& change, int32_t day) {
  SegmentState next;
  for (const auto& s : current) next.add_segments(s);
  const std::string today = ":" + std::to_string(day);
  const std::string yesterday = ":" + std::to_string(PreviousDay(day));
  auto ends_with = [](const std::string& s, const std::string& suffix) {
    return s.size() >= suffix.size() &&
           s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  for (const auto& key : previous.counted()) {
    if (ends_with(key, today) || ends_with(key, yesterday)) next.add_counted(key);
  }
  for (const auto& segment : change.to_count) next.add_counted(CountedKey(segment, day));
  return next;
}

}  // namespace seg::segmenter
