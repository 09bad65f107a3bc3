// Intersections of HyperLogLog sketches: Ertl's joint maximum likelihood.
//
// Model (Ertl 2017, "New cardinality estimation algorithms for HyperLogLog
// sketches", joint estimation). Split A ∪ B into three disjoint parts with
// Poisson rates: lambda_a (only in A), lambda_b (only in B), lambda_x (in
// both). Under poissonization every register gets independent Poisson
// arrivals from each part, and a register of one part is <= k with
// probability F(k) = exp(-lambda * w_k), w_k = 2^-k / m for k <= q (= 50),
// F(q+1) = 1. Register i of A is max(K_a, K_x), of B max(K_b, K_x). The
// probability of a register pair (K_A = i, K_B = j) follows from the joint
// CDF F_a(i) F_b(j) F_x(min(i, j)):
//   i < j:  [F_a F_x](i) - [F_a F_x](i-1)    times  F_b(j) - F_b(j-1)
//   i > j:  F_a(i) - F_a(i-1)                times  [F_b F_x](j) - [F_b F_x](j-1)
//   i = j = k: e^-(alpha+beta+gamma) [ (1 - e^-gamma) + e^-gamma (1 - e^-alpha)(1 - e^-beta) ]
//           with alpha = lambda_a w_k etc. (for k = q+1 the exponential factor is 1
//           and w_{q+1} := w_q; for k = 0 only the factor remains).
// Each difference F(k) - F(k-1) = e^-a (1 - e^-a), a = lambda w_k, is
// evaluated with expm1 so no cancellation occurs at small rates. The
// likelihood therefore depends on the register pairs only through five
// histograms (K_A and K_B where K_A < K_B, the same where K_A > K_B, and the
// common value where they are equal): ~50-100 non-zero terms, so one
// evaluation costs ~1 us.
//
// Estimation. Damped Newton (Levenberg-Marquardt) on the log-rates with an
// analytic gradient and a finite-difference Hessian of the gradient, started
// from the inclusion-exclusion split, with a floor of 1e-3 elements on every
// rate (an overlap of 0 is a boundary optimum). The 95% interval for
// lambda_x is the profile-likelihood interval
//   { lx : 2 (L(MLE) - max_{la,lb} L(la, lb, lx)) <= 3.841 },
// found by bracketing and bisection; unlike a Wald interval (MLE +/- 1.96
// se) it is asymmetric and stays honest near 0, where the likelihood is
// far from quadratic.
//
// Why it beats inclusion-exclusion: |A| + |B| - |A ∪ B| subtracts three
// estimates each with an error of 0.81% of a large number, so its error is
// ~1% of the union whatever the overlap. The joint likelihood uses where the
// registers of A and B coincide and where each is the larger, so its error
// scales with the overlap and the smaller set. Measured figures are in
// docs/hyperloglog.md (bench: hll_bench --sim).
#include "stats/hll/internal/intersection.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdio>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "stats/hll/hll.h"
#include "stats/hll/internal/hll_internal.h"

