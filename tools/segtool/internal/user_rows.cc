#include "tools/segtool/internal/user_rows.h"

#include <ctime>

#include "common/event_codec.h"
#include "segmenter/internal/membership.h"

namespace seg::segtool::internal {
namespace {

constexpr int64_t kDayMs = 86'400'000;

void DecodeEvents(const store::RowResult& row, std::string_view family, int64_t min_time_ms,
                  int32_t max_events, UserHistory* out) {
  out->events.clear();
  for (store::CellView cell : row) {
    if (cell.family != family) continue;
    EventView view;
    if (!DecodeEventCell(cell.qualifier, cell.value, &view).ok()) {
      ++out->bad_cells;
      continue;
    }
    if (view.time_ms < min_time_ms) continue;
    out->events.push_back(std::move(view));
  }
  // Cells come in qualifier order = time order; keep the newest.
  if (max_events > 0 && out->events.size() > static_cast<size_t>(max_events)) {
    out->events.erase(out->events.begin(), out->events.end() - max_events);
  }
}

void ParseState(const store::RowResult& row, std::string_view family, UserHistory* out) {
  out->has_state = false;
  out->state.Clear();
  for (store::CellView cell : row) {
    if (cell.family != family || cell.qualifier != segmenter::kStateQualifier) continue;
    out->has_state =
        out->state.ParseFromArray(cell.value.data(), static_cast<int>(cell.value.size()));
    if (!out->has_state) out->state.Clear();
    return;
  }
}

}  // namespace

Status ReadUsers(store::Store& store, const segmenter::NodeOptions& node,
                 std::span<const std::string> users, int64_t now_ms,
                 std::vector<UserHistory>* out) {
  std::vector<store::GetRequest> gets(users.size() * 2);
  for (size_t i = 0; i < users.size(); ++i) {
    store::GetRequest& events = gets[2 * i];
    events.row = users[i];
    events.families = {node.events_family};
    events.time_range.min = now_ms - int64_t{node.history_days} * kDayMs;
    events.newest_cells = node.max_events_per_user;
    store::GetRequest& state = gets[2 * i + 1];
    state.row = users[i];
    state.families = {node.state_family};
    state.qualifiers = {std::string(segmenter::kStateQualifier)};
  }
  std::vector<store::RowResult> rows;
  SEG_RETURN_IF_ERROR(store.MultiGet(node.table, gets, &rows).WithContext("store multi-get"));
  out->resize(users.size());
  for (size_t i = 0; i < users.size(); ++i) {
    UserHistory& h = (*out)[i];
    h.user_id = users[i];
    h.bad_cells = 0;
    h.events_row = std::move(rows[2 * i]);
    DecodeEvents(h.events_row, node.events_family, 0, 0, &h);
    ParseState(rows[2 * i + 1], node.state_family, &h);
  }
  return Status::OK();
}

void HistoryFromRow(const segmenter::NodeOptions& node, int64_t now_ms, store::RowResult row,
                    UserHistory* out) {
  out->user_id = row.row();
  out->bad_cells = 0;
  out->events_row = std::move(row);
  DecodeEvents(out->events_row, node.events_family, now_ms - int64_t{node.history_days} * kDayMs,
               node.max_events_per_user, out);
  ParseState(out->events_row, node.state_family, out);
}

std::string EventTypeName(int32_t type) {
  std::string_view name = seg::EventTypeName(type);  // proto/events.proto's names
  if (!name.empty()) return std::string(name);
  return "type_" + std::to_string(type);
}

std::string FormatTimeMs(int64_t ms) {
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02d %02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(ms % 1000));
  return buf;
}

std::string DescribeEvent(const EventView& e) {
  std::string out = FormatTimeMs(e.time_ms) + " " + EventTypeName(e.type);
  if (!e.url.empty()) out += " " + std::string(e.url);
  if (!e.search_query.empty()) out += " q=\"" + std::string(e.search_query) + "\"";
  if (e.ipv4 != 0) {
    out += " ip=" + std::to_string(e.ipv4 >> 24) + "." + std::to_string((e.ipv4 >> 16) & 255) +
           "." + std::to_string((e.ipv4 >> 8) & 255) + "." + std::to_string(e.ipv4 & 255);
  }
  for (const auto& [k, v] : e.attributes) out += " " + std::string(k) + "=" + std::string(v);
  return out;
}

}  // namespace seg::segtool::internal
