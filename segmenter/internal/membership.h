// Membership bookkeeping kept in family `s`: what a user entered and exited
// compared with the last result, and which (segment, day) HyperLogLog adds
// are still needed. A user already counted in a segment for a day cannot
// change that day's HyperLogLog, so that PFADD is not sent again.
//
// The state keeps "segment:yyyymmdd" for today and yesterday only (results
// arrive around midnight from both days); older entries are dropped, so the
// state stays a few hundred bytes. Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "proto/segmentation.pb.h"

namespace seg::segmenter {

// Qualifier of the one state cell in family `s`.
inline constexpr std::string_view kStateQualifier = "m";

struct MembershipChange {
  std::vector<std::string> entered;   // in now, not before (sorted)
  std::vector<std::string> exited;    // before, not now (sorted)
  std::vector<std::string> to_count;  // current segments not yet counted for `day`
  bool changed() const { return !entered.empty() || !exited.empty(); }
};

// `current` must be sorted and unique.
MembershipChange DiffMembership(const SegmentState& previous,
                                const std::vector<std::string>& current, int32_t day);

// The state to store after this segmentation: current segments, and the
// counted set pruned to `day` and the day before, plus what was counted now.
SegmentState NextState(const SegmentState& previous, const std::vector<std::string>& current,
                       const MembershipChange& change, int32_t day);

// "segment:yyyymmdd".
std::string CountedKey(std::string_view segment, int32_t day);

}  // namespace seg::segmenter
