// StatsWriter implementation: builds one FCALL/EVALSHA per user, pipelines
// them through the RedisRouter (one pipeline per node), and reloads the Lua
// on every master when a node answers "Function not found" or NOSCRIPT.
#include "stats/stats_writer.h"

#include <glog/logging.h>

#include <chrono>
#include <set>
#include <unordered_set>

#include "common/clock.h"
#include "common/hash.h"
#include "common/metrics.h"

namespace seg::stats {

std::string_view StatsFunctionsLuaSource();  // generated from lua/stats_functions.lua

std::string_view StatsFunctionsLua() { return StatsFunctionsLuaSource(); }

namespace {

constexpr std::string_view kFunctionName = "seg_add_user";

// The library without its "#!lua name=..." line: an EVAL script.
std::string EvalScriptBody() {
  std::string_view lua = StatsFunctionsLua();
  if (lua.starts_with("#!")) {
    size_t nl = lua.find('\n');
    lua = nl == std::string_view::npos ? std::string_view() : lua.substr(nl + 1);
  }
  return std::string(lua);
}

bool IsMissingProcedure(const RedisReply& r) {
  return r.is_error() &&
         (r.str.starts_with("NOSCRIPT") || r.str.find("Function not found") != std::string::npos);
}

// FUNCTION is unknown (Redis < 7) or forbidden by the ACL: use EVALSHA.
bool FunctionsUnsupported(const RedisReply& r) {
  return r.is_error() &&
         (r.str.find("unknown command") != std::string::npos || r.str.starts_with("NOPERM"));
}

bool ValidDay(Day day) {
  if (day < 19700101 || day > 99991231) return false;
  return ParseDay(std::to_string(day)).ok();
}

class StatsWriterImpl final : public StatsWriter {
 public:
  StatsWriterImpl(const StatsWriterOptions& options, std::unique_ptr<RedisRouter> router)
      : options_(options),
        router_(std::move(router)),
        mode_(options.mode),
        calls_(metrics::GetCounter("seg_stats_writer_calls_total",
                                   "Redis procedure calls (one per user) acknowledged")),
        keys_(metrics::GetCounter("seg_stats_writer_keys_total",
                                  "HyperLogLog segment-day keys updated")),
        reloads_metric_(metrics::GetCounter("seg_stats_writer_reloads_total",
                                            "Function/script reloads after Redis lost them")),
        errors_(metrics::GetCounter("seg_stats_writer_errors_total", "Failed WriteBatch calls")),
        latency_(metrics::GetHistogram("seg_stats_writer_batch_latency_seconds",
                                       "WriteBatch latency (all round trips of a batch)")) {
    if (options_.shards == 0) options_.shards = 1;
    retention_arg_ = std::to_string(options_.hll_retention_days);
  }

  Status WriteBatch(std::span<const UserUpdate> batch) override {
    for (const auto& u : batch) {
      if (u.adds.empty()) continue;
      if (u.user_id.empty()) return InvalidArgumentError("stats writer: empty user id");
      for (const auto& a : u.adds) {
        if (a.segment.empty()) {
          return InvalidArgumentError("stats writer: empty segment for user " + u.user_id);
        }
        if (!ValidDay(a.day)) {
          return InvalidArgumentError("stats writer: bad day " + std::to_string(a.day) +
                                      " (want yyyymmdd) for user " + u.user_id);
        }
      }
    }
    // Days already past retention: their key would expire the moment it was
    // written, so they are not written at all (a backfill of old data).
    std::vector<UserUpdate> alive;
    if (options_.hll_retention_days > 0 && mode_ != StatsCallMode::kPfaddPerRoundTrip) {
      const int64_t first_alive = Clock::Real()->NowMs() / 86'400'000 - options_.hll_retention_days;
      // Days are few per batch: remember the last one seen.
      Day last_day = 0;
      bool last_past = false;
      auto past = [&](const SegmentDay& a) {
        if (a.day != last_day) {
          last_day = a.day;
          last_past = DayToEpochDays(a.day) < first_alive;
        }
        return last_past;
      };
      bool any = false;
      for (const auto& u : batch) {
        for (const auto& a : u.adds) any = any || past(a);
      }
      if (any) {
        alive.assign(batch.begin(), batch.end());
        for (auto& u : alive) {
          counters_.past_retention += std::erase_if(u.adds, past);
        }
        batch = alive;
      }
    }
    int64_t start_us = Clock::Real()->MonotonicUs();
    Status s = mode_ == StatsCallMode::kPfaddPerRoundTrip ? WritePerKey(batch) : WriteCalls(batch);
    if (s.ok()) s = UpdateRegistry(batch);
    latency_.Observe((Clock::Real()->MonotonicUs() - start_us) / 1e6);
    if (!s.ok()) {
      errors_.Inc();
      expiry_checked_.clear();
    }
    return s;
  }

