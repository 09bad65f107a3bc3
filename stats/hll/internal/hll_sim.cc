#include "stats/hll/internal/hll_sim.h"

#include "stats/hll/internal/intersection.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

namespace seg::stats::sim {

Scenario MakeScenario(const std::vector<size_t>& sizes, size_t common, size_t pairwise,
                      uint64_t seed) {
  SplitMix64 rng(seed);
  const size_t k = sizes.size();
  Scenario s;
  s.sets.resize(k);
  for (size_t i = 0; i < k; ++i) s.sets[i].reserve(sizes[i]);
  for (size_t c = 0; c < common; ++c) {
    const uint64_t h = rng.Next();
    for (auto& set : s.sets) set.push_back(h);
  }
  size_t union_size = common;
  for (size_t i = 0; i < k; ++i) {
    for (size_t j = i + 1; j < k; ++j) {
      for (size_t c = 0; c < pairwise; ++c) {
        const uint64_t h = rng.Next();
        s.sets[i].push_back(h);
        s.sets[j].push_back(h);
      }
      union_size += pairwise;
    }
  }
  for (size_t i = 0; i < k; ++i) {
    while (s.sets[i].size() < sizes[i]) {
      s.sets[i].push_back(rng.Next());
      ++union_size;
    }
  }
  s.intersection = static_cast<double>(k == 2 ? common + pairwise : common);
  if (k == 1) s.intersection = static_cast<double>(sizes[0]);
  s.union_size = static_cast<double>(union_size);
  return s;
}

HyperLogLog SketchOf(std::span<const uint64_t> hashes) {
  HyperLogLog h;
  for (uint64_t x : hashes) h.AddHash(x);
  return h;
}

KmvSketch::KmvSketch(std::span<const uint64_t> hashes, size_t capacity)
    : sorted_(hashes.begin(), hashes.end()) {
  std::sort(sorted_.begin(), sorted_.end());
  sorted_.erase(std::unique(sorted_.begin(), sorted_.end()), sorted_.end());
  complete_ = sorted_.size() <= capacity;
  if (!complete_) sorted_.resize(capacity);
}

double KmvSketch::EstimateIntersection(std::span<const KmvSketch* const> sketches) {
  // theta: every sample holds all of its set's hashes below theta.
  uint64_t theta = std::numeric_limits<uint64_t>::max();
  bool exact = true;
  for (const KmvSketch* s : sketches) {
    if (!s->complete_) {
      theta = std::min(theta, s->sorted_.back());
      exact = false;
    }
  }
  std::vector<uint64_t> common;
  for (uint64_t h : sketches[0]->sorted_) {
    if (h < theta || exact) common.push_back(h);
  }
  for (size_t i = 1; i < sketches.size(); ++i) {
    std::vector<uint64_t> next;
    std::set_intersection(common.begin(), common.end(), sketches[i]->sorted_.begin(),
                          sketches[i]->sorted_.end(), std::back_inserter(next));
    common.swap(next);
  }
  if (exact) return static_cast<double>(common.size());
  return static_cast<double>(common.size()) / (static_cast<double>(theta) / 18446744073709551616.0);
}

namespace {

struct Accumulator {
  double err = 0, covered = 0, halfwidth = 0;
  int n = 0;
  void Add(double estimate, double low, double high, double truth) {
    err += std::abs(estimate - truth) / truth;
    covered += (low <= truth && truth <= high) ? 1 : 0;
    halfwidth += 0.5 * (high - low) / truth;
    ++n;
  }
  EstimatorStats Stats() const {
    if (n == 0) return {};
    return {err / n, covered / n, halfwidth / n};
  }
};

}  // namespace

IntersectionSimResult SimulateIntersection(int sets, size_t set_size, double overlap,
                                           size_t pairwise, int trials, uint64_t seed,
                                           size_t kmv_capacity) {
  IntersectionSimResult r;
  r.sets = sets;
  r.set_size = set_size;
  r.overlap = overlap;
  r.trials = trials;
  const size_t common = static_cast<size_t>(std::llround(overlap * static_cast<double>(set_size)));
  Accumulator mle, ie, kmv, wald;
  for (int t = 0; t < trials; ++t) {
    const Scenario s = MakeScenario(std::vector<size_t>(sets, set_size), common, pairwise,
                                    seed + 0x1000193ULL * static_cast<uint64_t>(t));
    std::vector<HyperLogLog> sketches;
    for (const auto& set : s.sets) sketches.push_back(SketchOf(set));
    std::vector<const HyperLogLog*> ptrs;
    for (const auto& h : sketches) ptrs.push_back(&h);
    IntersectionEstimate m;
    if (sets == 2) {
      // The joint MLE directly (what EstimateIntersection reports), plus its Wald interval.
      const internal::JointMleResult j =
          internal::JointMle(sketches[0].registers(), sketches[1].registers());
      m.value = j.lx;
      m.ci95_low = j.lx_low;
      m.ci95_high = j.lx_high;
      wald.Add(j.lx, j.lx - 1.96 * j.lx_wald_se, j.lx + 1.96 * j.lx_wald_se, s.intersection);
    } else {
      m = EstimateIntersectionK(ptrs);
    }
    const IntersectionEstimate i = InclusionExclusion(ptrs);
    mle.Add(m.value, m.ci95_low, m.ci95_high, s.intersection);
    ie.Add(i.value, i.ci95_low, i.ci95_high, s.intersection);
    if (kmv_capacity > 0) {
      std::vector<KmvSketch> samples;
      for (const auto& set : s.sets) samples.emplace_back(set, kmv_capacity);
      std::vector<const KmvSketch*> kp;
      for (const auto& k : samples) kp.push_back(&k);
      const double v = KmvSketch::EstimateIntersection(kp);
      kmv.Add(v, v, v, s.intersection);
    }
  }
  r.mle = mle.Stats();
  r.ie = ie.Stats();
  r.kmv = kmv.Stats();
  r.wald_coverage = wald.Stats().coverage;
  r.ie_over_mle_error =
      r.mle.mean_relative_error > 0 ? r.ie.mean_relative_error / r.mle.mean_relative_error : 0;
  return r;
}

std::string ToJson(const IntersectionSimResult& r) {
  char buf[640];
  std::snprintf(
      buf, sizeof(buf),
      "{\"sets\": %d, \"set_size\": %zu, \"overlap\": %g, \"trials\": %d, "
      "\"mle_mean_rel_error\": %.4f, \"mle_coverage\": %.3f, "
      "\"mle_mean_rel_halfwidth\": %.4f, \"ie_mean_rel_error\": %.4f, "
      "\"ie_coverage\": %.3f, \"ie_mean_rel_halfwidth\": %.4f, "
      "\"kmv_mean_rel_error\": %.4f, \"wald_coverage\": %.3f, \"ie_over_mle_error\": %.2f}",
      r.sets, r.set_size, r.overlap, r.trials, r.mle.mean_relative_error, r.mle.coverage,
      r.mle.mean_relative_halfwidth, r.ie.mean_relative_error, r.ie.coverage,
      r.ie.mean_relative_halfwidth, r.kmv.mean_relative_error, r.wald_coverage,
      r.ie_over_mle_error);
  return buf;
}

}  // namespace seg::stats::sim
