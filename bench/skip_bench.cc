// skip_bench: the segmenter's skip rules (segmenter/skip/skip_cache.h,
// segmenter/skip/bot_blacklist.h).
//
// 1. Kernels (Google Benchmark): ns per SkipCache::ShouldSkip / RecordRead
//    with 1M and 10M users resident, random users; baseline in the same run:
//    std::unordered_map<uint64_t, int64_t> keyed by the same 64-bit hash.
//    BotBlacklist::OnNotice with 1M users.
// 2. A bursty-trace simulation (bench/bursty_trace.h): a segmenter node that
//    batches notices (500 or 100 ms), applies blacklist + cache, and segments
//    the survivors (read start = batch time), against the same node with the
//    skip rules off (only per-batch de-duplication). Counts notices,
//    segmentations, and final states missed (users whose last segmentation
//    read began at or before their last write's acknowledgement; must be 0).
//    Scenarios policy_*: the node's read policies (NodeOptions::read_policy:
//    delay, leading edge, adaptive) on the clock-free rule, with each
//    notice's write-to-read latency.
//
// Last line of output: one JSON object {"notices", "segmentations",
// "segmentations_without_skips", "final_states_missed", "skip_ratio", ...,
// "policies": {name: {"notices/segmentations", "final_states_missed", ...}}}.
// `--json-out FILE` also writes {"figures", "ratios", "notes"} for
// tools/bench_report.py. `--users_max=N` limits the kernel sizes (CI);
// `--no_sim` runs the kernels only; `--scenarios=a,b` simulates only those
// scenarios (names as in the output, e.g. keeps_up,coalesce_500ms).
#include <benchmark/benchmark.h>
#include <malloc.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <queue>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <unordered_map>
#include <vector>

#include "bench/bursty_trace.h"
#include "common/clock.h"
#include "common/hash.h"
#include "segmenter/skip/bot_blacklist.h"
#include "segmenter/skip/skip_cache.h"

