// HyperLogLog kernels (Google Benchmark) and an accuracy simulation.
//
//   hll_bench                       kernels: decode dense/sparse, merge 300 dense
//                                   sketches (10 segments x 30 days), estimate,
//                                   joint-MLE intersection; each beside a baseline
//   hll_bench --sim [--trials N]    accuracy only: joint MLE vs inclusion-exclusion
//                                   (and KMV for 3 sets) as one JSON object on stdout
//   hll_bench --json-out FILE       kernels + simulation, figures and ratios to FILE
//                                   (what `tools/dev bench hll` runs)
//
// Baselines measured in the same run: per-register 6-bit extraction as Redis
// does it (decode, merge of packed strings), inclusion-exclusion (intersection).
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "stats/hll/hll.h"
#include "stats/hll/internal/hll_internal.h"
#include "stats/hll/internal/hll_sim.h"

namespace {

using seg::stats::HyperLogLog;
namespace sim = seg::stats::sim;
namespace internal = seg::stats::internal;

HyperLogLog Sketch(size_t n, uint64_t seed) {
  sim::SplitMix64 rng(seed);
  HyperLogLog h;
  for (size_t i = 0; i < n; ++i) h.AddHash(rng.Next());
  return h;
}

// Redis-style register access on the packed form: the baseline.
inline uint8_t PackedGet(const uint8_t* p, int i) {
  const unsigned long byte = static_cast<unsigned long>(i) * 6 / 8;
  const unsigned long fb = static_cast<unsigned long>(i) * 6 & 7;
  const unsigned long b0 = p[byte];
  const unsigned long b1 = byte + 1 < 12288 ? p[byte + 1] : 0;
  return static_cast<uint8_t>(((b0 >> fb) | (b1 << (8 - fb))) & 63);
}

const std::vector<std::string>& DenseStrings() {
  static const std::vector<std::string> strings = [] {
    std::vector<std::string> out;
    for (int i = 0; i < 300; ++i)
      out.push_back(Sketch(20000 + 300 * i, 100 + i).ToRedisDenseString());
    return out;
  }();
  return strings;
}

void BM_DecodeDense(benchmark::State& state) {
  const std::string& s = DenseStrings()[0];
  for (auto _ : state) {
    auto h = HyperLogLog::FromRedisString(s);
    benchmark::DoNotOptimize(h);
  }
}
BENCHMARK(BM_DecodeDense);

void BM_DecodeDenseBaselinePerRegister(benchmark::State& state) {
  const auto* p = reinterpret_cast<const uint8_t*>(DenseStrings()[0].data()) + 16;
  std::vector<uint8_t> regs(seg::stats::kHllRegisters);
  for (auto _ : state) {
    for (int i = 0; i < seg::stats::kHllRegisters; ++i) regs[i] = PackedGet(p, i);
    benchmark::DoNotOptimize(regs.data());
  }
}
BENCHMARK(BM_DecodeDenseBaselinePerRegister);

void BM_DecodeSparse(benchmark::State& state) {
  // ~1,500 users: a sparse string near Redis's 3,000-byte switch to dense.
  const std::string s = internal::EncodeSparse(Sketch(1500, 9).registers());
  state.counters["bytes"] = static_cast<double>(s.size());
  for (auto _ : state) {
    auto h = HyperLogLog::FromRedisString(s);
    benchmark::DoNotOptimize(h);
  }
}
BENCHMARK(BM_DecodeSparse);

// Union of 10 segments over 30 days = 300 dense sketches.
void BM_Merge300Decoded(benchmark::State& state) {
  std::vector<HyperLogLog> parts;
  for (const auto& s : DenseStrings()) parts.push_back(*HyperLogLog::FromRedisString(s));
  for (auto _ : state) {
    HyperLogLog u;
    for (const auto& p : parts) u.Merge(p);
    benchmark::DoNotOptimize(u);
  }
}
BENCHMARK(BM_Merge300Decoded);

void BM_Merge300FromStrings(benchmark::State& state) {
  const auto& strings = DenseStrings();
  for (auto _ : state) {
    HyperLogLog u;
    for (const auto& s : strings) u.Merge(*HyperLogLog::FromRedisString(s));
    benchmark::DoNotOptimize(u);
  }
}
BENCHMARK(BM_Merge300FromStrings);

// The service's path: each packed string folded straight into the union
// (AVX2 when available), no HyperLogLog per key.
void BM_Merge300PackedSimd(benchmark::State& state) {
  const auto& strings = DenseStrings();
  std::vector<uint8_t> max(seg::stats::kHllRegisters);
  for (auto _ : state) {
    std::fill(max.begin(), max.end(), 0);
    for (const auto& s : strings) {
      internal::MaxDenseInto(reinterpret_cast<const uint8_t*>(s.data()) + 16, max.data());
    }
    benchmark::DoNotOptimize(max.data());
  }
}
BENCHMARK(BM_Merge300PackedSimd);

void BM_Merge300BaselinePackedPerRegister(benchmark::State& state) {
  const auto& strings = DenseStrings();
  std::vector<uint8_t> max(seg::stats::kHllRegisters);
  for (auto _ : state) {
    std::fill(max.begin(), max.end(), 0);
    for (const auto& s : strings) {
      const auto* p = reinterpret_cast<const uint8_t*>(s.data()) + 16;
      for (int i = 0; i < seg::stats::kHllRegisters; ++i) {
        const uint8_t v = PackedGet(p, i);
        if (v > max[i]) max[i] = v;
      }
    }
    benchmark::DoNotOptimize(max.data());
  }
}
BENCHMARK(BM_Merge300BaselinePackedPerRegister);

void BM_Estimate(benchmark::State& state) {
  const HyperLogLog h = Sketch(1000000, 5);
  for (auto _ : state) benchmark::DoNotOptimize(h.Estimate());
}
BENCHMARK(BM_Estimate);

void BM_IntersectionJointMle(benchmark::State& state) {
  const auto s = sim::MakeScenario({1000000, 1000000}, 100000, 0, 77);
  const HyperLogLog a = sim::SketchOf(s.sets[0]), b = sim::SketchOf(s.sets[1]);
  for (auto _ : state) benchmark::DoNotOptimize(seg::stats::EstimateIntersection(a, b));
}
BENCHMARK(BM_IntersectionJointMle)->Unit(benchmark::kMicrosecond);

void BM_IntersectionInclusionExclusion(benchmark::State& state) {
  const auto s = sim::MakeScenario({1000000, 1000000}, 100000, 0, 77);
  const HyperLogLog a = sim::SketchOf(s.sets[0]), b = sim::SketchOf(s.sets[1]);
  const HyperLogLog* both[] = {&a, &b};
  for (auto _ : state) benchmark::DoNotOptimize(seg::stats::InclusionExclusion(both));
}
BENCHMARK(BM_IntersectionInclusionExclusion)->Unit(benchmark::kMicrosecond);

void BM_Intersection3JointMle(benchmark::State& state) {
  const auto s = sim::MakeScenario({1000000, 1000000, 1000000}, 100000, 0, 78);
  std::vector<HyperLogLog> hs;
  for (const auto& set : s.sets) hs.push_back(sim::SketchOf(set));
  const HyperLogLog* ptrs[] = {&hs[0], &hs[1], &hs[2]};
  for (auto _ : state) benchmark::DoNotOptimize(seg::stats::EstimateIntersectionK(ptrs));
}
BENCHMARK(BM_Intersection3JointMle)->Unit(benchmark::kMicrosecond);

// Collects each benchmark's CPU time per iteration (the machine is shared; CPU time is the stable
// figure) in microseconds.
class CollectingReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& r : runs) {
      const double unit_us = r.time_unit == benchmark::kMicrosecond   ? 1.0
                             : r.time_unit == benchmark::kMillisecond ? 1000.0
                             : r.time_unit == benchmark::kSecond      ? 1e6
                                                                      : 1e-3;
      micros[r.benchmark_name()] = r.GetAdjustedCPUTime() * unit_us;
    }
  }
  std::map<std::string, double> micros;
};

