// seg-stats end to end: query latency over real gRPC on loopback against a
// real redis-server, intersection accuracy, and writer throughput.
//
//   stats_bench [--json-out FILE] [--clients 4] [--queries 300] [--quick]
//
// Latency: a union of 10 segments over 30 days (300 dense segment-days per
// shard) and an intersection of 2 segments over 30 days, `clients` threads
// each sending `queries` calls, at S = 1, 4, 16; client-side merge (GET +
// merge, the default) against server-side PFCOUNT (the baseline) in the same
// run. Every segment-day key is stored dense (12,304 bytes), the worst case
// for transfer: at S = 16 small per-shard keys would be sparse in practice.
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
#include <string>
#include <thread>
#include <vector>

#include "common/hash.h"
#include "common/logging.h"
#include "proto/stats.grpc.pb.h"
#include "stats/hll.h"
#include "stats/redis_cluster.h"
#include "stats/stats_service.h"
#include "stats/stats_writer.h"
#include "tests/harness/redis_server.h"

namespace {

using namespace seg::stats;  // NOLINT: a benchmark main
namespace v1 = seg::stats::v1;
using Clock = std::chrono::steady_clock;

struct Args {
  std::string json_out;
  int clients = 4;
  int queries = 300;  // per client per configuration
  bool quick = false;
};

constexpr Day kFirstDay = 20240501;
constexpr int kDays = 30;
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

struct Latency {
  double p50_ms = 0, p99_ms = 0, qps = 0;
};

template <typename Fn>
Latency Measure(const Args& args, Fn call) {
  std::vector<std::vector<double>> per(args.clients);
  std::atomic<int> failures{0};
  auto t0 = Clock::now();
  std::vector<std::thread> threads;
  for (int c = 0; c < args.clients; ++c) {
    threads.emplace_back([&, c] {
      for (int q = 0; q < args.queries; ++q) {
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
  return {Percentile(all, 0.5), Percentile(all, 0.99), all.size() / secs};
}

struct Server {
  std::unique_ptr<StatsServer> server;
  std::shared_ptr<grpc::Channel> channel;
};

Server Start(int redis_port, uint32_t shards, bool server_side, const std::string& estimator) {
  StatsQueryOptions q;
  q.redis.node.port = redis_port;
  q.shards = shards;
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

    Server client_side = Start((*redis)->port(), shards, false, "joint-mle");
    Server server_side = Start((*redis)->port(), shards, true, "joint-mle");
    auto union_req = SetRequest(segments);
    auto inter_req = SetRequest({segments[0], segments[1]});
    // Work per query grows with S: fewer queries at larger S keep the run short.
    Args per_s = args;
    per_s.queries = std::max(20, args.queries / static_cast<int>(shards));
    auto run = [&](Server& srv, bool intersection) {
      std::vector<std::unique_ptr<v1::SegmentStats::Stub>> stubs;
      for (int c = 0; c < args.clients; ++c)
        stubs.push_back(v1::SegmentStats::NewStub(srv.channel));
      v1::Estimate warm;
      Call(stubs[0].get(), intersection, intersection ? inter_req : union_req, &warm);
      return Measure(per_s, [&](int c, int) {
        v1::Estimate e;
        return Call(stubs[c].get(), intersection, intersection ? inter_req : union_req, &e);
      });
    };
    if (shards == 1) {
      // One client alone: the per-query cost without queueing.
      Args one = per_s;
      one.clients = 1;
      std::swap(per_s, one);
      Latency u1 = run(client_side, false);
      Latency x1 = run(client_side, true);
      std::swap(per_s, one);
      figures["union_1client_p50_ms"] = u1.p50_ms;
      figures["union_1client_p99_ms"] = u1.p99_ms;
      figures["intersection_1client_p50_ms"] = x1.p50_ms;
      figures["intersection_1client_p99_ms"] = x1.p99_ms;
      std::fprintf(stderr,
                   "S=1, 1 client: union p50 %.2f p99 %.2f | intersection p50 %.2f p99 %.2f\n",
                   u1.p50_ms, u1.p99_ms, x1.p50_ms, x1.p99_ms);
    }
    Latency u = run(client_side, false);
    Latency us = run(server_side, false);
    Latency x = run(client_side, true);
    std::string prefix = shards == 1 ? "" : "s" + std::to_string(shards) + "_";
    figures[prefix + "union_p50_ms"] = u.p50_ms;
    figures[prefix + "union_p99_ms"] = u.p99_ms;
    figures[prefix + "union_qps"] = u.qps;
    figures[prefix + "union_server_pfcount_p50_ms"] = us.p50_ms;
    figures[prefix + "union_server_pfcount_p99_ms"] = us.p99_ms;
    figures[prefix + "intersection_p50_ms"] = x.p50_ms;
    figures[prefix + "intersection_p99_ms"] = x.p99_ms;
    ratios[prefix + "union_p50_server_pfcount_over_client_merge"] = us.p50_ms / u.p50_ms;
    std::fprintf(stderr,
                 "S=%u: union p50 %.2f p99 %.2f ms (%.0f q/s) | server PFCOUNT p50 %.2f p99 %.2f | "
                 "intersection p50 %.2f p99 %.2f | redis %.1f MB\n",
                 shards, u.p50_ms, u.p99_ms, u.qps, us.p50_ms, us.p99_ms, x.p50_ms, x.p99_ms,
                 (mem1 - mem0) / 1e6);
    client_side.server->Shutdown(0);
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
    Server mle = Start((*redis)->port(), 1, false, "joint-mle");
    Server ie = Start((*redis)->port(), 1, false, "inclusion-exclusion");
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

  // ---- Writer: one FCALL per user pipelined vs one PFADD per round trip ----
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
    auto rate = [&](StatsCallMode mode) {
      StatsWriterOptions o;
      o.redis.node.port = (*redis)->port();
      o.mode = mode;
      auto w = NewStatsWriter(o);
      Check(w.status(), "writer");
      Check((*w)->LoadProcedures(), "load");
      auto t0 = Clock::now();
      for (size_t i = 0; i < batch.size(); i += 1000) {
        Check((*w)->WriteBatch(std::span<const UserUpdate>(
                  batch.data() + i, std::min<size_t>(1000, batch.size() - i))),
              "write");
      }
      return batch.size() / std::chrono::duration<double>(Clock::now() - t0).count();
    };
    double fcall = rate(StatsCallMode::kFunction);
    double pfadd = rate(StatsCallMode::kPfaddPerRoundTrip);
    figures["writer_fcall_users_per_s"] = fcall;
    figures["writer_pfadd_per_round_trip_users_per_s"] = pfadd;
    ratios["writer_fcall_over_pfadd"] = fcall / pfadd;
    std::fprintf(stderr,
                 "writer: FCALL pipelined %.0f users/s, PFADD per round trip %.0f (x%.1f)\n", fcall,
                 pfadd, fcall / pfadd);
  }

  // Flat figures (tools/bench_report.py --stamp wraps them); ratios carry a
  // _ratio suffix.
  std::string json = "{";
  bool first = true;
  char buf[160];
  auto emit = [&](const std::string& k, double v) {
    std::snprintf(buf, sizeof(buf), "%s\n  \"%s\": %.4g", first ? "" : ",", k.c_str(), v);
    json += buf;
    first = false;
  };
  for (const auto& [k, v] : figures) emit(k, v);
  for (const auto& [k, v] : ratios) emit(k + "_ratio", v);
  json += "\n}\n";
  std::fprintf(stderr,
               "clients=%d, queries/client=%d; union = 10 segments x 30 days, intersection = 2 "
               "segments x 30 days, every key dense\n",
               args.clients, args.queries);
  if (!args.json_out.empty()) {
    std::ofstream(args.json_out) << json;
  }
  std::printf("%s", json.c_str());
  return 0;
}
