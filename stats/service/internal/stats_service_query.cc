#include "stats/service/internal/stats_service_query.h"

#include <glog/logging.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <optional>

#include "common/clock.h"
#include "common/metrics.h"
#include "stats/hll/internal/hll_internal.h"

namespace seg::stats::internal {
namespace {

constexpr double kZ95 = 1.959963984540054;

Status Cancelled() { return DeadlineExceededError("deadline exceeded or call cancelled"); }

// Errors from the router mean Redis could not be reached (or answered with
// something we cannot use): the caller sees UNAVAILABLE, not Redis's own
// DEADLINE_EXCEEDED/UNAUTHENTICATED which would describe the caller.
Status RedisDown(const Status& s) { return UnavailableError("redis: " + std::string(s.message())); }

bool IsEmpty(const HyperLogLog& h) {
  for (uint8_t r : h.registers()) {
    if (r != 0) return false;
  }
  return true;
}

// Register-wise max of many Redis HLL strings without a HyperLogLog object
// per key: dense strings (the common case for large segment-days) are folded
// in straight from their packed 6-bit form (SIMD, hll_dense_max.cc); sparse
// ones go through the full decoder. Build() hands the registers to the HLL
// engine.
class RegisterAccumulator {
 public:
  RegisterAccumulator() { registers_.fill(0); }

  Status Add(std::string_view raw, const std::string& key) {
    if (raw.size() == kHllDenseBytes && raw.substr(0, 4) == "HYLL" &&
        static_cast<uint8_t>(raw[4]) == internal::kEncodingDense) {
      internal::MaxDenseInto(reinterpret_cast<const uint8_t*>(raw.data()) + kHllHeaderBytes,
                             registers_.data());
      return Status::OK();
    }
    auto h = HyperLogLog::FromRedisString(raw);
    if (!h.ok()) {
      return InternalError("key " + key +
                           " is not a HyperLogLog: " + std::string(h.status().message()));
    }
    Fold(h->registers().data());
    return Status::OK();
  }

  HyperLogLog Build() const {
    auto h = HyperLogLog::FromRegisters(registers_);
    return h.ok() ? std::move(*h) : HyperLogLog();
  }

 private:
  // Byte-wise max; __restrict lets the compiler vectorise it (uint8_t may
  // alias anything, so without it the loop stays scalar: 4x slower).
  void Fold(const uint8_t* __restrict regs) {
    uint8_t* __restrict dst = registers_.data();
    for (int i = 0; i < kHllRegisters; ++i) dst[i] = dst[i] > regs[i] ? dst[i] : regs[i];
  }
  std::array<uint8_t, kHllRegisters> registers_;
};

// Where a query's time goes, summed over calls (seconds): "fetch" is the
// Redis round trip(s) for the sketches, "merge" decoding, merging and
// estimating. stats_bench reads these to split latency by phase.
metrics::Counter PhaseCounter(const char* phase) {
  return metrics::GetCounter("seg_stats_query_phase_seconds_total",
                             "seg-stats query time by phase (fetch, merge)", {{"phase", phase}});
}

class PhaseTimer {
 public:
  explicit PhaseTimer(const char* phase)
      : counter_(PhaseCounter(phase)), start_us_(Clock::Real()->MonotonicUs()) {}
  ~PhaseTimer() { counter_.Inc((Clock::Real()->MonotonicUs() - start_us_) / 1e6); }

