// `segtool run` and `segtool explain`: one stored user through the scripts.
#include <algorithm>
#include <filesystem>

#include "common/clock.h"
#include "tools/segtool/internal/hosts.h"
#include "tools/segtool/internal/trace.h"
#include "tools/segtool/internal/user_rows.h"
#include "tools/segtool/segtool.h"

namespace seg::segtool {
namespace {

std::string Join(const std::vector<std::string>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + v[i];
  return s + "]";
}

int64_t Now(const ToolOptions& options) {
  return options.now_ms >= 0 ? options.now_ms : Clock::Real()->NowMs();
}

StatusOr<internal::UserHistory> ReadOneUser(const ToolOptions& options, const std::string& user,
                                            int64_t now) {
  if (user.empty()) return InvalidArgumentError("--user is empty");
  SEG_ASSIGN_OR_RETURN(auto store, store::OpenStore(options.store));
  std::vector<internal::UserHistory> histories;
  std::vector<std::string> users = {user};
  SEG_RETURN_IF_ERROR(internal::ReadUsers(*store, options.node, users, now, &histories));
  return std::move(histories[0]);
}

void PrintUserHeader(const ToolOptions& options, const internal::UserHistory& h,
                     std::ostream& out) {
  out << "user " << h.user_id << ": " << h.events.size() << " events in the last "
      << options.node.history_days << " days";
  if (h.bad_cells) out << " (" << h.bad_cells << " undecodable cells skipped)";
  out << "\n";
  if (h.has_state) {
    out << "  stored membership: " << Join({h.state.segments().begin(), h.state.segments().end()})
        << " (segmented " << internal::FormatTimeMs(h.state.segmented_at_ms()) << ", scripts "
        << h.state.script_set_version() << ")\n";
  } else {
    out << "  stored membership: none (never segmented)\n";
  }
}

// The installed scripts of scripts.dir; shadow and preview load only their candidate.
StatusOr<std::unique_ptr<segmenter::ScriptHost>> CreateHost(const ToolOptions& options) {
  if (!std::filesystem::is_directory(options.host.scripts_dir))
    return NotFoundError(MissingScriptsDir(options.host.scripts_dir));
  return segmenter::ScriptHost::Create(options.host);
}

}  // namespace

Status RunUser(const ToolOptions& options, const std::string& user_id, std::ostream& out) {
  const int64_t now = Now(options);
  SEG_ASSIGN_OR_RETURN(auto host, CreateHost(options));
  SEG_ASSIGN_OR_RETURN(internal::UserHistory h, ReadOneUser(options, user_id, now));
  PrintUserHeader(options, h, out);
  segmenter::EvaluateOptions eval;
  eval.now_ms = now;
  segmenter::EvaluationResult result;
  SEG_RETURN_IF_ERROR(host->EvaluateUser(h.user_id, h.events, eval, &result));
  std::vector<segmenter::ScriptInfo> infos = host->scripts();
  int64_t total_us = 0;
  for (const auto& r : result.scripts) {
    std::string version;
    for (const auto& info : infos)
      if (info.name == r.name) version = info.version;
    char timing[32];
    std::snprintf(timing, sizeof timing, "%8.3f ms", r.runtime_us / 1e3);
    total_us += r.runtime_us;
    out << "  " << timing << "  " << r.name << "@" << version << ": ";
    if (r.error_kind != segmenter::ScriptErrorKind::kNone) {
      out << "ERROR " << segmenter::ScriptErrorKindName(r.error_kind) << ": " << r.error << "\n";
    } else {
      out << Join(r.segments) << "\n";
    }
  }
  for (const auto& q : result.quarantined) out << "  quarantined: " << q << "\n";
  out << "segments: " << Join(result.segments) << " (scripts " << result.script_set_version << ", "
      << total_us / 1e3 << " ms in scripts)\n";
  return Status::OK();
}

StatusOr<ExplainResult> ExplainUser(const ToolOptions& options, const std::string& user_id,
                                    const std::string& segment, std::ostream& out) {
  const int64_t now = Now(options);
  SEG_ASSIGN_OR_RETURN(auto host, CreateHost(options));
  const segmenter::ScriptInfo* script = nullptr;
  std::vector<segmenter::ScriptInfo> infos = host->scripts();
  std::vector<std::string> known;
  for (const auto& info : infos) {
    for (const auto& s : info.segments) {
      known.push_back(s);
      if (s == segment && script == nullptr) script = &info;
    }
  }
  if (script == nullptr) {
    return NotFoundError("no script declares segment '" + segment + "'; declared: " + Join(known));
  }
  SEG_ASSIGN_OR_RETURN(internal::UserHistory h, ReadOneUser(options, user_id, now));
  segmenter::EvaluateOptions eval;
  eval.now_ms = now;
  eval.explain = true;
  eval.only_script = script->name;
  segmenter::EvaluationResult result;
  SEG_RETURN_IF_ERROR(host->EvaluateUser(h.user_id, h.events, eval, &result));
  if (result.scripts.size() != 1) return InternalError("script " + script->name + " did not run");
  const segmenter::ScriptResult& r = result.scripts[0];

  ExplainResult explain;
  explain.script = script->name;
  explain.in_segment = std::binary_search(r.segments.begin(), r.segments.end(), segment);
  out << "user " << h.user_id << " is " << (explain.in_segment ? "IN" : "OUT of") << " segment "
      << segment << (explain.in_segment ? "" : "") << "\n";
  char timing[32];
  std::snprintf(timing, sizeof timing, "%.3f ms", r.runtime_us / 1e3);
  out << "  script: " << script->name << "@" << script->version << " (" << script->file << "), "
      << timing << ", returned ";
  if (r.error_kind != segmenter::ScriptErrorKind::kNone) {
    out << "ERROR " << segmenter::ScriptErrorKindName(r.error_kind) << ": " << r.error << "\n";
  } else {
    out << Join(r.segments) << "\n";
  }
  out << "  history: " << h.events.size() << " events in the last " << options.node.history_days
      << " days, now " << internal::FormatTimeMs(now) << "\n";
  if (h.has_state) {
    bool was_in = std::find(h.state.segments().begin(), h.state.segments().end(), segment) !=
                  h.state.segments().end();
    out << "  stored membership: " << (was_in ? "in" : "out") << " (segmented "
        << internal::FormatTimeMs(h.state.segmented_at_ms()) << ")\n";
  }

  auto traced = internal::LoadScratchHost(script->file, options.host, /*traced=*/true);
  if (traced.ok()) {
    segmenter::EvaluationResult traced_result;
    eval.explain = false;
    Status st = (*traced)->host().EvaluateUser(h.user_id, h.events, eval, &traced_result);
    auto trace = st.ok() && traced_result.scripts.size() == 1
                     ? internal::ParseTrace(traced_result.scripts[0].error)
                     : StatusOr<internal::ScriptTrace>(st.ok() ? NotFoundError("no run") : st);
    if (trace.ok()) {
      explain.deciding =
          internal::DecidingCondition((*traced)->source(), *trace, segment, explain.in_segment);
      out << "  deciding condition: " << explain.deciding << "\n";
      out << "  helper calls (in call order):\n";
      for (const auto& call : trace->calls) {
        out << "    line " << call.line << ": " << internal::CallText((*traced)->source(), call)
            << " = " << call.result << "\n";
      }
    } else {
      out << "  (no helper trace: " << trace.status().message() << ")\n";
    }
  } else {
    out << "  (no helper trace: " << traced.status().message() << ")\n";
  }
  out << "  events the helpers matched (" << r.matched_events.size() << " of " << h.events.size()
      << "):\n";
  for (int32_t pos : r.matched_events) {
    if (pos < 0 || pos >= static_cast<int32_t>(h.events.size())) continue;
    explain.matched_event_times.push_back(h.events[pos].time_ms);
    out << "    " << internal::DescribeEvent(h.events[pos]) << "\n";
  }
  return explain;
}

}  // namespace seg::segtool
