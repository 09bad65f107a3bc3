// seg-stats end to end: query latency over real gRPC on loopback against a
// real redis-server, intersection accuracy, and writer throughput.
//
//   stats_bench [--json-out FILE] [--clients 4] [--queries 200] [--quick]
//
// Latency: a union of 10 segments over the 30 days ending today (300 dense
// segment-days per shard) and an intersection of 2 segments over 30 days,
// `clients` concurrent threads each sending `queries`/S calls, at S = 1, 4,
// 16 (at S = 1 also with 1 and 2 clients); client-side merge (MGET + SIMD
// merge, the default) against server-side PFCOUNT (the baseline) and against
// the past-day cache in the same run, with the server's time per query split
// into Redis fetch and merge. Every segment-day key is stored dense (12,304
// bytes), the worst case for transfer: at S = 16 small per-shard keys would
// be sparse in practice.
//
// Accuracy: pairs of segments over 30 days with known overlaps (1%..50% of
// the smaller set, equal and 10:1 sizes), each estimated by the service with
// the joint MLE and with inclusion-exclusion (the baseline) on the same data;
// mean relative error of each, and interval coverage of the MLE.
//
// Writer: users/s for one FCALL per user pipelined per batch against one
// PFADD per round trip (the baseline).
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/hash.h"
#include "common/logging.h"
#include "proto/stats.grpc.pb.h"
#include "stats/hll/hll.h"
#include "stats/redis_cluster/redis_cluster.h"
#include "stats/service/stats_service.h"
#include "stats/writer/stats_writer.h"
#include "tests/harness/redis_server.h"

namespace {

using namespace seg::stats;  // NOLINT: a benchmark main
namespace v1 = seg::stats::v1;
using Clock = std::chrono::steady_clock;

struct Args {
  std::string json_out;
  int clients = 4;
  int queries = 200;  // per client per configuration (divided by S, at least 10)
  bool quick = false;
};

constexpr int kDays = 30;
// The 30 days end today (UTC), as an analyst's "last 30 days" would: with the
// past-day cache on, the last two days are always read from Redis.
const Day kFirstDay =
    seg::stats::EpochDaysToDay(seg::stats::DayToEpochDays(seg::stats::DayFromUnixMs(
                                   std::chrono::duration_cast<std::chrono::milliseconds>(
                                       std::chrono::system_clock::now().time_since_epoch())
                                       .count())) -
                               (kDays - 1));
constexpr int kSegments = 10;
constexpr int kUsersPerSegmentDay = 20000;

Day DayAt(int i) { return EpochDaysToDay(DayToEpochDays(kFirstDay) + i); }

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t idx = static_cast<size_t>(std::ceil(p * v.size())) - 1;
  return v[std::min(idx, v.size() - 1)];
}

void Check(const seg::Status& s, const char* what) {
  if (!s.ok()) {
    std::fprintf(stderr, "stats_bench: %s: %s\n", what, s.ToString().c_str());
    std::exit(1);
  }
}

// SETs prepared sketches (dense strings) in pipelines of 200.
void Store(RedisRouter* router, const std::vector<std::pair<std::string, std::string>>& kv) {
  for (size_t i = 0; i < kv.size(); i += 200) {
    std::vector<RoutedCommand> cmds;
    for (size_t j = i; j < std::min(kv.size(), i + 200); ++j) {
      cmds.push_back({kv[j].first, {"SET", kv[j].first, kv[j].second}});
    }
    auto r = router->Pipeline(cmds);
    Check(r.status(), "SET pipeline");
  }
}

