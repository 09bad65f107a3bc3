// FollowUpRule: when a polled user that was read lately is read again
// (NodeOptions::read_policy; docs/ARCHITECTURE.md, "Read policy").
//
// Under both the leading-edge and the adaptive policy a user not read
// within window_ms() (read_delay_ms), with nothing queued, is read at once;
// a user read within it waits for one follow-up read that the notices
// arriving meanwhile join. This rule says when that follow-up is due:
//   leading edge: at the last read + read_delay_ms, whatever the notice.
//   adaptive: read_delay_ms after the write of its oldest waiting notice was
//     acknowledged (acked_at_ms, the ingester's clock), clamped to
//     [last read + read_delay_min_ms, last read + read_delay_max_ms].
// The adaptive delay follows what the node observes of each notice: one
// that arrives young (the usual 10-50 ms of transport) waits out the rest
// of its budget and so coalesces with the rest of its burst; one that
// arrived late (a transport or broker stall, the node behind) has spent its
// budget already and is read read_delay_min_ms after the last read. Every
// notice's wait is thus sized to its own age instead of the last read's,
// which on the bursty trace buys a lower p99 than a fixed follow-up delay
// at as much coalescing or more (BENCHMARKS.md, "Event-to-result latency"):
// the p99 is the notices with a long transport lag, and those no longer
// wait a full delay on top.
// A clock far ahead or behind moves a follow-up within the bounds only:
// it never decides a skip (the clock-free rule in append_log.h does).
//
// Pure functions of their arguments (the caller passes its clock's now).
#ifndef SEG_SEGMENTER_INTERNAL_READ_POLICY_H_
#define SEG_SEGMENTER_INTERNAL_READ_POLICY_H_

#include <cstdint>

#include "segmenter/segmenter.h"

namespace seg::segmenter {

class FollowUpRule {
 public:
  explicit FollowUpRule(const NodeOptions& options);

  // A user whose last read began less than this long ago is in a burst and
  // waits for a follow-up; the node keeps read starts at least this long.
  int64_t window_ms() const { return window_ms_; }

  // When the follow-up read of a user whose last read began at
  // `last_read_ms` is due, given the acknowledgement time of its oldest
  // notice waiting for that read (0 or later than `now_ms`: taken as now).
  int64_t FollowUpDueMs(int64_t now_ms, int64_t last_read_ms, int64_t oldest_acked_ms) const;

 private:
  bool adaptive_;
  int64_t delay_ms_;
  int64_t min_ms_;
  int64_t max_ms_;
  int64_t window_ms_;
};

}  // namespace seg::segmenter

#endif  // SEG_SEGMENTER_INTERNAL_READ_POLICY_H_