  Status RegisterSegments(const std::map<std::string, std::string>& segment_to_script) override {
    if (segment_to_script.empty()) return Status::OK();
    RedisArgv argv = {"HSET", options_.registry_key};
    for (const auto& [segment, script] : segment_to_script) {
      if (segment.empty()) return InvalidArgumentError("stats writer: empty segment name");
      argv.push_back(segment);
      argv.push_back(script);
    }
    SEG_ASSIGN_OR_RETURN(RedisReply r, router_->Command(options_.registry_key, argv));
    ++counters_.round_trips;
    SEG_RETURN_IF_ERROR(r.ToStatus().WithContext("stats writer: HSET " + options_.registry_key));
    for (const auto& [segment, script] : segment_to_script) registered_.insert(segment);
    return Status::OK();
  }

  Status LoadProcedures() override {
    if (mode_ == StatsCallMode::kPfaddPerRoundTrip) return Status::OK();
    if (mode_ == StatsCallMode::kFunction) {
      bool unsupported = false;
      std::string lua(StatsFunctionsLua());
      Status s = router_->ForEachMaster([&](RedisConnection& conn) -> Status {
        SEG_ASSIGN_OR_RETURN(RedisReply r, conn.Command({"FUNCTION", "LOAD", "REPLACE", lua}));
        if (FunctionsUnsupported(r)) {
          unsupported = true;
          return Status::OK();
        }
        return r.ToStatus().WithContext("FUNCTION LOAD on " + conn.options().Address());
      });
      SEG_RETURN_IF_ERROR(s);
      if (!unsupported) {
        loaded_ = true;
        return Status::OK();
      }
      LOG(WARNING) << "stats writer: Redis Functions unavailable, falling back to EVALSHA";
      mode_ = StatsCallMode::kEvalsha;
    }
    std::string body = EvalScriptBody();
    std::string sha;
    SEG_RETURN_IF_ERROR(router_->ForEachMaster([&](RedisConnection& conn) -> Status {
      SEG_ASSIGN_OR_RETURN(RedisReply r, conn.Command({"SCRIPT", "LOAD", body}));
      SEG_RETURN_IF_ERROR(r.ToStatus().WithContext("SCRIPT LOAD on " + conn.options().Address()));
      sha = r.str;
      return Status::OK();
    }));
    if (sha.empty()) return InternalError("stats writer: SCRIPT LOAD returned no sha");
    sha_ = sha;
    loaded_ = true;
    return Status::OK();
  }

  StatsCallMode mode() const override { return mode_; }
  const StatsWriterCounters& counters() const override { return counters_; }

 private:
  // One call per user. With retention on, keys this writer has not checked
  // lately get their flag in ARGV[3] ('1' = EXPIREAT NX this key): the
  // procedure then sets the expiry of each key about once per writer per
  // ttl_recheck_ms instead of on every change; calls with nothing to check
  // carry no ARGV[2]/[3] and cost Redis exactly what they did before.
  RoutedCommand CallFor(const UserUpdate& u) {
    uint32_t shard = UserShard(u.user_id, options_.shards);
    RoutedCommand c;
    c.argv.reserve(u.adds.size() + 6);
    if (mode_ == StatsCallMode::kFunction) {
      c.argv = {"FCALL", std::string(kFunctionName)};
    } else {
      c.argv = {"EVALSHA", sha_};
    }
    c.argv.push_back(std::to_string(u.adds.size()));
    std::string flags;
    bool any = false;
    for (const auto& a : u.adds) {
      c.argv.push_back(HllKey(options_.key_prefix, shard, a.segment, a.day));
      if (options_.hll_retention_days > 0) {
        bool check = !expiry_checked_.contains(c.argv.back()) &&
                     expiry_checked_.insert(c.argv.back()).second;
        counters_.expiry_checks += check;
        flags.push_back(check ? '1' : '0');
        any = any || check;
      }
    }
    c.argv.push_back(u.user_id);
    if (any) {
      c.argv.push_back(retention_arg_);
      c.argv.push_back(std::move(flags));
    }
    c.key = c.argv[3];
    return c;
  }