 private:
  metrics::Counter counter_;
  int64_t start_us_;
};

// One shard's PFCOUNT reply as a term of `sum`, with PFCOUNT's standard error.
Status AddPfCount(const RedisReply& r, ShardSum* sum) {
  if (!r.is_integer()) return InternalError("redis PFCOUNT: " + r.DebugString());
  double v = static_cast<double>(r.integer);
  double half = kZ95 * kHllRelativeStdError * v;
  sum->Add(v, std::max(0.0, v - half), v + half);
  return Status::OK();
}

std::string FormatNumber(double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.0f", v);
  return buf;
}

}  // namespace

StatusOr<std::vector<Day>> ResolveDays(const v1::DayRange& range, int max_days) {
  if (range.from().empty()) return InvalidArgumentError("days.from is required (YYYY-MM-DD)");
  SEG_ASSIGN_OR_RETURN(Day from, ParseDay(range.from()));
  Day to = from;
  if (!range.to().empty()) {
    SEG_ASSIGN_OR_RETURN(to, ParseDay(range.to()));
  }
  int64_t a = DayToEpochDays(from), b = DayToEpochDays(to);
  if (a > b) {
    return InvalidArgumentError("days.from " + FormatDay(from) + " is after days.to " +
                                FormatDay(to));
  }
  if (b - a + 1 > max_days) {
    return InvalidArgumentError("day range of " + std::to_string(b - a + 1) +
                                " days exceeds stats.max_days (" + std::to_string(max_days) + ")");
  }
  std::vector<Day> days;
  days.reserve(static_cast<size_t>(b - a + 1));
  for (int64_t d = a; d <= b; ++d) days.push_back(EpochDaysToDay(d));
  return days;
}

void ShardSum::Add(double value, double low, double high) {
  value_ += value;
  low_dev2_ += (value - low) * (value - low);
  high_dev2_ += (high - value) * (high - value);
}

void ShardSum::Fill(v1::Estimate* out) const {
  double low = std::max(0.0, value_ - std::sqrt(low_dev2_));
  double high = value_ + std::sqrt(high_dev2_);
  out->set_value(value_);
  out->set_ci95_low(low);
  out->set_ci95_high(high);
  out->set_std_error((std::sqrt(low_dev2_) + std::sqrt(high_dev2_)) / (2 * kZ95));
}

StatusOr<std::unique_ptr<RedisRouter>> RouterPool::Acquire() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!idle_.empty()) {
      auto r = std::move(idle_.back());
      idle_.pop_back();
      return r;
    }
  }
  auto router = NewRedisRouter(options_);
  if (!router.ok()) return RedisDown(router.status());
  return std::move(router).value();
}

void RouterPool::Release(std::unique_ptr<RedisRouter> router, bool healthy) {
  if (!router || !healthy) return;
  std::lock_guard<std::mutex> lock(mutex_);
  if (static_cast<int>(idle_.size()) < max_idle_) idle_.push_back(std::move(router));
}

// One request: a borrowed router (returned in the destructor) and the
// fetch/merge helpers.
class QueryEngine::Call {
 public:
  Call(QueryEngine* engine, const CancelCheck& cancelled)
      : engine_(engine), opts_(engine->options_), cancelled_(cancelled) {}
  ~Call() { engine_->pool_.Release(std::move(router_), healthy_); }

  Status Open() { return CheckCancelled(); }

  Status CheckCancelled() const { return cancelled_ && cancelled_() ? Cancelled() : Status::OK(); }

  // Fails NOT_FOUND for the first segment missing from the registry (after
  // one refresh of the cached copy).
  Status CheckKnown(const std::vector<std::string>& segments) {
    if (!opts_.require_registered) return Status::OK();
    auto all_known = [&] {
      std::lock_guard<std::mutex> lock(engine_->registry_mutex_);
      for (const auto& s : segments) {
        if (!engine_->registry_.contains(s)) return false;
      }
      return true;
    };
    if (all_known()) return Status::OK();
    SEG_RETURN_IF_ERROR(RefreshRegistry());
    std::lock_guard<std::mutex> lock(engine_->registry_mutex_);
    for (const auto& s : segments) {
      if (!engine_->registry_.contains(s)) {
        return NotFoundError("unknown segment '" + s + "' (not in " + opts_.registry_key + ")");
      }
    }
    return Status::OK();
  }

  Status RefreshRegistry() {
    SEG_ASSIGN_OR_RETURN(RedisReply r,
                         Command(opts_.registry_key, {"HGETALL", opts_.registry_key}));
    if (r.is_error()) return InternalError("redis HGETALL " + opts_.registry_key + ": " + r.str);
    std::map<std::string, std::string> fresh;
    for (size_t i = 0; i + 1 < r.elements.size(); i += 2) {
      fresh[r.elements[i].str] = r.elements[i + 1].str;
    }
    std::lock_guard<std::mutex> lock(engine_->registry_mutex_);
    engine_->registry_ = std::move(fresh);
    return Status::OK();
  }

