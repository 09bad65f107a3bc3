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
#include <utility>
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

// A change of stats epoch (Redis lost data, see SegmentState.counted_epoch):
// the marks of `previous` were counted into sketches that are gone. Moves
// them out of `previous`, so that DiffMembership counts every current
// segment again, and returns them for RecountVoidMarks.
std::vector<std::string> TakeVoidMarks(SegmentState* previous);

// Appends the void marks to `adds` as (segment, day) to count again (a user
// who left a segment since still belongs in that day's sketch) and keeps
// those of `day` and the day before in `next`, as NextState keeps marks.
// Marks that are not "segment:yyyymmdd" are dropped.
void RecountVoidMarks(const std::vector<std::string>& void_marks, int32_t day, SegmentState* next,
                      std::vector<std::pair<std::string, int32_t>>* adds);

// The current membership once failures are accounted for: what the scripts
// that ran said, plus the previous segments among `failed_segments` (the
// segments of scripts that failed now). All lists sorted and unique.
std::vector<std::string> KeepFailedSegments(const SegmentState& previous,
                                            const std::vector<std::string>& evaluated,
                                            const std::vector<std::string>& failed_segments);

// A result's seq: max(previous + 1, segmented_at_ms * 1000), strictly
// increasing per user while clocks move forward (also across a forget, which
// loses `previous`: the next result's ms is later).
int64_t NextSeq(int64_t previous_seq, int64_t segmented_at_ms);

// Due-table rows (NodeOptions::due_table): key = 4-byte big-endian
// user-changes partition, 8-byte big-endian due time (ms), user id. Rows of
// one partition sort by due time, so its owner scans [prefix, prefix + now].
// 100M users with one due row each: ~12 + id bytes per key (HBase adds its
// cell overhead, ~40 bytes), about 6 GB before compression.
std::string DueRowKey(int32_t partition, int64_t due_ms, std::string_view user_id);
// The first key of `partition`'s rows due at or after `due_ms` (scan bounds).
std::string DueScanBound(int32_t partition, int64_t due_ms);
// False when `key` is not a due row key (shorter than 13 bytes).
bool ParseDueRowKey(std::string_view key, int32_t* partition, int64_t* due_ms,
                    std::string_view* user_id);

}  // namespace seg::segmenter
