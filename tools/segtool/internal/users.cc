// `segtool users`: stored user ids to try `run` and `explain` on, with their
// recent event count and stored membership (a store scan; reads nothing else).
#include <algorithm>
#include <ostream>

#include "common/clock.h"
#include "tools/segtool/internal/user_rows.h"
#include "tools/segtool/segtool.h"

namespace seg::segtool {

Status ListUsers(const ToolOptions& options, const UsersOptions& users, std::ostream& out) {
  if (users.limit <= 0) return InvalidArgumentError("--limit must be > 0");
  SEG_ASSIGN_OR_RETURN(auto store, store::OpenStore(options.store));
  const int64_t now = options.now_ms >= 0 ? options.now_ms : Clock::Real()->NowMs();
  store::ScanRequest scan;
  scan.families = {options.node.events_family, options.node.state_family};
  scan.time_range.min = now - int64_t{options.node.history_days} * 86'400'000;
  scan.batch_rows = 200;
  SEG_ASSIGN_OR_RETURN(auto scanner, store->OpenScanner(options.node.table, scan));
  std::vector<store::RowResult> rows;
  internal::UserHistory history;
  int64_t listed = 0;
  while (listed < users.limit) {
    SEG_RETURN_IF_ERROR(scanner->NextBatch(&rows));
    if (rows.empty()) break;
    for (store::RowResult& row : rows) {
      internal::HistoryFromRow(options.node, now, std::move(row), &history);
      const auto& segments = history.state.segments();
      if (!users.segment.empty() &&
          std::find(segments.begin(), segments.end(), users.segment) == segments.end()) {
        continue;
      }
      out << history.user_id << "  events=" << history.events.size() << "  segments=[";
      for (int i = 0; i < segments.size(); ++i) out << (i ? ", " : "") << segments[i];
      out << "]\n";
      if (++listed == users.limit) break;
    }
  }
  SEG_RETURN_IF_ERROR(scanner->Close());
  if (listed == 0) {
    return NotFoundError("no stored users" +
                         (users.segment.empty() ? "" : " in segment " + users.segment) +
                         " in table " + options.node.table);
  }
  return Status::OK();
}

}  // namespace seg::segtool
