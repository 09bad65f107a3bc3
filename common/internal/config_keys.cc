#include "common/config_keys.h"

#include <glog/logging.h>

#include <algorithm>
#include <map>

namespace seg {
namespace {

// Every key of every binary. Keep in step with config/seg.example.yaml,
// which gives each one's default and meaning (config_keys_test checks).
constexpr std::string_view kKeys[] = {
    // The data model every binary shares: topics and the store's tables.
    "topics.events",
    "topics.deadletter",
    "topics.changes",
    "topics.results",
    "tables.users.name",
    "tables.users.events_family",
    "tables.users.state_family",
    "tables.due.name",
    "tables.due.family",
    // Kafka client (common/kafka.h), every binary that talks to Kafka.
    "kafka.bootstrap_servers",
    "kafka.client_id",
    "kafka.queue_full_wait_ms",
    "kafka.properties.**",
    // Store client (store/store.h): seg-ingest, seg-segmenter, seg-stats,
    // segtool, segctl; store.data_dir..tables are also seg-store's own.
    "store.backend",
    "store.thrift.host",
    "store.thrift.port",
    "store.thrift.transport",
    "store.thrift.protocol",
    "store.thrift.max_connections",
    "store.thrift.connect_timeout_ms",
    "store.thrift.call_timeout_ms",
    "store.thrift.max_attempts",
    "store.thrift.backoff_initial_ms",
    "store.thrift.backoff_max_ms",
    "store.thrift.max_message_bytes",
    "store.data_dir",
    "store.sync",
    "store.block_cache_mb",
    "store.write_buffer_mb",
    "store.background_jobs",
    "store.tables.*.*.max_versions",
    "store.tables.*.*.ttl_seconds",
    "store.tables.*.*.packed_prefix_bytes",
    // seg-store's Thrift2 server and store-side change notices.
    "store.server.bind_address",
    "store.server.port",
    "store.server.transport",
    "store.server.protocol",
    "store.server.max_connections",
    "store.server.client_idle_timeout_ms",
    "store.server.request_timeout_ms",
    "store.server.max_message_bytes",
    "store.server.max_string_bytes",
    "store.server.max_rows_per_request",
    "store.server.scanner_lease_ms",
    "store.server.metrics_host",
    "store.server.metrics_port",
    "store.notify.kafka.bootstrap_servers",
    "store.notify.kafka.client_id",
    "store.notify.kafka.queue_full_wait_ms",
    "store.notify.kafka.properties.**",
    "store.notify.max_pending",
    "store.notify.tables",
    "store.notify.families",
    // seg-ingest (and segctl load: validation).
    "ingest.group_id",
    "ingest.batch_max_events",
    "ingest.batch_max_ms",
    "ingest.batch_idle_ms",
    "ingest.max_poll_interval_ms",
    "ingest.produce_timeout_ms",
    "ingest.sync_commit",
    "ingest.max_batches_in_flight",
    "ingest.store_put_parallelism",
    "ingest.store_backoff.initial_ms",
    "ingest.store_backoff.max_ms",
    "ingest.shutdown_timeout_ms",
    "ingest.notices.enabled",
    "ingest.watermark.enabled",
    "ingest.watermark.interval_ms",
    "ingest.validation.max_event_bytes",
    "ingest.validation.max_user_id_bytes",
    "ingest.validation.max_future_ms",
    "ingest.validation.retention_ms",
    "ingest.validation.json_ignore_unknown_fields",
    "ingest.metrics_host",
    "ingest.metrics_port",
    // seg-segmenter (segtool reads the node keys too).
    "segmenter.group_id",
    "segmenter.batch_max_notices",
    "segmenter.batch_max_ms",
    "segmenter.max_events_per_user",
    "segmenter.history_days",
    "segmenter.unbatched_reads",
    "segmenter.publish_every_segmentation",
    "segmenter.read_delay_ms",
    "segmenter.read_policy",
    "segmenter.read_delay_min_ms",
    "segmenter.read_delay_max_ms",
    "segmenter.max_queued_notices",
    "segmenter.skip_cache.enabled",
    "segmenter.skip_cache.bytes",
    "segmenter.bots.enabled",
    "segmenter.bots.window_ms",
    "segmenter.bots.threshold_events",
    "segmenter.bots.blacklist_ms",
    "segmenter.bots.capacity_users",
    "segmenter.bots.sustain_ms",
    "segmenter.bots.row_signals",
    "segmenter.bots.row_window_ms",
    "segmenter.bots.row_max_events",
    "segmenter.bots.rotation_min_events",
    "segmenter.bots.max_user_agents",
    "segmenter.bots.max_ips",
    "segmenter.bots.crawl_min_events",
    "segmenter.bots.crawl_min_span_ms",
    "segmenter.bots.crawl_min_distinct_url_ratio",
    "segmenter.bots.crawl_min_regular_share",
    "segmenter.bots.crawl_gap_tolerance",
    "segmenter.bots.crawl_min_median_gap_ms",
    "segmenter.schedule.enabled",
    "segmenter.schedule.scan_interval_ms",
    "segmenter.schedule.batch_users",
    "segmenter.schedule.min_delay_ms",
    "segmenter.schedule.max_hold_ms",
    "segmenter.schedule.allowed_lateness_ms",
    "segmenter.failure_recheck_ms",
    "segmenter.forget_tombstones",
    "segmenter.metrics_host",
    "segmenter.metrics_port",
    // Script host (segmenter/script_host/script_host.h): seg-segmenter, segtool.
    "scripts.dir",
    "scripts.cpu_budget_ms",
    "scripts.memory_limit_mb",
    "scripts.quarantine_after_failures",
    "scripts.quarantine_ms",
    "scripts.opaque_time_recheck_ms",
    "scripts.reload_check_interval_ms",
    "scripts.max_stale_ms",
    "scripts.source",
    "scripts.cache_dir",
    "scripts.sync_interval_ms",
    "backfill.enabled",
    "backfill.users_per_s",
    "backfill.lease_ms",
    "backfill.start_delay_ms",
    // Statistics: keyspace and writer (seg-segmenter, segctl stats), queries
    // and server (seg-stats), Redis (both).
    "stats.shards",
    "stats.key_prefix",
    "stats.registry_key",
    "stats.update_registry",
    "stats.hll_retention_days",
    "stats.ttl_recheck_ms",
    "stats.batched_calls",
    "stats.epochs",
    "stats.max_call_adds",
    "stats.max_call_retries",
    "stats.mode",
    "stats.require_registered",
    "stats.max_days",
    "stats.max_union_segments",
    "stats.max_intersection_segments",
    "stats.server_side_merge",
    "stats.intersection_estimator",
    "stats.max_idle_connections",
    "stats.past_day_cache_ms",
    "stats.past_day_cache_max_keys",
    "stats.user_lookup",
    "stats.redis.cluster",
    "stats.redis.seeds",
    "stats.redis.max_redirects",
    "stats.redis.host",
    "stats.redis.port",
    "stats.redis.username",
    "stats.redis.password",
    "stats.redis.db",
    "stats.redis.connect_timeout_ms",
    "stats.redis.command_timeout_ms",
    "stats.redis.reconnect_initial_ms",
    "stats.redis.reconnect_max_ms",
    "stats.server.host",
    "stats.server.port",
    "stats.server.tls_cert_file",
    "stats.server.tls_key_file",
    "stats.server.bearer_token",
    "stats.server.allow_insecure_remote",
    "stats.server.max_message_bytes",
    "stats.server.max_request_bytes",
    "stats.server.metrics_host",
    "stats.server.metrics_port",
    // Tests only: this process's clock off the machine's.
    "clock.offset_ms",
};

// Old keys a loader still reads (and warns about) for one release; not in
// the example file.
constexpr std::string_view kOldKeys[] = {
    // The old name of segmenter.bots.{enabled..capacity_users}; bots wins.
    "segmenter.bot_blacklist.enabled",
    "segmenter.bot_blacklist.window_ms",
    "segmenter.bot_blacklist.threshold_events",
    "segmenter.bot_blacklist.blacklist_ms",
    "segmenter.bot_blacklist.capacity_users",
    "segmenter.skip_cache.clock_skew_margin_ms",  // ignored
    "stats.store.backend",                        // stats.user_lookup + store.backend
};

// Old name -> new name, kept for one release. Several old names of one
// meaning (each binary had its own) alias the same new key: set to
// different values they are an error, since the binaries must agree.
// A name maps a whole subtree ("server" moves server.port too).
const std::vector<RenamedConfigKey> kRenamed = {
    {"store.embedded.data_dir", "store.data_dir"},
    {"stats.store.thrift", "store.thrift"},
    {"stats.store.embedded.data_dir", "store.data_dir"},
    // Topics: every binary's name for one topic.
    {"ingest.events_topic", "topics.events"},
    {"ingest.deadletter_topic", "topics.deadletter"},
    {"ingest.changes_topic", "topics.changes"},
    {"segmenter.notices_topic", "topics.changes"},
    {"notify.topic", "topics.changes"},
    {"segmenter.results_topic", "topics.results"},
    // Tables and families.
    {"ingest.table", "tables.users.name"},
    {"segmenter.table", "tables.users.name"},
    {"stats.store.table", "tables.users.name"},
    {"ingest.family", "tables.users.events_family"},
    {"ingest.events_family", "tables.users.events_family"},
    {"segmenter.events_family", "tables.users.events_family"},
    {"segmenter.state_family", "tables.users.state_family"},
    {"segmenter.due.table", "tables.due.name"},
    {"ingest.watermark.table", "tables.due.name"},
    {"segmenter.due.family", "tables.due.family"},
    {"ingest.watermark.family", "tables.due.family"},
    // seg-store's own keys, now under store.
    {"server", "store.server"},
    {"notify.kafka", "store.notify.kafka"},
    {"notify.max_pending", "store.notify.max_pending"},
    {"notify.tables", "store.notify.tables"},
    {"notify.families", "store.notify.families"},
};

std::vector<std::string_view> Split(std::string_view path) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (true) {
    size_t dot = path.find('.', start);
    parts.push_back(path.substr(start, dot == std::string_view::npos ? dot : dot - start));
    if (dot == std::string_view::npos) return parts;
    start = dot + 1;
  }
}

bool Matches(std::string_view pattern, std::string_view key) {
  std::vector<std::string_view> p = Split(pattern), k = Split(key);
  for (size_t i = 0; i < p.size(); ++i) {
    if (p[i] == "**") return true;  // any subtree, the map itself included
    if (i >= k.size() || (p[i] != "*" && p[i] != k[i])) return false;
  }
  return p.size() == k.size();
}

// The pattern with its wildcards filled from `key`, to compare like with like.
std::string Instantiate(std::string_view pattern, std::string_view key) {
  std::vector<std::string_view> p = Split(pattern), k = Split(key);
  std::string out;
  for (size_t i = 0; i < p.size(); ++i) {
    if (p[i] == "**") {
      if (!out.empty()) out.pop_back();  // "kafka.properties" itself
      break;
    }
    std::string_view part = p[i] == "*" && i < k.size() ? k[i] : p[i];
    out.append(part).append(".");
  }
  if (!out.empty() && out.back() == '.') out.pop_back();
  return out;
}

size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] != b[j - 1])});
      diagonal = up;
    }
  }
  return row[b.size()];
}

}  // namespace