namespace {

using seg::segmenter::BotBlacklist;
using seg::segmenter::SkipCache;

constexpr uint64_t kSeed = 0x5C1BCAC4E5EEDull;
constexpr int64_t kT0 = 1'700'000'000'000;
constexpr size_t kProbes = 1 << 20;
constexpr uint32_t kTraceUsers = 100'000;
constexpr int64_t kTraceSeconds = 600;

std::map<std::string, double> g_figures;

// Users 0..n-1 resident, plus 1M probe ids drawn from them.
struct Population {
  size_t users = 0;
  std::vector<std::string> probes;
};

const Population& GetPopulation(size_t users) {
  static std::map<size_t, Population> cache;
  Population& p = cache[users];
  if (p.users == 0) {
    p.users = users;
    std::mt19937_64 rng(users);
    p.probes.reserve(kProbes);
    for (size_t i = 0; i < kProbes; ++i) {
      p.probes.push_back(seg::bench::TraceUserId(static_cast<uint32_t>(rng() % users)));
    }
  }
  return p;
}

// Heap in use, including blocks glibc serves by mmap (large bucket arrays).
size_t HeapBytes() {
  const struct mallinfo2 mi = mallinfo2();
  return mi.uordblks + mi.hblkhd;
}

// One table per size, filled once: 10.7 bytes per slot at ~80% load.
SkipCache* GetCache(size_t users) {
  static std::map<size_t, std::unique_ptr<SkipCache>> tables;
  auto& t = tables[users];
  if (!t) {
    SkipCache::Options options;
    options.capacity_bytes = users * 64 / 6 * 5 / 4;
    t = std::move(SkipCache::Create(options)).value();
    for (size_t u = 0; u < users; ++u) {
      t->RecordRead(seg::bench::TraceUserId(static_cast<uint32_t>(u)), kT0 + (u & 1023));
    }
    g_figures["cache_bytes_per_user_" + std::to_string(users / 1'000'000) + "m"] =
        static_cast<double>(t->memory_bytes()) / static_cast<double>(t->size());
    g_figures["cache_resident_fraction_" + std::to_string(users / 1'000'000) + "m"] =
        static_cast<double>(t->size()) / static_cast<double>(users);
  }
  return t.get();
}

std::unordered_map<uint64_t, int64_t>* GetBaseline(size_t users) {
  static std::map<size_t, std::unique_ptr<std::unordered_map<uint64_t, int64_t>>> maps;
  auto& m = maps[users];
  if (!m) {
    const size_t before = HeapBytes();
    m = std::make_unique<std::unordered_map<uint64_t, int64_t>>();
    for (size_t u = 0; u < users; ++u) {
      (*m)[seg::MurmurHash64A(seg::bench::TraceUserId(static_cast<uint32_t>(u)), kSeed)] =
          kT0 + (u & 1023);
    }
    g_figures["baseline_bytes_per_user_" + std::to_string(users / 1'000'000) + "m"] =
        static_cast<double>(HeapBytes() - before) / static_cast<double>(users);
  }
  return m.get();
}

void BM_SkipCacheShouldSkip(benchmark::State& state) {
  const size_t users = static_cast<size_t>(state.range(0));
  const Population& p = GetPopulation(users);
  SkipCache* cache = GetCache(users);
  size_t i = 0, hits = 0;
  for (auto _ : state) {
    hits += cache->ShouldSkip(p.probes[i++ & (kProbes - 1)], kT0 - 100);
  }
  benchmark::DoNotOptimize(hits);
}

void BM_SkipCacheRecordRead(benchmark::State& state) {
  const size_t users = static_cast<size_t>(state.range(0));
  const Population& p = GetPopulation(users);
  SkipCache* cache = GetCache(users);
  size_t i = 0;
  for (auto _ : state) {
    cache->RecordRead(p.probes[i & (kProbes - 1)], kT0 + 2000 + static_cast<int64_t>(i >> 20));
    ++i;
  }
}

void BM_BaselineMapShouldSkip(benchmark::State& state) {
  const size_t users = static_cast<size_t>(state.range(0));
  const Population& p = GetPopulation(users);
  auto* map = GetBaseline(users);
  size_t i = 0, hits = 0;
  for (auto _ : state) {
    auto it = map->find(seg::MurmurHash64A(p.probes[i++ & (kProbes - 1)], kSeed));
    hits += it != map->end() && kT0 - 100 + 50 < it->second;
  }
  benchmark::DoNotOptimize(hits);
}

void BM_BaselineMapRecordRead(benchmark::State& state) {
  const size_t users = static_cast<size_t>(state.range(0));
  const Population& p = GetPopulation(users);
  auto* map = GetBaseline(users);
  size_t i = 0;
  for (auto _ : state) {
    int64_t& v = (*map)[seg::MurmurHash64A(p.probes[i & (kProbes - 1)], kSeed)];
    v = std::max(v, kT0 + 2000 + static_cast<int64_t>(i >> 20));
    ++i;
  }
}

void BM_BotBlacklistOnNotice(benchmark::State& state) {
  const size_t users = static_cast<size_t>(state.range(0));
  const Population& p = GetPopulation(users);
  seg::FakeClock clock(kT0);
  BotBlacklist::Options options;
  options.capacity_bytes = users * 32 * 5 / 4;
  auto bl = std::move(BotBlacklist::Create(options, &clock)).value();
  size_t i = 0, n = 0;
  for (auto _ : state) {
    n += bl->OnNotice(p.probes[i & (kProbes - 1)], 1) == BotBlacklist::Decision::kProcess;
    if ((++i & 1023) == 0) clock.AdvanceMs(1);
  }
  benchmark::DoNotOptimize(n);
}

// Captures ns per iteration of each run for the JSON figures.
class CapturingReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& run : runs) {
      if (run.iterations > 0) ns[run.benchmark_name()] = run.GetAdjustedCPUTime();
    }
  }
  std::map<std::string, double> ns;
};

