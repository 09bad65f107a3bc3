// HyperLogLog in Redis's layout: decoding, hashing, merging, estimating.
//
// The idea. Hash every user id to 64 bits. The low p = 14 bits choose one of
// m = 16384 registers; the other 50 bits are a geometric coin: the position
// of their lowest set bit, plus one, is the element's "rank" (1 with
// probability 1/2, 2 with 1/4, ...; 51 when all 50 bits are zero). A register
// keeps the largest rank it has seen. A register that saw n/m elements has a
// maximum rank near log2(n/m), and the histogram of the 16384 registers
// carries almost all the information about n. Registers of a union are the
// register-wise max of the parts (PFMERGE), so unions are exact operations on
// sketches and only the final estimate is approximate.
//
// Layout of the Redis string (what GET returns on a PF* key):
//
//   offset 0   "HYLL"                     magic
//          4   encoding                   0 = dense, 1 = sparse
//          5   3 unused bytes
//          8   cached cardinality         8 bytes little-endian; MSB of byte 15 set
//                                         = stale (recompute)
//         16   dense: 12,288 bytes        register i occupies bits 6i..6i+5,
//                                         little-endian bitwise: byte 0 holds
//                                         r0 in bits 0-5 and r1's low 2 bits
//              sparse: opcodes            ZERO  00xxxxxx           run of xxxxxx+1 zeros (1..64)
//                                         XZERO 01xxxxxx yyyyyyyy  run of 14-bit+1 zeros (1..16384)
//                                         VAL   1vvvvvxx           xx+1 registers (1..4) of value
//                                                                  vvvvv+1 (1..32)
//
// A dense string is 16 + 16384 * 6 / 8 = 12,304 bytes. Redis keeps a key
// sparse while it is at most hll-sparse-max-bytes (3000) long and no register
// exceeds 32, i.e. up to roughly 2,000-3,000 users.
//
// Worked example. Registers 0..999 zero, register 1000 = 2, 1001..1019 zero,
// 1020 and 1021 = 3, the rest zero is the sparse opcode sequence
//   XZERO(1000) = 0x43 0xE7,  VAL(2,1) = 0x84,  ZERO(19) = 0x12,
//   VAL(3,2) = 0x89,  XZERO(15362) = 0x7C 0x01
// (7 bytes after the header). Its histogram is {0: 16381, 2: 1, 3: 2}.
//
// The estimator (Redis >= 5, Ertl 2017 "New cardinality estimation algorithms
// for HyperLogLog sketches", the "improved raw" estimator): with C_k the
// number of registers equal to k and q = 50,
//   z = m * tau(1 - C_{q+1}/m);  for k = q..1: z = (z + C_k) / 2;
//   z += m * sigma(C_0 / m);      n = alpha_inf * m^2 / z,  alpha_inf = 1/(2 ln 2)
// where sigma and tau are the series corrections for the register values
// that carry no information (0) and that are saturated (q+1). No empirical
// bias tables, no switch to linear counting: sigma makes small counts exact
// enough on its own. PfCount() below repeats Redis's floating-point
// operations in the same order so the integer matches PFCOUNT bit for bit
// (verified against redis-server on thousands of sketches in hll_test).
// The relative standard error is 1.04 / sqrt(m) = 0.81% for large n and less
// below ~m (where the estimate behaves like linear counting).
//
// Measured (hll_bench, Release, CPU time, median of 5 on the shared 2-core
// machine): decoding a dense string 7 us (4.4x faster than per-register 6-bit
// extraction as Redis's macros do it), a 2.7 KB sparse string 11 us,
// estimating 8 us, merging 300 decoded sketches (10 segments x 30 days)
// 0.29 ms, decoding + merging the 300 strings 2.7 ms (3.3x the per-register
// baseline). Memory (MEMORY USAGE, redis 7.0.15): a dense key costs 14,384 B,
// per shard per segment-day; with S user shards a large segment-day costs
// S x 14 KB (S = 16: 230 KB; 1,000 segments x 60 days x 16 shards = 13.8 GB
// against 0.86 GB at S = 1), in exchange for a 1/sqrt(S) smaller error. See
// docs/hyperloglog.md for the table and the segment-sharded alternative.
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>

#include "common/hash.h"
#include "stats/hll/hll.h"
#include "stats/hll/internal/hll_internal.h"

