#include "tools/segctl/stats_rebuild.h"

#include <glog/logging.h>

#include <memory>
#include <optional>
#include <vector>

#include "proto/segmentation.pb.h"
#include "stats/writer/stats_writer.h"
#include "store/store.h"

namespace seg::tools {
namespace {

// The state qualifier the segmenter writes (segmenter/internal/membership.h).
constexpr std::string_view kStateQualifier = "m";

struct Candidate {
  std::string user_id;
  std::string epoch;  // the state's counted_epoch
  std::vector<stats::SegmentDay> marks;
};

// "segment:yyyymmdd" -> (segment, day); false when it is not one.
bool ParseMark(const std::string& mark, stats::SegmentDay* out) {
  const size_t colon = mark.rfind(':');
  if (colon == std::string::npos || colon == 0) return false;
  auto day = stats::ParseDay(std::string_view(mark).substr(colon + 1));
  if (!day.ok()) return false;
  out->segment = mark.substr(0, colon);
  out->day = *day;
  return true;
}

class Rebuilder {
 public:
  Rebuilder(stats::StatsWriter* writer, const RebuildOptions& options, RebuildReport* report)
      : writer_(writer), options_(options), report_(report) {}

  void Add(const store::RowResult& row) {
    bool found = false;
    store::CellView newest;
    for (store::CellView cell : row) {
      if (cell.family != options_.family || cell.qualifier != kStateQualifier) continue;
      if (!found || cell.timestamp > newest.timestamp) newest = cell;
      found = true;
    }
    if (!found) return;
    ++report_->rows;
    SegmentState state;
    if (!state.ParseFromArray(newest.value.data(), static_cast<int>(newest.value.size()))) {
      ++report_->bad_marks;
      LOG_EVERY_N(WARNING, 100) << "rebuild: row " << row.row() << ": unreadable state";
      return;
    }
    if (state.counted().empty()) return;
    Candidate& c = pending_.emplace_back();
    c.user_id = row.row();
    c.epoch = state.counted_epoch();
    for (const std::string& mark : state.counted()) {
      stats::SegmentDay day;
      if (ParseMark(mark, &day)) {
        c.marks.push_back(std::move(day));
      } else {
        ++report_->bad_marks;
      }
    }
    if (c.marks.empty()) pending_.pop_back();
  }

  size_t pending() const { return pending_.size(); }

  // Re-adds the pending users whose marks are not of their shard's epoch
  // now. An epoch that changed meanwhile (ABORTED) makes the writer learn
  // it: decided and sent again.
  Status Flush(const std::string& last_row) {
    for (int attempt = 0;; ++attempt) {
      batch_.clear();
      int64_t current = 0, adds = 0;
      for (const Candidate& c : pending_) {
        const std::optional<std::string_view> epoch = writer_->Epoch(c.user_id);
        if (!options_.all && epoch && !epoch->empty() && *epoch == c.epoch) {
          ++current;
          continue;
        }
        batch_.push_back(stats::UserUpdate{c.user_id, c.marks});
        adds += static_cast<int64_t>(c.marks.size());
      }
      Status s = batch_.empty() ? Status::OK() : writer_->WriteBatch(batch_);
      if (stats::IsEpochChange(s) && attempt < 3) {
        ++report_->epoch_changes;
        LOG(WARNING) << "rebuild: " << s;
        continue;
      }
      SEG_RETURN_IF_ERROR(s.WithContext("rebuild: stats write"));
      report_->current += current;
      report_->users += static_cast<int64_t>(batch_.size());
      report_->adds += adds;
      report_->last_row = last_row;
      pending_.clear();
      return Status::OK();
    }
  }

 private:
  stats::StatsWriter* writer_;
  const RebuildOptions& options_;
  RebuildReport* report_;
  std::vector<Candidate> pending_;
  std::vector<stats::UserUpdate> batch_;
};

}  // namespace

Status RebuildFromCountedMarks(store::Store* store, stats::StatsWriter* writer,
                               const RebuildOptions& options, RebuildReport* report,
                               const std::function<void(const RebuildReport&)>& progress) {
  *report = RebuildReport();
  if (options.batch_users < 1 || options.scan_rows < 1) {
    return InvalidArgumentError("rebuild: batch_users and scan_rows must be at least 1");
  }
  // The epochs, before the first decision.
  SEG_RETURN_IF_ERROR(writer->LoadProcedures().WithContext("rebuild"));
  store::ScanRequest scan;
  scan.start_row = options.start_row;
  scan.families = {options.family};
  scan.batch_rows = options.scan_rows;
  SEG_ASSIGN_OR_RETURN(std::unique_ptr<store::Scanner> scanner,
                       store->OpenScanner(options.table, scan));
  Rebuilder rebuilder(writer, options, report);
  std::vector<store::RowResult> rows;
  std::string last_row;
  while (true) {
    SEG_RETURN_IF_ERROR(scanner->NextBatch(&rows).WithContext("rebuild: scan " + options.table));
    for (const store::RowResult& row : rows) rebuilder.Add(row);
    if (!rows.empty()) last_row = rows.back().row();
    if (rows.empty() || rebuilder.pending() >= static_cast<size_t>(options.batch_users)) {
      SEG_RETURN_IF_ERROR(rebuilder.Flush(last_row));
      if (progress) progress(*report);
    }
    if (rows.empty()) break;
  }
  scanner->Close().IgnoreError();
  if (report->epoch_changes > 0) {
    return AbortedError("rebuild: Redis lost data again during the scan (" +
                        std::to_string(report->epoch_changes) +
                        " epoch change(s)); users skipped before it are void: run it again");
  }
  return Status::OK();
}

}  // namespace seg::tools