// Builds and stores sketches for `segment` over 30 days: user u of `users`
// appears on day hash(u) % 30, in shard UserShard(u, shards).
void StoreSegment(RedisRouter* router, uint32_t shards, const std::string& segment,
                  const std::vector<std::string>& users) {
  std::vector<std::vector<HyperLogLog>> sketches(shards, std::vector<HyperLogLog>(kDays));
  for (const auto& u : users) {
    uint32_t shard = seg::UserShard(u, shards);
    int day = static_cast<int>(seg::MurmurHash64A(u, 77) % kDays);
    sketches[shard][day].Add(u);
  }
  std::vector<std::pair<std::string, std::string>> kv;
  for (uint32_t s = 0; s < shards; ++s) {
    for (int d = 0; d < kDays; ++d) {
      kv.emplace_back(HllKey("hll", s, segment, DayAt(d)), sketches[s][d].ToRedisDenseString());
    }
  }
  Store(router, kv);
  auto r = router->Command("segments:registry", {"HSET", "segments:registry", segment, "bench"});
  Check(r.status(), "HSET registry");
}

std::vector<std::string> UserRange(const std::string& salt, int64_t from, int64_t to) {
  std::vector<std::string> out;
  out.reserve(static_cast<size_t>(to - from));
  for (int64_t i = from; i < to; ++i) out.push_back(salt + std::to_string(i));
  return out;
}

// used_cpu_sys + used_cpu_user of a redis-server, in seconds.
double RedisCpuSeconds(int port) {
  auto info = seg::testing::RedisCommandForTest(port, {"INFO", "cpu"});
  if (!info.ok()) return 0;
  double total = 0;
  for (const char* field : {"used_cpu_sys:", "used_cpu_user:"}) {
    size_t p = info->find(field);
    if (p != std::string::npos) total += std::stod(info->substr(p + std::strlen(field)));
  }
  return total;
}

constexpr int kMinQueries = 3;  // per client per configuration
constexpr auto kRunBudget = std::chrono::seconds(5);

struct Latency {
  double p50_ms = 0, p99_ms = 0, qps = 0;
  // Means per query: seg-stats' time in the Redis fetch and in
  // decode+merge+estimate, and redis-server's CPU.
  double fetch_ms = 0, merge_ms = 0, redis_cpu_ms = 0;
};

template <typename Fn>
Latency Measure(const Args& args, int redis_port, Fn call) {
  std::vector<std::vector<double>> per(args.clients);
  std::atomic<int> failures{0};
  const QueryPhaseSeconds phase0 = QueryPhaseTotals();
  const double redis_cpu0 = RedisCpuSeconds(redis_port);
  auto t0 = Clock::now();
  std::vector<std::thread> threads;
  for (int c = 0; c < args.clients; ++c) {
    threads.emplace_back([&, c] {
      for (int q = 0; q < args.queries; ++q) {
        // A slow configuration (S = 16 without the cache on a loaded machine)
        // stops after its time budget, once each client has a few samples.
        if (q >= kMinQueries && Clock::now() - t0 > kRunBudget) break;
        auto s = Clock::now();
        if (!call(c, q)) ++failures;
        per[c].push_back(std::chrono::duration<double, std::milli>(Clock::now() - s).count());
      }
    });
  }
  for (auto& t : threads) t.join();
  double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  if (failures > 0) std::fprintf(stderr, "stats_bench: %d failed calls\n", failures.load());
  std::vector<double> all;
  for (auto& v : per) all.insert(all.end(), v.begin(), v.end());
  const QueryPhaseSeconds phase1 = QueryPhaseTotals();
  const double n = static_cast<double>(all.size());
  return {Percentile(all, 0.5),
          Percentile(all, 0.99),
          n / secs,
          (phase1.fetch - phase0.fetch) * 1e3 / n,
          (phase1.merge - phase0.merge) * 1e3 / n,
          (RedisCpuSeconds(redis_port) - redis_cpu0) * 1e3 / n};
}

struct Server {
  std::unique_ptr<StatsServer> server;
  std::shared_ptr<grpc::Channel> channel;
};