// ---- the segmenter simulation ----

struct SimOptions {
  bool blacklist = true;
  bool cache = true;
  size_t batch_max = 500;           // notices per batch
  int64_t batch_interval_ms = 100;  // or this long after the batch opened
  int64_t read_fixed_ms = 2;        // multi-get round trip per batch
  double per_user_us = 50;          // read share + scripts per segmented user
  int64_t start_behind_ms = 0;      // consumer starts this far behind
  // A notice is consumed no earlier than this long after delivery: a
  // coalescing delay that lets a page load's burst finish before the read.
  int64_t min_age_ms = 0;
  int64_t skew_margin_ms = 50;
  // The node's rule (segmenter/internal/append_log.h): a notice counts as
  // appended at the node's first watermark sample after it reached the
  // broker (sample_delay_ms later: a fetch and a poll), and a sample taken
  // in the same millisecond as a read is taken as after it (conservative).
  // false: today's former rule, acked_at_ms + skew_margin_ms < read start.
  bool clock_free = false;
  int64_t sample_delay_ms = 5;
  // The node's read policy (NodeOptions::read_policy). Leading edge: a user
  // read more than follow_delay_ms ago, with no follow-up queued, is read in
  // the batch its notice arrives in; one read less than that ago queues one
  // follow-up at that read + follow_delay_ms, which the notices arriving
  // meanwhile join (min_age_ms stays 0). Adaptive: see below.
  bool leading_edge = false;
  int64_t follow_delay_ms = 300;
  // Adaptive (FollowUpRule, segmenter/internal/read_policy.h): leading edge
  // with the follow-up due follow_delay_ms after the ack of the notice that
  // queued it, within [last read + min_delay_ms, last read + max_delay_ms].
  bool adaptive = false;
  int64_t min_delay_ms = 50;
  int64_t max_delay_ms = 500;
  bool track_latency = true;
};

struct SimResult {
  uint64_t notices = 0, segmentations = 0, bot_results = 0;
  uint64_t skipped_blacklist = 0, skipped_cache = 0, deduplicated_in_batch = 0;
  uint64_t final_states_missed = 0, users_final_bot_result = 0, humans_blacklisted = 0;
  uint64_t bots_blacklisted = 0, bots = 0;
  double mean_lag_ms = 0, max_lag_ms = 0;
  // Per notice: acknowledgement to the start of the first read that covers
  // it (what a partner waits for the write's effect, minus publishing).
  double write_to_read_p50_ms = 0, write_to_read_p99_ms = 0;
};

