// `segctl stats expire-sweep`: the one-time sweep that gives HLL day keys
// written before retention existed the expiry the writer now sets on new
// ones (see tools/segctl/forget.h, stats::SweepHllExpiry).
// `segctl stats rebuild`: counts users again from their `counted` marks
// after Redis lost its data (tools/segctl/stats_rebuild.h).
#include <glog/logging.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>

#include "common/cli.h"
#include "common/clock.h"
#include "common/config.h"
#include "common/config_keys.h"
#include "common/kafka.h"
#include "stats/redis_cluster/redis_cluster.h"
#include "stats/writer/stats_writer.h"
#include "store/store.h"
#include "store/store_options.h"
#include "tools/segctl/forget.h"
#include "tools/segctl/stats_rebuild.h"

namespace seg::tools {
namespace {

struct RebuildFlags {
  std::string store_addr, store_dir, start_row;
  int batch_users = 2000;
  bool all = false;
};

int Rebuild(Config& config, stats::StatsWriterOptions options, const RebuildFlags& flags,
            bool json) {
  RebuildOptions rebuild;
  rebuild.start_row = flags.start_row;
  rebuild.batch_users = flags.batch_users;
  rebuild.all = flags.all;
  store::StoreOptions store_options;
  store_options.backend = store::StoreOptions::Backend::kThrift;
  Status s = config.Get("tables.users.name", &rebuild.table);
  if (s.ok()) s = config.Get("tables.users.state_family", &rebuild.family);
  if (s.ok() && flags.store_dir.empty()) s = store_options.LoadFrom(config, "store");
  if (s.ok()) s = CheckConfigKeys(config);
  if (!s.ok()) {
    std::fprintf(stderr, "segctl stats: config: %s\n", s.ToString().c_str());
    return 2;
  }
  if (!flags.store_dir.empty()) {
    store_options.backend = store::StoreOptions::Backend::kEmbedded;
    store_options.embedded.data_dir = flags.store_dir;
  } else if (Status a = flags.store_addr.empty() ? Status::OK()
                                                 : cli::SplitHostPort(flags.store_addr, "--store",
                                                                      &store_options.thrift.host,
                                                                      &store_options.thrift.port);
             !a.ok()) {
    std::fprintf(stderr, "segctl stats: %s\n", a.ToString().c_str());
    return 2;
  }
  auto store = store::OpenStore(store_options);
  if (!store.ok()) {
    std::fprintf(stderr, "segctl stats: store: %s\n", store.status().ToString().c_str());
    return 1;
  }
  options.batched_calls = true;  // the epoch-aware calls
  options.epochs = true;
  auto writer = stats::NewStatsWriter(options);
  if (!writer.ok()) {
    std::fprintf(stderr, "segctl stats: %s\n", writer.status().ToString().c_str());
    return 1;
  }
  RebuildReport report;
  s = RebuildFromCountedMarks(store->get(), writer->get(), rebuild, &report,
                              [](const RebuildReport& r) {
                                // Where to resume (--start-row) after a stop.
                                LOG(INFO) << "rebuild: " << r.rows << " states, " << r.users
                                          << " users re-added, last row " << r.last_row;
                              });
  if (json) {
    std::printf(
        "{\"rows\":%lld,\"current\":%lld,\"users\":%lld,\"adds\":%lld,\"bad_marks\":%lld,"
        "\"epoch_changes\":%lld,\"ok\":%s}\n",
        (long long)report.rows, (long long)report.current, (long long)report.users,
        (long long)report.adds, (long long)report.bad_marks, (long long)report.epoch_changes,
        s.ok() ? "true" : "false");
  } else {
    std::printf(
        "rebuild (%s, family %s): %lld states read, %lld already counted since the loss, %lld "
        "users re-added (%lld segment-day adds), %lld bad marks\n",
        rebuild.table.c_str(), rebuild.family.c_str(), (long long)report.rows,
        (long long)report.current, (long long)report.users, (long long)report.adds,
        (long long)report.bad_marks);
  }
  if (!s.ok()) {
    std::fprintf(stderr, "segctl stats: %s (resume with --start-row '%s')\n", s.ToString().c_str(),
                 report.last_row.c_str());
    return 1;
  }
  return 0;
}

}  // namespace

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
  RebuildFlags rebuild_flags;
  auto* rebuild = app.add_subcommand(
      "rebuild",
      "after Redis lost its data: PFADD every user not counted since into the segment-days of "
      "its counted marks (family s); idempotent");
  rebuild->add_option("--config", config_path,
                      "YAML config (stats.*, store.thrift.*, tables.users.name/state_family)");
  rebuild->add_option("--set", overrides, "key=value override (repeatable)")
      ->allow_extra_args(false);
  rebuild->add_option("--host", host, "Redis host (stats.redis.host)");
  rebuild->add_option("--port", port, "Redis port (stats.redis.port)");
  rebuild->add_option("--store", rebuild_flags.store_addr,
                      "Thrift2 store HOST:PORT (store.thrift.host/port)");
  rebuild->add_option("--store-dir", rebuild_flags.store_dir,
                      "an embedded store directory instead of --store");
  rebuild->add_option("--start-row", rebuild_flags.start_row,
                      "resume the scan at this row (printed by an interrupted run)");
  rebuild->add_option("--batch-users", rebuild_flags.batch_users, "users per stats write")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000000));
  rebuild->add_flag("--all", rebuild_flags.all,
                    "also re-add users already counted under the current epoch");
  rebuild->add_flag("--json", json, "print the counts as one JSON object");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }

  stats::StatsWriterOptions options;
  auto config = LoadBinaryConfig(config_path, overrides);
  Status s = config.ok() ? options.LoadFrom(*config, "stats") : config.status();
  // rebuild also reads the store keys, then checks.
  if (s.ok() && !rebuild->parsed()) s = CheckConfigKeys(*config);
  if (!s.ok()) {
    std::fprintf(stderr, "segctl stats: config: %s\n", s.ToString().c_str());
    return 2;
  }
  if (!host.empty()) options.redis.node.host = host;
  if (port > 0) options.redis.node.port = port;
  if (rebuild->parsed()) return Rebuild(*config, options, rebuild_flags, json);
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

int CheckConfigMain(int argc, char** argv) {
  CLI::App app{"segctl check-config: validate a config file for segctl's subcommands"};
  std::string config_path;
  std::vector<std::string> overrides;
  app.add_option("--config", config_path, "YAML config file")->required();
  app.add_option("--set", overrides, "key=value override (repeatable)");
  SEG_CLI_PARSE(app, argc, argv);
  auto config = LoadBinaryConfig(config_path, overrides);
  if (!config.ok()) return cli::ConfigChecked("segctl", config.status());
  auto load = [&]() -> Status {
    kafka::KafkaOptions kafka;
    SEG_RETURN_IF_ERROR(kafka.LoadFrom(*config, "kafka"));
    stats::StatsWriterOptions stats;
    SEG_RETURN_IF_ERROR(stats.LoadFrom(*config, "stats"));
    store::StoreOptions store;
    store.backend = store::StoreOptions::Backend::kThrift;
    SEG_RETURN_IF_ERROR(store.LoadFrom(*config, "store"));
    std::string text;
    for (const char* key :
         {"tables.users.name", "tables.users.state_family", "topics.changes", "topics.events"}) {
      SEG_RETURN_IF_ERROR(config->Get(key, &text));
    }
    return CheckConfigKeys(*config);
  };
  return cli::ConfigChecked("segctl", load());
}

}  // namespace seg::tools
