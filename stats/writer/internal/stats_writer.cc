// StatsWriter implementation: groups a batch's adds per Redis Cluster slot
// and per key into FCALL seg_add_users_v2 calls (or builds one FCALL
// seg_add_user per user), pipelines them through the RedisRouter (one
// pipeline per node), reloads the Lua on every master when a node answers
// "Function not found" or NOSCRIPT, and resends calls that failed
// transiently, whole.
#include "stats/writer/stats_writer.h"

#include <glog/logging.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <set>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "common/clock.h"
#include "common/hash.h"
#include "common/metrics.h"

namespace seg::stats {

std::string_view StatsFunctionsLuaSource();  // generated from lua/stats_functions.lua

std::string_view StatsFunctionsLua() { return StatsFunctionsLuaSource(); }

namespace {

// The argument contracts of lua/stats_functions.lua (one library).
constexpr std::string_view kPerUserFunction = "seg_add_user";
constexpr std::string_view kBatchedFunction = "seg_add_users_v2";
constexpr std::string_view kEpochFunction = "seg_add_users_v3";
constexpr std::string_view kEpochChanged = "stats epoch changed";

enum class Contract { kPerUser, kBatched, kEpochs };

// The library without its "#!lua name=..." line, plus the line that runs the
// contract's function: an EVAL script.
std::string EvalScriptBody(Contract contract) {
  std::string_view lua = StatsFunctionsLua();
  if (lua.starts_with("#!")) {
    size_t nl = lua.find('\n');
    lua = nl == std::string_view::npos ? std::string_view() : lua.substr(nl + 1);
  }
  std::string body(lua);
  if (!body.empty() && body.back() != '\n') body.push_back('\n');
  body += contract == Contract::kEpochs    ? "return add_users_v3(KEYS, ARGV)\n"
          : contract == Contract::kBatched ? "return add_users(KEYS, ARGV)\n"
                                           : "return add_user(KEYS, ARGV)\n";
  return body;
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

// LOADING, BUSY, MASTERDOWN, TRYAGAIN (left over after the router's own
// retries), CLUSTERDOWN: the server could not run the call now; it may have
// run part of it (a script is not rolled back), so it is sent again whole.
bool IsTransient(const RedisReply& r) {
  return r.is_error() && r.ToStatus().code() == StatusCode::kUnavailable;
}

// A real calendar day in 1970..9999: the civil-day round trip normalises
// anything else (20240230 -> 20240301, month 13, day 0) to another number.
// Arithmetic only: it runs for every add.
bool ValidDay(Day day) {
  if (day < 19700101 || day > 99991231) return false;
  const Day month = day / 100 % 100, dom = day % 100;
  if (month < 1 || month > 12 || dom < 1 || dom > 31) return false;
  return EpochDaysToDay(DayToEpochDays(day)) == day;
}

class StatsWriterImpl final : public StatsWriter {
 public:
  StatsWriterImpl(const StatsWriterOptions& options, std::unique_ptr<RedisRouter> router)
      : options_(options),
        router_(std::move(router)),
        mode_(options.mode),
        calls_(metrics::GetCounter("seg_stats_writer_calls_total",
                                   "Redis procedure calls acknowledged (one per slot group and "
                                   "chunk, or one per user with batched_calls off)")),
        keys_(metrics::GetCounter("seg_stats_writer_keys_total",
                                  "HyperLogLog updates ((user, segment-day) adds) acknowledged")),
        reloads_metric_(metrics::GetCounter("seg_stats_writer_reloads_total",
                                            "Function/script reloads after Redis lost them")),
        retries_metric_(metrics::GetCounter(
            "seg_stats_writer_retries_total",
            "Calls sent again whole after a transient error reply (BUSY, LOADING, TRYAGAIN...)")),
        errors_(metrics::GetCounter("seg_stats_writer_errors_total", "Failed WriteBatch calls")),
        epoch_changes_metric_(metrics::GetCounter(
            "seg_stats_writer_epoch_changes_total",
            "Shards whose stats epoch changed under the writer: Redis lost their data")),
        latency_(metrics::GetHistogram("seg_stats_writer_batch_latency_seconds",
                                       "WriteBatch latency (all round trips of a batch)")) {
    if (options_.shards == 0) options_.shards = 1;
    if (options_.max_call_adds < 1) options_.max_call_adds = 1;
    retention_arg_ = std::to_string(options_.hll_retention_days);
    contract_ = !options_.batched_calls ? Contract::kPerUser
                : options_.epochs && mode_ != StatsCallMode::kPfaddPerRoundTrip
                    ? Contract::kEpochs
                    : Contract::kBatched;
    if (contract_ == Contract::kEpochs) epochs_.resize(options_.shards);
  }

  std::optional<std::string_view> Epoch(std::string_view user_id) const override {
    if (contract_ != Contract::kEpochs) return std::nullopt;
    return std::string_view(epochs_[UserShard(user_id, options_.shards)]);
  }

  Status WriteBatch(std::span<const UserUpdate> batch) override {
    std::vector<Day> valid_days;  // a batch has few days: check each once
    for (const auto& u : batch) {
      if (u.adds.empty()) continue;
      if (u.user_id.empty()) return InvalidArgumentError("stats writer: empty user id");
      for (const auto& a : u.adds) {
        if (a.segment.empty()) {
          return InvalidArgumentError("stats writer: empty segment for user " + u.user_id);
        }
        if (std::find(valid_days.begin(), valid_days.end(), a.day) != valid_days.end()) continue;
        if (ValidDay(a.day)) {
          if (valid_days.size() < 16) valid_days.push_back(a.day);
        } else {
          return InvalidArgumentError("stats writer: bad day " + std::to_string(a.day) +
                                      " (want yyyymmdd) for user " + u.user_id);
        }
      }
    }
    // Days already past retention: their key would expire the moment it was
    // written, so they are not written at all (a backfill of old data).
    std::vector<UserUpdate> alive;
    if (options_.hll_retention_days > 0 && mode_ != StatsCallMode::kPfaddPerRoundTrip) {
      // yyyymmdd integers of real days order like the days themselves.
      const Day first_alive =
          EpochDaysToDay(Clock::Real()->NowMs() / 86'400'000 - options_.hll_retention_days);
      auto past = [&](const SegmentDay& a) { return a.day < first_alive; };
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

  // Every shard's epoch: SET NX (a shard without one gets one now, so that
  // the first calls need not learn it) and GET, one pipeline per node.
  Status LoadEpochs() {
    std::vector<RoutedCommand> cmds;
    cmds.reserve(2 * epochs_.size());
    const std::string fresh = NewEpoch();
    for (uint32_t shard = 0; shard < epochs_.size(); ++shard) {
      std::string key = EpochKey(options_.key_prefix, shard);
      cmds.push_back({key, {"SET", key, fresh, "NX"}});
      cmds.push_back({key, {"GET", key}});
    }
    SEG_ASSIGN_OR_RETURN(std::vector<RedisReply> replies, router_->Pipeline(cmds));
    ++counters_.round_trips;
    for (uint32_t shard = 0; shard < epochs_.size(); ++shard) {
      const RedisReply& set = replies[2 * shard];
      const RedisReply& get = replies[2 * shard + 1];
      SEG_RETURN_IF_ERROR(set.ToStatus().WithContext("stats writer: SET " + cmds[2 * shard].key));
      SEG_RETURN_IF_ERROR(get.ToStatus().WithContext("stats writer: GET " + cmds[2 * shard].key));
      // Nil: lost again between the two commands; the next call creates it.
      epochs_[shard] = get.is_string() ? get.str : std::string();
    }
    epochs_loaded_ = true;
    return Status::OK();
  }

  // Microseconds since the epoch and 32 random bits: the value only has to
  // differ from every earlier epoch of the key.
  static std::string NewEpoch() {
    const auto us = std::chrono::duration_cast<std::chrono::microseconds>(
                        std::chrono::system_clock::now().time_since_epoch())
                        .count();
    char buf[48];
    std::snprintf(buf, sizeof(buf), "%lld-%08x", static_cast<long long>(us),
                  static_cast<unsigned>(std::random_device{}()));
    return buf;
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

  // FUNCTION LOAD REPLACE of the library registers both functions, so a
  // writer of either contract reloading it leaves the other one working.
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
        return MaybeLoadEpochs();
      }
      LOG(WARNING) << "stats writer: Redis Functions unavailable, falling back to EVALSHA";
      mode_ = StatsCallMode::kEvalsha;
    }
    std::string body = EvalScriptBody(contract_);
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
    return MaybeLoadEpochs();
  }

  Status MaybeLoadEpochs() {
    return contract_ == Contract::kEpochs && !epochs_loaded_ ? LoadEpochs() : Status::OK();
  }

  StatsCallMode mode() const override { return mode_; }
  const StatsWriterCounters& counters() const override { return counters_; }

 private:
  // What a call carries, for the counters and for error messages.
  struct CallInfo {
    int64_t adds = 0;                  // (user, segment-day) pairs
    const UserUpdate* user = nullptr;  // per-user calls
    size_t keys = 0;                   // batched calls
    std::vector<uint32_t> shards;      // seg_add_users_v3: the shard of each epoch key
  };

  // "FCALL <function>" or "EVALSHA <sha>": argv[0] and argv[1] of a call,
  // rewritten before every send (a reload may switch FCALL to EVALSHA).
  void SetCallHead(RedisArgv* argv) const {
    if (mode_ == StatsCallMode::kFunction) {
      (*argv)[0] = "FCALL";
      (*argv)[1] = contract_ == Contract::kEpochs    ? kEpochFunction
                   : contract_ == Contract::kBatched ? kBatchedFunction
                                                     : kPerUserFunction;
    } else {
      (*argv)[0] = "EVALSHA";
      (*argv)[1] = sha_;
    }
  }

  // '1' when this writer has not asked for `key`'s expiry lately (and now
  // counts it as asked), '0' otherwise; retention 0: never.
  char ExpiryFlag(const std::string& key) {
    if (options_.hll_retention_days <= 0) return '0';
    bool check = expiry_checked_.insert(key).second;
    counters_.expiry_checks += check;
    return check ? '1' : '0';
  }

  // One call per user (seg_add_user). With retention on, keys this writer
  // has not checked lately get their flag in ARGV[3] ('1' = EXPIREAT NX this
  // key): the procedure then sets the expiry of each key about once per
  // writer per ttl_recheck_ms instead of on every change; calls with nothing
  // to check carry no ARGV[2]/[3] and cost Redis exactly what they did before.
  RoutedCommand PerUserCall(const UserUpdate& u) {
    uint32_t shard = UserShard(u.user_id, options_.shards);
    RoutedCommand c;
    c.argv.reserve(u.adds.size() + 6);
    c.argv.resize(2);  // SetCallHead
    c.argv.push_back(std::to_string(u.adds.size()));
    std::string flags;
    bool any = false;
    for (const auto& a : u.adds) {
      c.argv.push_back(HllKey(options_.key_prefix, shard, a.segment, a.day));
      if (options_.hll_retention_days > 0) {
        flags.push_back(ExpiryFlag(c.argv.back()));
        any = any || flags.back() == '1';
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

  // A (shard, segment, day): one HyperLogLog key.
  struct KeyId {
    uint32_t shard;
    Day day;
    std::string_view segment;
    bool operator==(const KeyId&) const = default;
  };
  struct KeyIdHash {
    size_t operator()(const KeyId& k) const {
      return std::hash<std::string_view>()(k.segment) ^
             ((static_cast<size_t>(k.shard) << 32 | k.day) * 0x9E3779B97F4A7C15ull);
    }
  };
  struct KeyMembers {
    std::string key;
    int slot = 0;
    uint32_t shard = 0;
    std::vector<std::string_view> members;  // user ids, into the batch
  };

  // Many users per call (seg_add_users_v3, or v2 with epochs off): the
  // batch's adds grouped per key, keys grouped per Redis Cluster slot (on one
  // server every key is in one group: Redis checks slots only in cluster
  // mode), one call per group and chunk of at most max_call_adds members; a
  // key with more members than fit continues in the next call. Layout
  // (lua/stats_functions.lua):
  //   v2: FCALL f n k1..kn <days> <flags> c1..cn <c1 members of k1> ...
  //   v3: FCALL f m+n e1..em k1..kn m x1..xm <v2's arguments>
  // with e the epoch keys of the shards of the call's keys (and, in a slot's
  // first call, of the shards whose users only check; an epoch-only call
  // when nothing else goes to that slot), x the epochs this writer knows.
  void BatchedCalls(std::span<const UserUpdate> batch, std::vector<RoutedCommand>* cmds,
                    std::vector<CallInfo>* infos) {
    std::unordered_map<KeyId, size_t, KeyIdHash> index;
    std::vector<KeyMembers> keys;
    const bool cluster = router_->is_cluster();
    const bool epochs = contract_ == Contract::kEpochs;
    std::vector<uint32_t> check_only;  // shards of users with nothing to add
    std::vector<bool> has_keys(epochs ? options_.shards : 0);
    for (const auto& u : batch) {
      if (u.user_id.empty()) continue;
      const uint32_t shard = UserShard(u.user_id, options_.shards);
      if (u.adds.empty()) {
        if (epochs) check_only.push_back(shard);
        continue;
      }
      if (epochs) has_keys[shard] = true;
      for (const auto& a : u.adds) {
        auto [it, fresh] = index.try_emplace(KeyId{shard, a.day, a.segment}, keys.size());
        if (fresh) {
          KeyMembers& k = keys.emplace_back();
          k.key = HllKey(options_.key_prefix, shard, a.segment, a.day);
          k.slot = cluster ? RedisKeySlot(k.key) : 0;
          k.shard = shard;
        }
        keys[it->second].members.push_back(u.user_id);
      }
    }
    // Check-only shards not covered by a call carrying their keys, per slot.
    std::map<int, std::vector<uint32_t>> extra_by_slot;
    std::sort(check_only.begin(), check_only.end());
    check_only.erase(std::unique(check_only.begin(), check_only.end()), check_only.end());
    for (uint32_t shard : check_only) {
      if (has_keys[shard]) continue;
      const int slot = cluster ? RedisKeySlot(EpochKey(options_.key_prefix, shard)) : 0;
      extra_by_slot[slot].push_back(shard);
    }
    // Keys of one slot together, in order of first sight within it.
    std::vector<size_t> order(keys.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    if (cluster) {
      std::stable_sort(order.begin(), order.end(),
                       [&](size_t a, size_t b) { return keys[a].slot < keys[b].slot; });
    }
    struct Piece {
      const KeyMembers* key;
      size_t from, to;  // members[from, to)
    };
    std::vector<Piece> pieces;
    std::vector<uint32_t> extra;  // check-only shards for the next call
    size_t adds = 0;
    auto emit = [&] {
      if (pieces.empty() && extra.empty()) return;
      std::vector<uint32_t> shards;
      if (epochs) {
        shards = std::move(extra);
        for (const Piece& p : pieces) shards.push_back(p.key->shard);
        std::sort(shards.begin(), shards.end());
        shards.erase(std::unique(shards.begin(), shards.end()), shards.end());
      }
      extra.clear();
      RoutedCommand c;
      c.argv.reserve(6 + 2 * shards.size() + 2 * pieces.size() + adds);
      c.argv.resize(2);  // SetCallHead
      c.argv.push_back(std::to_string(shards.size() + pieces.size()));
      for (uint32_t shard : shards) c.argv.push_back(EpochKey(options_.key_prefix, shard));
      std::string flags;
      bool any = false;
      for (const Piece& p : pieces) {
        c.argv.push_back(p.key->key);
        // A key continued from the previous call was flagged there.
        flags.push_back(p.from == 0 ? ExpiryFlag(p.key->key) : '0');
        any = any || flags.back() == '1';
      }
      if (epochs) {
        c.argv.push_back(std::to_string(shards.size()));
        for (uint32_t shard : shards) c.argv.push_back(epochs_[shard]);
      }
      c.argv.push_back(any ? retention_arg_ : "0");
      c.argv.push_back(any ? std::move(flags) : std::string());
      for (const Piece& p : pieces) c.argv.push_back(std::to_string(p.to - p.from));
      for (const Piece& p : pieces) {
        for (size_t m = p.from; m < p.to; ++m) c.argv.emplace_back(p.key->members[m]);
      }
      c.key = c.argv[3];
      cmds->push_back(std::move(c));
      infos->push_back(
          CallInfo{static_cast<int64_t>(adds), nullptr, pieces.size(), std::move(shards)});
      pieces.clear();
      adds = 0;
    };
    auto start_slot = [&](int slot) {
      auto it = extra_by_slot.find(slot);
      if (it == extra_by_slot.end()) return;
      extra = std::move(it->second);
      extra_by_slot.erase(it);
    };
    const size_t cap = static_cast<size_t>(options_.max_call_adds);
    int slot = -1;
    for (size_t i : order) {
      const KeyMembers& k = keys[i];
      if (k.slot != slot) {
        emit();
        slot = k.slot;
        start_slot(slot);
      }
      for (size_t from = 0; from < k.members.size();) {
        size_t to = std::min(k.members.size(), from + (cap - adds));
        pieces.push_back({&k, from, to});
        adds += to - from;
        from = to;
        if (adds == cap) emit();
      }
    }
    emit();
    for (auto& [s, shards] : extra_by_slot) {  // slots with checks only
      extra = std::move(shards);
      emit();
    }
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

  std::string Describe(const CallInfo& info, const RoutedCommand& c) const {
    if (info.user != nullptr) return "call for user " + info.user->user_id;
    return "call of " + std::to_string(info.adds) + " adds to " + std::to_string(info.keys) +
           " keys (" + c.key + ", ...)";
  }

  // Builds the batch's calls, then sends them, one pipeline per round:
  // calls answered "Function not found"/NOSCRIPT go again after a reload,
  // calls answered with a transient error (IsTransient) go again after a
  // short backoff. A call is always resent whole, with the same members and
  // expiry flags: PFADD is idempotent, so whatever part of it ran before
  // changes nothing. Any other error reply fails the batch.
  Status WriteCalls(std::span<const UserUpdate> batch) {
    if (!loaded_) SEG_RETURN_IF_ERROR(LoadProcedures());
    MaybeResetExpiryChecks();
    std::vector<RoutedCommand> cmds;
    std::vector<CallInfo> infos;
    if (options_.batched_calls) {
      BatchedCalls(batch, &cmds, &infos);
    } else {
      for (const auto& u : batch) {
        if (u.adds.empty()) continue;
        cmds.push_back(PerUserCall(u));
        infos.push_back(CallInfo{static_cast<int64_t>(u.adds.size()), &u, 0, {}});
      }
    }
    int reloads = 0, retries = 0;
    size_t stale_shards = 0;  // epochs the batch's calls carried wrongly
    while (!cmds.empty()) {
      for (auto& c : cmds) SetCallHead(&c.argv);
      SEG_ASSIGN_OR_RETURN(std::vector<RedisReply> replies, router_->Pipeline(cmds));
      ++counters_.round_trips;
      std::vector<size_t> missing, transient;
      for (size_t i = 0; i < replies.size(); ++i) {
        const RedisReply& r = replies[i];
        if (IsMissingProcedure(r)) {
          missing.push_back(i);
          continue;
        }
        if (IsTransient(r) && retries < options_.max_call_retries) {
          transient.push_back(i);
          continue;
        }
        SEG_RETURN_IF_ERROR(
            r.ToStatus().WithContext("stats writer: " + Describe(infos[i], cmds[i])));
        if (contract_ == Contract::kEpochs) {
          SEG_ASSIGN_OR_RETURN(size_t stale, ApplyEpochReply(r, infos[i]));
          stale_shards += stale;
        } else {
          counters_.changed += r.integer;
        }
        ++counters_.calls;
        counters_.keys += infos[i].adds;
        calls_.Inc();
        keys_.Inc(static_cast<double>(infos[i].adds));
      }
      if (missing.empty() && transient.empty()) break;
      if (!missing.empty()) {
        if (reloads >= options_.max_reload_rounds) {
          return UnavailableError("stats writer: function still missing after " +
                                  std::to_string(reloads) + " reloads");
        }
        LOG(INFO) << "stats writer: " << missing.size()
                  << " call(s) found no function/script on Redis (restarted?); reloading";
        // A Redis that lost its functions may have lost the registry too.
        registered_.clear();
        expiry_checked_.clear();
        ++reloads;
        ++counters_.reloads;
        reloads_metric_.Inc();
        SEG_RETURN_IF_ERROR(LoadProcedures());
      }
      if (!transient.empty()) {
        LOG_EVERY_N(WARNING, 100) << "stats writer: " << transient.size()
                                  << " call(s) failed transiently ("
                                  << replies[transient.front()].str << "); resending them whole";
        counters_.retries += static_cast<int64_t>(transient.size());
        retries_metric_.Inc(static_cast<double>(transient.size()));
        std::this_thread::sleep_for(std::chrono::milliseconds(10 << std::min(retries, 6)));
        ++retries;
      }
      // The calls to send again, whole: moved, never rebuilt.
      std::vector<size_t> again;
      std::merge(missing.begin(), missing.end(), transient.begin(), transient.end(),
                 std::back_inserter(again));
      std::vector<RoutedCommand> next;
      std::vector<CallInfo> next_infos;
      for (size_t i : again) {
        next.push_back(std::move(cmds[i]));
        next_infos.push_back(infos[i]);
      }
      cmds = std::move(next);
      infos = std::move(next_infos);
    }
    if (stale_shards > 0) {
      ++counters_.epoch_aborts;
      // Keys recreated since the loss need their expiry again.
      expiry_checked_.clear();
      return AbortedError(std::string(kEpochChanged) + " for " + std::to_string(stale_shards) +
                          " shard epoch(s) in the batch (Redis lost data, or the writer did "
                          "not know them yet): its adds are done; segment it again");
    }
    return Status::OK();
  }

  // A seg_add_users_v3 reply: {changed, i1, epoch1, ...}. Records each
  // reported epoch; returns how many were reported (the call carried a
  // different one, so its caller's decisions for that shard were void).
  StatusOr<size_t> ApplyEpochReply(const RedisReply& r, const CallInfo& info) {
    if (!r.is_array() || r.elements.empty() || r.elements.size() % 2 != 1 ||
        !r.elements[0].is_integer()) {
      return FailedPreconditionError("stats writer: unexpected " + std::string(kEpochFunction) +
                                     " reply " + r.DebugString());
    }
    counters_.changed += r.elements[0].integer;
    for (size_t j = 1; j + 1 < r.elements.size(); j += 2) {
      const RedisReply& index = r.elements[j];
      const RedisReply& epoch = r.elements[j + 1];
      if (!index.is_integer() || index.integer < 1 ||
          static_cast<size_t>(index.integer) > info.shards.size() || !epoch.is_string()) {
        return FailedPreconditionError("stats writer: unexpected " + std::string(kEpochFunction) +
                                       " reply " + r.DebugString());
      }
      const uint32_t shard = info.shards[index.integer - 1];
      std::string& known = epochs_[shard];
      if (known == epoch.str) continue;  // another call of this batch reported it first
      if (!known.empty()) {
        ++counters_.epoch_changes;
        epoch_changes_metric_.Inc();
        LOG(WARNING) << "stats writer: epoch of shard " << shard << " changed " << known << " -> "
                     << epoch.str
                     << ": Redis lost its data; counted marks of the old epoch are void";
      }
      known = epoch.str;
    }
    return (r.elements.size() - 1) / 2;
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
  Contract contract_;
  std::vector<std::string> epochs_;  // per shard, kEpochs only; "" = not known
  bool epochs_loaded_ = false;
  bool loaded_ = false;
  std::string sha_;
  std::string retention_arg_;  // ARGV[2] of calls that carry expiry flags
  static constexpr size_t kMaxExpiryChecked = 1 << 20;
  std::unordered_set<std::string> expiry_checked_;  // keys flagged since ..._since_us_
  int64_t expiry_checked_since_us_ = 0;
  std::unordered_set<std::string> registered_;
  StatsWriterCounters counters_;
  metrics::Counter calls_, keys_, reloads_metric_, retries_metric_, errors_, epoch_changes_metric_;
  metrics::Histogram latency_;
};

}  // namespace

std::string EpochKey(std::string_view prefix, uint32_t shard) {
  std::string key(prefix);
  key += ":{";
  key += std::to_string(shard);
  key += "}:epoch";
  return key;
}

bool IsEpochChange(const Status& status) {
  return status.code() == StatusCode::kAborted &&
         status.message().find(kEpochChanged) != std::string_view::npos;
}

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
  SEG_RETURN_IF_ERROR(config.Get(p + ".batched_calls", &batched_calls));
  SEG_RETURN_IF_ERROR(config.Get(p + ".epochs", &epochs));
  SEG_RETURN_IF_ERROR(config.Get(p + ".max_call_adds", &max_call_adds));
  if (max_call_adds < 1 || max_call_adds > 1'000'000) {
    return InvalidArgumentError(config.source() + ": " + p + ".max_call_adds: must be 1..1000000");
  }
  SEG_RETURN_IF_ERROR(config.Get(p + ".max_call_retries", &max_call_retries));
  if (max_call_retries < 0 || max_call_retries > 10) {
    return InvalidArgumentError(config.source() + ": " + p + ".max_call_retries: must be 0..10");
  }
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
