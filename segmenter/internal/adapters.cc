// Thin adapters: the LuaJIT script host as the node's Evaluator, the Redis
// stats writer as its StatsSink, and the segment registry kept in step with
// the loaded scripts. Buffers are reused between calls.
#include <glog/logging.h>

#include <algorithm>
#include <map>

#include "common/clock.h"
#include "segmenter/script_host/script_host.h"
#include "segmenter/segmenter.h"
#include "stats/writer/stats_writer.h"

namespace seg::segmenter {
namespace {

class ScriptHostEvaluator : public Evaluator {
 public:
  ScriptHostEvaluator(ScriptHost* host, stats::StatsWriter* registry)
      : host_(host), registry_(registry) {}

  Status Evaluate(std::string_view user_id, std::span<const EventView> events, int64_t now_ms,
                  Evaluation* out) override {
    EvaluateOptions options;
    options.now_ms = now_ms;
    SEG_RETURN_IF_ERROR(host_->EvaluateUser(user_id, events, options, &result_));
    out->segments = result_.segments;
    out->failed_scripts = result_.failed;
    out->failed_scripts.insert(out->failed_scripts.end(), result_.quarantined.begin(),
                               result_.quarantined.end());
    out->failed_segments.clear();
    if (!out->failed_scripts.empty()) FailedSegments(out->failed_scripts, &out->failed_segments);
    out->next_change_ms = result_.next_change_ms;
    // A string compare per user; the host may have reloaded on its own.
    if (registry_ != nullptr && result_.script_set_version != registered_version_) {
      MaybeRegister(now_ms);
    }
    return Status::OK();
  }
  std::string ScriptSetVersion() override { return host_->script_set_version(); }
  Status Reload() override {
    SEG_RETURN_IF_ERROR(host_->Reload());
    if (registry_ != nullptr) {
      next_attempt_ms_ = 0;
      MaybeRegister(Clock::Real()->NowMs());
    }
    return Status::OK();
  }

 private:
  static constexpr int64_t kRetryMs = 5000;

  // The registry is advisory for seg-stats: a Redis hiccup must not fail the
  // batch, so a failed update is logged and retried later.
  void MaybeRegister(int64_t now_ms) {
    std::string version = host_->script_set_version();
    if (version == registered_version_ || now_ms < next_attempt_ms_) return;
    Status s = RegisterScriptSegments(*host_, registry_);
    if (!s.ok()) {
      LOG(WARNING) << "segment registry not updated for scripts " << version << ": " << s;
      next_attempt_ms_ = now_ms + kRetryMs;
      return;
    }
    LOG(INFO) << "segment registry updated for scripts " << version;
    registered_version_ = std::move(version);
  }

  // The declared segments of `scripts` (sorted, unique), from a per-version
  // copy of the host's declarations.
  void FailedSegments(const std::vector<std::string>& scripts, std::vector<std::string>* out) {
    if (declared_version_ != host_->script_set_version()) {
      declared_.clear();
      for (const ScriptInfo& info : host_->scripts()) declared_[info.name] = info.segments;
      declared_version_ = host_->script_set_version();
    }
    for (const std::string& script : scripts) {
      auto it = declared_.find(script);
      if (it != declared_.end()) out->insert(out->end(), it->second.begin(), it->second.end());
    }
    std::sort(out->begin(), out->end());
    out->erase(std::unique(out->begin(), out->end()), out->end());
  }

  ScriptHost* host_;
  stats::StatsWriter* registry_;
  std::map<std::string, std::vector<std::string>> declared_;
  std::string declared_version_;
  EvaluationResult result_;
  std::string registered_version_;
  int64_t next_attempt_ms_ = 0;
};

class StatsWriterSink : public StatsSink {
 public:
  explicit StatsWriterSink(stats::StatsWriter* writer) : writer_(writer) {}

  Status Write(std::span<const StatsUpdate> updates) override {
    batch_.resize(updates.size());
    for (size_t i = 0; i < updates.size(); ++i) {
      batch_[i].user_id = updates[i].user_id;
      batch_[i].adds.clear();
      for (const auto& [segment, day] : updates[i].segment_days) {
        batch_[i].adds.push_back(stats::SegmentDay{segment, static_cast<stats::Day>(day)});
      }
    }
    return writer_->WriteBatch(batch_);
  }
  std::optional<std::string_view> Epoch(std::string_view user_id) override {
    return writer_->Epoch(user_id);
  }

 private:
  stats::StatsWriter* writer_;
  std::vector<stats::UserUpdate> batch_;
};

}  // namespace

std::unique_ptr<Evaluator> NewScriptHostEvaluator(ScriptHost* host, stats::StatsWriter* registry) {
  return std::make_unique<ScriptHostEvaluator>(host, registry);
}

Status RegisterScriptSegments(const ScriptHost& host, stats::StatsWriter* registry) {
  std::map<std::string, std::string> segment_to_script;
  for (const ScriptInfo& script : host.scripts()) {
    for (const std::string& segment : script.segments) {
      segment_to_script[segment] = script.name + "@" + script.version;
    }
  }
  return registry->RegisterSegments(segment_to_script);
}

std::unique_ptr<StatsSink> NewStatsWriterSink(stats::StatsWriter* writer) {
  return std::make_unique<StatsWriterSink>(writer);
}

}  // namespace seg::segmenter
