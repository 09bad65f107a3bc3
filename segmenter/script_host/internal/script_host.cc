// ScriptHost implementation: script-set loading and swapping, per-user
// evaluation, failure accounting and quarantine, metrics.
#include "segmenter/script_host/script_host.h"

#include <glog/logging.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

#include "common/metrics.h"
#include "segmenter/script_host/internal/event_index.h"
#include "segmenter/script_host/internal/lua_budget.h"
#include "segmenter/script_host/internal/lua_state.h"

namespace seg::segmenter {

std::string_view ScriptErrorKindName(ScriptErrorKind kind) {
  switch (kind) {
    case ScriptErrorKind::kNone:
      return "none";
    case ScriptErrorKind::kError:
      return "error";
    case ScriptErrorKind::kCpuBudget:
      return "cpu_budget";
    case ScriptErrorKind::kMemoryLimit:
      return "memory_limit";
    case ScriptErrorKind::kUndeclaredSegment:
      return "undeclared_segment";
    case ScriptErrorKind::kBadResult:
      return "bad_result";
  }
  return "unknown";
}

namespace {

namespace fs = std::filesystem;
using internal::LuaState;

constexpr int kErrorKinds = 6;
constexpr int64_t kNever = std::numeric_limits<int64_t>::max();

// a + b for b >= 0, kNever instead of wrapping (huge options must not put a
// time in the past).
int64_t SatAdd(int64_t a, int64_t b) { return a > kNever - b ? kNever : a + b; }

const std::vector<double>& RuntimeBuckets() {
  static const std::vector<double> kBuckets = {1e-6, 3e-6, 1e-5, 3e-5, 1e-4, 3e-4,
                                               1e-3, 3e-3, 1e-2, 3e-2, 0.1,  1.0};
  return kBuckets;
}

struct FileStamp {
  std::string name;
  uintmax_t size = 0;
  int64_t mtime_ns = 0;
  bool operator==(const FileStamp&) const = default;
};
using Fingerprint = std::vector<FileStamp>;

struct Slot {
  ScriptInfo info;
  // While quarantined with a time limit: clock->MonotonicUs() at which the
  // quarantine lifts (info.quarantined_until_ms is the wall-clock view of it
  // for people; the decision uses the monotonic clock, which does not jump).
  int64_t quarantined_until_us = 0;
  std::vector<metrics::Counter> errors;  // by ScriptErrorKind
  metrics::Counter quarantines;
  metrics::Histogram runtime;
};

// One loaded script set: a state and its scripts. Swapped as a whole.
struct ScriptSet {
  std::unique_ptr<LuaState> state;
  std::vector<Slot> slots;
  std::string version;
  Fingerprint fingerprint;
};

std::string HexHash(uint64_t h) {
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(h));
  return std::string(buf, 12);
}

StatusOr<Fingerprint> ScanDirectory(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    return NotFoundError("scripts_dir " + dir + " is not a directory");
  Fingerprint fp;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const fs::path& p = it->path();
    if (p.extension() != ".lua" || !it->is_regular_file(ec)) continue;
    if (p.filename().string().starts_with(".")) continue;
    FileStamp stamp;
    stamp.name = p.filename().string();
    stamp.size = it->file_size(ec);
    auto mtime = it->last_write_time(ec);
    stamp.mtime_ns =
        std::chrono::duration_cast<std::chrono::nanoseconds>(mtime.time_since_epoch()).count();
    fp.push_back(std::move(stamp));
  }
  if (ec) return UnavailableError("listing " + dir + ": " + ec.message());
  std::sort(fp.begin(), fp.end(),
            [](const FileStamp& a, const FileStamp& b) { return a.name < b.name; });
  return fp;
}

class ScriptHostImpl final : public ScriptHost {
 public:
  explicit ScriptHostImpl(const ScriptHostOptions& options)
      : options_(options),
        clock_(options.clock ? options.clock : Clock::Real()),
        budget_ns_(options.cpu_budget_ms * 1'000'000),
        reloads_ok_(metrics::GetCounter("seg_segmenter_script_reloads_total",
                                        "Script-set reloads by result", {{"result", "ok"}})),
        reloads_failed_(metrics::GetCounter("seg_segmenter_script_reloads_total",
                                            "Script-set reloads by result",
                                            {{"result", "error"}})) {}

  Status Init() {
    SEG_ASSIGN_OR_RETURN(ScriptSet set, LoadSet());
    set_ = std::move(set);
    last_check_us_ = clock_->MonotonicUs();
    return Status::OK();
  }

