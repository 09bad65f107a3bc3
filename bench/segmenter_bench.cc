// segmenter_bench: the stats-writer kernel that bench/segmenter.sh adds to
// script_host_bench and skip_bench (row decoding is measured by
// script_host_bench BM_SegmentationWithDecode). Prints one JSON object.
//
//   segmenter_bench --hll [--seconds 3] [--rounds 10] [--batch 2000] [--segments 5]
//                   [--distinct-segments 100] [--days 2] [--max-call-adds 4096]
//                   [--fresh-keys] [--retention-days D]
//     HyperLogLog updates/s through the stats writer against a local
//     redis-server, fresh users, all in the same run and interleaved (--rounds
//     rounds of: batched for seconds/rounds, then each other way for half
//     that), so load from a neighbour on a shared machine falls on all alike:
//     - batched: the node's path, FCALL seg_add_users_v3 (with the stats
//       epochs), one call per slot group and chunk of --max-call-adds adds
//       (hll_updates_per_s, and per second of redis-server CPU:
//       hll_updates_per_redis_cpu_s);
//     - batched without epochs: FCALL seg_add_users_v2 (stats.epochs: false,
//       the writer before issue #17 part 3; hll_v2_*), half the time;
//     - per user: FCALL seg_add_user, one call per user pipelined per batch
//       (the writer before issue #18);
//     - unbatched: one PFADD per round trip, the baseline
//       (hll_unbatched_updates_per_s);
//     - the FCALL floor: per-user calls to a function that does nothing, i.e.
//       the most updates per Redis CPU second any one-call-per-user procedure
//       could reach with --segments keys per call.
//     Each user gets --segments distinct segment-days drawn at random from
//     --distinct-segments segments x --days days (today and the days before,
//     UTC, so they get the writer's retention expiry,
//     stats.hll_retention_days), so a batch spreads over that many keys.
//     --fresh-keys: every batch writes new segment-day keys (small sparse
//     sketches: almost every PFADD changes one, the worst case for the expiry).
//     hll_changed_fraction = PFADDs that changed a sketch / PFADDs (per-user).
//     --retention-days D: the writer's hll_retention_days (0 = no expiry).
//     Also hll_check_only_batch_us: the mean WriteBatch time of a batch whose
//     users have nothing to add (an epoch-only call; before issue #17 part 3
//     such a batch sent nothing).
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "common/logging.h"
#include "common/redis.h"
#include "stats/writer/stats_writer.h"
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

// Today (UTC) as yyyymmdd: the last day of the benchmark's keys.
seg::stats::Day Today() {
  return seg::stats::DayFromUnixMs(std::chrono::duration_cast<std::chrono::milliseconds>(
                                       std::chrono::system_clock::now().time_since_epoch())
                                       .count());
}

struct Workload {
  int batch_users = 2000;
  int segments = 5;             // segment-days per user
  int distinct_segments = 100;  // drawn from these segments ...
  int days = 2;                 // ... x these days
  bool fresh_keys = false;
  int retention_days = 400;
  int max_call_adds = 4096;
};

// Segment-day sets to give users: `count` of them, each `w.segments`
// distinct (segment, day) pairs drawn uniformly from distinct_segments x
// days. Fixed seed: every mode and run sees the same draws.
std::vector<std::vector<seg::stats::SegmentDay>> DrawAdds(const Workload& w, size_t count) {
  std::mt19937_64 rng(18);
  const int pairs = w.distinct_segments * w.days;
  std::uniform_int_distribution<int> pick(0, pairs - 1);
  const seg::stats::Day today = Today();
  const int64_t today_epoch = seg::stats::DayToEpochDays(today);
  std::vector<std::vector<seg::stats::SegmentDay>> out(count);
  for (auto& adds : out) {
    std::vector<int> chosen;
    while (static_cast<int>(chosen.size()) < std::min(w.segments, pairs)) {
      int p = pick(rng);
      if (std::find(chosen.begin(), chosen.end(), p) == chosen.end()) chosen.push_back(p);
    }
    for (int p : chosen) {
      adds.push_back({"segment_" + std::to_string(p % w.distinct_segments),
                      seg::stats::EpochDaysToDay(today_epoch - p / w.distinct_segments)});
    }
  }
  return out;
}