const std::vector<std::string_view>& AllConfigKeys() {
  static const std::vector<std::string_view> keys(std::begin(kKeys), std::end(kKeys));
  return keys;
}

bool ConfigKeyMatches(std::string_view pattern, std::string_view key) {
  return Matches(pattern, key);
}

bool IsKnownConfigKey(std::string_view key) {
  for (std::string_view pattern : kKeys) {
    if (Matches(pattern, key)) return true;
  }
  for (std::string_view old_key : kOldKeys) {
    if (old_key == key) return true;
  }
  return false;
}

std::string NearestConfigKey(std::string_view key) {
  std::string best;
  size_t best_distance = SIZE_MAX;
  for (std::string_view pattern : kKeys) {
    std::string candidate = Instantiate(pattern, key);
    size_t d = EditDistance(key, candidate);
    if (d < best_distance) {
      best_distance = d;
      best = std::move(candidate);
    }
  }
  return best;
}

const std::vector<RenamedConfigKey>& RenamedConfigKeys() { return kRenamed; }

std::string CurrentConfigKey(std::string_view key, std::string_view* old_name) {
  for (const auto& r : kRenamed) {
    if (key == r.old_name || (key.size() > r.old_name.size() && key.starts_with(r.old_name) &&
                              key[r.old_name.size()] == '.')) {
      if (old_name != nullptr) *old_name = r.old_name;
      return std::string(r.new_name).append(key.substr(r.old_name.size()));
    }
  }
  return std::string(key);
}

