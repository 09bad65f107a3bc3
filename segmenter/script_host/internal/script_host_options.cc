// ScriptHostOptions::LoadFrom: the script host's keys, shared by
// seg-segmenter and segtool.
#include "segmenter/script_host/script_host.h"

namespace seg::segmenter {

Status ScriptHostOptions::LoadFrom(Config& config, std::string_view prefix) {
  const std::string p(prefix);
  SEG_RETURN_IF_ERROR(config.Get(p + ".dir", &scripts_dir));
  SEG_RETURN_IF_ERROR(config.Get(p + ".cpu_budget_ms", &cpu_budget_ms));
  SEG_RETURN_IF_ERROR(config.Get(p + ".memory_limit_mb", &memory_limit_mb));
  SEG_RETURN_IF_ERROR(config.Get(p + ".quarantine_after_failures", &quarantine_after_failures));
  SEG_RETURN_IF_ERROR(config.Get(p + ".quarantine_ms", &quarantine_ms));
  SEG_RETURN_IF_ERROR(config.Get(p + ".opaque_time_recheck_ms", &opaque_time_recheck_ms));
  // 0: reload only when asked (SIGHUP), no directory polling.
  SEG_RETURN_IF_ERROR(config.Get(p + ".reload_check_interval_ms", &reload_check_interval_ms));
  if (scripts_dir.empty()) {
    return InvalidArgumentError(config.source() + ": " + p + ".dir must not be empty");
  }
  if (cpu_budget_ms <= 0 || memory_limit_mb <= 0 || opaque_time_recheck_ms <= 0) {
    return InvalidArgumentError(config.source() + ": " + p +
                                ".cpu_budget_ms, .memory_limit_mb and .opaque_time_recheck_ms "
                                "must be positive");
  }
  if (quarantine_after_failures < 0 || quarantine_ms < 0 || reload_check_interval_ms < 0) {
    return InvalidArgumentError(config.source() + ": " + p +
                                ".quarantine_after_failures, .quarantine_ms and "
                                ".reload_check_interval_ms must be >= 0");
  }
  return Status::OK();
}

}  // namespace seg::segmenter