SimResult Simulate(const seg::bench::BurstyTrace& trace, const std::vector<std::string>& ids,
                   const SimOptions& o) {
  std::vector<seg::bench::TraceNotice> ns = trace.notices;
  for (auto& n : ns) n.deliver_ms += o.min_age_ms;
  const size_t users = ids.size();
  seg::FakeClock clock(ns.front().deliver_ms);
  SkipCache::Options co;
  co.skew_margin_ms = o.clock_free ? 0 : o.skew_margin_ms;
  co.capacity_bytes = size_t{16} << 20;  // 1.5M users
  auto cache = std::move(SkipCache::Create(co)).value();
  auto blacklist = std::move(BotBlacklist::Create(BotBlacklist::Options{}, &clock)).value();

  std::vector<int64_t> last_read(users, INT64_MIN), considered_ack(users, INT64_MIN),
      dropped_ack(users, INT64_MIN);
  std::vector<uint64_t> in_batch(users, UINT64_MAX);
  std::vector<uint8_t> blacklisted(users, 0);
  std::vector<uint32_t> batch_users;
  // Leading edge: the last read's start (sim ms) and the queued follow-up.
  std::vector<int64_t> last_read_ms(users, INT64_MIN / 2), follow_key(users, INT64_MIN);
  std::vector<uint8_t> follow_queued(users, 0);
  std::priority_queue<std::pair<int64_t, uint32_t>, std::vector<std::pair<int64_t, uint32_t>>,
                      std::greater<>>
      follow_ups;  // (due, user), soonest first
  // acked_at_ms of the notices no read has covered yet.
  std::vector<std::vector<int64_t>> uncovered(users);
  std::vector<int32_t> write_to_read;
  write_to_read.reserve(ns.size());
  SimResult r;
  double lag_sum = 0;
  size_t i = 0;
  int64_t t = ns.front().deliver_ms + o.start_behind_ms;
  for (uint64_t batch = 0; i < ns.size(); ++batch) {
    // A batch opens at the next notice, or so that it fires when the next follow-up is due.
    int64_t next = ns[i].deliver_ms;
    if (!follow_ups.empty()) next = std::min(next, follow_ups.top().first - o.batch_interval_ms);
    const int64_t open = std::max(t, next);
    const size_t last = std::min(ns.size(), i + o.batch_max) - 1;
    int64_t fire = open + o.batch_interval_ms;
    if (last - i + 1 == o.batch_max) fire = std::min(fire, std::max(open, ns[last].deliver_ms));
    clock.AdvanceMs(fire - clock.NowMs());
    const int64_t read_started = fire;  // stamped before the multi-get
    // Ticks of the clock-free rule: reads at 2t, samples at 2t + 1.
    const int64_t read_key = o.clock_free ? 2 * fire : fire;
    batch_users.clear();
    // Follow-ups due by now join this batch's read unless a later read covered them.
    while (!follow_ups.empty() && follow_ups.top().first <= fire) {
      const uint32_t u = follow_ups.top().second;
      follow_ups.pop();
      follow_queued[u] = 0;
      if (o.cache && cache->ShouldSkip(ids[u], follow_key[u])) continue;
      if (in_batch[u] == batch) continue;
      in_batch[u] = batch;
      batch_users.push_back(u);
    }
    for (; i < ns.size() && i <= last && ns[i].deliver_ms <= fire; ++i) {
      const auto& n = ns[i];
      ++r.notices;
      lag_sum += static_cast<double>(fire - n.deliver_ms);
      r.max_lag_ms = std::max(r.max_lag_ms, static_cast<double>(fire - n.deliver_ms));
      if (o.blacklist) {
        const auto d = blacklist->OnNotice(ids[n.user], n.event_count);
        if (d != BotBlacklist::Decision::kProcess) {
          if (d == BotBlacklist::Decision::kNewlyBlacklisted) {
            ++r.bot_results;
            blacklisted[n.user] = 1;
          } else {
            ++r.skipped_blacklist;
          }
          dropped_ack[n.user] = std::max(dropped_ack[n.user], n.acked_at_ms);
          continue;
        }
      }
      considered_ack[n.user] = std::max(considered_ack[n.user], n.acked_at_ms);
      const int64_t appended_key =
          o.clock_free ? 2 * (n.deliver_ms - o.min_age_ms + o.sample_delay_ms) + 1 : n.acked_at_ms;
      if (o.cache && cache->ShouldSkip(ids[n.user], appended_key)) {
        ++r.skipped_cache;
        continue;
      }
      if (o.track_latency) uncovered[n.user].push_back(n.acked_at_ms);
      if (in_batch[n.user] == batch) {
        ++r.deduplicated_in_batch;
        continue;
      }
      if (o.leading_edge || o.adaptive) {
        if (follow_queued[n.user]) {  // joins the queued follow-up
          follow_key[n.user] = std::max(follow_key[n.user], appended_key);
          ++r.deduplicated_in_batch;
          continue;
        }
        const int64_t last = last_read_ms[n.user];
        if (fire - last < o.follow_delay_ms) {
          follow_queued[n.user] = 1;
          follow_key[n.user] = appended_key;
          follow_ups.emplace(o.adaptive
                                 ? std::clamp(std::min(n.acked_at_ms, fire) + o.follow_delay_ms,
                                              last + o.min_delay_ms, last + o.max_delay_ms)
                                 : last + o.follow_delay_ms,
                             n.user);
          continue;
        }
      }
      in_batch[n.user] = batch;
      batch_users.push_back(n.user);
    }
    // Multi-get + scripts; RecordRead only after the read succeeded.
    const int64_t duration =
        o.read_fixed_ms + static_cast<int64_t>(o.per_user_us * batch_users.size() / 1000.0);
    for (uint32_t u : batch_users) {
      last_read[u] = std::max(last_read[u], read_started);
      last_read_ms[u] = read_started;
      if (o.cache) cache->RecordRead(ids[u], read_key);
      ++r.segmentations;
      if (!o.track_latency) continue;
      auto& open = uncovered[u];
      size_t kept = 0;
      for (const int64_t acked : open) {
        if (acked < read_started) {
          write_to_read.push_back(static_cast<int32_t>(read_started - acked));
        } else {
          open[kept++] = acked;
        }
      }
      open.resize(kept);
    }
    t = fire + duration;
  }
  // Follow-ups still queued after the last notice.
  for (; !follow_ups.empty(); follow_ups.pop()) {
    const auto [due, u] = follow_ups.top();
    if (!follow_queued[u] || (o.cache && cache->ShouldSkip(ids[u], follow_key[u]))) continue;
    follow_queued[u] = 0;
    last_read[u] = std::max(last_read[u], std::max(due, t));
    ++r.segmentations;
  }
  if (!write_to_read.empty()) {
    auto q = [&](double f) {
      auto k = write_to_read.begin() + static_cast<ptrdiff_t>(f * (write_to_read.size() - 1));
      std::nth_element(write_to_read.begin(), k, write_to_read.end());
      return static_cast<double>(*k);
    };
    r.write_to_read_p50_ms = q(0.5);
    r.write_to_read_p99_ms = q(0.99);
  }
  r.mean_lag_ms = lag_sum / static_cast<double>(r.notices);
  for (size_t u = 0; u < users; ++u) {
    r.bots += trace.is_bot[u];
    if (blacklisted[u]) (trace.is_bot[u] ? r.bots_blacklisted : r.humans_blacklisted) += 1;
    if (considered_ack[u] != INT64_MIN && !(considered_ack[u] < last_read[u])) {
      ++r.final_states_missed;
    }
    if (dropped_ack[u] != INT64_MIN && dropped_ack[u] >= last_read[u]) ++r.users_final_bot_result;
  }
  return r;
}