  Status Reload() override {
    StatusOr<ScriptSet> set = LoadSet();
    if (!set.ok()) {
      reloads_failed_.Inc();
      last_reload_status_ = set.status();
      LOG(ERROR) << "script reload failed, keeping version " << set_.version << ": "
                 << set.status();
      if (auto fp = ScanDirectory(options_.scripts_dir); fp.ok()) failed_fingerprint_ = *fp;
      return set.status();
    }
    reloads_ok_.Inc();
    LOG(INFO) << "scripts reloaded: version " << set_.version << " -> " << set->version << " ("
              << set->slots.size() << " scripts)";
    set_ = std::move(set).value();  // the old state is closed here, between users
    failed_fingerprint_.clear();
    last_reload_status_ = Status::OK();
    return Status::OK();
  }

  void RequestReload() override { reload_requested_.store(true, std::memory_order_release); }
  Status last_reload_status() const override { return last_reload_status_; }
  std::string script_set_version() const override { return set_.version; }

  std::vector<ScriptInfo> scripts() const override {
    std::vector<ScriptInfo> out;
    out.reserve(set_.slots.size());
    for (const Slot& s : set_.slots) out.push_back(s.info);
    return out;
  }

  Status EvaluateUser(std::string_view user_id, std::span<const EventView> events,
                      EvaluationResult* out) override {
    return EvaluateUser(user_id, events, EvaluateOptions{}, out);
  }

  Status EvaluateUser(std::string_view user_id, std::span<const EventView> events,
                      const EvaluateOptions& opts, EvaluationResult* out) override;

 private:
  StatusOr<ScriptSet> LoadSet();
  void MaybeReload();
  void RecordFailure(Slot& slot, const LuaState::CallOutcome& outcome);
  // True when `slot` is quarantined now; lifts a quarantine whose time has
  // passed (the script then runs on probation, see ScriptHostOptions).
  bool StillQuarantined(Slot& slot);

  const ScriptHostOptions options_;
  Clock* const clock_;
  const int64_t budget_ns_;
  ScriptSet set_;
  internal::UserData user_data_;
  std::atomic<bool> reload_requested_{false};
  Status last_reload_status_;
  Fingerprint failed_fingerprint_;
  int64_t last_check_us_ = 0;
  metrics::Counter reloads_ok_;
  metrics::Counter reloads_failed_;
  LuaState::CallOutcome outcome_;
};

StatusOr<ScriptSet> ScriptHostImpl::LoadSet() {
  SEG_ASSIGN_OR_RETURN(Fingerprint fp, ScanDirectory(options_.scripts_dir));
  ScriptSet set;
  SEG_ASSIGN_OR_RETURN(set.state, LuaState::Create(options_.memory_limit_mb << 20));
  uint64_t hash = 14695981039346656037ull;  // FNV-1a 64 over (name, 0, bytes, 0)*
  auto mix = [&hash](std::string_view bytes) {
    for (unsigned char c : bytes) {
      hash ^= c;
      hash *= 1099511628211ull;
    }
    hash ^= 0;
    hash *= 1099511628211ull;
  };
  std::vector<std::string> errors;
  for (const FileStamp& file : fp) {
    std::string path = (fs::path(options_.scripts_dir) / file.name).string();
    std::ifstream in(path, std::ios::binary);
    std::stringstream buf;
    buf << in.rdbuf();
    if (!in.good() && !in.eof()) {
      errors.push_back(file.name + ": cannot read");
      continue;
    }
    std::string source = buf.str();
    mix(file.name);
    mix(source);
    std::string code = source;
    if (options_.instrument_budget) {
      StatusOr<std::string> instrumented = internal::InstrumentLuaSource(source, file.name);
      if (!instrumented.ok()) {
        errors.emplace_back(instrumented.status().message());
        continue;
      }
      code = std::move(instrumented).value();
    }
    StatusOr<LuaState::ScriptDecl> decl = set.state->LoadScript(code, file.name, budget_ns_);
    if (!decl.ok()) {
      errors.emplace_back(decl.status().message());
      continue;
    }
    Slot slot{.info = {},
              .errors = {},
              .quarantines =
                  metrics::GetCounter("seg_segmenter_script_quarantined_total",
                                      "Times a script was quarantined", {{"script", decl->name}}),
              .runtime = metrics::GetHistogram("seg_segmenter_script_runtime_seconds",
                                               "Runtime of one evaluate() call",
                                               {{"script", decl->name}}, RuntimeBuckets())};
    for (int k = 0; k < kErrorKinds; ++k) {
      slot.errors.push_back(metrics::GetCounter(
          "seg_segmenter_script_errors_total", "Failed script calls by kind",
          {{"script", decl->name},
           {"kind", std::string(ScriptErrorKindName(static_cast<ScriptErrorKind>(k)))}}));
    }
    slot.info.name = decl->name;
    slot.info.version = decl->version;
    slot.info.description = decl->description;
    slot.info.segments = decl->segments;
    slot.info.file = path;
    set.slots.push_back(std::move(slot));
  }
  if (!errors.empty()) {
    std::string msg;
    for (const auto& e : errors) msg += (msg.empty() ? "" : "; ") + e;
    return InvalidArgumentError(msg);
  }
  set.version = HexHash(hash);
  set.fingerprint = std::move(fp);
  return set;
}