  std::map<std::string, std::string> Registry() {
    std::lock_guard<std::mutex> lock(engine_->registry_mutex_);
    return engine_->registry_;
  }

  StatusOr<RedisReply> Command(const std::string& key, const RedisArgv& argv) {
    SEG_RETURN_IF_ERROR(CheckCancelled());
    SEG_RETURN_IF_ERROR(Connect());
    auto r = router_->Command(key, argv);
    if (!r.ok()) {
      healthy_ = false;
      return RedisDown(r.status());
    }
    return std::move(r).value();
  }

  StatusOr<std::vector<RedisReply>> Pipeline(const std::vector<RoutedCommand>& commands) {
    SEG_RETURN_IF_ERROR(CheckCancelled());
    SEG_RETURN_IF_ERROR(Connect());
    auto r = router_->Pipeline(commands);
    if (!r.ok()) {
      healthy_ = false;
      return RedisDown(r.status());
    }
    return std::move(r).value();
  }

  // keys[shard] -> raw strings (nullptr for absent keys): past days from the
  // engine's PastDayCache when it holds them, the rest with one MGET per
  // shard, all in one pipeline per node.
  StatusOr<std::vector<std::vector<SharedSketch>>> MGetPerShard(
      const std::vector<std::vector<std::string>>& keys) {
    PastDayCache& cache = engine_->cache_;
    std::vector<std::vector<SharedSketch>> out(keys.size());
    std::vector<std::vector<size_t>> missing(keys.size());  // positions to fetch
    std::vector<RoutedCommand> cmds;
    std::vector<size_t> shard_of;
    for (size_t s = 0; s < keys.size(); ++s) {
      out[s].resize(keys[s].size());
      for (size_t k = 0; k < keys[s].size(); ++k) {
        if (auto hit = cache.Find(keys[s][k])) {
          out[s][k] = std::move(*hit);
        } else {
          missing[s].push_back(k);
        }
      }
      if (missing[s].empty()) continue;
      RoutedCommand c;
      c.key = keys[s][missing[s][0]];
      c.argv.reserve(missing[s].size() + 1);
      c.argv.push_back("MGET");
      for (size_t k : missing[s]) c.argv.push_back(keys[s][k]);
      cmds.push_back(std::move(c));
      shard_of.push_back(s);
    }
    if (cmds.empty()) return out;
    PhaseTimer timer("fetch");
    SEG_ASSIGN_OR_RETURN(std::vector<RedisReply> replies, Pipeline(cmds));
    for (size_t i = 0; i < replies.size(); ++i) {
      RedisReply& r = replies[i];
      size_t s = shard_of[i];
      if (r.is_error())
        return InternalError("redis MGET on shard " + std::to_string(s) + ": " + r.str);
      if (!r.is_array() || r.elements.size() != missing[s].size()) {
        return InternalError("redis MGET on shard " + std::to_string(s) + ": unexpected reply");
      }
      for (size_t j = 0; j < r.elements.size(); ++j) {
        const size_t k = missing[s][j];
        if (r.elements[j].is_string()) {
          out[s][k] = std::make_shared<const std::string>(std::move(r.elements[j].str));
        }
        if (cache.CacheableKey(keys[s][k])) cache.Put(keys[s][k], out[s][k]);
      }
    }
    return out;
  }

  // Merges the raw sketches into `acc`. INTERNAL naming the key when a value
  // is not an HLL.
  Status MergeInto(RegisterAccumulator* acc, const SharedSketch& raw, const std::string& key) {
    if (!raw) return Status::OK();
    return acc->Add(*raw, key);
  }

  // One estimate per key position summed over shards: (*sums)[i] gets the
  // sketch at keys[s][i] of every shard s (a day of a series, a segment of
  // the segment list).
  Status SumEachKeyOverShards(const std::vector<std::vector<std::string>>& keys,
                              std::vector<ShardSum>* sums) {
    SEG_ASSIGN_OR_RETURN(auto raws, MGetPerShard(keys));
    PhaseTimer timer("merge");
    for (size_t s = 0; s < keys.size(); ++s) {
      for (size_t i = 0; i < keys[s].size(); ++i) {
        auto acc = std::make_unique<RegisterAccumulator>();
        SEG_RETURN_IF_ERROR(MergeInto(acc.get(), raws[s][i], keys[s][i]));
        CardinalityEstimate e = acc->Build().EstimateWithError();
        (*sums)[i].Add(e.value, e.ci95_low, e.ci95_high);
      }
    }
    return Status::OK();
  }

