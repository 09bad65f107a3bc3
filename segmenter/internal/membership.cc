#include "segmenter/internal/membership.h"

#include <algorithm>
#include <iterator>

#include "segmenter/segmenter.h"
#include "stats/writer/stats_writer.h"

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

std::vector<std::string> TakeVoidMarks(SegmentState* previous) {
  std::vector<std::string> marks(previous->counted().begin(), previous->counted().end());
  previous->clear_counted();
  return marks;
}

void RecountVoidMarks(const std::vector<std::string>& void_marks, int32_t day, SegmentState* next,
                      std::vector<std::pair<std::string, int32_t>>* adds) {
  const int32_t yesterday = PreviousDay(day);
  for (const std::string& mark : void_marks) {
    const size_t colon = mark.rfind(':');
    if (colon == std::string::npos || colon == 0) continue;
    auto parsed = stats::ParseDay(std::string_view(mark).substr(colon + 1));
    if (!parsed.ok()) continue;
    const int32_t mark_day = static_cast<int32_t>(*parsed);
    adds->emplace_back(mark.substr(0, colon), mark_day);
    if ((mark_day == day || mark_day == yesterday) &&
        std::find(next->counted().begin(), next->counted().end(), mark) == next->counted().end()) {
      next->add_counted(mark);
    }
  }
}

std::vector<std::string> KeepFailedSegments(const SegmentState& previous,
                                            const std::vector<std::string>& evaluated,
                                            const std::vector<std::string>& failed_segments) {
  if (failed_segments.empty() || previous.segments().empty()) return evaluated;
  std::vector<std::string> kept;
  for (const auto& s : previous.segments()) {
    if (std::binary_search(failed_segments.begin(), failed_segments.end(), s)) kept.push_back(s);
  }
  if (kept.empty()) return evaluated;
  std::sort(kept.begin(), kept.end());
  std::vector<std::string> out;
  std::set_union(evaluated.begin(), evaluated.end(), kept.begin(), kept.end(),
                 std::back_inserter(out));
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

int64_t NextSeq(int64_t previous_seq, int64_t segmented_at_ms) {
  return std::max(previous_seq + 1, segmented_at_ms * 1000);
}

namespace {
void PutBigEndian(uint64_t v, int bytes, std::string* out) {
  for (int i = bytes - 1; i >= 0; --i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
uint64_t GetBigEndian(std::string_view in, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v = (v << 8) | static_cast<unsigned char>(in[i]);
  return v;
}
}  // namespace

std::string DueScanBound(int32_t partition, int64_t due_ms) {
  std::string key;
  key.reserve(12);
  PutBigEndian(static_cast<uint32_t>(partition), 4, &key);
  // Due times are positive epoch ms, so unsigned order is time order.
  PutBigEndian(static_cast<uint64_t>(std::max<int64_t>(due_ms, 0)), 8, &key);
  return key;
}

std::string DueRowKey(int32_t partition, int64_t due_ms, std::string_view user_id) {
  std::string key = DueScanBound(partition, due_ms);
  key.append(user_id);
  return key;
}

bool ParseDueRowKey(std::string_view key, int32_t* partition, int64_t* due_ms,
                    std::string_view* user_id) {
  if (key.size() <= 12) return false;
  *partition = static_cast<int32_t>(GetBigEndian(key, 4));
  *due_ms = static_cast<int64_t>(GetBigEndian(key.substr(4), 8));
  *user_id = key.substr(12);
  return true;
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
