#include <filesystem>

#include "common/config_keys.h"
#include "tools/segtool/segtool.h"

namespace seg::segtool {

Status LoadToolOptions(Config& config, ToolOptions* out) {
  out->host.scripts_dir = "scripts";
  SEG_RETURN_IF_ERROR(out->host.LoadFrom(config, "scripts"));
  // One-off runs: no directory polling, and a failing script stays visible.
  out->host.reload_check_interval_ms = 0;
  out->host.quarantine_after_failures = 0;
  out->store.backend = store::StoreOptions::Backend::kThrift;
  SEG_RETURN_IF_ERROR(out->store.LoadFrom(config, "store"));
  SEG_RETURN_IF_ERROR(out->node.LoadFrom(config));
  // A shared file holds other binaries' keys (ignored); a typo is an error.
  return CheckConfigKeys(config);
}

std::string MissingScriptsDir(const std::string& dir) {
  std::error_code ec;
  std::string cwd = std::filesystem::current_path(ec).string();
  return "no scripts directory '" + dir + "'" +
         (std::filesystem::path(dir).is_relative() ? " (relative to " + cwd + ")" : "") +
         ": pass --scripts DIR, or --config FILE with scripts.dir (tools/dev demo writes one), "
         "or run from the repository root";
}

std::string FormatTotals(const DryRunTotals& t) {
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "notices=%lld rows=%lld evaluated=%lld in_segment=%lld would_enter=%lld "
                "would_exit=%lld errors=%lld p50=%.3fms p99=%.3fms",
                static_cast<long long>(t.notices), static_cast<long long>(t.rows_seen),
                static_cast<long long>(t.users_evaluated), static_cast<long long>(t.in_segments),
                static_cast<long long>(t.would_enter), static_cast<long long>(t.would_exit),
                static_cast<long long>(t.errors), t.p50_us / 1e3, t.p99_us / 1e3);
  return buf;
}

}  // namespace seg::segtool