  // |union of segments over days| as a sum over shards.
  StatusOr<v1::Estimate> UnionOver(const std::vector<std::string>& segments,
                                   const std::vector<Day>& days) {
    std::vector<std::vector<std::string>> keys(opts_.shards);
    for (uint32_t s = 0; s < opts_.shards; ++s) {
      keys[s].reserve(segments.size() * days.size());
      for (const auto& seg : segments) {
        for (Day d : days) keys[s].push_back(HllKey(opts_.key_prefix, s, seg, d));
      }
    }
    ShardSum sum;
    if (opts_.server_side_merge) {
      std::vector<RoutedCommand> cmds;
      for (uint32_t s = 0; s < opts_.shards; ++s) {
        RoutedCommand c;
        c.key = keys[s][0];
        c.argv.push_back("PFCOUNT");
        c.argv.insert(c.argv.end(), keys[s].begin(), keys[s].end());
        cmds.push_back(std::move(c));
      }
      SEG_ASSIGN_OR_RETURN(std::vector<RedisReply> replies, Pipeline(cmds));
      for (const auto& r : replies) SEG_RETURN_IF_ERROR(AddPfCount(r, &sum));
    } else {
      SEG_ASSIGN_OR_RETURN(auto raws, MGetPerShard(keys));
      SEG_RETURN_IF_ERROR(CheckCancelled());
      PhaseTimer timer("merge");
      for (uint32_t s = 0; s < opts_.shards; ++s) {
        auto acc = std::make_unique<RegisterAccumulator>();
        for (size_t k = 0; k < keys[s].size(); ++k) {
          SEG_RETURN_IF_ERROR(MergeInto(acc.get(), raws[s][k], keys[s][k]));
        }
        CardinalityEstimate e = acc->Build().EstimateWithError();
        sum.Add(e.value, e.ci95_low, e.ci95_high);
      }
    }
    v1::Estimate out;
    sum.Fill(&out);
    out.set_method(segments.size() == 1 ? "hll" : "hll-union");
    return out;
  }

 private:
  // Borrows a router on first use: a call answered from the registry and
  // the past-day cache alone never needs Redis.
  Status Connect() {
    if (router_) return Status::OK();
    SEG_ASSIGN_OR_RETURN(router_, engine_->pool_.Acquire());
    return Status::OK();
  }

  QueryEngine* engine_;
  const StatsQueryOptions& opts_;
  const CancelCheck& cancelled_;
  std::unique_ptr<RedisRouter> router_;
  bool healthy_ = true;
};

QueryEngine::QueryEngine(StatsQueryOptions options)
    : options_(std::move(options)),
      pool_(options_.redis, options_.max_idle_connections),
      cache_(options_.past_day_cache_ms, static_cast<size_t>(options_.past_day_cache_max_keys),
             options_.clock) {
  if (options_.shards == 0) options_.shards = 1;
}

StatusOr<std::vector<Day>> QueryEngine::SegmentDays(const v1::SegmentSizeRequest& request) const {
  if (request.segment().empty()) return InvalidArgumentError("segment is required");
  return ResolveDays(request.days(), options_.max_days);
}

StatusOr<v1::Estimate> QueryEngine::SegmentSize(const v1::SegmentSizeRequest& request,
                                                const CancelCheck& cancelled) {
  SEG_ASSIGN_OR_RETURN(std::vector<Day> days, SegmentDays(request));
  Call call(this, cancelled);
  SEG_RETURN_IF_ERROR(call.Open());
  SEG_RETURN_IF_ERROR(call.CheckKnown({request.segment()}));
  return call.UnionOver({request.segment()}, days);
}

