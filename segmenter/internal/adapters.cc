// Thin adapters: the LuaJIT script host as the node's Evaluator, the Redis
// stats writer as its StatsSink. Buffers are reused between calls.
#include "segmenter/script_host.h"
#include "segmenter/segmenter.h"
#include "stats/stats_writer.h"

namespace seg::segmenter {
namespace {

class ScriptHostEvaluator : public Evaluator {
 public:
  explicit ScriptHostEvaluator(ScriptHost* host) : host_(host) {}

  Status Evaluate(std::string_view user_id, std::span<const EventView> events, int64_t now_ms,
                  Evaluation* out) override {
    EvaluateOptions options;
    options.now_ms = now_ms;
    SEG_RETURN_IF_ERROR(host_->EvaluateUser(user_id, events, options, &result_));
    out->segments = result_.segments;
    out->failed_scripts = result_.failed;
    out->failed_scripts.insert(out->failed_scripts.end(), result_.quarantined.begin(),
                               result_.quarantined.end());
    return Status::OK();
  }
  std::string ScriptSetVersion() override { return host_->script_set_version(); }
  Status Reload() override { return host_->Reload(); }

 private:
  ScriptHost* host_;
  EvaluationResult result_;
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

 private:
  stats::StatsWriter* writer_;
  std::vector<stats::UserUpdate> batch_;
};

}  // namespace

std::unique_ptr<Evaluator> NewScriptHostEvaluator(ScriptHost* host) {
  return std::make_unique<ScriptHostEvaluator>(host);
}

std::unique_ptr<StatsSink> NewStatsWriterSink(stats::StatsWriter* writer) {
  return std::make_unique<StatsWriterSink>(writer);
}

}  // namespace seg::segmenter
