// Internals of seg::stats::HyperLogLog shared by hll.cc, intersection.cc,
// the tests and the benchmark. Not part of the public API.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "common/status.h"

namespace seg::stats::internal {

inline constexpr int kHllQ = 64 - 14;  // q: hash bits left after the index (50)
inline constexpr uint8_t kEncodingDense = 0;
inline constexpr uint8_t kEncodingSparse = 1;
inline constexpr uint64_t kRedisHllSeed = 0xadc83b19ULL;
// 1 / (2 ln 2): the limit of HyperLogLog's alpha_m, as Redis uses it.
inline constexpr double kAlphaInf = 0.721347520444481703680;

// Register histogram: hist[k] = number of registers with value k (0..63).
using RegisterHistogram = std::array<int, 64>;

// Register index and rank of a hash, as Redis's hllPatLen does.
inline int RegisterIndex(uint64_t hash) { return static_cast<int>(hash & 16383); }
inline uint8_t RegisterRank(uint64_t hash) {
  uint64_t rest = (hash >> 14) | (uint64_t{1} << kHllQ);  // the sentinel caps the rank at 51
  return static_cast<uint8_t>(__builtin_ctzll(rest) + 1);
}

// Unpacks the 12,288 bytes of dense 6-bit registers into 16384 bytes.
void UnpackDense(const uint8_t* packed, uint8_t* registers);
// registers[i] = max(registers[i], register i of the 12,288 packed bytes):
// PFMERGE of one dense sketch without unpacking it first (AVX2 when the CPU
// has it, else unpack-then-max). hll_dense_max.cc.
void MaxDenseInto(const uint8_t* packed, uint8_t* registers);
// The unpack-then-max path alone (tests compare the two; the benchmark's baseline).
void MaxDenseIntoPortable(const uint8_t* packed, uint8_t* registers);
// Packs 16384 registers (each < 64) into 12,288 bytes.
void PackDense(const uint8_t* registers, uint8_t* packed);
// Expands sparse opcodes into 16384 registers. InvalidArgument unless the
// opcodes cover exactly 16384 registers.
Status DecodeSparse(std::span<const uint8_t> opcodes, uint8_t* registers);
// Encodes registers as a Redis sparse string (header included). Returns an
// empty string if some register exceeds 32 (not representable sparsely).
// Redis accepts any valid sparse string; it converts to dense on its own
// when a PFADD makes the string longer than hll-sparse-max-bytes.
std::string EncodeSparse(std::span<const uint8_t> registers);

RegisterHistogram Histogram(std::span<const uint8_t> registers);

// Ertl's "improved" estimator exactly as Redis 5+ computes it (same
// floating-point operations in the same order), unrounded.
double ErtlEstimate(const RegisterHistogram& hist);
// PFCOUNT's integer: ErtlEstimate() rounded half away from zero.
uint64_t PfCount(const RegisterHistogram& hist);

}  // namespace seg::stats::internal