std::string SimJson(const std::string& scenario, const SimResult& on, const SimResult& off) {
  std::ostringstream os;
  os << "{\"scenario\":\"" << scenario << "\",\"notices\":" << on.notices
     << ",\"segmentations\":" << on.segmentations
     << ",\"segmentations_without_skips\":" << off.segmentations
     << ",\"final_states_missed\":" << on.final_states_missed << ",\"skip_ratio\":"
     << 1.0 - static_cast<double>(on.segmentations) / static_cast<double>(on.notices)
     << ",\"notices_per_segmentation\":"
     << static_cast<double>(on.notices) / static_cast<double>(on.segmentations)
     << ",\"reduction_vs_without_skips\":"
     << static_cast<double>(off.segmentations) / static_cast<double>(on.segmentations)
     << ",\"skipped_blacklist\":" << on.skipped_blacklist << ",\"bot_results\":" << on.bot_results
     << ",\"skipped_cache\":" << on.skipped_cache
     << ",\"deduplicated_in_batch\":" << on.deduplicated_in_batch
     << ",\"users_final_bot_result\":" << on.users_final_bot_result << ",\"bots\":" << on.bots
     << ",\"bots_blacklisted\":" << on.bots_blacklisted
     << ",\"humans_blacklisted\":" << on.humans_blacklisted
     << ",\"final_states_missed_without_skips\":" << off.final_states_missed
     << ",\"mean_lag_ms\":" << on.mean_lag_ms << ",\"max_lag_ms\":" << on.max_lag_ms
     << ",\"mean_lag_ms_without_skips\":" << off.mean_lag_ms
     << ",\"write_to_read_p50_ms\":" << on.write_to_read_p50_ms
     << ",\"write_to_read_p99_ms\":" << on.write_to_read_p99_ms << "}";
  return os.str();
}

}  // namespace

