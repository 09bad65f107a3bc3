// `segtool shadow` and `segtool preview`: a candidate script over live
// notices (its own consumer group, never committing) or over a store scan,
// compared with the membership the segmenter stored in family `s`. Nothing
// is written anywhere.
#include <glog/logging.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <set>
#include <unordered_set>

#include "common/clock.h"
#include "common/hash.h"
#include "common/kafka.h"
#include "proto/segmentation.pb.h"
#include "tools/segtool/internal/hosts.h"
#include "tools/segtool/internal/user_rows.h"
#include "tools/segtool/segtool.h"

namespace seg::segtool {
namespace {

using Steady = std::chrono::steady_clock;

// Evaluates the candidate and diffs it with the stored membership of its
// declared segments.
class DryRun {
 public:
  DryRun(internal::ScratchHost* candidate, bool list_users, std::ostream& out)
      : candidate_(candidate), list_users_(list_users), out_(out) {
    std::vector<segmenter::ScriptInfo> scripts = candidate->host().scripts();
    declared_.insert(scripts[0].segments.begin(), scripts[0].segments.end());
  }

  void Evaluate(const internal::UserHistory& h, int64_t now_ms) {
    segmenter::EvaluateOptions opts;
    opts.now_ms = now_ms;
    ++totals_.users_evaluated;
    if (!candidate_->host().EvaluateUser(h.user_id, h.events, opts, &result_).ok() ||
        result_.scripts.size() != 1) {
      ++totals_.errors;
      return;
    }
    const segmenter::ScriptResult& r = result_.scripts[0];
    runtimes_us_.push_back(static_cast<double>(r.runtime_us));
    if (r.error_kind != segmenter::ScriptErrorKind::kNone) {
      ++totals_.errors;
      if (errors_shown_++ < 5) out_ << "error for user " << h.user_id << ": " << r.error << "\n";
      return;
    }
    std::vector<std::string> previous;
    for (const auto& s : h.state.segments())
      if (declared_.count(s)) previous.push_back(s);
    std::sort(previous.begin(), previous.end());
    entered_.clear();
    exited_.clear();
    std::set_difference(r.segments.begin(), r.segments.end(), previous.begin(), previous.end(),
                        std::back_inserter(entered_));
    std::set_difference(previous.begin(), previous.end(), r.segments.begin(), r.segments.end(),
                        std::back_inserter(exited_));
    if (!r.segments.empty()) ++totals_.in_segments;
    if (!entered_.empty()) ++totals_.would_enter;
    if (!exited_.empty()) ++totals_.would_exit;
    for (const auto& s : entered_) ++totals_.entered[s];
    for (const auto& s : exited_) ++totals_.exited[s];
    if (list_users_) {
      for (const auto& s : entered_) out_ << "enter " << h.user_id << " " << s << "\n";
      for (const auto& s : exited_) out_ << "exit " << h.user_id << " " << s << "\n";
    }
  }

  DryRunTotals& counts() { return totals_; }
  // The totals with runtime percentiles (O(users evaluated)).
  const DryRunTotals& totals() {
    totals_.p50_us = Percentile(0.50);
    totals_.p99_us = Percentile(0.99);
    return totals_;
  }

  void PrintSummary() {
    const DryRunTotals& t = totals();
    out_ << "final: " << FormatTotals(t) << "\n";
    for (const auto& s : declared_) {
      out_ << "  segment " << s << ": would enter " << Get(t.entered, s) << ", would exit "
           << Get(t.exited, s) << "\n";
    }
  }

 private:
  static int64_t Get(const std::map<std::string, int64_t>& m, const std::string& k) {
    auto it = m.find(k);
    return it == m.end() ? 0 : it->second;
  }
  double Percentile(double q) {
    if (runtimes_us_.empty()) return 0;
    size_t k = std::min(runtimes_us_.size() - 1, static_cast<size_t>(q * runtimes_us_.size()));
    std::nth_element(runtimes_us_.begin(), runtimes_us_.begin() + k, runtimes_us_.end());
    return runtimes_us_[k];
  }