void ScriptHostImpl::MaybeReload() {
  if (reload_requested_.exchange(false, std::memory_order_acq_rel)) {
    Reload().IgnoreError();  // logged, kept in last_reload_status()
    last_check_us_ = clock_->MonotonicUs();
    return;
  }
  if (options_.reload_check_interval_ms <= 0) return;
  int64_t now_us = clock_->MonotonicUs();
  if (now_us - last_check_us_ < options_.reload_check_interval_ms * 1000) return;
  last_check_us_ = now_us;
  StatusOr<Fingerprint> fp = ScanDirectory(options_.scripts_dir);
  if (!fp.ok()) {
    LOG_EVERY_N(WARNING, 100) << "script change check: " << fp.status();
    return;
  }
  if (*fp == set_.fingerprint || *fp == failed_fingerprint_) return;
  Reload().IgnoreError();  // logged, kept in last_reload_status()
}

void ScriptHostImpl::RecordFailure(Slot& slot, const LuaState::CallOutcome& outcome) {
  slot.errors[static_cast<int>(outcome.kind)].Inc();
  ++slot.info.consecutive_failures;
  LOG_EVERY_N(WARNING, 1000) << "script " << slot.info.name << " failed ("
                             << ScriptErrorKindName(outcome.kind) << "): " << outcome.error;
  // consecutive_failures is not reset when a quarantine lifts, so a script
  // on probation that fails again is over the threshold at once.
  if (options_.quarantine_after_failures > 0 && !slot.info.quarantined &&
      slot.info.consecutive_failures >= options_.quarantine_after_failures) {
    slot.info.quarantined = true;
    slot.quarantines.Inc();
    std::string until = "until the next reload";
    if (options_.quarantine_ms > 0) {
      slot.quarantined_until_us =
          SatAdd(clock_->MonotonicUs(), std::min(options_.quarantine_ms, kNever / 1000) * 1000);
      slot.info.quarantined_until_ms = SatAdd(clock_->NowMs(), options_.quarantine_ms);
      until = "for " + std::to_string(options_.quarantine_ms) + " ms";
    } else {
      slot.info.quarantined_until_ms = std::numeric_limits<int64_t>::max();
    }
    LOG(WARNING) << "script " << slot.info.name << " quarantined after "
                 << slot.info.consecutive_failures << " consecutive failures " << until
                 << "; last: " << outcome.error;
  }
}

bool ScriptHostImpl::StillQuarantined(Slot& slot) {
  if (!slot.info.quarantined) return false;
  if (options_.quarantine_ms <= 0 || clock_->MonotonicUs() < slot.quarantined_until_us) {
    return true;
  }
  slot.info.quarantined = false;
  slot.info.quarantined_until_ms = 0;
  slot.quarantined_until_us = 0;
  LOG(INFO) << "script " << slot.info.name << ": quarantine of " << options_.quarantine_ms
            << " ms over, retrying (one more failure quarantines it again)";
  return false;
}