Status ApplyRenamedKeys(Config& config) {
  // New name -> the old name moved into it, to name it in a conflict.
  std::map<std::string_view, std::string_view> moved_from;
  for (const auto& r : kRenamed) {
    if (!config.Has(r.old_name)) continue;
    auto origin = moved_from.find(r.new_name);
    const bool new_was_set = config.Has(r.new_name);
    SEG_RETURN_IF_ERROR(
        config.Rename(r.old_name, r.new_name, origin == moved_from.end() ? "" : origin->second));
    if (!new_was_set) moved_from.emplace(r.new_name, r.old_name);
    LOG(WARNING) << config.source() << ": " << r.old_name << " is renamed " << r.new_name
                 << "; the old name goes in the next release";
  }
  return Status::OK();
}

StatusOr<Config> LoadBinaryConfig(const std::string& path,
                                  const std::vector<std::string>& overrides) {
  SEG_ASSIGN_OR_RETURN(Config config, Config::LoadFile(path));
  SEG_RETURN_IF_ERROR(ApplyRenamedKeys(config));
  // Overrides win over the file under either name; among themselves, one
  // setting given under two names must agree (a repeat of one name: the
  // last wins, as always).
  std::map<std::string, std::pair<std::string, std::string>> given;  // key -> (as given, value)
  for (const auto& assignment : overrides) {
    size_t eq = assignment.find('=');
    std::string applied = assignment;
    if (eq != std::string::npos && eq > 0) {
      std::string key = assignment.substr(0, eq), value = assignment.substr(eq + 1);
      std::string_view old_name;
      std::string renamed = CurrentConfigKey(key, &old_name);
      if (renamed != key) {
        LOG(WARNING) << "--set " << key << ": " << old_name << " is renamed "
                     << CurrentConfigKey(old_name, nullptr)
                     << "; the old name goes in the next release";
        applied = renamed + "=" + value;
      }
      auto [it, inserted] = given.try_emplace(renamed, key, value);
      if (!inserted) {
        if (it->second.first != key && it->second.second != value) {
          return InvalidArgumentError("--set " + it->second.first + "=" + it->second.second +
                                      " and --set " + key + "=" + value + " set " + renamed +
                                      " to different values");
        }
        it->second = {key, value};
      }
    }
    SEG_RETURN_IF_ERROR(config.ApplyOverride(applied).WithContext("--set " + assignment));
  }
  return config;
}

Status CheckConfigKeys(const Config& config) {
  for (const auto& path : config.ReadPaths()) {
    if (!IsKnownConfigKey(path)) {
      return InternalError("config key " + path +
                           " is read but missing from common/internal/config_keys.cc (and "
                           "config/seg.example.yaml)");
    }
  }
  std::vector<std::string> unknown;
  for (const auto& leaf : config.Leaves()) {
    if (config.WasRead(leaf) || IsKnownConfigKey(leaf)) continue;
    unknown.push_back("'" + leaf + "' (did you mean '" + NearestConfigKey(leaf) + "'?)");
  }
  if (unknown.empty()) return Status::OK();
  std::string msg = config.source() + ": unknown key";
  msg += unknown.size() > 1 ? "s " : " ";
  for (size_t i = 0; i < unknown.size(); ++i) msg += (i ? ", " : "") + unknown[i];
  return InvalidArgumentError(msg);
}

}  // namespace seg
