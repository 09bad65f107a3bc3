// HyperLogLog sketches in Redis's own layout, decoded and estimated on the
// client: sizes, unions and intersections of segments with honest 95% intervals.
//
// A HyperLogLog here is exactly what Redis keeps under a PF* key: p = 14
// (16384 registers), 6-bit registers, MurmurHash64A with seed 0xadc83b19.
// FromRedisString() reads the bytes a GET returns (sparse or dense),
// Estimate() returns what PFCOUNT would return for them (bit-exact), Merge()
// is PFMERGE, and ToRedisDenseString() writes a string that SET can store
// back and PF* commands accept. Add() lets a client build the same sketch
// Redis would build from the same elements.
//
// Intersections cannot be read off a sketch exactly. EstimateIntersection()
// uses Ertl's joint maximum-likelihood estimator on the two register vectors
// with a profile-likelihood interval; EstimateIntersectionK() extends it to
// k >= 3 sets; InclusionExclusion() is the classic estimator, kept for
// comparison. See docs/hyperloglog.md for the layout, the maths and figures.
//
// Thread-safety: a HyperLogLog is a value (16 KB of registers on the heap);
// const methods may run concurrently, mutation needs external locking. The
// free functions are pure and thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace seg::stats {

inline constexpr int kHllPrecision = 14;                    // p: index bits
inline constexpr int kHllRegisters = 1 << kHllPrecision;    // m = 16384
inline constexpr int kHllMaxRank = 64 - kHllPrecision + 1;  // 51: largest register PFADD sets
inline constexpr size_t kHllHeaderBytes = 16;               // "HYLL", encoding, 3 unused, cache
inline constexpr size_t kHllDenseBytes = kHllHeaderBytes + 12288;  // 12,304 bytes
// Relative standard error of a size estimate: 1.04 / sqrt(m).
inline constexpr double kHllRelativeStdError = 0.008125;

// A size with its uncertainty (absolute units, i.e. users).
struct CardinalityEstimate {
  double value = 0;      // point estimate (PFCOUNT's number for one sketch or a union)
  double std_error = 0;  // 1.04/sqrt(m) * value
  double ci95_low = 0;   // value -/+ 1.96 std_error, clamped at 0
  double ci95_high = 0;
};

class HyperLogLog {
 public:
  // An empty sketch: all registers 0, Estimate() == 0.
  HyperLogLog();

  // Decodes a Redis HLL string (what GET returns on a PF* key), sparse or
  // dense. Errors: InvalidArgument for a wrong magic, unknown encoding, a
  // dense string that is not 12,304 bytes, or a sparse string whose opcodes
  // do not cover exactly 16384 registers (Redis's "INVALIDOBJ" cases).
  static StatusOr<HyperLogLog> FromRedisString(std::string_view raw);

  // Builds a sketch from registers (values above 63 are rejected).
  static StatusOr<HyperLogLog> FromRegisters(std::span<const uint8_t> registers);

  // MurmurHash64A of the element with Redis's seed 0xadc83b19.
  static uint64_t Hash(std::string_view element);

  // Adds an element exactly as PFADD does. Returns true if a register changed.
  bool Add(std::string_view element) { return AddHash(Hash(element)); }
  // Adds a 64-bit hash: register = low 14 bits, rank = 1 + number of trailing
  // zeros of the remaining 50 bits (51 when they are all zero).
  bool AddHash(uint64_t hash);

  // PFMERGE: register-wise max with `other`.
  void Merge(const HyperLogLog& other);

  // Exactly what PFCOUNT returns for this sketch (Ertl's improved estimator
  // over the register histogram, rounded to the nearest integer).
  uint64_t Estimate() const;
  // Estimate() with a 95% interval.
  CardinalityEstimate EstimateWithError() const;

  // The dense Redis encoding (12,304 bytes, cached cardinality marked
  // invalid so Redis recomputes it). SET it and PF* commands accept it.
  std::string ToRedisDenseString() const;

  // One byte per register, values 0..63.
  std::span<const uint8_t> registers() const { return registers_; }

  bool operator==(const HyperLogLog& other) const = default;

 private:
  std::vector<uint8_t> registers_;
};

// Result of an intersection estimate. The interval is the thing to show;
// `value` alone is not an answer when `too_uncertain` is set.
struct IntersectionEstimate {
  double value = 0;      // point estimate of |A ∩ B ∩ ...| (users)
  double std_error = 0;  // interval half-width / 1.96 (the interval may be asymmetric)
  double ci95_low = 0;
  double ci95_high = 0;
  // Set when the interval is wide relative to the value: half-width > 50% of
  // the estimate, or the lower bound is 0.
  bool too_uncertain = false;
  std::string note;    // one human sentence on how far to trust it
  std::string method;  // "joint_mle", "joint_mle_inclusion_exclusion", "inclusion_exclusion"
};

// |A ∪ B ∪ ...|: merge, then PFCOUNT's estimator. Null entries are skipped; an
// empty span is the empty set.
CardinalityEstimate EstimateUnion(std::span<const HyperLogLog* const> sketches);

// |A ∩ B| by Ertl's joint maximum-likelihood estimator with a 95%
// profile-likelihood interval.
IntersectionEstimate EstimateIntersection(const HyperLogLog& a, const HyperLogLog& b);

// |A1 ∩ ... ∩ Ak|. k = 1: the size; k = 2: EstimateIntersection(); k >= 3:
// inclusion-exclusion inside the smallest set S, whose terms |S ∩ (union of a
// subset of the others)| are joint-MLE estimates (2^(k-1) - 1 of them); the
// interval adds the terms' half-widths (conservative). k is limited to 12.
// Null entries are skipped.
IntersectionEstimate EstimateIntersectionK(std::span<const HyperLogLog* const> sketches);

// Classic inclusion-exclusion over the 2^k - 1 union estimates, with a
// conservative interval (the terms' half-widths added up). For comparison;
// k <= 12.
IntersectionEstimate InclusionExclusion(std::span<const HyperLogLog* const> sketches);

}  // namespace seg::stats