// CPU seconds of this thread (the writer's own work: grouping, formatting,
// reading replies).
double ThreadCpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_THREAD, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

// What one way of writing achieved, summed over its slices.
struct Totals {
  double seconds = 0;     // wall clock
  double redis_cpu = 0;   // redis-server CPU seconds
  double client_cpu = 0;  // the writer's CPU seconds
  double updates = 0;     // HLL updates acknowledged
  double changed = 0;     // PFADDs (keys, for batched calls) that changed a sketch
  double calls = 0;
  int64_t batches = 0;
  int64_t expiry_checks = 0;
  double wall_rate() const { return updates / seconds; }
  double cpu_rate() const { return updates / redis_cpu; }
};

// One way of writing: a stats writer in `mode` with its own connection,
// writing fresh users in batches of `batch_users`, each taking the next
// draws of `adds` (cycling).
class Writer {
 public:
  Writer(int port, seg::stats::StatsCallMode mode, bool batched_calls, int batch_users,
         const Workload& w, const std::vector<std::vector<seg::stats::SegmentDay>>* adds,
         bool epochs = true)
      : w_(w), adds_(adds), batch_(static_cast<size_t>(batch_users)) {
    seg::stats::StatsWriterOptions options;
    options.epochs = epochs;
    options.redis.node.port = port;
    options.mode = mode;
    options.batched_calls = batched_calls;
    options.max_call_adds = w.max_call_adds;
    options.update_registry = false;
    options.hll_retention_days = w.retention_days;
    auto writer = seg::stats::NewStatsWriter(options);
    if (!writer.ok() || !(*writer)->LoadProcedures().ok()) {
      std::fprintf(stderr, "stats writer: %s\n", writer.status().ToString().c_str());
      std::exit(1);
    }
    writer_ = std::move(*writer);
  }

  // Writes batches for `seconds` (whole batches; the last one may overrun).
  void Run(double seconds, int port, int64_t* next_user) {
    const auto before = writer_->counters();
    const double cpu_start = RedisCpuSeconds(port);
    const double client_start = ThreadCpuSeconds();
    const auto start = SteadyClock::now();
    double elapsed = 0;
    while (elapsed < seconds) {
      for (auto& u : batch_) {
        u.user_id.assign("u");
        u.user_id.append(std::to_string((*next_user)++));
        u.adds = (*adds_)[draw_++ % adds_->size()];
        if (w_.fresh_keys) {
          for (auto& a : u.adds) a.segment += "_" + std::to_string(batch_no_);
        }
      }
      ++batch_no_;
      ++totals.batches;
      auto s = writer_->WriteBatch(batch_);
      if (!s.ok()) {
        std::fprintf(stderr, "write batch: %s\n", s.ToString().c_str());
        std::exit(1);
      }
      elapsed = std::chrono::duration<double>(SteadyClock::now() - start).count();
    }
    const auto& after = writer_->counters();
    totals.client_cpu += ThreadCpuSeconds() - client_start;
    totals.seconds += elapsed;
    totals.redis_cpu += RedisCpuSeconds(port) - cpu_start;
    totals.updates += static_cast<double>(after.keys - before.keys);
    totals.changed += static_cast<double>(after.changed - before.changed);
    totals.calls += static_cast<double>(after.calls - before.calls);
    totals.expiry_checks = after.expiry_checks;
  }

  // Mean microseconds of WriteBatch for `batches` batches of users with
  // nothing to add (only their shard's epoch is checked).
  double CheckOnlyBatchUs(int batches, int64_t* next_user) {
    for (auto& u : batch_) {
      u.user_id = "u" + std::to_string((*next_user)++);
      u.adds.clear();
    }
    const auto start = SteadyClock::now();
    for (int i = 0; i < batches; ++i) {
      auto s = writer_->WriteBatch(batch_);
      if (!s.ok()) {
        std::fprintf(stderr, "check-only batch: %s\n", s.ToString().c_str());
        std::exit(1);
      }
    }
    return std::chrono::duration<double, std::micro>(SteadyClock::now() - start).count() / batches;
  }

  Totals totals;

 private:
  Workload w_;
  const std::vector<std::vector<seg::stats::SegmentDay>>* adds_;
  std::vector<seg::stats::UserUpdate> batch_;
  std::unique_ptr<seg::stats::StatsWriter> writer_;
  size_t draw_ = 0;
  int64_t batch_no_ = 0;
};