int main(int argc, char** argv) {
  std::string json_out;
  size_t users_max = 10'000'000;
  bool run_sim = true;
  std::set<std::string> only_scenarios;  // empty = all
  std::vector<char*> args;
  for (int a = 0; a < argc; ++a) {
    if (std::strcmp(argv[a], "--json-out") == 0 && a + 1 < argc) {
      json_out = argv[++a];
    } else if (std::strcmp(argv[a], "--no_sim") == 0) {
      run_sim = false;
    } else if (std::strncmp(argv[a], "--scenarios=", 12) == 0) {
      std::stringstream list(argv[a] + 12);
      for (std::string name; std::getline(list, name, ',');) only_scenarios.insert(name);
    } else if (std::strncmp(argv[a], "--users_max=", 12) == 0) {
      users_max = std::stoull(argv[a] + 12);
    } else {
      args.push_back(argv[a]);
    }
  }
  int bargc = static_cast<int>(args.size());

  for (int64_t users : {int64_t{1'000'000}, int64_t{10'000'000}}) {
    if (static_cast<size_t>(users) > users_max) continue;
    benchmark::RegisterBenchmark("SkipCache/ShouldSkip", BM_SkipCacheShouldSkip)->Arg(users);
    benchmark::RegisterBenchmark("SkipCache/RecordRead", BM_SkipCacheRecordRead)->Arg(users);
    benchmark::RegisterBenchmark("Baseline/unordered_map/ShouldSkip", BM_BaselineMapShouldSkip)
        ->Arg(users);
    benchmark::RegisterBenchmark("Baseline/unordered_map/RecordRead", BM_BaselineMapRecordRead)
        ->Arg(users);
  }
  benchmark::RegisterBenchmark("BotBlacklist/OnNotice", BM_BotBlacklistOnNotice)->Arg(1'000'000);
  benchmark::Initialize(&bargc, args.data());
  CapturingReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  std::map<std::string, double> ratios;
  for (const char* size : {"1000000", "10000000"}) {
    const std::string m = std::string(size) == "1000000" ? "1m" : "10m";
    for (const char* op : {"ShouldSkip", "RecordRead"}) {
      auto ours = reporter.ns.find(std::string("SkipCache/") + op + "/" + size);
      auto base = reporter.ns.find(std::string("Baseline/unordered_map/") + op + "/" + size);
      if (ours == reporter.ns.end()) continue;
      g_figures[std::string("ns_") + op + "_" + m] = ours->second;
      if (base != reporter.ns.end()) {
        g_figures[std::string("baseline_ns_") + op + "_" + m] = base->second;
        ratios[std::string("time_vs_unordered_map_") + op + "_" + m] = ours->second / base->second;
      }
    }
    auto cb = g_figures.find("cache_bytes_per_user_" + m);
    auto bb = g_figures.find("baseline_bytes_per_user_" + m);
    if (cb != g_figures.end() && bb != g_figures.end()) {
      ratios["memory_vs_unordered_map_" + m] = cb->second / bb->second;
    }
  }
  if (auto it = reporter.ns.find("BotBlacklist/OnNotice/1000000"); it != reporter.ns.end()) {
    g_figures["ns_BotBlacklistOnNotice_1m"] = it->second;
  }

  auto write_json = [&] {
    if (!json_out.empty()) {
      std::ofstream out(json_out);
      out.precision(15);  // counts of ~10^7 must stay exact
      out << "{\"figures\":{";
      bool first = true;
      for (const auto& [k, v] : g_figures) {
        out << (first ? "" : ",") << "\"" << k << "\":" << v;
        first = false;
      }
      out << "},\"ratios\":{";
      first = true;
      for (const auto& [k, v] : ratios) {
        out << (first ? "" : ",") << "\"" << k << "\":" << v;
        first = false;
      }
      out << "},\"notes\":\"Kernels: random users, table at 80% of slots; baseline "
             "std::unordered_map<uint64_t,int64_t> on the same hash. Trace: "
          << kTraceUsers << " users (5% bots), " << kTraceSeconds
          << " s, bench/bursty_trace.h defaults; node batches 500 notices or 100 ms; "
             "without skips = same node, per-batch de-duplication only.\"}\n";
    }
  };
  if (!run_sim) {
    write_json();
    return 0;
  }
  // ---- bursty trace ----
  const auto gen_start = std::chrono::steady_clock::now();
  seg::bench::BurstyTraceOptions trace_options;
  trace_options.users = kTraceUsers;
  trace_options.duration_ms = kTraceSeconds * 1000;
  const seg::bench::BurstyTrace trace = seg::bench::GenerateBurstyTrace(trace_options);
  std::vector<std::string> ids;
  ids.reserve(trace_options.users);
  for (uint32_t u = 0; u < trace_options.users; ++u) ids.push_back(seg::bench::TraceUserId(u));
  std::fprintf(stderr, "trace: %zu users, %llu events, %zu notices (%.1f s to generate)\n",
               ids.size(), static_cast<unsigned long long>(trace.events), trace.notices.size(),
               std::chrono::duration<double>(std::chrono::steady_clock::now() - gen_start).count());

  struct Scenario {
    std::string name;
    SimOptions options;
  };
  std::vector<Scenario> scenarios;
  scenarios.push_back({"keeps_up", SimOptions{}});
  SimOptions behind;
  behind.start_behind_ms = 30'000;
  scenarios.push_back({"starts_30s_behind", behind});
  SimOptions margin0;
  margin0.skew_margin_ms = 0;
  scenarios.push_back({"skew_margin_0", margin0});
  SimOptions margin200;
  margin200.skew_margin_ms = 200;
  scenarios.push_back({"skew_margin_200", margin200});
  SimOptions cache_only;
  cache_only.blacklist = false;
  scenarios.push_back({"cache_only_no_blacklist", cache_only});
  for (int64_t age : {250, 300, 500, 1000, 2000}) {
    SimOptions coalesce;
    coalesce.min_age_ms = age;
    scenarios.push_back({"coalesce_" + std::to_string(age) + "ms", coalesce});
  }
  // The node's clock-free rule next to the acked_at rule it replaced.
  for (const std::string base :
       {"keeps_up", "starts_30s_behind", "coalesce_300ms", "coalesce_1000ms"}) {
    for (const Scenario& s : std::vector<Scenario>(scenarios)) {
      if (s.name != base) continue;
      SimOptions clock_free = s.options;
      clock_free.clock_free = true;
      scenarios.push_back({base + "_clock_free", clock_free});
    }
  }

  // Read policies (NodeOptions::read_policy), on the node's clock-free rule.
  std::vector<std::string> policies;
  for (int64_t delay : {300, 500}) {
    SimOptions o;
    o.clock_free = true;
    o.min_age_ms = delay;
    policies.push_back("delay_" + std::to_string(delay) + "ms");
    scenarios.push_back({"policy_" + policies.back(), o});
  }
  for (int64_t follow : {100, 150, 200, 300, 500}) {
    SimOptions o;
    o.clock_free = true;
    o.leading_edge = true;
    o.follow_delay_ms = follow;
    policies.push_back("leading_edge_" + std::to_string(follow) + "ms");
    scenarios.push_back({"policy_" + policies.back(), o});
  }
  for (int64_t budget : {150, 200}) {
    SimOptions o;
    o.clock_free = true;
    o.adaptive = true;
    o.follow_delay_ms = budget;
    policies.push_back("adaptive_" + std::to_string(budget) + "ms");
    scenarios.push_back({"policy_" + policies.back(), o});
  }
  std::map<std::string, std::string> policy_json;

  std::string main_line;
  std::map<std::string, double> skip_ratio;
  for (const Scenario& s : scenarios) {
    if (!only_scenarios.empty() && only_scenarios.count(s.name) == 0) continue;
    SimOptions off = s.options;
    off.blacklist = false;
    off.cache = false;
    const SimResult r_on = Simulate(trace, ids, s.options);
    const SimResult r_off = Simulate(trace, ids, off);
    const std::string line = SimJson(s.name, r_on, r_off);
    std::fprintf(stderr, "%s\n", line.c_str());
    const std::string p = s.name == "keeps_up" ? "" : s.name + "_";
    g_figures[p + "notices"] = static_cast<double>(r_on.notices);
    g_figures[p + "segmentations"] = static_cast<double>(r_on.segmentations);
    g_figures[p + "segmentations_without_skips"] = static_cast<double>(r_off.segmentations);
    g_figures[p + "final_states_missed"] = static_cast<double>(r_on.final_states_missed);
    ratios[p + "notices_per_segmentation"] =
        static_cast<double>(r_on.notices) / static_cast<double>(r_on.segmentations);
    ratios[p + "segmentations_without_over_with_skips"] =
        static_cast<double>(r_off.segmentations) / static_cast<double>(r_on.segmentations);
    if (s.name == "keeps_up") main_line = line;
    if (s.name.rfind("policy_", 0) == 0) {
      std::ostringstream pj;
      pj << "{\"notices/segmentations\":"
         << static_cast<double>(r_on.notices) / static_cast<double>(r_on.segmentations)
         << ",\"final_states_missed\":" << r_on.final_states_missed
         << ",\"write_to_read_p50_ms\":" << r_on.write_to_read_p50_ms
         << ",\"write_to_read_p99_ms\":" << r_on.write_to_read_p99_ms << "}";
      policy_json[s.name.substr(7)] = pj.str();
      g_figures[p + "write_to_read_p50_ms"] = r_on.write_to_read_p50_ms;
      g_figures[p + "write_to_read_p99_ms"] = r_on.write_to_read_p99_ms;
    }
    skip_ratio[s.name] =
        1.0 - static_cast<double>(r_on.segmentations) / static_cast<double>(r_on.notices);
    const std::string suffix = "_clock_free";
    if (s.name.size() > suffix.size() &&
        s.name.compare(s.name.size() - suffix.size(), suffix.size(), suffix) == 0) {
      const std::string base = s.name.substr(0, s.name.size() - suffix.size());
      if (skip_ratio.count(base) && skip_ratio[base] > 0) {
        ratios[s.name + "_skip_ratio_over_acked_rule"] = skip_ratio[s.name] / skip_ratio[base];
      }
    }
  }

  write_json();
  // The last line: keeps_up's figures, then each read policy's.
  if (!main_line.empty()) main_line.pop_back();  // the closing brace
  if (main_line.empty()) main_line = "{\"scenario\":\"-\"";
  main_line += ",\"policies\":{";
  bool first = true;
  for (const std::string& name : policies) {
    auto it = policy_json.find(name);
    if (it == policy_json.end()) continue;
    main_line += (first ? "\"" : ",\"") + name + "\":" + it->second;
    first = false;
  }
  main_line += "}}";
  std::printf("%s\n", main_line.c_str());
  return 0;
}