  internal::ScratchHost* candidate_;
  bool list_users_;
  std::ostream& out_;
  std::set<std::string> declared_;
  DryRunTotals totals_;
  std::vector<double> runtimes_us_;
  std::vector<std::string> entered_, exited_;
  segmenter::EvaluationResult result_;
  int errors_shown_ = 0;
};

int64_t Now(const ToolOptions& options) {
  return options.now_ms >= 0 ? options.now_ms : Clock::Real()->NowMs();
}

std::string RandomSuffix() {
  std::random_device rd;
  char buf[16];
  std::snprintf(buf, sizeof buf, "%08x", static_cast<unsigned>(rd()));
  return buf;
}

}  // namespace

StatusOr<DryRunTotals> Shadow(const ToolOptions& options, const ShadowOptions& shadow,
                              std::ostream& out, std::ostream& progress) {
  if (shadow.offset_reset != "latest" && shadow.offset_reset != "earliest") {
    return InvalidArgumentError("--offset-reset must be latest or earliest");
  }
  SEG_ASSIGN_OR_RETURN(auto candidate,
                       internal::LoadScratchHost(shadow.script_file, options.host, false));
  const std::string group = shadow.group_id.empty()
                                ? "segtool-shadow-" + candidate->script() + "-" + RandomSuffix()
                                : shadow.group_id;
  if (group == options.node.group_id) {
    return InvalidArgumentError("shadow group " + group + " is the segmenter's own group");
  }
  kafka::KafkaOptions kafka = options.node.kafka;
  kafka.properties["auto.offset.reset"] = shadow.offset_reset;
  // Never commit: the group exists only to get its own copy of the traffic.
  kafka.properties["enable.auto.commit"] = "false";
  kafka.properties["enable.auto.offset.store"] = "false";
  // Announced so a caller can start producing once the group has its partitions.
  auto on_rebalance = [&out](const kafka::RebalanceEvent& event) {
    if (event.kind != kafka::RebalanceEvent::Kind::kAssigned) return;
    out << "shadow group assigned " << event.partitions.size() << " partitions\n";
    out.flush();
  };
  SEG_ASSIGN_OR_RETURN(auto consumer, kafka::Consumer::Create(kafka, group, on_rebalance));
  SEG_RETURN_IF_ERROR(consumer->Subscribe({options.node.notices_topic}));
  SEG_ASSIGN_OR_RETURN(auto store, store::OpenStore(options.store));
  out << "shadow " << candidate->script() << " (" << shadow.script_file << ") on "
      << options.node.notices_topic << " as group " << group << " from " << shadow.offset_reset
      << "; writes nothing\n";
  out.flush();

  DryRun run(candidate.get(), shadow.list_users, out);
  const Steady::time_point start = Steady::now();
  Steady::time_point next_report = start + std::chrono::milliseconds(shadow.report_every_ms);
  std::vector<std::string> users;
  std::unordered_set<std::string> seen;
  std::vector<internal::UserHistory> histories;
  int64_t notices = 0, malformed = 0;
  ChangeNotice notice;
  Status failure;
  while (true) {
    if (shadow.max_notices > 0 && notices >= shadow.max_notices) break;
    if (shadow.duration_ms > 0 &&
        Steady::now() - start >= std::chrono::milliseconds(shadow.duration_ms))
      break;
    auto batch = consumer->PollBatch(500, std::chrono::milliseconds(200));
    if (!batch.ok()) {
      failure = batch.status();
      break;
    }
    users.clear();
    seen.clear();
    for (const kafka::Message& msg : *batch) {
      if (shadow.max_notices > 0 && notices >= shadow.max_notices) break;
      ++notices;
      if (!notice.ParseFromArray(msg.value().data(), static_cast<int>(msg.value().size())) ||
          notice.user_id().empty()) {
        ++malformed;
        continue;
      }
      if (seen.insert(notice.user_id()).second) users.push_back(notice.user_id());
    }
    if (!users.empty()) {
      const int64_t now = Now(options);
      Status read = internal::ReadUsers(*store, options.node, users, now, &histories);
      if (!read.ok()) {
        failure = read;
        break;
      }
      for (const auto& h : histories) run.Evaluate(h, now);
    }
    run.counts().notices = notices;
    if (Steady::now() >= next_report) {
      progress << "shadow " << candidate->script() << ": " << FormatTotals(run.totals()) << "\n";
      progress.flush();
      next_report = Steady::now() + std::chrono::milliseconds(shadow.report_every_ms);
    }
  }
  Status closed = consumer->Close();
  if (malformed) out << "malformed notices skipped: " << malformed << "\n";
  run.counts().notices = notices;
  run.PrintSummary();
  SEG_RETURN_IF_ERROR(failure);
  if (!closed.ok()) LOG(WARNING) << "shadow consumer close: " << closed;
  return run.totals();
}

StatusOr<DryRunTotals> Preview(const ToolOptions& options, const PreviewOptions& preview,
                               std::ostream& out, std::ostream& progress) {
  if (!(preview.sample_rate > 0 && preview.sample_rate <= 1)) {
    return InvalidArgumentError("--sample-rate must be in (0, 1]");
  }
  SEG_ASSIGN_OR_RETURN(auto candidate,
                       internal::LoadScratchHost(preview.script_file, options.host, false));
  SEG_ASSIGN_OR_RETURN(auto store, store::OpenStore(options.store));
  const int64_t now = Now(options);
  store::ScanRequest scan;
  scan.families = {options.node.events_family, options.node.state_family};
  scan.time_range.min = now - int64_t{options.node.history_days} * 86'400'000;
  scan.batch_rows = 200;

  // The rows the scan will visit, so the bar has an end: a first pass over
  // the same rows (--no-count skips it and shows a counter instead).
  int64_t total = preview.max_rows;
  if (preview.count_first && total == 0) {
    store::ScanRequest count = scan;
    count.batch_rows = 1000;
    SEG_ASSIGN_OR_RETURN(auto scanner, store->OpenScanner(options.node.table, count));
    std::vector<store::RowResult> rows;
    while (true) {
      SEG_RETURN_IF_ERROR(scanner->NextBatch(&rows));
      if (rows.empty()) break;
      total += static_cast<int64_t>(rows.size());
    }
  }
  out << "preview " << candidate->script() << " (" << preview.script_file << ") over table "
      << options.node.table << ", sample rate " << preview.sample_rate << "; writes nothing\n";

  DryRun run(candidate.get(), preview.list_users, out);
  const uint64_t threshold =
      preview.sample_rate >= 1
          ? UINT64_MAX
          : static_cast<uint64_t>(preview.sample_rate * 18446744073709551615.0);
  SEG_ASSIGN_OR_RETURN(auto scanner, store->OpenScanner(options.node.table, scan));
  std::vector<store::RowResult> rows;
  internal::UserHistory history;
  const Steady::time_point start = Steady::now();
  Steady::time_point next_bar = start;
  auto draw = [&](bool final) {
    int64_t seen = run.counts().rows_seen;
    double secs = std::chrono::duration<double>(Steady::now() - start).count();
    char line[200];
    if (total > 0) {
      double frac = std::min(1.0, static_cast<double>(seen) / static_cast<double>(total));
      int filled = static_cast<int>(frac * 30);
      std::snprintf(line, sizeof line, "\r[%-30s] %3d%% %lld/%lld rows, %.0f rows/s",
                    std::string(filled, '#').c_str(), static_cast<int>(frac * 100),
                    static_cast<long long>(seen), static_cast<long long>(total),
                    secs > 0 ? seen / secs : 0.0);
    } else {
      std::snprintf(line, sizeof line, "\r%lld rows, %.0f rows/s", static_cast<long long>(seen),
                    secs > 0 ? seen / secs : 0.0);
    }
    progress << line << (final ? "\n" : "");
    progress.flush();
  };
  bool done = false;
  while (!done) {
    SEG_RETURN_IF_ERROR(scanner->NextBatch(&rows));
    if (rows.empty()) break;
    for (store::RowResult& row : rows) {
      if (preview.max_rows > 0 && run.counts().rows_seen >= preview.max_rows) {
        done = true;
        break;
      }
      ++run.counts().rows_seen;
      if (threshold != UINT64_MAX && MurmurHash64A(row.row(), 0) > threshold) continue;
      internal::HistoryFromRow(options.node, now, std::move(row), &history);
      run.Evaluate(history, now);
    }
    if (Steady::now() >= next_bar) {
      draw(false);
      next_bar = Steady::now() + std::chrono::milliseconds(200);
    }
  }
  draw(true);
  SEG_RETURN_IF_ERROR(scanner->Close());
  run.PrintSummary();
  return run.totals();
}

}  // namespace seg::segtool