Status ScriptHostImpl::EvaluateUser(std::string_view user_id, std::span<const EventView> events,
                                    const EvaluateOptions& opts, EvaluationResult* out) {
  MaybeReload();
  // `out` is reused: its vectors keep their elements' capacity between users
  // (a warm result does not allocate for names and segments).
  out->user_id.assign(user_id);
  out->failed.clear();
  out->quarantined.clear();
  out->script_set_version = set_.version;
  out->now_ms = opts.now_ms >= 0 ? opts.now_ms : clock_->NowMs();
  out->next_change_ms = kNever;
  // The due time of a script that read opaque times (saturating: a huge
  // recheck must not wrap into the past).
  const int64_t opaque_due = SatAdd(out->now_ms, options_.opaque_time_recheck_ms);
  size_t ran = 0;
  size_t segment_count = 0;

  LuaState& state = *set_.state;
  user_data_.Build(user_id, events, out->now_ms, opts.explain, state.user());
  internal::FfiUser* user = state.user();
  // One clock read per script: a script's end is the next one's start.
  int64_t t0 = internal::MonotonicNs();
  for (size_t i = 0; i < set_.slots.size(); ++i) {
    Slot& slot = set_.slots[i];
    if (!opts.only_script.empty()) {
      if (slot.info.name != opts.only_script) continue;
    } else if (StillQuarantined(slot)) {
      out->quarantined.push_back(slot.info.name);
      continue;
    }
    user->matched_n = 0;
    user->opaque = 0;
    user_data_.BeginCall();
    state.Run(static_cast<int>(i), budget_ns_, &outcome_, t0);
    const int64_t t1 = internal::MonotonicNs();
    const int64_t elapsed_ns = t1 - t0;
    t0 = t1;
    if (out->scripts.size() <= ran) out->scripts.emplace_back();
    ScriptResult& r = out->scripts[ran++];
    r.name.assign(slot.info.name);
    r.segments.clear();
    r.error.clear();
    r.error_kind = ScriptErrorKind::kNone;
    r.matched_events.clear();
    r.next_change_ms = kNever;
    r.runtime_us = elapsed_ns / 1000;
    slot.runtime.Observe(static_cast<double>(elapsed_ns) * 1e-9);
    if (opts.explain) {
      for (int32_t k = 0; k < user->matched_n; ++k) {
        int32_t idx = user->matched[k];
        if (std::find(r.matched_events.begin(), r.matched_events.end(), idx) ==
            r.matched_events.end()) {
          r.matched_events.push_back(idx);
        }
      }
    }
    if (outcome_.kind != ScriptErrorKind::kNone) {
      r.error_kind = outcome_.kind;
      r.error = outcome_.error;
      out->failed.push_back(slot.info.name);
      RecordFailure(slot, outcome_);
      t0 = internal::MonotonicNs();  // logging is not the next script's time
      continue;
    }
    slot.info.consecutive_failures = 0;
    r.next_change_ms =
        user->opaque ? std::min(user_data_.call_due_ms(), opaque_due) : user_data_.call_due_ms();
    out->next_change_ms = std::min(out->next_change_ms, r.next_change_ms);
    for (int32_t k = 0; k < outcome_.segment_count; ++k) {
      r.segments.push_back(slot.info.segments[user->out[k]]);
    }
    if (r.segments.size() > 1) {
      std::sort(r.segments.begin(), r.segments.end());
      r.segments.erase(std::unique(r.segments.begin(), r.segments.end()), r.segments.end());
    }
    for (const std::string& seg : r.segments) {
      if (out->segments.size() <= segment_count) out->segments.emplace_back();
      out->segments[segment_count++].assign(seg);
    }
  }
  out->scripts.resize(ran);
  out->segments.resize(segment_count);
  std::sort(out->segments.begin(), out->segments.end());
  out->segments.erase(std::unique(out->segments.begin(), out->segments.end()), out->segments.end());
  return Status::OK();
}

}  // namespace

StatusOr<std::unique_ptr<ScriptHost>> ScriptHost::Create(const ScriptHostOptions& options) {
  if (options.scripts_dir.empty()) return InvalidArgumentError("scripts_dir is empty");
  if (options.cpu_budget_ms <= 0) return InvalidArgumentError("cpu_budget_ms must be > 0");
  if (options.memory_limit_mb < 8) return InvalidArgumentError("memory_limit_mb must be >= 8");
  if (options.quarantine_after_failures < 0) {
    return InvalidArgumentError("quarantine_after_failures must be >= 0");
  }
  if (options.quarantine_ms < 0) return InvalidArgumentError("quarantine_ms must be >= 0");
  if (options.opaque_time_recheck_ms <= 0) {
    return InvalidArgumentError("opaque_time_recheck_ms must be > 0");
  }
  auto host = std::make_unique<ScriptHostImpl>(options);
  SEG_RETURN_IF_ERROR(host->Init());
  return std::unique_ptr<ScriptHost>(std::move(host));
}

}  // namespace seg::segmenter
