#include "segmenter/internal/due_scanner.h"

#include <algorithm>
#include <utility>

#include "segmenter/internal/membership.h"

namespace seg::segmenter {

DueScanner::DueScanner(store::Store* store, DueScanOptions options)
    : store_(store), options_(std::move(options)) {}

DueRound DueScanner::Next(int64_t now, const std::set<int32_t>& owned) {
  if (prefetch_.valid()) {
    const bool full_scan_due = now - prefetch_cursor_.last_full_scan_ms >= kFullScanEveryMs;
    if (prefetch_applied_ && owned == prefetch_owned_ && !full_scan_due) {
      cursor_ = prefetch_cursor_;
      prefetch_applied_ = false;
      return prefetch_.get();
    }
    DropPrefetch();
  }
  return Scan(now, owned, &cursor_);
}

void DueScanner::ApplyTo(Cursor* cursor, int64_t round_now, const DueOutcome& outcome) {
  // Every row due by round_now in these partitions was processed; rows
  // written later are due at least min_due_delay_ms after their write.
  for (int32_t partition : outcome.complete) {
    cursor->scanned_to[partition] = round_now + 1;
    cursor->resume_after.erase(partition);
  }
  for (const auto& [partition, row] : outcome.last_processed) {
    cursor->resume_after[partition] = row + '\0';
  }
}

void DueScanner::Apply(int64_t round_now, const DueOutcome& outcome) {
  ApplyTo(&cursor_, round_now, outcome);
  if (prefetch_.valid() && round_now == prefetch_after_) prefetch_applied_ = true;
}

void DueScanner::Prefetch(int64_t round_now, const DueOutcome& outcome,
                          const std::set<int32_t>& owned, int64_t scan_now) {
  DropPrefetch();
  if (owned.empty()) return;
  Cursor next = cursor_;
  ApplyTo(&next, round_now, outcome);
  // A full scan due: the next round scans from 0 itself.
  if (scan_now - next.last_full_scan_ms >= kFullScanEveryMs) return;
  prefetch_owned_ = owned;
  prefetch_after_ = round_now;
  // The task scans with its own copy; prefetch_cursor_ is what the cursor
  // becomes when the round is used (Scan only moves the rotation on).
  prefetch_cursor_ = next;
  ++prefetch_cursor_.round;
  prefetch_ = std::async(std::launch::async, [this, scan_now, owned, next]() mutable {
    return Scan(scan_now, owned, &next);
  });
}

void DueScanner::DropPrefetch() {
  if (prefetch_.valid()) prefetch_.wait();  // its reads finish before the store may go
  prefetch_ = {};
  prefetch_applied_ = false;
}

void DueScanner::Forget(int32_t partition) {
  DropPrefetch();
  cursor_.scanned_to.erase(partition);
  cursor_.resume_after.erase(partition);
}

DueRound DueScanner::Scan(int64_t now, const std::set<int32_t>& owned, Cursor* cursor) const {
  DueRound round;
  round.now = now;
  if (owned.empty()) return round;
  const bool full = now - cursor->last_full_scan_ms >= kFullScanEveryMs;
  if (full) {
    cursor->last_full_scan_ms = now;
    cursor->resume_after.clear();
  }
  std::vector<int32_t> order(owned.begin(), owned.end());
  std::rotate(order.begin(), order.begin() + (cursor->round++ % order.size()), order.end());
  size_t room = static_cast<size_t>(std::max(options_.group_max, 1));
  for (int32_t partition : order) {
    if (room == 0) {
      round.partitions_left = true;
      break;
    }
    int64_t from = 0;
    auto low = cursor->scanned_to.find(partition);
    if (!full && low != cursor->scanned_to.end())
      from = std::max<int64_t>(0, low->second - kMarginMs);
    store::ScanRequest scan;
    scan.start_row = DueScanBound(partition, from);
    auto resume = cursor->resume_after.find(partition);
    if (resume != cursor->resume_after.end() && resume->second > scan.start_row) {
      scan.start_row = resume->second;
    }
    scan.stop_row = DueScanBound(partition, now + 1);
    scan.families = {options_.family};
    // No more rows than the round has room for: the rest would be read for nothing.
    scan.batch_rows = static_cast<int32_t>(
        std::min<size_t>(static_cast<size_t>(std::max(options_.batch_users, 1)), room));
    DueRound::Partition& p = round.partitions.emplace_back();
    p.partition = partition;
    p.status = store_->ScanFirst(options_.table, scan, &p.rows);
    if (!p.status.ok()) continue;
    p.more = p.rows.size() >= static_cast<size_t>(scan.batch_rows);
    room -= std::min(room, p.rows.size());
  }
  return round;
}

}  // namespace seg::segmenter
