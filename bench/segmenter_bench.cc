// segmenter_bench: the two segmenter-node kernels that bench/segmenter.sh
// adds to script_host_bench and skip_bench. Prints one JSON object.
//
//   segmenter_bench --decode
//     ns to decode one 200-event row (store cells -> EventViews, as the node
//     does before running the scripts), over 256 users' rows.
//   segmenter_bench --hll [--seconds 3] [--batch 2000] [--segments 5]
//     HyperLogLog updates/s through the stats writer against a local
//     redis-server: one FCALL per user pipelined per batch (the node's path)
//     against one PFADD per round trip (the baseline), same run, fresh users.
#include <time.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "common/event.h"
#include "common/event_codec.h"
#include "common/logging.h"
#include "proto/events.pb.h"
#include "stats/stats_writer.h"
#include "tests/harness/redis_server.h"

namespace {

using SteadyClock = std::chrono::steady_clock;

constexpr int64_t kNow = 1'700'000'000'000;
constexpr int64_t kDayMs = 86'400'000;

// CPU seconds of the calling thread: per-core figures on a shared machine.
double ThreadCpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

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

struct Cell {
  std::string qualifier, value;
};

// 256 users x 200 events, the mix of script_host_bench (page views,
// searches, clicks, partner signals, purchases), encoded as the store keeps them.
std::vector<std::vector<Cell>> MakeRows(int users, int events_per_user) {
  std::mt19937_64 rng(7);
  const char* hosts[] = {"auto.ru",          "www.drom.ru",      "pets.example.com",
                         "news.example.org", "shop.example.net", "bank.example.ru"};
  const char* queries[] = {"погода новосибирск", "корм для кошек", "ипотека калькулятор",
                           "kia rio 2012 колодки", "авиабилеты москва сочи"};
  std::vector<std::vector<Cell>> rows(static_cast<size_t>(users));
  for (auto& row : rows) {
    for (int i = 0; i < events_per_user; ++i) {
      seg::Event e;
      e.set_user_id("user");
      e.set_event_time_ms(kNow - static_cast<int64_t>(rng() % (60 * kDayMs)));
      e.set_event_id(std::to_string(rng()));
      e.set_ip("10.1.2.3");
      int r = static_cast<int>(rng() % 100);
      if (r < 60) {
        e.set_type(seg::PAGE_VIEW);
        e.set_url(std::string("https://") + hosts[rng() % 6] + "/cats/care/" + std::to_string(i));
      } else if (r < 80) {
        e.set_type(seg::SEARCH);
        e.set_search_query(queries[rng() % 5]);
        e.set_url("https://yandex.example/search?text=" + std::to_string(i));
      } else if (r < 95) {
        e.set_type(seg::CLICK);
        e.set_url("https://ads.example/click/" + std::to_string(rng() % 1000));
      } else {
        e.set_type(seg::PURCHASE);
        e.set_url("https://shop.example.net/pay");
        (*e.mutable_attributes())["category"] = "pet_food";
      }
      Cell& c = row.emplace_back();
      seg::EncodeEventQualifier(e.event_time_ms(), seg::EventDigest(e), e.type(), &c.qualifier);
      if (!seg::EncodeEventValue(e, &c.value).ok()) std::abort();
    }
    std::sort(row.begin(), row.end(),
              [](const Cell& a, const Cell& b) { return a.qualifier < b.qualifier; });
  }
  return rows;
}

int RunDecode() {
  const auto rows = MakeRows(256, 200);
  std::vector<seg::EventView> views(200);
  int64_t decoded = 0, iterations = 0;
  const double cpu_start = ThreadCpuSeconds();
  double cpu = 0;
  while (cpu < 2.0) {
    for (const auto& row : rows) {
      size_t n = 0;
      for (const Cell& c : row) {
        if (seg::DecodeEventCell(c.qualifier, c.value, &views[n]).ok()) ++n;
      }
      decoded += static_cast<int64_t>(n);
      ++iterations;
    }
    cpu = ThreadCpuSeconds() - cpu_start;
  }
  if (decoded != iterations * 200) {
    std::fprintf(stderr, "decode failed: %lld of %lld\n", static_cast<long long>(decoded),
                 static_cast<long long>(iterations * 200));
    return 1;
  }
  std::printf("{\"decode_ns_per_row\": %.1f, \"events_per_row\": 200}\n",
              cpu * 1e9 / iterations);
  return 0;
}

struct HllRates {
  double wall = 0;       // updates per wall-clock second
  double redis_cpu = 0;  // updates per second of redis-server CPU
};

// HLL updates (PFADDs applied) for `mode` over `seconds`, fresh users.
HllRates HllRate(int port, seg::stats::StatsCallMode mode, double seconds, int batch_users,
                 int segments, int64_t* next_user) {
  seg::stats::StatsWriterOptions options;
  options.redis.node.port = port;
  options.mode = mode;
  options.update_registry = false;
  auto writer = seg::stats::NewStatsWriter(options);
  if (!writer.ok() || !(*writer)->LoadProcedures().ok()) {
    std::fprintf(stderr, "stats writer: %s\n", writer.status().ToString().c_str());
    std::exit(1);
  }
  std::vector<seg::stats::UserUpdate> batch(static_cast<size_t>(batch_users));
  for (auto& u : batch) {
    for (int s = 0; s < segments; ++s) {
      u.adds.push_back({"segment_" + std::to_string(s), 20240501});
    }
  }
  const double redis_cpu_start = RedisCpuSeconds(port);
  const auto start = SteadyClock::now();
  double elapsed = 0;
  while (elapsed < seconds) {
    for (auto& u : batch) {
      u.user_id.assign("u");
      u.user_id.append(std::to_string((*next_user)++));
    }
    auto s = (*writer)->WriteBatch(batch);
    if (!s.ok()) {
      std::fprintf(stderr, "write batch: %s\n", s.ToString().c_str());
      std::exit(1);
    }
    elapsed = std::chrono::duration<double>(SteadyClock::now() - start).count();
  }
  const double keys = static_cast<double>((*writer)->counters().keys);
  return HllRates{keys / elapsed, keys / (RedisCpuSeconds(port) - redis_cpu_start)};
}

int RunHll(double seconds, int batch_users, int segments) {
  auto redis = seg::testing::LocalRedis::Start();
  if (!redis.ok()) {
    std::fprintf(stderr, "redis-server: %s\n", redis.status().ToString().c_str());
    return 1;
  }
  int64_t next_user = 0;
  const HllRates batched = HllRate((*redis)->port(), seg::stats::StatsCallMode::kFunction, seconds,
                                   batch_users, segments, &next_user);
  // The baseline is ~100x slower: small batches keep its run short.
  const HllRates unbatched =
      HllRate((*redis)->port(), seg::stats::StatsCallMode::kPfaddPerRoundTrip, seconds / 2,
              std::max(1, batch_users / 20), segments, &next_user);
  std::printf(
      "{\"hll_updates_per_s\": %.0f, \"hll_unbatched_updates_per_s\": %.0f, "
      "\"hll_updates_per_redis_cpu_s\": %.0f, \"hll_unbatched_updates_per_redis_cpu_s\": %.0f, "
      "\"batch_users\": %d, \"segments_per_user\": %d}\n",
      batched.wall, unbatched.wall, batched.redis_cpu, unbatched.redis_cpu, batch_users, segments);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  seg::InitLogging(argv[0]);
  bool decode = false, hll = false;
  double seconds = 3;
  int batch_users = 2000, segments = 5;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--decode") {
      decode = true;
    } else if (a == "--hll") {
      hll = true;
    } else if (a == "--seconds" && i + 1 < argc) {
      seconds = std::atof(argv[++i]);
    } else if (a == "--batch" && i + 1 < argc) {
      batch_users = std::atoi(argv[++i]);
    } else if (a == "--segments" && i + 1 < argc) {
      segments = std::atoi(argv[++i]);
    } else {
      std::fprintf(stderr,
                   "usage: segmenter_bench --decode | --hll [--seconds S] [--batch N] "
                   "[--segments K]\n");
      return 2;
    }
  }
  if (decode == hll) {
    std::fprintf(stderr, "segmenter_bench: give exactly one of --decode, --hll\n");
    return 2;
  }
  return decode ? RunDecode() : RunHll(seconds, batch_users, segments);
}