namespace seg::stats {
namespace internal {
namespace {

constexpr int kQ = kHllQ;
constexpr double kChi2Of95 = 3.841458820694124;  // chi-square(1) 0.95 quantile
constexpr double kRateFloor = 1e-3;              // elements; rates are kept above it
constexpr double kNegInf = -std::numeric_limits<double>::infinity();

double Weight(int k) {
  return std::ldexp(1.0 / kHllRegisters, -std::min(k, kQ));  // w_{q+1} = w_q
}

// log(1 - e^-a) for a > 0, accurate at both ends.
double Log1mExp(double a) {
  return a < 0.6931471805599453 ? std::log(-std::expm1(-a)) : std::log1p(-std::exp(-a));
}

enum class TermKind : uint8_t { kRateAX, kRateB, kRateA, kRateBX, kEqual };

struct Term {
  TermKind kind;
  int level;
  double count;
  double w;
};

std::vector<Term> Terms(const JointHistograms& h) {
  std::vector<Term> terms;
  auto add = [&](TermKind kind, const std::array<int, kLevels>& hist) {
    for (int k = 0; k < kLevels; ++k) {
      if (hist[k] != 0) terms.push_back({kind, k, static_cast<double>(hist[k]), Weight(k)});
    }
  };
  add(TermKind::kRateAX, h.lt_a);
  add(TermKind::kRateB, h.lt_b);
  add(TermKind::kRateA, h.gt_a);
  add(TermKind::kRateBX, h.gt_b);
  add(TermKind::kEqual, h.eq);
  return terms;
}

// log P(K = k) for one register fed at rate r, and d/dr of it.
double SingleTerm(int k, double w, double r, double* d) {
  const double a = r * w;
  if (k == 0) {
    *d = -w;
    return -a;
  }
  if (a <= 0) {
    *d = std::numeric_limits<double>::infinity();
    return kNegInf;
  }
  const double em1 = std::expm1(a);
  if (k <= kQ) {
    *d = w * (1.0 / em1 - 1.0);
    return -a + Log1mExp(a);
  }
  *d = w / em1;
  return Log1mExp(a);
}

// log P(K_A = K_B = k) and its gradient.
double EqualTerm(int k, double w, double la, double lb, double lx, double d[3]) {
  if (k == 0) {
    d[0] = d[1] = d[2] = -w;
    return -(la + lb + lx) * w;
  }
  const double alpha = la * w, beta = lb * w, gamma = lx * w;
  const double a1 = -std::expm1(-alpha), b1 = -std::expm1(-beta), g1 = -std::expm1(-gamma);
  const double eg = std::exp(-gamma);
  const double bracket = g1 + eg * a1 * b1;
  if (!(bracket > 0)) {
    d[0] = d[1] = d[2] = std::numeric_limits<double>::infinity();
    return kNegInf;
  }
  const double inside = k <= kQ ? 1.0 : 0.0;
  d[0] = w * (eg * std::exp(-alpha) * b1 / bracket - inside);
  d[1] = w * (eg * a1 * std::exp(-beta) / bracket - inside);
  d[2] = w * (eg * (1.0 - a1 * b1) / bracket - inside);
  return std::log(bracket) - inside * (alpha + beta + gamma);
}

double LogLikelihood(const std::vector<Term>& terms, double la, double lb, double lx,
                     std::array<double, 3>* grad) {
  double sum = 0;
  std::array<double, 3> g{0, 0, 0};
  for (const Term& t : terms) {
    double d = 0;
    switch (t.kind) {
      case TermKind::kRateAX:
        sum += t.count * SingleTerm(t.level, t.w, la + lx, &d);
        g[0] += t.count * d;
        g[2] += t.count * d;
        break;
      case TermKind::kRateB:
        sum += t.count * SingleTerm(t.level, t.w, lb, &d);
        g[1] += t.count * d;
        break;
      case TermKind::kRateA:
        sum += t.count * SingleTerm(t.level, t.w, la, &d);
        g[0] += t.count * d;
        break;
      case TermKind::kRateBX:
        sum += t.count * SingleTerm(t.level, t.w, lb + lx, &d);
        g[1] += t.count * d;
        g[2] += t.count * d;
        break;
      case TermKind::kEqual: {
        double de[3];
        sum += t.count * EqualTerm(t.level, t.w, la, lb, lx, de);
        for (int i = 0; i < 3; ++i) g[i] += t.count * de[i];
        break;
      }
    }
  }
  if (grad != nullptr) *grad = g;
  return std::isnan(sum) ? kNegInf : sum;
}

// Hessian of f at theta: central differences of the analytic gradient, symmetrised.
template <int N, typename F>
void Hessian(F&& f, const std::array<double, N>& theta, double hess[N][N], int* evaluations) {
  using Vec = std::array<double, N>;
  constexpr double kH = 1e-5;
  for (int j = 0; j < N; ++j) {
    Vec tp = theta, tm = theta, gp{}, gm{};
    tp[j] += kH;
    tm[j] -= kH;
    f(tp, gp);
    f(tm, gm);
    *evaluations += 2;
    for (int i = 0; i < N; ++i) hess[i][j] = (gp[i] - gm[i]) / (2 * kH);
  }
  for (int i = 0; i < N; ++i) {
    for (int j = 0; j < i; ++j) hess[i][j] = hess[j][i] = 0.5 * (hess[i][j] + hess[j][i]);
  }
}

// Maximises f(theta) over N <= 3 log-rates bounded below by log(kRateFloor).
// f(theta, grad) returns the value and writes d f / d theta.
template <int N, typename F>
double Maximize(F&& f, std::array<double, N>& theta, int* evaluations) {
  using Vec = std::array<double, N>;
  const double lo = std::log(kRateFloor);
  Vec g{};
  double fx = f(theta, g);
  ++*evaluations;
  double mu = 0;
  for (int iter = 0; iter < 200; ++iter) {
    double hess[N][N];
    Hessian<N>(f, theta, hess, evaluations);
    // Coordinates held at the floor by a gradient pointing below it stay fixed.
    bool free_dim[N];
    for (int i = 0; i < N; ++i) free_dim[i] = !(theta[i] <= lo + 1e-12 && g[i] <= 0);

    bool accepted = false;
    double step_norm = 0, gain = 0;
    for (int tries = 0; tries < 40 && !accepted; ++tries) {
      // Solve (-H + mu diag) d = g on the free coordinates (Cholesky).
      double a[N][N], d[N];
      for (int i = 0; i < N; ++i) {
        for (int j = 0; j < N; ++j) {
          a[i][j] = (free_dim[i] && free_dim[j]) ? -hess[i][j] : (i == j ? 1.0 : 0.0);
        }
        if (free_dim[i]) a[i][i] += mu * std::max(std::abs(hess[i][i]), 1e-6);
        d[i] = free_dim[i] ? g[i] : 0.0;
      }
      bool pd = true;
      double l[N][N] = {};
      for (int i = 0; i < N && pd; ++i) {
        for (int j = 0; j <= i; ++j) {
          double s = a[i][j];
          for (int k = 0; k < j; ++k) s -= l[i][k] * l[j][k];
          if (i == j) {
            if (!(s > 0)) {
              pd = false;
              break;
            }
            l[i][i] = std::sqrt(s);
          } else {
            l[i][j] = s / l[j][j];
          }
        }
      }
      if (!pd) {
        mu = std::max(mu * 10, 1e-3);
        continue;
      }
      for (int i = 0; i < N; ++i) {
        double s = d[i];
        for (int k = 0; k < i; ++k) s -= l[i][k] * d[k];
        d[i] = s / l[i][i];
      }
      for (int i = N - 1; i >= 0; --i) {
        double s = d[i];
        for (int k = i + 1; k < N; ++k) s -= l[k][i] * d[k];
        d[i] = s / l[i][i];
      }
      double max_step = 0;
      for (int i = 0; i < N; ++i) max_step = std::max(max_step, std::abs(d[i]));
      const double scale = max_step > 2.0 ? 2.0 / max_step : 1.0;
      Vec next = theta;
      for (int i = 0; i < N; ++i) next[i] = std::max(lo, theta[i] + scale * d[i]);
      Vec g_next{};
      const double f_next = f(next, g_next);
      ++*evaluations;
      if (f_next >= fx) {
        step_norm = 0;
        for (int i = 0; i < N; ++i) step_norm = std::max(step_norm, std::abs(next[i] - theta[i]));
        gain = f_next - fx;
        theta = next;
        g = g_next;
        fx = f_next;
        mu = mu < 1e-6 ? 0 : mu / 10;
        accepted = true;
      } else {
        mu = std::max(mu * 10, 1e-3);
      }
    }
    if (!accepted || step_norm < 1e-9 || gain < 1e-11) break;
  }
  return fx;
}

double Estimate(std::span<const uint8_t> regs) { return ErtlEstimate(Histogram(regs)); }

}  // namespace

JointHistograms BuildJointHistograms(std::span<const uint8_t> a, std::span<const uint8_t> b) {
  JointHistograms h;
  const size_t n = std::min(a.size(), b.size());
  for (size_t i = 0; i < n; ++i) {
    const int ka = std::min<int>(a[i], kLevels - 1);
    const int kb = std::min<int>(b[i], kLevels - 1);
    if (ka < kb) {
      h.lt_a[ka]++;
      h.lt_b[kb]++;
    } else if (ka > kb) {
      h.gt_a[ka]++;
      h.gt_b[kb]++;
    } else {
      h.eq[ka]++;
    }
  }
  return h;
}

double JointLogLikelihood(const JointHistograms& h, double la, double lb, double lx,
                          std::array<double, 3>* grad) {
  return LogLikelihood(Terms(h), la, lb, lx, grad);
}

JointMleResult JointMle(std::span<const uint8_t> a, std::span<const uint8_t> b) {
  JointMleResult r;
  const double na = Estimate(a), nb = Estimate(b);
  if (na <= 0 || nb <= 0) return r;  // an empty sketch: the intersection is exactly empty
  std::vector<uint8_t> u(a.begin(), a.end());
  for (size_t i = 0; i < u.size() && i < b.size(); ++i) u[i] = std::max(u[i], b[i]);
  const double nu = Estimate(u);
  const std::vector<Term> terms = Terms(BuildJointHistograms(a, b));

  // Full maximisation over (log la, log lb, log lx).
  const double x0 = std::clamp(na + nb - nu, 1.0, std::max(1.0, std::min(na, nb)));
  std::array<double, 3> theta = {std::log(std::max(na - x0, 1.0)), std::log(std::max(nb - x0, 1.0)),
                                 std::log(x0)};
  auto full = [&](const std::array<double, 3>& t, std::array<double, 3>& g) {
    const double la = std::exp(t[0]), lb = std::exp(t[1]), lx = std::exp(t[2]);
    std::array<double, 3> gl;
    const double v = LogLikelihood(terms, la, lb, lx, &gl);
    g = {gl[0] * la, gl[1] * lb, gl[2] * lx};
    return v;
  };
  const double lmax = Maximize<3>(full, theta, &r.evaluations);
  r.la = std::exp(theta[0]);
  r.lb = std::exp(theta[1]);
  r.lx = std::exp(theta[2]);
  if (r.lx <= kRateFloor * 1.0001) r.lx = 0;
  r.log_likelihood = lmax;
  {
    // Wald: Var(log lx) = [(-H)^-1]_xx, se(lx) = lx * sqrt(that) (cofactor formula).
    double h[3][3];
    Hessian<3>(full, theta, h, &r.evaluations);
    double a[3][3];
    for (int i = 0; i < 3; ++i) {
      for (int j = 0; j < 3; ++j) a[i][j] = -h[i][j];
    }
    const double det = a[0][0] * (a[1][1] * a[2][2] - a[1][2] * a[2][1]) -
                       a[0][1] * (a[1][0] * a[2][2] - a[1][2] * a[2][0]) +
                       a[0][2] * (a[1][0] * a[2][1] - a[1][1] * a[2][0]);
    const double var_x = (a[0][0] * a[1][1] - a[0][1] * a[1][0]) / det;
    r.lx_wald_se = var_x > 0 && std::isfinite(var_x) ? std::exp(theta[2]) * std::sqrt(var_x) : 0;
  }

  // Profile likelihood of lx: maximise over (la, lb) with lx fixed, started
  // from the MLE with la + lx and lb + lx (the marginal sizes) kept.
  auto profile_gap = [&](double lx) {
    std::array<double, 2> t2 = {std::log(std::max(r.la + r.lx - lx, 1.0)),
                                std::log(std::max(r.lb + r.lx - lx, 1.0))};
    auto partial = [&](const std::array<double, 2>& t, std::array<double, 2>& g) {
      const double la = std::exp(t[0]), lb = std::exp(t[1]);
      std::array<double, 3> gl;
      const double v = LogLikelihood(terms, la, lb, lx, &gl);
      g = {gl[0] * la, gl[1] * lb};
      return v;
    };
    const double lp = Maximize<2>(partial, t2, &r.evaluations);
    return 2 * (lmax - lp) - kChi2Of95;  // <= 0 inside the interval
  };
  // Relative precision, fine enough near 0 that "the lower bound is 0" means it.
  auto tolerance = [](double v) { return std::max(1e-3, 1e-4 * v); };

  // Upper bound: step out until outside, then bisect.
  double inside = r.lx, step = std::max({1.0, 0.02 * r.lx, 1e-3 * std::min(na, nb)});
  double outside = r.lx + step;
  for (int i = 0; i < 60 && profile_gap(outside) <= 0; ++i) {
    inside = outside;
    step *= 2;
    outside = r.lx + step;
  }
  while (outside - inside > tolerance(outside)) {
    const double mid = 0.5 * (inside + outside);
    (profile_gap(mid) <= 0 ? inside : outside) = mid;
  }
  r.lx_high = outside;

  // Lower bound: 0 if the profile at 0 is still inside, else bisect.
  if (r.lx == 0 || profile_gap(0.0) <= 0) {
    r.lx_low = 0;
  } else {
    double out = 0, in = r.lx;
    while (in - out > tolerance(in)) {
      const double mid = 0.5 * (in + out);
      (profile_gap(mid) <= 0 ? in : out) = mid;
    }
    r.lx_low = out;
  }
  return r;
}

}  // namespace internal

namespace {

std::string Users(double v) { return std::to_string(std::llround(v)); }

// Fills too_uncertain and note from value and interval.
void Judge(IntersectionEstimate& e, const std::string& what) {
  const double half = 0.5 * (e.ci95_high - e.ci95_low);
  e.std_error = half / 1.96;
  if (e.ci95_high <= 0) {
    e.too_uncertain = false;
    e.note = what + " is 0: one of the sets is empty.";
    return;
  }
  e.too_uncertain = e.ci95_low <= 0 || half > 0.5 * e.value;
  if (e.too_uncertain) {
    e.note = "too uncertain: " + what + " lies somewhere between " + Users(e.ci95_low) + " and " +
             Users(e.ci95_high) +
             " users (95%); the overlap is too small relative to the sets for 16384-register "
             "sketches to resolve.";
  } else {
    char pct[32];
    std::snprintf(pct, sizeof(pct), "%.1f", 100.0 * half / e.value);
    e.note = what + " is about " + Users(e.value) + " users, 95% interval " + Users(e.ci95_low) +
             " to " + Users(e.ci95_high) + " (+/-" + pct + "%).";
  }
}

std::vector<const HyperLogLog*> NonNull(std::span<const HyperLogLog* const> sketches) {
  std::vector<const HyperLogLog*> out;
  for (const HyperLogLog* s : sketches) {
    if (s != nullptr) out.push_back(s);
  }
  return out;
}

constexpr size_t kMaxSets = 12;

// The answer when there is nothing to estimate (no sets, or too many for
// 2^k terms); nullopt when `sets` can be estimated.
std::optional<IntersectionEstimate> Unestimable(const std::vector<const HyperLogLog*>& sets) {
  if (!sets.empty() && sets.size() <= kMaxSets) return std::nullopt;
  IntersectionEstimate e;
  e.method = "none";
  if (sets.empty()) {
    e.note = "no sets given.";
  } else {
    e.too_uncertain = true;
    e.note = "intersections of more than 12 sets are not estimated (2^k terms).";
  }
  return e;
}

// Register-wise union of sets[offset + i] for every bit i set in `mask`.
HyperLogLog UnionOf(const std::vector<const HyperLogLog*>& sets, uint32_t mask, size_t offset) {
  HyperLogLog u;
  for (size_t i = 0; i + offset < sets.size(); ++i) {
    if (mask & (1u << i)) u.Merge(*sets[i + offset]);
  }
  return u;
}

// An estimate with its interval, judged (too_uncertain, note) as `what`.
IntersectionEstimate Judged(double value, double low, double high, const char* method,
                            const std::string& what) {
  IntersectionEstimate e;
  e.value = value;
  e.ci95_low = low;
  e.ci95_high = high;
  e.method = method;
  Judge(e, what);
  return e;
}

IntersectionEstimate FromSize(const HyperLogLog& s) {
  const CardinalityEstimate c = s.EstimateWithError();
  return Judged(c.value, c.ci95_low, c.ci95_high, "size", "the set");
}

}  // namespace

IntersectionEstimate EstimateIntersection(const HyperLogLog& a, const HyperLogLog& b) {
  const internal::JointMleResult r = internal::JointMle(a.registers(), b.registers());
  return Judged(r.lx, r.lx_low, r.lx_high, "joint_mle", "the intersection");
}

IntersectionEstimate EstimateIntersectionK(std::span<const HyperLogLog* const> sketches) {
  std::vector<const HyperLogLog*> sets = NonNull(sketches);
  if (auto e = Unestimable(sets)) return *e;
  if (sets.size() == 1) return FromSize(*sets[0]);
  if (sets.size() == 2) return EstimateIntersection(*sets[0], *sets[1]);

  // Anchor on the smallest set S: |S ∩ O1 ∩ ... ∩ Oj| =
  //   sum over non-empty T ⊆ {O} of (-1)^(|T|+1) |S ∩ union(T)|.
  std::sort(sets.begin(), sets.end(), [](const HyperLogLog* x, const HyperLogLog* y) {
    return x->Estimate() < y->Estimate();
  });
  const HyperLogLog& anchor = *sets[0];
  const size_t others = sets.size() - 1;
  double value = 0, low = 0, high = 0;
  double cap_value = std::numeric_limits<double>::infinity(), cap_high = cap_value;
  for (uint32_t mask = 1; mask < (1u << others); ++mask) {
    const HyperLogLog u = UnionOf(sets, mask, 1);
    const internal::JointMleResult r = internal::JointMle(anchor.registers(), u.registers());
    const bool plus = (std::popcount(mask) % 2) == 1;
    value += plus ? r.lx : -r.lx;
    low += plus ? r.lx_low : -r.lx_high;
    high += plus ? r.lx_high : -r.lx_low;
    if (std::popcount(mask) == 1) {
      cap_value = std::min(cap_value, r.lx);
      cap_high = std::min(cap_high, r.lx_high);
    }
  }
  IntersectionEstimate e;
  e.method = "joint_mle_inclusion_exclusion";
  e.ci95_high = std::clamp(high, 0.0, cap_high);
  e.ci95_low = std::clamp(low, 0.0, e.ci95_high);
  e.value = std::clamp(std::min(value, cap_value), e.ci95_low, e.ci95_high);
  Judge(e, "the intersection");
  return e;
}

IntersectionEstimate InclusionExclusion(std::span<const HyperLogLog* const> sketches) {
  std::vector<const HyperLogLog*> sets = NonNull(sketches);
  if (auto e = Unestimable(sets)) return *e;
  double value = 0, half = 0, min_size = std::numeric_limits<double>::infinity();
  for (uint32_t mask = 1; mask < (1u << sets.size()); ++mask) {
    const double n = static_cast<double>(UnionOf(sets, mask, 0).Estimate());
    value += (std::popcount(mask) % 2 == 1) ? n : -n;
    half += 1.96 * kHllRelativeStdError * n;
    if (std::popcount(mask) == 1) min_size = std::min(min_size, n);
  }
  IntersectionEstimate e;
  e.method = "inclusion_exclusion";
  e.value = std::clamp(value, 0.0, min_size);
  e.ci95_low = std::clamp(value - half, 0.0, min_size);
  e.ci95_high = std::clamp(value + half, 0.0, min_size);
  Judge(e, "the intersection");
  return e;
}

}  // namespace seg::stats