// past_day_cache_ms: nullopt keeps the service's default.
Server Start(int redis_port, uint32_t shards, bool server_side, const std::string& estimator,
             std::optional<int> past_day_cache_ms) {
  StatsQueryOptions q;
  q.redis.node.port = redis_port;
  q.shards = shards;
  if (past_day_cache_ms) q.past_day_cache_ms = *past_day_cache_ms;
  q.server_side_merge = server_side;
  q.intersection_estimator = estimator;
  StatsServerOptions so;
  so.port = 0;
  auto s = StartStatsServer(so, q, nullptr);
  Check(s.status(), "start server");
  Server out;
  out.server = std::move(*s);
  grpc::ChannelArguments ch;
  ch.SetInt("grpc.use_local_subchannel_pool", 1);
  out.channel = grpc::CreateCustomChannel("127.0.0.1:" + std::to_string(out.server->port()),
                                          grpc::InsecureChannelCredentials(), ch);
  return out;
}

v1::SegmentSetRequest SetRequest(const std::vector<std::string>& segments) {
  v1::SegmentSetRequest r;
  for (const auto& s : segments) r.add_segments(s);
  r.mutable_days()->set_from(FormatDay(DayAt(0)));
  r.mutable_days()->set_to(FormatDay(DayAt(kDays - 1)));
  return r;
}

bool Call(v1::SegmentStats::Stub* stub, bool intersection, const v1::SegmentSetRequest& req,
          v1::Estimate* out) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  grpc::Status s = intersection ? stub->Intersection(&ctx, req, out) : stub->Union(&ctx, req, out);
  if (!s.ok()) std::fprintf(stderr, "call failed: %s\n", s.error_message().c_str());
  return s.ok();
}

int64_t UsedMemory(int port) {
  auto info = seg::testing::RedisCommandForTest(port, {"INFO", "memory"});
  if (!info.ok()) return -1;
  size_t p = info->find("used_memory:");
  return p == std::string::npos ? -1 : std::stoll(info->substr(p + 12));
}

}  // namespace