// The FCALL floor: per-user calls (`segments` keys and a user id) to a
// function that does nothing, pipelined like the per-user writer's calls:
// Redis's own cost of one call.
class FcallFloor {
 public:
  FcallFloor(int port, int batch_users, int segments) : segments_(segments) {
    seg::RedisOptions options;
    options.port = port;
    auto conn = seg::RedisConnection::Connect(options);
    const std::string library =
        "#!lua name=segbench\n"
        "redis.register_function('segbench_noop', function(keys, args) return 0 end)\n";
    auto loaded = conn.ok() ? (*conn)->Command({"FUNCTION", "LOAD", "REPLACE", library})
                            : seg::StatusOr<seg::RedisReply>(conn.status());
    if (!loaded.ok() || loaded->is_error()) {
      std::fprintf(stderr, "no-op function: %s\n",
                   loaded.ok() ? loaded->str.c_str() : loaded.status().ToString().c_str());
      std::exit(1);
    }
    conn_ = std::move(*conn);
    seg::RedisArgv call = {"FCALL", "segbench_noop", std::to_string(segments)};
    for (int s = 0; s < segments; ++s) {
      call.push_back(seg::stats::HllKey("hll", 0, "segment_" + std::to_string(s), 20240501));
    }
    call.emplace_back();  // the user id
    calls_.assign(static_cast<size_t>(batch_users), call);
  }

  void Run(double seconds, int port) {
    const double cpu_start = RedisCpuSeconds(port);
    const auto start = SteadyClock::now();
    double elapsed = 0;
    while (elapsed < seconds) {
      for (auto& c : calls_) c.back() = "u" + std::to_string(user_++);
      if (!conn_->Pipeline(calls_).ok()) {
        std::fprintf(stderr, "no-op function: pipeline failed\n");
        std::exit(1);
      }
      totals.updates += static_cast<double>(calls_.size()) * segments_;
      totals.calls += static_cast<double>(calls_.size());
      ++totals.batches;
      elapsed = std::chrono::duration<double>(SteadyClock::now() - start).count();
    }
    totals.seconds += elapsed;
    totals.redis_cpu += RedisCpuSeconds(port) - cpu_start;
  }

  Totals totals;

 private:
  int segments_;
  std::unique_ptr<seg::RedisConnection> conn_;
  std::vector<seg::RedisArgv> calls_;
  int64_t user_ = 0;
};