namespace seg::stats {
namespace internal {

void UnpackDense(const uint8_t* packed, uint8_t* registers) {
  // 6 bytes hold 8 registers: one unaligned 64-bit load, eight shifts. The
  // last group would read 2 bytes past the end, so it goes byte by byte.
  constexpr int kGroups = kHllRegisters / 8;  // 2048
  for (int g = 0; g < kGroups - 1; ++g) {
    uint64_t v;
    std::memcpy(&v, packed + 6 * g, 8);
    if constexpr (std::endian::native == std::endian::big) v = __builtin_bswap64(v);
    uint8_t* r = registers + 8 * g;
    for (int j = 0; j < 8; ++j) r[j] = static_cast<uint8_t>((v >> (6 * j)) & 63);
  }
  uint64_t v = 0;
  for (int j = 0; j < 6; ++j) v |= static_cast<uint64_t>(packed[6 * (kGroups - 1) + j]) << (8 * j);
  for (int j = 0; j < 8; ++j)
    registers[8 * (kGroups - 1) + j] = static_cast<uint8_t>((v >> (6 * j)) & 63);
}

void PackDense(const uint8_t* registers, uint8_t* packed) {
  for (int g = 0; g < kHllRegisters / 4; ++g) {
    const uint32_t r0 = registers[4 * g] & 63, r1 = registers[4 * g + 1] & 63,
                   r2 = registers[4 * g + 2] & 63, r3 = registers[4 * g + 3] & 63;
    packed[3 * g] = static_cast<uint8_t>(r0 | (r1 << 6));
    packed[3 * g + 1] = static_cast<uint8_t>((r1 >> 2) | (r2 << 4));
    packed[3 * g + 2] = static_cast<uint8_t>((r2 >> 4) | (r3 << 2));
  }
}

Status DecodeSparse(std::span<const uint8_t> ops, uint8_t* registers) {
  size_t idx = 0;
  size_t i = 0;
  while (i < ops.size()) {
    const uint8_t op = ops[i];
    size_t run;
    uint8_t value = 0;
    if ((op & 0xc0) == 0) {  // ZERO
      run = (op & 0x3f) + 1u;
      i += 1;
    } else if ((op & 0xc0) == 0x40) {  // XZERO
      if (i + 1 >= ops.size()) return InvalidArgumentError("hll sparse: truncated XZERO opcode");
      run = ((static_cast<size_t>(op & 0x3f) << 8) | ops[i + 1]) + 1;
      i += 2;
    } else {  // VAL
      value = static_cast<uint8_t>(((op >> 2) & 0x1f) + 1);
      run = (op & 0x3u) + 1;
      i += 1;
    }
    if (idx + run > static_cast<size_t>(kHllRegisters)) {
      return InvalidArgumentError("hll sparse: opcodes run past register 16383");
    }
    if (value == 0) {
      std::memset(registers + idx, 0, run);  // zero runs are long; VAL runs are 1..4
    } else {
      for (size_t k = 0; k < run; ++k) registers[idx + k] = value;
    }
    idx += run;
  }
  if (idx != static_cast<size_t>(kHllRegisters)) {
    return InvalidArgumentError("hll sparse: opcodes cover " + std::to_string(idx) +
                                " registers, not 16384");
  }
  return Status::OK();
}

namespace {

std::string Header(uint8_t encoding) {
  std::string out(kHllHeaderBytes, '\0');
  std::memcpy(out.data(), "HYLL", 4);
  out[4] = static_cast<char>(encoding);
  out[15] = static_cast<char>(0x80);  // cached cardinality invalid: Redis recomputes
  return out;
}

void AppendZeros(std::string& out, size_t run) {
  while (run > 0) {
    const size_t n = std::min<size_t>(run, 16384);
    if (n <= 64) {
      out.push_back(static_cast<char>(n - 1));
    } else {
      out.push_back(static_cast<char>(0x40 | ((n - 1) >> 8)));
      out.push_back(static_cast<char>((n - 1) & 0xff));
    }
    run -= n;
  }
}

}  // namespace

std::string EncodeSparse(std::span<const uint8_t> registers) {
  std::string out = Header(kEncodingSparse);
  size_t i = 0;
  const size_t m = registers.size();
  while (i < m) {
    size_t j = i;
    while (j < m && registers[j] == registers[i]) ++j;
    const uint8_t v = registers[i];
    if (v == 0) {
      AppendZeros(out, j - i);
    } else {
      if (v > 32) return std::string();
      for (size_t left = j - i; left > 0;) {
        const size_t n = std::min<size_t>(left, 4);
        out.push_back(static_cast<char>(0x80 | ((v - 1) << 2) | (n - 1)));
        left -= n;
      }
    }
    i = j;
  }
  return out;
}

RegisterHistogram Histogram(std::span<const uint8_t> registers) {
  // Four partial histograms hide the store-to-load dependency on hot bins.
  std::array<std::array<int, 64>, 4> part{};
  const size_t n = registers.size();
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    part[0][registers[i] & 63]++;
    part[1][registers[i + 1] & 63]++;
    part[2][registers[i + 2] & 63]++;
    part[3][registers[i + 3] & 63]++;
  }
  for (; i < n; ++i) part[0][registers[i] & 63]++;
  RegisterHistogram hist{};
  for (int k = 0; k < 64; ++k) hist[k] = part[0][k] + part[1][k] + part[2][k] + part[3][k];
  return hist;
}

namespace {

// sigma(x) = x + sum_{k>=1} x^(2^k) 2^(k-1): the correction for empty registers.
double Sigma(double x) {
  if (x == 1.0) return INFINITY;
  double y = 1.0;
  double z = x;
  double previous;
  do {
    x *= x;
    previous = z;
    z += x * y;
    y += y;
  } while (previous != z);
  return z;
}

// tau(x) = (1 - x - sum_{k>=1} (1 - x^(2^-k))^2 2^-k) / 3: the correction for
// saturated registers.
double Tau(double x) {
  if (x == 0.0 || x == 1.0) return 0.0;
  double y = 1.0;
  double z = 1.0 - x;
  double previous;
  do {
    x = std::sqrt(x);
    previous = z;
    y *= 0.5;
    const double d = 1.0 - x;
    z -= d * d * y;  // Redis writes pow(1 - x, 2), which the compiler folds to this product
  } while (previous != z);
  return z / 3.0;
}

}  // namespace

double ErtlEstimate(const RegisterHistogram& hist) {
  const double m = kHllRegisters;
  double z = m * Tau((m - hist[kHllQ + 1]) / m);
  for (int k = kHllQ; k >= 1; --k) {
    z += hist[k];
    z *= 0.5;
  }
  z += m * Sigma(hist[0] / m);
  return kAlphaInf * m * m / z;
}

uint64_t PfCount(const RegisterHistogram& hist) {
  return static_cast<uint64_t>(std::llround(ErtlEstimate(hist)));
}

}  // namespace internal

