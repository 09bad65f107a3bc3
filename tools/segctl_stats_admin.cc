// `segctl stats expire-sweep`: the one-time sweep that gives HLL day keys
// written before retention existed the expiry the writer now sets on new
// ones (see tools/segctl_forget.h, stats::SweepHllExpiry).
#include <glog/logging.h>

#include <CLI/CLI.hpp>
#include <cstdio>

#include "common/clock.h"
#include "common/config.h"
#include "stats/redis_cluster.h"
#include "stats/stats_writer.h"
#include "tools/segctl_forget.h"

namespace seg::tools {

int StatsAdminMain(int argc, char** argv) {
  CLI::App app{"Maintenance of the statistics keys in Redis"};
  app.name("segctl stats");
  app.require_subcommand(1);
  std::string config_path, host;
  std::vector<std::string> overrides;
  int port = 0;
  int32_t retention_days = -1;
  int scan_count = 1000;
  bool json = false;
  auto* sweep = app.add_subcommand(
      "expire-sweep",
      "give every HLL day key without a TTL its expiry: end of its day + stats.hll_retention_days "
      "(keys already past it are deleted); idempotent");
  sweep->add_option("--config", config_path, "YAML config (stats.redis.*, stats.key_prefix, ...)");
  sweep->add_option("--set", overrides, "key=value override (repeatable)")->allow_extra_args(false);
  sweep->add_option("--host", host, "Redis host (stats.redis.host)");
  sweep->add_option("--port", port, "Redis port (stats.redis.port)");
  sweep->add_option("--retention-days", retention_days,
                    "days kept after a key's day (default stats.hll_retention_days, 400)");
  sweep->add_option("--scan-count", scan_count, "SCAN COUNT hint")->capture_default_str();
  sweep->add_flag("--json", json, "print the counts as one JSON object");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }

  stats::StatsWriterOptions options;
  auto config = Config::Load(config_path, overrides);
  Status s = config.ok() ? options.LoadFrom(*config, "stats") : config.status();
  if (!s.ok()) {
    std::fprintf(stderr, "segctl stats: config: %s\n", s.ToString().c_str());
    return 2;
  }
  if (!host.empty()) options.redis.node.host = host;
  if (port > 0) options.redis.node.port = port;
  if (retention_days >= 0) options.hll_retention_days = retention_days;
  if (options.hll_retention_days <= 0) {
    std::fprintf(stderr, "segctl stats: retention is 0 (keep forever): nothing to sweep\n");
    return 2;
  }
  auto router = stats::NewRedisRouter(options.redis);
  if (!router.ok()) {
    std::fprintf(stderr, "segctl stats: %s\n", router.status().ToString().c_str());
    return 1;
  }
  auto report = stats::SweepHllExpiry(router->get(), options.key_prefix, options.hll_retention_days,
                                      Clock::Real()->NowMs() / 1000, scan_count);
  if (!report.ok()) {
    std::fprintf(stderr, "segctl stats: expire-sweep: %s\n", report.status().ToString().c_str());
    return 1;
  }
  const auto& r = *report;
  if (json) {
    std::printf(
        "{\"masters\":%lld,\"scanned\":%lld,\"had_ttl\":%lld,\"set\":%lld,\"expired\":%lld,"
        "\"not_a_day\":%lld,\"vanished\":%lld,\"retention_days\":%d}\n",
        (long long)r.masters, (long long)r.scanned, (long long)r.had_ttl, (long long)r.set,
        (long long)r.expired, (long long)r.not_a_day, (long long)r.vanished,
        options.hll_retention_days);
  } else {
    std::printf(
        "expire-sweep (%s:*, retention %d days) on %lld master(s): %lld keys scanned, %lld "
        "already had a TTL, %lld TTLs set, %lld deleted (past retention), %lld not ending in a "
        "day (left alone), %lld gone meanwhile\n",
        options.key_prefix.c_str(), options.hll_retention_days, (long long)r.masters,
        (long long)r.scanned, (long long)r.had_ttl, (long long)r.set, (long long)r.expired,
        (long long)r.not_a_day, (long long)r.vanished);
  }
  return 0;
}

}  // namespace seg::tools