StatusOr<v1::Estimate> QueryEngine::Union(const v1::SegmentSetRequest& request,
                                          const CancelCheck& cancelled) {
  if (request.segments().empty()) return InvalidArgumentError("at least one segment is required");
  if (request.segments_size() > options_.max_union_segments) {
    return InvalidArgumentError(std::to_string(request.segments_size()) +
                                " segments in a union exceed stats.max_union_segments (" +
                                std::to_string(options_.max_union_segments) + ")");
  }
  std::vector<std::string> segments;
  for (const auto& s : request.segments()) {
    if (s.empty()) return InvalidArgumentError("empty segment name");
    if (std::find(segments.begin(), segments.end(), s) == segments.end()) segments.push_back(s);
  }
  SEG_ASSIGN_OR_RETURN(std::vector<Day> days, ResolveDays(request.days(), options_.max_days));
  Call call(this, cancelled);
  SEG_RETURN_IF_ERROR(call.Open());
  SEG_RETURN_IF_ERROR(call.CheckKnown(segments));
  SEG_ASSIGN_OR_RETURN(v1::Estimate e, call.UnionOver(segments, days));
  e.set_method("hll-union");
  return e;
}

StatusOr<v1::Estimate> QueryEngine::Intersection(const v1::SegmentSetRequest& request,
                                                 const CancelCheck& cancelled) {
  std::vector<std::string> segments;
  for (const auto& s : request.segments()) {
    if (s.empty()) return InvalidArgumentError("empty segment name");
    if (std::find(segments.begin(), segments.end(), s) == segments.end()) segments.push_back(s);
  }
  if (segments.size() < 2) {
    return InvalidArgumentError("an intersection needs at least 2 distinct segments, got " +
                                std::to_string(segments.size()));
  }
  if (static_cast<int>(segments.size()) > options_.max_intersection_segments) {
    return InvalidArgumentError(std::to_string(segments.size()) +
                                " segments in an intersection exceed "
                                "stats.max_intersection_segments (" +
                                std::to_string(options_.max_intersection_segments) + ")");
  }
  SEG_ASSIGN_OR_RETURN(std::vector<Day> days, ResolveDays(request.days(), options_.max_days));
  Call call(this, cancelled);
  SEG_RETURN_IF_ERROR(call.Open());
  SEG_RETURN_IF_ERROR(call.CheckKnown(segments));

  const size_t k = segments.size();
  std::vector<std::vector<std::string>> keys(options_.shards);
  for (uint32_t s = 0; s < options_.shards; ++s) {
    for (const auto& seg : segments) {
      for (Day d : days) keys[s].push_back(HllKey(options_.key_prefix, s, seg, d));
    }
  }
  SEG_ASSIGN_OR_RETURN(auto raws, call.MGetPerShard(keys));
  PhaseTimer timer("merge");
  const bool ie_only = options_.intersection_estimator == "inclusion-exclusion";
  ShardSum sum;
  std::string method =
      ie_only ? "inclusion-exclusion" : (k == 2 ? "joint-mle" : "joint-mle-inclusion-exclusion");
  std::string single_note;
  bool single_uncertain = false;
  int contributing = 0;
  for (uint32_t s = 0; s < options_.shards; ++s) {
    SEG_RETURN_IF_ERROR(call.CheckCancelled());
    std::vector<HyperLogLog> merged;
    bool any_empty = false;
    for (size_t i = 0; i < k; ++i) {
      auto acc = std::make_unique<RegisterAccumulator>();
      for (size_t d = 0; d < days.size(); ++d) {
        size_t idx = i * days.size() + d;
        SEG_RETURN_IF_ERROR(call.MergeInto(acc.get(), raws[s][idx], keys[s][idx]));
      }
      merged.push_back(acc->Build());
      any_empty = any_empty || IsEmpty(merged.back());
    }
    if (any_empty) continue;  // one set empty in this shard: its overlap is exactly 0
    std::vector<const HyperLogLog*> ptrs;
    for (const auto& h : merged) ptrs.push_back(&h);
    IntersectionEstimate e = ie_only  ? InclusionExclusion(ptrs)
                             : k == 2 ? EstimateIntersection(*ptrs[0], *ptrs[1])
                                      : EstimateIntersectionK(ptrs);
    sum.Add(e.value, e.ci95_low, e.ci95_high);
    single_note = e.note;
    single_uncertain = e.too_uncertain;
    ++contributing;
  }
  v1::Estimate out;
  sum.Fill(&out);
  out.set_method(method);
  if (contributing == 1) {
    // One shard carried everything: its own judgement and note stand.
    out.set_too_uncertain(single_uncertain);
    if (single_uncertain) out.set_note(single_note);
  } else if (contributing > 1) {
    double half = (out.ci95_high() - out.ci95_low()) / 2;
    bool uncertain = half > 0.5 * out.value() || out.ci95_low() <= 0;
    out.set_too_uncertain(uncertain);
    if (uncertain) {
      out.set_note("95% interval [" + FormatNumber(out.ci95_low()) + ", " +
                   FormatNumber(out.ci95_high()) + "] is wide relative to the estimate " +
                   FormatNumber(out.value()) +
                   ": the overlap is small compared with the segments, so HyperLogLog "
                   "registers cannot pin it down; treat it as an upper bound");
    }
  }
  return out;
}

