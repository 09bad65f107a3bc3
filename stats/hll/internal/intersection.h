// Ertl's joint maximum-likelihood estimation on two HyperLogLog register
// vectors (internal; the public entry points are in stats/hll/hll.h).
#pragma once

#include <array>
#include <cstdint>
#include <span>

namespace seg::stats::internal {

inline constexpr int kLevels = 52;  // register values 0..q+1 with q = 50

// Sufficient statistics of a register pair vector (K_A, K_B):
//   lt_a[k], lt_b[k]: histograms of K_A and K_B over registers with K_A < K_B
//   gt_a[k], gt_b[k]: the same over registers with K_A > K_B
//   eq[k]: registers with K_A == K_B == k
// Values above q+1 (never written by PFADD) are clamped to q+1.
struct JointHistograms {
  std::array<int, kLevels> lt_a{}, lt_b{}, gt_a{}, gt_b{}, eq{};
};

JointHistograms BuildJointHistograms(std::span<const uint8_t> a, std::span<const uint8_t> b);

// Poisson-model log-likelihood of the registers given the rates lambda_a
// (elements only in A), lambda_b (only in B) and lambda_x (in both), up to a
// constant. Rates are cardinalities (elements), all >= 0. If `grad` is not
// null it receives dL/dlambda_{a,b,x}.
double JointLogLikelihood(const JointHistograms& h, double la, double lb, double lx,
                          std::array<double, 3>* grad = nullptr);

struct JointMleResult {
  double la = 0, lb = 0, lx = 0;  // maximum-likelihood rates
  double log_likelihood = 0;
  double lx_low = 0, lx_high = 0;  // 95% profile-likelihood interval for lambda_x
  // Wald standard error of lambda_x from the observed information (delta
  // method on the log-rates). Kept for comparison only: near 0 it collapses
  // and MLE +/- 1.96 se under-covers, which is why the profile interval is used.
  double lx_wald_se = 0;
  int evaluations = 0;  // likelihood evaluations spent (for the benchmark)
};

// Maximises the joint likelihood (damped Newton on log-rates) and computes the
// profile-likelihood interval {lx : 2 (Lmax - Lprofile(lx)) <= chi2_1(0.95)}.
JointMleResult JointMle(std::span<const uint8_t> a, std::span<const uint8_t> b);

}  // namespace seg::stats::internal