  // Keys whose expiry was set within ttl_recheck_ms are not flagged again;
  // the set starts over after that (a key deleted and recreated meanwhile,
  // e.g. by FLUSHALL, gets its expiry within one interval), after a failed
  // batch and after a reload (the calls that carried the flags may not
  // have run).
  void MaybeResetExpiryChecks() {
    int64_t now_us = Clock::Real()->MonotonicUs();
    if (expiry_checked_.size() > kMaxExpiryChecked ||
        now_us - expiry_checked_since_us_ >= options_.ttl_recheck_ms * 1000) {
      expiry_checked_.clear();
      expiry_checked_since_us_ = now_us;
    }
  }

  Status WriteCalls(std::span<const UserUpdate> batch) {
    if (!loaded_) SEG_RETURN_IF_ERROR(LoadProcedures());
    MaybeResetExpiryChecks();
    std::vector<const UserUpdate*> pending;
    for (const auto& u : batch) {
      if (!u.adds.empty()) pending.push_back(&u);
    }
    for (int round = 0; !pending.empty(); ++round) {
      std::vector<RoutedCommand> cmds;
      cmds.reserve(pending.size());
      for (const UserUpdate* u : pending) cmds.push_back(CallFor(*u));
      SEG_ASSIGN_OR_RETURN(std::vector<RedisReply> replies, router_->Pipeline(cmds));
      ++counters_.round_trips;
      std::vector<const UserUpdate*> missing;
      for (size_t i = 0; i < replies.size(); ++i) {
        const RedisReply& r = replies[i];
        if (IsMissingProcedure(r)) {
          missing.push_back(pending[i]);
          continue;
        }
        SEG_RETURN_IF_ERROR(
            r.ToStatus().WithContext("stats writer: call for user " + pending[i]->user_id));
        ++counters_.calls;
        counters_.keys += static_cast<int64_t>(pending[i]->adds.size());
        counters_.changed += r.integer;
        calls_.Inc();
        keys_.Inc(static_cast<double>(pending[i]->adds.size()));
      }
      if (missing.empty()) break;
      if (round >= options_.max_reload_rounds) {
        return UnavailableError("stats writer: function still missing after " +
                                std::to_string(round) + " reloads");
      }
      LOG(INFO) << "stats writer: " << missing.size()
                << " call(s) found no function/script on Redis (restarted?); reloading";
      // A Redis that lost its functions may have lost the registry too.
      registered_.clear();
      expiry_checked_.clear();
      ++counters_.reloads;
      reloads_metric_.Inc();
      SEG_RETURN_IF_ERROR(LoadProcedures());
      pending = std::move(missing);
    }
    return Status::OK();
  }

  Status WritePerKey(std::span<const UserUpdate> batch) {
    for (const auto& u : batch) {
      uint32_t shard = UserShard(u.user_id, options_.shards);
      for (const auto& a : u.adds) {
        std::string key = HllKey(options_.key_prefix, shard, a.segment, a.day);
        SEG_ASSIGN_OR_RETURN(RedisReply r, router_->Command(key, {"PFADD", key, u.user_id}));
        ++counters_.round_trips;
        SEG_RETURN_IF_ERROR(r.ToStatus().WithContext("stats writer: PFADD " + key));
        ++counters_.calls;
        ++counters_.keys;
        counters_.changed += r.integer;
        calls_.Inc();
        keys_.Inc();
      }
    }
    return Status::OK();
  }

