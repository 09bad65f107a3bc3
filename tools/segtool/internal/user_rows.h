// Reading users as the segmenter node does: the newest events of the history
// window from family `e` and the membership cell from family `s`, in one
// multi-get per batch of users.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "common/event.h"
#include "common/status.h"
#include "proto/segmentation.pb.h"
#include "segmenter/segmenter.h"
#include "store/store.h"

namespace seg::segtool::internal {

struct UserHistory {
  std::string user_id;
  store::RowResult events_row;    // owns the bytes `events` point into
  std::vector<EventView> events;  // time order
  int64_t bad_cells = 0;          // cells that did not decode
  SegmentState state;             // last stored membership
  bool has_state = false;
};

// Fills `out` (one per user, same order) with one multi-get.
Status ReadUsers(store::Store& store, const segmenter::NodeOptions& node,
                 std::span<const std::string> users, int64_t now_ms, std::vector<UserHistory>* out);

// Builds a history from a scanned row holding both families: events older
// than the history window are dropped and only the newest
// max_events_per_user kept, as the node reads them.
void HistoryFromRow(const segmenter::NodeOptions& node, int64_t now_ms, store::RowResult row,
                    UserHistory* out);

// "2026-11-23 17:10:00.123Z page_view https://..." or "... search q=\"...\"".
std::string DescribeEvent(const EventView& event);
std::string EventTypeName(int32_t type);
std::string FormatTimeMs(int64_t ms);

}  // namespace seg::segtool::internal
