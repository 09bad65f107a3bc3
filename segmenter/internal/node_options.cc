#include <glog/logging.h>

#include "segmenter/segmenter.h"

namespace seg::segmenter {

Status NodeOptions::LoadFrom(Config& config, std::string_view prefix) {
  const std::string p(prefix);
  SEG_RETURN_IF_ERROR(kafka.LoadFrom(config, "kafka"));
  SEG_RETURN_IF_ERROR(config.Get(p + ".group_id", &group_id));
  SEG_RETURN_IF_ERROR(config.Get("topics.changes", &notices_topic));
  SEG_RETURN_IF_ERROR(config.Get("topics.results", &results_topic));
  SEG_RETURN_IF_ERROR(config.Get(p + ".batch_max_notices", &batch_max_notices));
  SEG_RETURN_IF_ERROR(config.Get(p + ".batch_max_ms", &batch_max_ms));
  SEG_RETURN_IF_ERROR(config.Get("tables.users.name", &table));
  SEG_RETURN_IF_ERROR(config.Get("tables.users.events_family", &events_family));
  SEG_RETURN_IF_ERROR(config.Get("tables.users.state_family", &state_family));
  SEG_RETURN_IF_ERROR(config.Get(p + ".max_events_per_user", &max_events_per_user));
  SEG_RETURN_IF_ERROR(config.Get(p + ".history_days", &history_days));
  SEG_RETURN_IF_ERROR(config.Get(p + ".unbatched_reads", &unbatched_reads));
  SEG_RETURN_IF_ERROR(config.Get(p + ".publish_every_segmentation", &publish_every_segmentation));
  SEG_RETURN_IF_ERROR(config.Get(p + ".read_delay_ms", &read_delay_ms));
  if (config.Has(p + ".read_policy")) {
    std::string policy;
    SEG_RETURN_IF_ERROR(config.Get(p + ".read_policy", &policy));
    if (policy == "leading_edge") {
      read_policy = ReadPolicy::kLeadingEdge;
    } else if (policy == "delay") {
      read_policy = ReadPolicy::kDelay;
    } else if (policy == "adaptive") {
      read_policy = ReadPolicy::kAdaptive;
    } else {
      return InvalidArgumentError(config.source() + ": " + p + ".read_policy '" + policy +
                                  "': expected leading_edge, delay or adaptive");
    }
  }
  SEG_RETURN_IF_ERROR(config.Get(p + ".read_delay_min_ms", &read_delay_min_ms));
  SEG_RETURN_IF_ERROR(config.Get(p + ".read_delay_max_ms", &read_delay_max_ms));
  if (read_delay_min_ms < 0 || read_delay_max_ms < read_delay_min_ms) {
    return InvalidArgumentError(config.source() + ": " + p +
                                ".read_delay_min_ms must be >= 0 and .read_delay_max_ms >= "
                                ".read_delay_min_ms");
  }
  SEG_RETURN_IF_ERROR(config.Get(p + ".max_queued_notices", &max_queued_notices));
  SEG_RETURN_IF_ERROR(config.Get(p + ".skip_cache.enabled", &skip_cache_enabled));
  SEG_RETURN_IF_ERROR(config.Get(p + ".skip_cache.bytes", &skip_cache_bytes));
  if (config.Has(p + ".skip_cache.clock_skew_margin_ms")) {
    // Kept for one release so old files load; the skip rule no longer reads clocks.
    int64_t ignored = 0;
    SEG_RETURN_IF_ERROR(config.Get(p + ".skip_cache.clock_skew_margin_ms", &ignored));
    LOG(WARNING) << p << ".skip_cache.clock_skew_margin_ms is ignored: the skip rule is "
                 << "clock-free (segmenter/internal/append_log.h); remove the key";
  }
  SEG_RETURN_IF_ERROR(bots.LoadFrom(config, p + ".bots", p + ".bot_blacklist"));
  SEG_RETURN_IF_ERROR(config.Get("tables.due.name", &due_table));
  SEG_RETURN_IF_ERROR(config.Get("tables.due.family", &due_family));
  SEG_RETURN_IF_ERROR(config.Get(p + ".schedule.enabled", &schedule_enabled));
  SEG_RETURN_IF_ERROR(config.Get(p + ".schedule.scan_interval_ms", &due_scan_interval_ms));
  SEG_RETURN_IF_ERROR(config.Get(p + ".schedule.batch_users", &due_batch_users));
  SEG_RETURN_IF_ERROR(config.Get(p + ".schedule.min_delay_ms", &min_due_delay_ms));
  SEG_RETURN_IF_ERROR(config.Get(p + ".schedule.max_hold_ms", &due_max_hold_ms));
  SEG_RETURN_IF_ERROR(config.Get(p + ".schedule.allowed_lateness_ms", &due_allowed_lateness_ms));
  SEG_RETURN_IF_ERROR(config.Get(p + ".failure_recheck_ms", &failure_recheck_ms));
  SEG_RETURN_IF_ERROR(config.Get(p + ".forget_tombstones", &forget_tombstones));
  SEG_RETURN_IF_ERROR(config.Get("scripts.max_stale_ms", &max_stale_ms));
  if (due_max_hold_ms < 0 || due_allowed_lateness_ms < 0) {
    return InvalidArgumentError(config.source() + ": " + p +
                                ".schedule.max_hold_ms and .allowed_lateness_ms must be >= 0");
  }
  if (due_scan_interval_ms <= 0 || due_batch_users <= 0 || min_due_delay_ms < 0 ||
      failure_recheck_ms <= 0 || max_stale_ms <= 0) {
    return InvalidArgumentError(config.source() + ": " + p +
                                ".schedule.* , .failure_recheck_ms and scripts.max_stale_ms "
                                "must be positive");
  }
  if (batch_max_notices <= 0 || batch_max_ms <= 0) {
    return InvalidArgumentError(config.source() + ": " + p +
                                ".batch_max_notices and .batch_max_ms must be positive");
  }
  if (read_delay_ms < 0 || max_queued_notices < batch_max_notices) {
    return InvalidArgumentError(config.source() + ": " + p +
                                ".read_delay_ms must be >= 0 and .max_queued_notices >= "
                                ".batch_max_notices");
  }
  if (max_events_per_user <= 0 || history_days <= 0) {
    return InvalidArgumentError(config.source() + ": " + p +
                                ".max_events_per_user and .history_days must be positive");
  }
  return Status::OK();
}

}  // namespace seg::segmenter
