// segmenter_bench: the stats-writer kernel that bench/segmenter.sh adds to
// script_host_bench and skip_bench (row decoding is measured by
// script_host_bench BM_SegmentationWithDecode). Prints one JSON object.
//
//   segmenter_bench --hll [--seconds 3] [--batch 2000] [--segments 5] [--fresh-keys]
//     HyperLogLog updates/s through the stats writer against a local
//     redis-server: one FCALL per user pipelined per batch (the node's path)
//     against one PFADD per round trip (the baseline), same run, fresh users.
//     Also the FCALL floor: the same calls to a function that does nothing,
//     i.e. the most updates per Redis CPU second any one-call-per-user
//     procedure could reach with this many keys per call. Keys are of today
//     (UTC), so they get the writer's retention expiry (stats.hll_retention_days).
//     --fresh-keys: every batch writes new segment-day keys (small sparse
//     sketches: almost every PFADD changes one, the worst case for the expiry).
//     hll_changed_fraction = PFADDs that changed a sketch / PFADDs.
//     --retention-days D: the writer's hll_retention_days (0 = no expiry).
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "common/logging.h"
#include "common/redis.h"
#include "stats/stats_writer.h"
#include "tests/harness/redis_server.h"

namespace {

using SteadyClock = std::chrono::steady_clock;

// used_cpu_sys + used_cpu_user of the server, from INFO cpu.
double RedisCpuSeconds(int port) {
  auto info = seg::testing::RedisCommandForTest(port, {"INFO", "cpu"});
  if (!info.ok()) return -1;
  double total = 0;
  for (const char* field : {"used_cpu_sys:", "used_cpu_user:"}) {
    size_t at = info->find(field);
    if (at != std::string::npos) total += std::atof(info->c_str() + at + std::strlen(field));
  }
  return total;
}

struct HllRates {
  double wall = 0;            // updates per wall-clock second
  double redis_cpu = 0;       // updates per second of redis-server CPU
  double changed = 0;         // fraction of updates that changed a sketch
  int64_t expiry_checks = 0;  // keys the writer asked EXPIREAT NX for
};

// Today (UTC) as yyyymmdd: the day the benchmark's keys are for.
seg::stats::Day Today() {
  return seg::stats::DayFromUnixMs(std::chrono::duration_cast<std::chrono::milliseconds>(
                                       std::chrono::system_clock::now().time_since_epoch())
                                       .count());
}

// HLL updates (PFADDs applied) for `mode` over `seconds`, fresh users.
HllRates HllRate(int port, seg::stats::StatsCallMode mode, double seconds, int batch_users,
                 int segments, bool fresh_keys, int retention_days, int64_t* next_user) {
  seg::stats::StatsWriterOptions options;
  options.redis.node.port = port;
  options.mode = mode;
  options.update_registry = false;
  options.hll_retention_days = retention_days;
  auto writer = seg::stats::NewStatsWriter(options);
  if (!writer.ok() || !(*writer)->LoadProcedures().ok()) {
    std::fprintf(stderr, "stats writer: %s\n", writer.status().ToString().c_str());
    std::exit(1);
  }
  std::vector<seg::stats::UserUpdate> batch(static_cast<size_t>(batch_users));
  for (auto& u : batch) {
    for (int s = 0; s < segments; ++s) {
      u.adds.push_back({"segment_" + std::to_string(s), Today()});
    }
  }
  int64_t batch_no = 0;
  const double redis_cpu_start = RedisCpuSeconds(port);
  const auto start = SteadyClock::now();
  double elapsed = 0;
  while (elapsed < seconds) {
    for (auto& u : batch) {
      u.user_id.assign("u");
      u.user_id.append(std::to_string((*next_user)++));
      if (fresh_keys) {
        for (int s = 0; s < segments; ++s) {
          u.adds[s].segment = "segment_" + std::to_string(s) + "_" + std::to_string(batch_no);
        }
      }
    }
    ++batch_no;
    auto s = (*writer)->WriteBatch(batch);
    if (!s.ok()) {
      std::fprintf(stderr, "write batch: %s\n", s.ToString().c_str());
      std::exit(1);
    }
    elapsed = std::chrono::duration<double>(SteadyClock::now() - start).count();
  }
  const double keys = static_cast<double>((*writer)->counters().keys);
  return HllRates{keys / elapsed, keys / (RedisCpuSeconds(port) - redis_cpu_start),
                  static_cast<double>((*writer)->counters().changed) / keys,
                  (*writer)->counters().expiry_checks};
}

// FCALLs per Redis CPU second of a no-op function with `segments` keys and
// a user id, pipelined like the writer's calls: Redis's own cost of one call.
double FcallFloorCallsPerRedisCpuS(int port, double seconds, int batch_users, int segments) {
  seg::RedisOptions options;
  options.port = port;
  auto conn = seg::RedisConnection::Connect(options);
  if (!conn.ok()) return -1;
  const std::string library =
      "#!lua name=segbench\n"
      "redis.register_function('segbench_noop', function(keys, args) return 0 end)\n";
  auto loaded = (*conn)->Command({"FUNCTION", "LOAD", "REPLACE", library});
  if (!loaded.ok() || loaded->is_error()) return -1;
  seg::RedisArgv call = {"FCALL", "segbench_noop", std::to_string(segments)};
  for (int s = 0; s < segments; ++s) {
    call.push_back(seg::stats::HllKey("hll", 0, "segment_" + std::to_string(s), 20240501));
  }
  call.emplace_back();  // the user id
  std::vector<seg::RedisArgv> calls(static_cast<size_t>(batch_users), call);
  int64_t user = 0;
  const double cpu_start = RedisCpuSeconds(port);
  const auto start = SteadyClock::now();
  int64_t n = 0;
  while (std::chrono::duration<double>(SteadyClock::now() - start).count() < seconds) {
    for (auto& c : calls) c.back() = "u" + std::to_string(user++);
    if (!(*conn)->Pipeline(calls).ok()) return -1;
    n += batch_users;
  }
  return static_cast<double>(n) / (RedisCpuSeconds(port) - cpu_start);
}

int RunHll(double seconds, int batch_users, int segments, bool fresh_keys, int retention_days) {
  auto redis = seg::testing::LocalRedis::Start();
  if (!redis.ok()) {
    std::fprintf(stderr, "redis-server: %s\n", redis.status().ToString().c_str());
    return 1;
  }
  int64_t next_user = 0;
  const HllRates batched = HllRate((*redis)->port(), seg::stats::StatsCallMode::kFunction, seconds,
                                   batch_users, segments, fresh_keys, retention_days, &next_user);
  // The baseline is ~100x slower: small batches keep its run short.
  const HllRates unbatched =
      HllRate((*redis)->port(), seg::stats::StatsCallMode::kPfaddPerRoundTrip, seconds / 2,
              std::max(1, batch_users / 20), segments, fresh_keys, retention_days, &next_user);
  const double floor_calls =
      FcallFloorCallsPerRedisCpuS((*redis)->port(), seconds / 2, batch_users, segments);
  std::printf(
      "{\"hll_updates_per_s\": %.0f, \"hll_unbatched_updates_per_s\": %.0f, "
      "\"hll_updates_per_redis_cpu_s\": %.0f, \"hll_unbatched_updates_per_redis_cpu_s\": %.0f, "
      "\"hll_fcall_floor_updates_per_redis_cpu_s\": %.0f, "
      "\"hll_changed_fraction\": %.4f, \"hll_expiry_checks\": %lld, \"fresh_keys\": %s, "
      "\"retention_days\": %d, "
      "\"batch_users\": %d, \"segments_per_user\": %d}\n",
      batched.wall, unbatched.wall, batched.redis_cpu, unbatched.redis_cpu, floor_calls * segments,
      batched.changed, static_cast<long long>(batched.expiry_checks), fresh_keys ? "true" : "false",
      retention_days, batch_users, segments);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  seg::InitLogging(argv[0]);
  bool hll = false;
  double seconds = 3;
  int batch_users = 2000, segments = 5;
  bool fresh_keys = false;
  int retention_days = seg::stats::StatsWriterOptions().hll_retention_days;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--hll") {
      hll = true;
    } else if (a == "--seconds" && i + 1 < argc) {
      seconds = std::atof(argv[++i]);
    } else if (a == "--batch" && i + 1 < argc) {
      batch_users = std::atoi(argv[++i]);
    } else if (a == "--segments" && i + 1 < argc) {
      segments = std::atoi(argv[++i]);
    } else if (a == "--retention-days" && i + 1 < argc) {
      retention_days = std::atoi(argv[++i]);
    } else if (a == "--fresh-keys") {
      fresh_keys = true;
    } else {
      std::fprintf(stderr,
                   "usage: segmenter_bench --hll [--seconds S] [--batch N] "
                   "[--segments K] [--fresh-keys] [--retention-days D]\n");
      return 2;
    }
  }
  if (!hll) {
    std::fprintf(stderr, "segmenter_bench: give --hll\n");
    return 2;
  }
  return RunHll(seconds, batch_users, segments, fresh_keys, retention_days);
}