StatusOr<v1::SizeSeriesReply> QueryEngine::SizeSeries(const v1::SegmentSizeRequest& request,
                                                      const CancelCheck& cancelled) {
  SEG_ASSIGN_OR_RETURN(std::vector<Day> days, SegmentDays(request));
  Call call(this, cancelled);
  SEG_RETURN_IF_ERROR(call.Open());
  SEG_RETURN_IF_ERROR(call.CheckKnown({request.segment()}));
  std::vector<std::vector<std::string>> keys(options_.shards);
  for (uint32_t s = 0; s < options_.shards; ++s) {
    for (Day d : days) keys[s].push_back(HllKey(options_.key_prefix, s, request.segment(), d));
  }
  std::vector<ShardSum> sums(days.size());
  if (options_.server_side_merge) {
    std::vector<RoutedCommand> cmds;
    for (uint32_t s = 0; s < options_.shards; ++s) {
      for (const auto& key : keys[s]) cmds.push_back({key, {"PFCOUNT", key}});
    }
    SEG_ASSIGN_OR_RETURN(std::vector<RedisReply> replies, call.Pipeline(cmds));
    for (size_t i = 0; i < replies.size(); ++i) {
      SEG_RETURN_IF_ERROR(AddPfCount(replies[i], &sums[i % days.size()]));
    }
  } else {
    SEG_RETURN_IF_ERROR(call.SumEachKeyOverShards(keys, &sums));
  }
  v1::SizeSeriesReply reply;
  for (size_t d = 0; d < days.size(); ++d) {
    auto* p = reply.add_points();
    p->set_day(FormatDay(days[d]));
    sums[d].Fill(p->mutable_estimate());
    p->mutable_estimate()->set_method("hll");
  }
  return reply;
}

StatusOr<v1::ListSegmentsReply> QueryEngine::ListSegments(Day today, const CancelCheck& cancelled) {
  Call call(this, cancelled);
  SEG_RETURN_IF_ERROR(call.Open());
  SEG_RETURN_IF_ERROR(call.RefreshRegistry());
  std::map<std::string, std::string> registry = call.Registry();
  std::vector<std::string> segments;
  for (const auto& [seg, script] : registry) segments.push_back(seg);
  std::vector<ShardSum> sums(segments.size());
  if (!segments.empty()) {
    std::vector<std::vector<std::string>> keys(options_.shards);
    for (uint32_t s = 0; s < options_.shards; ++s) {
      for (const auto& seg : segments)
        keys[s].push_back(HllKey(options_.key_prefix, s, seg, today));
    }
    SEG_RETURN_IF_ERROR(call.SumEachKeyOverShards(keys, &sums));
  }
  v1::ListSegmentsReply reply;
  for (size_t i = 0; i < segments.size(); ++i) {
    auto* info = reply.add_segments();
    info->set_segment(segments[i]);
    const std::string& script = registry[segments[i]];
    size_t at = script.rfind('@');
    if (at == std::string::npos) {
      info->set_script(script);
    } else {
      info->set_script(script.substr(0, at));
      info->set_script_version(script.substr(at + 1));
    }
    sums[i].Fill(info->mutable_today());
    info->mutable_today()->set_method("hll");
  }
  return reply;
}

}  // namespace seg::stats::internal

namespace seg::stats {

QueryPhaseSeconds QueryPhaseTotals() {
  return {internal::PhaseCounter("fetch").Value(), internal::PhaseCounter("merge").Value()};
}

}  // namespace seg::stats