std::string Simulation(int trials) {
  std::string out = "{\"pairs\": [";
  bool first = true;
  for (size_t n : {100000, 1000000}) {
    for (double ov : {0.001, 0.01, 0.1, 0.5}) {
      const auto r = sim::SimulateIntersection(2, n, ov, 0, trials, 1000 + n, 0);
      out += (first ? "" : ", ") + sim::ToJson(r);
      first = false;
    }
  }
  out += "], \"three_sets\": [";
  first = true;
  for (double ov : {0.01, 0.1, 0.3}) {
    // Pairwise-only overlaps of 5% make the 3-way problem harder than nested sets.
    const auto r =
        sim::SimulateIntersection(3, 100000, ov, 5000, std::max(10, trials / 2), 7000, 1536);
    out += (first ? "" : ", ") + sim::ToJson(r);
    first = false;
  }
  out += "], \"kmv_capacity\": 1536}";
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  bool sim_only = false;
  int trials = 100;
  std::string json_out;
  std::vector<char*> rest = {argv[0]};
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--sim") == 0) {
      sim_only = true;
    } else if (std::strcmp(argv[i], "--trials") == 0 && i + 1 < argc) {
      trials = std::atoi(argv[++i]);
    } else if (std::strcmp(argv[i], "--json-out") == 0 && i + 1 < argc) {
      json_out = argv[++i];
    } else {
      rest.push_back(argv[i]);
    }
  }
  if (sim_only) {
    std::printf("%s\n", Simulation(trials).c_str());
    return 0;
  }
  int bargc = static_cast<int>(rest.size());
  benchmark::Initialize(&bargc, rest.data());
  CollectingReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  if (json_out.empty()) return 0;

  auto& t = reporter.micros;
  auto get = [&](const char* name) { return t.count(name) ? t[name] : 0.0; };
  const std::string sim_json = Simulation(trials);
  std::ofstream f(json_out);
  char buf[2048];
  std::snprintf(
      buf, sizeof(buf),
      "{\"figures\": {\"decode_dense_us\": %.2f, \"decode_sparse_us\": %.2f, "
      "\"merge300_decoded_us\": %.1f, \"merge300_from_strings_us\": %.1f, "
      "\"merge300_packed_simd_us\": %.1f, \"estimate_us\": %.2f, "
      "\"joint_mle_us\": %.0f, \"joint_mle_3sets_us\": %.0f, \"inclusion_exclusion_us\": %.1f}, "
      "\"ratios\": {\"decode_dense_vs_per_register\": %.2f, "
      "\"merge300_from_strings_vs_packed_per_register\": %.2f, "
      "\"merge300_packed_simd_vs_from_strings\": %.2f, "
      "\"joint_mle_cost_vs_inclusion_exclusion\": %.1f}, ",
      get("BM_DecodeDense"), get("BM_DecodeSparse"), get("BM_Merge300Decoded"),
      get("BM_Merge300FromStrings"), get("BM_Merge300PackedSimd"), get("BM_Estimate"),
      get("BM_IntersectionJointMle"), get("BM_Intersection3JointMle"),
      get("BM_IntersectionInclusionExclusion"),
      get("BM_DecodeDenseBaselinePerRegister") / get("BM_DecodeDense"),
      get("BM_Merge300BaselinePackedPerRegister") / get("BM_Merge300FromStrings"),
      get("BM_Merge300FromStrings") / get("BM_Merge300PackedSimd"),
      get("BM_IntersectionJointMle") / get("BM_IntersectionInclusionExclusion"));
  f << buf << "\"notes\": \"simulation: " << trials
    << " trials per pair config\", \"simulation\": " << sim_json << "}\n";
  std::printf("%s\n", sim_json.c_str());
  return 0;
}