int main(int argc, char** argv) {
  seg::InitLogging(argv[0]);
  Args args;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--json-out" && i + 1 < argc) {
      args.json_out = argv[++i];
    } else if (a == "--clients" && i + 1 < argc) {
      args.clients = std::atoi(argv[++i]);
    } else if (a == "--queries" && i + 1 < argc) {
      args.queries = std::atoi(argv[++i]);
    } else if (a == "--quick") {
      args.quick = true;
      args.queries = 40;
    } else {
      std::fprintf(stderr,
                   "usage: stats_bench [--json-out FILE] [--clients N] [--queries N] [--quick]\n");
      return 2;
    }
  }
  std::map<std::string, double> figures, ratios;

  // ---- Query latency at S = 1, 4, 16 -------------------------------------
  std::vector<std::string> segments;
  for (int i = 0; i < kSegments; ++i) segments.push_back("seg" + std::to_string(i));
  for (uint32_t shards : {1u, 4u, 16u}) {
    auto redis = seg::testing::LocalRedis::Start();
    Check(redis.status(), "redis");
    RedisRouterOptions ro;
    ro.node.port = (*redis)->port();
    auto router = NewRedisRouter(ro);
    Check(router.status(), "router");
    int64_t mem0 = UsedMemory((*redis)->port());
    for (int i = 0; i < kSegments; ++i) {
      // Segment i: users [i*k/2, i*k/2 + 30*20000): neighbours overlap by half.
      int64_t n = int64_t{kUsersPerSegmentDay} * kDays;
      StoreSegment(router->get(), shards, segments[i], UserRange("u", i * n / 2, i * n / 2 + n));
    }
    int64_t mem1 = UsedMemory((*redis)->port());
    std::string sfx = "_s" + std::to_string(shards);
    figures["redis_mb" + sfx] = (mem1 - mem0) / 1e6;

    // Default options (past-day cache on), cache off, and Redis merging (PFCOUNT).
    Server standard = Start((*redis)->port(), shards, false, "joint-mle", std::nullopt);
    Server no_cache = Start((*redis)->port(), shards, false, "joint-mle", 0);
    Server server_side = Start((*redis)->port(), shards, true, "joint-mle", 0);
    auto union_req = SetRequest(segments);
    auto inter_req = SetRequest({segments[0], segments[1]});
    // Work per query grows with S: fewer queries at larger S keep the run short.
    const int queries = std::max(10, args.queries / static_cast<int>(shards));
    auto run = [&](Server& srv, bool intersection, int clients) {
      Args per_s = args;
      per_s.queries = queries;
      per_s.clients = clients;
      std::vector<std::unique_ptr<v1::SegmentStats::Stub>> stubs;
      for (int c = 0; c < clients; ++c) stubs.push_back(v1::SegmentStats::NewStub(srv.channel));
      v1::Estimate warm;
      Call(stubs[0].get(), intersection, intersection ? inter_req : union_req, &warm);
      return Measure(per_s, (*redis)->port(), [&](int c, int) {
        v1::Estimate e;
        return Call(stubs[c].get(), intersection, intersection ? inter_req : union_req, &e);
      });
    };
    const std::string prefix = shards == 1 ? "" : "s" + std::to_string(shards) + "_";
    auto record = [&](const std::string& name, const Latency& l, bool split) {
      figures[prefix + name + "_p50_ms"] = l.p50_ms;
      figures[prefix + name + "_p99_ms"] = l.p99_ms;
      if (!split) return;
      figures[prefix + name + "_fetch_ms"] = l.fetch_ms;
      figures[prefix + name + "_merge_ms"] = l.merge_ms;
      figures[prefix + name + "_redis_cpu_ms"] = l.redis_cpu_ms;
    };
    auto print = [&](const char* what, int clients, const Latency& l) {
      std::fprintf(stderr,
                   "S=%u, %d client(s), %-26s p50 %7.2f p99 %7.2f ms  %6.1f q/s | per query: "
                   "fetch %.2f merge %.2f ms (seg-stats), redis-server CPU %.2f ms\n",
                   shards, clients, what, l.p50_ms, l.p99_ms, l.qps, l.fetch_ms, l.merge_ms,
                   l.redis_cpu_ms);
    };
    if (shards == 1) {
      // Where the time goes as clients are added: 1 (no queueing), 2, then args.clients.
      for (int clients : {1, 2}) {
        if (clients >= args.clients) break;
        const std::string c = "_" + std::to_string(clients) + "client";
        Latency nc = run(no_cache, false, clients);
        Latency u1 = run(standard, false, clients);
        Latency x1 = run(standard, true, clients);
        record("union_no_cache" + c, nc, true);
        record("union" + c, u1, true);
        record("intersection" + c, x1, false);
        print("union, no cache", clients, nc);
        print("union", clients, u1);
        print("intersection", clients, x1);
      }
    }
    Latency nc = run(no_cache, false, args.clients);
    Latency u = run(standard, false, args.clients);
    Latency us = run(server_side, false, args.clients);
    Latency x = run(standard, true, args.clients);
    record("union", u, true);
    record("union_no_cache", nc, true);
    record("union_server_pfcount", us, false);
    figures[prefix + "union_server_pfcount_redis_cpu_ms"] = us.redis_cpu_ms;
    record("intersection", x, false);
    if (shards == 1) {
      Latency xn = run(no_cache, true, args.clients);
      record("intersection_no_cache", xn, false);
      print("intersection, no cache", args.clients, xn);
    }
    figures[prefix + "union_qps"] = u.qps;
    ratios[prefix + "union_p99_no_cache_over_cache"] = nc.p99_ms / u.p99_ms;
    ratios[prefix + "union_p99_server_pfcount_over_client_merge_no_cache"] = us.p99_ms / nc.p99_ms;
    print("union, no cache", args.clients, nc);
    print("union", args.clients, u);
    print("union, server PFCOUNT", args.clients, us);
    print("intersection", args.clients, x);
    std::fprintf(stderr, "S=%u: redis %.1f MB\n", shards, (mem1 - mem0) / 1e6);
    standard.server->Shutdown(0);
    no_cache.server->Shutdown(0);
    server_side.server->Shutdown(0);
  }

  // ---- Intersection accuracy: joint MLE vs inclusion-exclusion -----------
  {
    auto redis = seg::testing::LocalRedis::Start();
    Check(redis.status(), "redis");
    RedisRouterOptions ro;
    ro.node.port = (*redis)->port();
    auto router = NewRedisRouter(ro);
    Check(router.status(), "router");
    struct Case {
      int64_t a, b;
      double overlap;  // fraction of the smaller set
    };
    std::vector<Case> cases = {{100000, 100000, 0.01}, {100000, 100000, 0.05},
                               {100000, 100000, 0.2},  {100000, 100000, 0.5},
                               {200000, 20000, 0.1},   {200000, 20000, 0.5}};
    const int trials = args.quick ? 2 : 5;
    Server mle = Start((*redis)->port(), 1, false, "joint-mle", std::nullopt);
    Server ie = Start((*redis)->port(), 1, false, "inclusion-exclusion", std::nullopt);
    auto mle_stub = v1::SegmentStats::NewStub(mle.channel);
    auto ie_stub = v1::SegmentStats::NewStub(ie.channel);
    double mle_err = 0, ie_err = 0, covered = 0, n = 0, uncertain = 0;
    for (size_t c = 0; c < cases.size(); ++c) {
      for (int t = 0; t < trials; ++t) {
        std::string tag = "c" + std::to_string(c) + "t" + std::to_string(t);
        int64_t x = static_cast<int64_t>(cases[c].overlap * std::min(cases[c].a, cases[c].b));
        // A = [0, a), B = [a - x, a - x + b): |A ∩ B| = x.
        std::string salt = tag + "-";
        StoreSegment(router->get(), 1, tag + "A", UserRange(salt, 0, cases[c].a));
        StoreSegment(router->get(), 1, tag + "B",
                     UserRange(salt, cases[c].a - x, cases[c].a - x + cases[c].b));
        auto req = SetRequest({tag + "A", tag + "B"});
        v1::Estimate em, ei;
        if (!Call(mle_stub.get(), true, req, &em) || !Call(ie_stub.get(), true, req, &ei)) return 1;
        mle_err += std::fabs(em.value() - x) / x;
        ie_err += std::fabs(ei.value() - x) / x;
        covered += em.ci95_low() <= x && x <= em.ci95_high();
        uncertain += em.too_uncertain();
        n += 1;
      }
    }
    figures["intersection_mle_mean_rel_err"] = mle_err / n;
    figures["intersection_ie_mean_rel_err"] = ie_err / n;
    figures["intersection_mle_ci95_coverage"] = covered / n;
    figures["intersection_mle_too_uncertain_share"] = uncertain / n;
    ratios["intersection_ie_err_over_mle_err"] = ie_err / mle_err;
    std::fprintf(stderr, "intersection error: MLE %.4f, IE %.4f (x%.2f), MLE coverage %.2f\n",
                 mle_err / n, ie_err / n, ie_err / mle_err, covered / n);
    mle.server->Shutdown(0);
    ie.server->Shutdown(0);
  }

  // ---- Writer: batched calls and one FCALL per user, pipelined, vs one PFADD
  // per round trip (segmenter_bench --hll measures the batched calls in depth) ----
  {
    auto redis = seg::testing::LocalRedis::Start();
    Check(redis.status(), "redis");
    const int users = args.quick ? 5000 : 20000;
    std::vector<UserUpdate> batch;
    for (int i = 0; i < users; ++i) {
      UserUpdate u;
      u.user_id = "w" + std::to_string(i);
      for (int s = 0; s < 3; ++s)
        u.adds.push_back({"seg" + std::to_string((i + s) % 10), kFirstDay});
      batch.push_back(std::move(u));
    }
    // The per-round-trip baseline is ~15x slower: a quarter of the users is enough for its rate.
    auto rate = [&](StatsCallMode mode, size_t count, bool batched_calls = false) {
      StatsWriterOptions o;
      o.redis.node.port = (*redis)->port();
      o.mode = mode;
      o.batched_calls = batched_calls;
      if (batched_calls) o.key_prefix = "hll_batched";  // its own, fresh keys
      auto w = NewStatsWriter(o);
      Check(w.status(), "writer");
      Check((*w)->LoadProcedures(), "load");
      auto t0 = Clock::now();
      for (size_t i = 0; i < count; i += 1000) {
        Check((*w)->WriteBatch(
                  std::span<const UserUpdate>(batch.data() + i, std::min<size_t>(1000, count - i))),
              "write");
      }
      return count / std::chrono::duration<double>(Clock::now() - t0).count();
    };
    double batched = rate(StatsCallMode::kFunction, batch.size(), true);
    double fcall = rate(StatsCallMode::kFunction, batch.size());
    double pfadd = rate(StatsCallMode::kPfaddPerRoundTrip, batch.size() / 4);
    figures["writer_batched_users_per_s"] = batched;
    figures["writer_fcall_users_per_s"] = fcall;
    figures["writer_pfadd_per_round_trip_users_per_s"] = pfadd;
    ratios["writer_batched_over_pfadd"] = batched / pfadd;
    ratios["writer_fcall_over_pfadd"] = fcall / pfadd;
    std::fprintf(stderr,
                 "writer: batched %.0f users/s, FCALL per user pipelined %.0f, PFADD per round "
                 "trip %.0f (x%.1f, x%.1f)\n",
                 batched, fcall, pfadd, batched / pfadd, fcall / pfadd);
  }

  // {"figures", "ratios", "notes"}: tools/bench_report.py --stamp adds where
  // and when; tools/dev prints the figures as the last line.
  figures["clients"] = args.clients;
  std::string json = "{\"figures\": {";
  char buf[160];
  auto emit = [&](const std::map<std::string, double>& m) {
    bool first = true;
    for (const auto& [k, v] : m) {
      std::snprintf(buf, sizeof(buf), "%s\n  \"%s\": %.4g", first ? "" : ",", k.c_str(), v);
      json += buf;
      first = false;
    }
  };
  emit(figures);
  json += "},\n\"ratios\": {";
  emit(ratios);
  const std::string notes =
      "Latency: " + std::to_string(args.clients) +
      " concurrent gRPC clients (threads in the seg-stats process, one stub each on one "
      "channel), each sending " +
      std::to_string(args.queries) +
      "/S queries back to back (at least 10; a configuration stops after 5 s once every "
      "client sent 3); union = 10 segments x the 30 days ending today, "
      "intersection = 2 segments x 30 days; every key dense (12,304 B); one local "
      "redis-server. union_* / intersection_*: seg-stats' default options, whose past-day "
      "cache (past_day_cache_ms = 60 s) serves the 28 days before yesterday from memory, so a "
      "query reads 20 of its 300 keys from Redis. union_no_cache_*: the cache off, every key "
      "read every time. union_server_pfcount_*: the baseline, Redis merges (PFCOUNT k1..k300 "
      "per shard). *_1client_* and *_2client_*: the same queries with 1 and 2 clients. "
      "*_fetch_ms / *_merge_ms: seg-stats' mean time per query in the Redis MGET and in "
      "decode+merge+estimate; *_redis_cpu_ms: redis-server CPU per query. Accuracy: MLE vs "
      "inclusion-exclusion mean relative error on the same pairs.";
  json += "},\n\"notes\": \"" + notes + "\"}\n";
  std::fprintf(stderr, "%s\n", notes.c_str());
  if (!args.json_out.empty()) {
    std::ofstream(args.json_out) << json;
  }
  std::printf("%s", json.c_str());
  return 0;
}