// All four ways against one redis-server, interleaved: `rounds` rounds of
// batched (seconds / rounds), then per-user, unbatched and the floor (half
// that each), so that a neighbour's load on a shared machine falls on all
// of them alike.
int RunHll(double seconds, int rounds, const Workload& w) {
  auto redis = seg::testing::LocalRedis::Start();
  if (!redis.ok()) {
    std::fprintf(stderr, "redis-server: %s\n", redis.status().ToString().c_str());
    return 1;
  }
  const int port = (*redis)->port();
  // Enough draws that consecutive batches differ.
  const auto adds = DrawAdds(w, static_cast<size_t>(w.batch_users) * 7 + 1);
  using seg::stats::StatsCallMode;
  Writer batched(port, StatsCallMode::kFunction, true, w.batch_users, w, &adds);
  Writer batched_v2(port, StatsCallMode::kFunction, true, w.batch_users, w, &adds,
                    /*epochs=*/false);
  Writer per_user(port, StatsCallMode::kFunction, false, w.batch_users, w, &adds);
  // The baseline is ~100x slower: small batches keep its slices short.
  Writer unbatched(port, StatsCallMode::kPfaddPerRoundTrip, false, std::max(1, w.batch_users / 20),
                   w, &adds);
  FcallFloor floor(port, w.batch_users, w.segments);
  int64_t next_user = 0;
  const double slice = seconds / rounds;
  for (int r = 0; r < rounds; ++r) {
    // Which of the two batched ways goes first alternates (sketches fill up
    // as the run goes on).
    if (r % 2 == 0) batched_v2.Run(slice / 2, port, &next_user);
    batched.Run(slice, port, &next_user);
    if (r % 2 == 1) batched_v2.Run(slice / 2, port, &next_user);
    per_user.Run(slice / 2, port, &next_user);
    unbatched.Run(slice / 2, port, &next_user);
    floor.Run(slice / 2, port);
  }
  const double check_only_us = batched.CheckOnlyBatchUs(200, &next_user);
  const Totals& b = batched.totals;
  const Totals& v2 = batched_v2.totals;
  const Totals& p = per_user.totals;
  const Totals& u = unbatched.totals;
  std::printf(
      "{\"hll_updates_per_s\": %.0f, \"hll_updates_per_redis_cpu_s\": %.0f, "
      "\"hll_v2_updates_per_s\": %.0f, \"hll_v2_updates_per_redis_cpu_s\": %.0f, "
      "\"hll_check_only_batch_us\": %.1f, "
      "\"hll_unbatched_updates_per_s\": %.0f, \"hll_unbatched_updates_per_redis_cpu_s\": %.0f, "
      "\"hll_per_user_updates_per_s\": %.0f, \"hll_per_user_updates_per_redis_cpu_s\": %.0f, "
      "\"hll_fcall_floor_updates_per_redis_cpu_s\": %.0f, "
      "\"hll_updates_per_writer_cpu_s\": %.0f, "
      "\"hll_calls_per_batch\": %.2f, \"hll_changed_fraction\": %.4f, "
      "\"hll_expiry_checks\": %lld, \"fresh_keys\": %s, \"retention_days\": %d, "
      "\"batch_users\": %d, \"segments_per_user\": %d, \"distinct_segments\": %d, "
      "\"days\": %d, \"max_call_adds\": %d, \"rounds\": %d, \"seconds\": %.1f}\n",
      b.wall_rate(), b.cpu_rate(), v2.wall_rate(), v2.cpu_rate(), check_only_us, u.wall_rate(),
      u.cpu_rate(), p.wall_rate(), p.cpu_rate(), floor.totals.cpu_rate(), b.updates / b.client_cpu,
      b.calls / static_cast<double>(b.batches), p.changed / p.updates,
      static_cast<long long>(b.expiry_checks), w.fresh_keys ? "true" : "false", w.retention_days,
      w.batch_users, w.segments, w.distinct_segments, w.days, w.max_call_adds, rounds, seconds);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  seg::InitLogging(argv[0]);
  bool hll = false;
  double seconds = 3;
  int rounds = 10;
  Workload w;
  w.retention_days = seg::stats::StatsWriterOptions().hll_retention_days;
  w.max_call_adds = seg::stats::StatsWriterOptions().max_call_adds;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--hll") {
      hll = true;
    } else if (a == "--seconds" && i + 1 < argc) {
      seconds = std::atof(argv[++i]);
    } else if (a == "--rounds" && i + 1 < argc) {
      rounds = std::atoi(argv[++i]);
    } else if (a == "--batch" && i + 1 < argc) {
      w.batch_users = std::atoi(argv[++i]);
    } else if (a == "--segments" && i + 1 < argc) {
      w.segments = std::atoi(argv[++i]);
    } else if (a == "--distinct-segments" && i + 1 < argc) {
      w.distinct_segments = std::atoi(argv[++i]);
    } else if (a == "--days" && i + 1 < argc) {
      w.days = std::atoi(argv[++i]);
    } else if (a == "--max-call-adds" && i + 1 < argc) {
      w.max_call_adds = std::atoi(argv[++i]);
    } else if (a == "--retention-days" && i + 1 < argc) {
      w.retention_days = std::atoi(argv[++i]);
    } else if (a == "--fresh-keys") {
      w.fresh_keys = true;
    } else {
      std::fprintf(stderr,
                   "usage: segmenter_bench --hll [--seconds S] [--rounds R] [--batch N] "
                   "[--segments K] "
                   "[--distinct-segments N] [--days D] [--max-call-adds N] [--fresh-keys] "
                   "[--retention-days D]\n");
      return 2;
    }
  }
  if (!hll) {
    std::fprintf(stderr, "segmenter_bench: give --hll\n");
    return 2;
  }
  if (w.batch_users < 1 || w.segments < 1 || w.distinct_segments < 1 || w.days < 1 ||
      w.max_call_adds < 1 || rounds < 1) {
    std::fprintf(stderr, "segmenter_bench: sizes must be >= 1\n");
    return 2;
  }
  return RunHll(seconds, rounds, w);
}