  // HSETNX for segments this process has not registered yet: one pipeline,
  // only when something is new.
  Status UpdateRegistry(std::span<const UserUpdate> batch) {
    if (!options_.update_registry) return Status::OK();
    std::set<std::string> fresh;
    for (const auto& u : batch) {
      for (const auto& a : u.adds) {
        if (!registered_.contains(a.segment)) fresh.insert(a.segment);
      }
    }
    if (fresh.empty()) return Status::OK();
    std::vector<RoutedCommand> cmds;
    for (const auto& segment : fresh) {
      cmds.push_back({options_.registry_key, {"HSETNX", options_.registry_key, segment, ""}});
    }
    SEG_ASSIGN_OR_RETURN(std::vector<RedisReply> replies, router_->Pipeline(cmds));
    ++counters_.round_trips;
    for (const auto& r : replies) {
      SEG_RETURN_IF_ERROR(
          r.ToStatus().WithContext("stats writer: HSETNX " + options_.registry_key));
    }
    for (const auto& segment : fresh) registered_.insert(segment);
    return Status::OK();
  }

  StatsWriterOptions options_;
  std::unique_ptr<RedisRouter> router_;
  StatsCallMode mode_;
  bool loaded_ = false;
  std::string sha_;
  std::string retention_arg_;  // ARGV[2] of calls that carry expiry flags
  static constexpr size_t kMaxExpiryChecked = 1 << 20;
  std::unordered_set<std::string> expiry_checked_;  // keys flagged since ..._since_us_
  int64_t expiry_checked_since_us_ = 0;
  std::unordered_set<std::string> registered_;
  StatsWriterCounters counters_;
  metrics::Counter calls_, keys_, reloads_metric_, errors_;
  metrics::Histogram latency_;
};

}  // namespace

Status LoadStatsKeyspace(Config& config, std::string_view prefix, uint32_t* shards,
                         std::string* key_prefix, std::string* registry_key) {
  std::string p(prefix);
  int64_t shards_value = *shards;
  SEG_RETURN_IF_ERROR(config.Get(p + ".shards", &shards_value));
  if (shards_value < 1 || shards_value > 65536) {
    return InvalidArgumentError(config.source() + ": " + p + ".shards: must be 1..65536");
  }
  *shards = static_cast<uint32_t>(shards_value);
  SEG_RETURN_IF_ERROR(config.Get(p + ".key_prefix", key_prefix));
  return config.Get(p + ".registry_key", registry_key);
}

Status StatsWriterOptions::LoadFrom(Config& config, std::string_view prefix) {
  std::string p(prefix);
  SEG_RETURN_IF_ERROR(LoadStatsKeyspace(config, prefix, &shards, &key_prefix, &registry_key));
  SEG_RETURN_IF_ERROR(config.Get(p + ".update_registry", &update_registry));
  SEG_RETURN_IF_ERROR(config.Get(p + ".hll_retention_days", &hll_retention_days));
  SEG_RETURN_IF_ERROR(config.Get(p + ".ttl_recheck_ms", &ttl_recheck_ms));
  if (hll_retention_days < 0 || hll_retention_days > 100000) {
    return InvalidArgumentError(config.source() + ": " + p +
                                ".hll_retention_days: must be 0 (keep forever) .. 100000");
  }
  std::string mode_name;
  SEG_RETURN_IF_ERROR(config.Get(p + ".mode", &mode_name));
  if (mode_name == "function") {
    mode = StatsCallMode::kFunction;
  } else if (mode_name == "evalsha") {
    mode = StatsCallMode::kEvalsha;
  } else if (mode_name == "pfadd") {
    mode = StatsCallMode::kPfaddPerRoundTrip;
  } else if (!mode_name.empty()) {
    return InvalidArgumentError(config.source() + ": " + p + ".mode: expected function, evalsha " +
                                "or pfadd, got '" + mode_name + "'");
  }
  return redis.LoadFrom(config, p + ".redis");
}

StatusOr<std::unique_ptr<StatsWriter>> NewStatsWriter(const StatsWriterOptions& options) {
  SEG_ASSIGN_OR_RETURN(std::unique_ptr<RedisRouter> router, NewRedisRouter(options.redis));
  return NewStatsWriter(options, std::move(router));
}

std::unique_ptr<StatsWriter> NewStatsWriter(const StatsWriterOptions& options,
                                            std::unique_ptr<RedisRouter> router) {
  return std::make_unique<StatsWriterImpl>(options, std::move(router));
}

}  // namespace seg::stats
