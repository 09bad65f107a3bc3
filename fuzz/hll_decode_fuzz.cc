// The Redis HLL decoder (stats/hll/hll.h): what seg-stats does with the bytes a
// GET on a PF* key returns. The first byte picks how the rest is read:
//   0: the whole string as is;
//   1: a dense string: header + the rest as packed registers (zero-padded
//      or cut to 12,288 bytes), so every input reaches the dense path;
//   2: a sparse string: header + the rest as opcodes.
// A decoded sketch must estimate without trapping, survive the dense
// round trip (and the sparse one when its registers fit it), and the SIMD
// dense fold the query path uses must agree with the scalar decoder.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "fuzz/fuzz_support.h"
#include "stats/hll/hll.h"
#include "stats/hll/internal/hll_internal.h"

namespace {

using seg::fuzz::Require;

using seg::stats::HyperLogLog;
namespace hi = seg::stats::internal;

std::string Header(uint8_t encoding) {
  std::string h("HYLL", 4);
  h.push_back(static_cast<char>(encoding));
  h.append(11, '\0');
  return h;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t mode = data[0] % 3;
  std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  std::string raw;
  if (mode == 0) {
    raw.assign(rest);
  } else if (mode == 1) {
    raw = Header(hi::kEncodingDense);
    raw.append(rest.substr(0, seg::stats::kHllDenseBytes - seg::stats::kHllHeaderBytes));
    raw.resize(seg::stats::kHllDenseBytes, '\0');
  } else {
    raw = Header(hi::kEncodingSparse);
    raw.append(rest);
  }

  auto decoded = HyperLogLog::FromRedisString(raw);
  if (!decoded.ok()) {
    Require(mode != 1, "a well-formed dense string was rejected");
    return 0;
  }
  const HyperLogLog& h = *decoded;
  Require(h.registers().size() == static_cast<size_t>(seg::stats::kHllRegisters), "register count");
  uint8_t max_register = 0;
  for (uint8_t r : h.registers()) max_register = std::max(max_register, r);
  Require(max_register <= 63, "register above 63");

  seg::stats::CardinalityEstimate e = h.EstimateWithError();
  Require(e.value >= 0 && e.ci95_low <= e.value && e.value <= e.ci95_high, "estimate interval");

  auto again = HyperLogLog::FromRedisString(h.ToRedisDenseString());
  Require(again.ok() && *again == h, "dense round trip");
  std::string sparse = hi::EncodeSparse(h.registers());
  if (!sparse.empty()) {
    auto s = HyperLogLog::FromRedisString(sparse);
    Require(s.ok() && *s == h, "sparse round trip");
  }

  if (raw.size() == seg::stats::kHllDenseBytes && static_cast<uint8_t>(raw[4]) == 0) {
    const auto* packed = reinterpret_cast<const uint8_t*>(raw.data()) + seg::stats::kHllHeaderBytes;
    std::vector<uint8_t> simd(seg::stats::kHllRegisters, 0), scalar(seg::stats::kHllRegisters, 0);
    hi::MaxDenseInto(packed, simd.data());
    hi::MaxDenseIntoPortable(packed, scalar.data());
    Require(simd == scalar, "SIMD and portable dense folds differ");
    Require(std::memcmp(simd.data(), h.registers().data(), simd.size()) == 0,
            "dense fold differs from the decoder");
  }

  // Estimators on the decoded sketch: against itself and the empty one.
  // The joint MLE costs ~100x the decode, so one input in eight runs it
  // (bits 2-4 of byte 0 are 0).
  HyperLogLog empty;
  const HyperLogLog* pair[] = {&h, &empty};
  if (((data[0] >> 2) & 7) == 0) {
    seg::stats::IntersectionEstimate both = seg::stats::EstimateIntersection(h, h);
    Require(both.ci95_low <= both.ci95_high, "intersection interval");
  }
  seg::stats::EstimateUnion(pair);
  HyperLogLog merged = h;
  merged.Merge(empty);
  Require(merged == h, "merge with the empty sketch");
  return 0;
}