HyperLogLog::HyperLogLog() : registers_(kHllRegisters, 0) {}

StatusOr<HyperLogLog> HyperLogLog::FromRedisString(std::string_view raw) {
  if (raw.size() < kHllHeaderBytes || raw.substr(0, 4) != "HYLL") {
    return InvalidArgumentError("hll: not a Redis HyperLogLog string (no HYLL header)");
  }
  const auto* bytes = reinterpret_cast<const uint8_t*>(raw.data());
  const uint8_t encoding = bytes[4];
  HyperLogLog hll;
  if (encoding == internal::kEncodingDense) {
    if (raw.size() != kHllDenseBytes) {
      return InvalidArgumentError("hll: dense string of " + std::to_string(raw.size()) +
                                  " bytes, expected 12304");
    }
    internal::UnpackDense(bytes + kHllHeaderBytes, hll.registers_.data());
  } else if (encoding == internal::kEncodingSparse) {
    SEG_RETURN_IF_ERROR(internal::DecodeSparse(
        std::span<const uint8_t>(bytes + kHllHeaderBytes, raw.size() - kHllHeaderBytes),
        hll.registers_.data()));
  } else {
    return InvalidArgumentError("hll: unknown encoding " + std::to_string(encoding));
  }
  return hll;
}

StatusOr<HyperLogLog> HyperLogLog::FromRegisters(std::span<const uint8_t> registers) {
  if (registers.size() != static_cast<size_t>(kHllRegisters)) {
    return InvalidArgumentError("hll: expected 16384 registers, got " +
                                std::to_string(registers.size()));
  }
  HyperLogLog hll;
  for (int i = 0; i < kHllRegisters; ++i) {
    if (registers[i] > 63) return InvalidArgumentError("hll: register value above 63");
    hll.registers_[i] = registers[i];
  }
  return hll;
}

uint64_t HyperLogLog::Hash(std::string_view element) {
  return seg::MurmurHash64A(element, internal::kRedisHllSeed);
}

bool HyperLogLog::AddHash(uint64_t hash) {
  uint8_t& reg = registers_[internal::RegisterIndex(hash)];
  const uint8_t rank = internal::RegisterRank(hash);
  if (rank <= reg) return false;
  reg = rank;
  return true;
}

void HyperLogLog::Merge(const HyperLogLog& other) {
  uint8_t* __restrict dst = registers_.data();
  const uint8_t* __restrict src = other.registers_.data();
  for (int i = 0; i < kHllRegisters; ++i) dst[i] = std::max(dst[i], src[i]);
}

uint64_t HyperLogLog::Estimate() const {
  return internal::PfCount(internal::Histogram(registers_));
}

namespace {

CardinalityEstimate WithInterval(double value) {
  CardinalityEstimate e;
  e.value = value;
  e.std_error = kHllRelativeStdError * value;
  e.ci95_low = std::max(0.0, value - 1.96 * e.std_error);
  e.ci95_high = value + 1.96 * e.std_error;
  return e;
}

}  // namespace

CardinalityEstimate HyperLogLog::EstimateWithError() const {
  return WithInterval(static_cast<double>(Estimate()));
}

std::string HyperLogLog::ToRedisDenseString() const {
  std::string out = internal::Header(internal::kEncodingDense);
  out.resize(kHllDenseBytes);
  internal::PackDense(registers_.data(), reinterpret_cast<uint8_t*>(out.data()) + kHllHeaderBytes);
  return out;
}

CardinalityEstimate EstimateUnion(std::span<const HyperLogLog* const> sketches) {
  HyperLogLog merged;
  for (const HyperLogLog* s : sketches) {
    if (s != nullptr) merged.Merge(*s);
  }
  return WithInterval(static_cast<double>(merged.Estimate()));
}

}  // namespace seg::stats
