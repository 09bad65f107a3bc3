// MaxDenseInto: register-wise max of a packed Redis dense sketch into 16384
// unpacked registers, without unpacking into a scratch buffer first (the
// union/intersection hot path of seg-stats merges hundreds of these).
//
// The AVX2 kernel handles 32 registers (24 packed bytes) per step: a byte
// shuffle puts each 3-byte group of 4 registers into its own 32-bit lane,
// three shifts and masks move registers 1..3 to byte boundaries, and one
// vpmaxub folds them in. The CPU is checked once at run time; without AVX2
// (or on other architectures) the portable unpack-then-max path runs.
#include <cstring>

#include "stats/hll/hll.h"
#include "stats/hll/internal/hll_internal.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define SEG_HLL_HAVE_AVX2_KERNEL 1
#endif

namespace seg::stats::internal {
namespace {

void MaxDensePortable(const uint8_t* packed, uint8_t* __restrict registers) {
  alignas(64) uint8_t scratch[kHllRegisters];
  UnpackDense(packed, scratch);
  for (int i = 0; i < kHllRegisters; ++i) {
    registers[i] = registers[i] > scratch[i] ? registers[i] : scratch[i];
  }
}

#ifdef SEG_HLL_HAVE_AVX2_KERNEL
// 32 registers from the 24 packed bytes at `lo` (12) and `hi` (12); each
// 128-bit load reads 16 bytes, 4 beyond its group.
__attribute__((target("avx2"))) inline __m256i Unpack32(const uint8_t* lo, const uint8_t* hi) {
  const __m256i bytes = _mm256_inserti128_si256(
      _mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(lo))),
      _mm_loadu_si128(reinterpret_cast<const __m128i*>(hi)), 1);
  // Lane dword g = packed bytes 3g, 3g+1, 3g+2, 0: v = b0 | b1 << 8 | b2 << 16.
  const __m256i spread = _mm256_setr_epi8(0, 1, 2, -1, 3, 4, 5, -1, 6, 7, 8, -1, 9, 10, 11, -1,  //
                                          0, 1, 2, -1, 3, 4, 5, -1, 6, 7, 8, -1, 9, 10, 11, -1);
  const __m256i v = _mm256_shuffle_epi8(bytes, spread);
  // Register j of the group is bits 6j..6j+5 of v; it belongs in byte j.
  const __m256i r0 = _mm256_and_si256(v, _mm256_set1_epi32(0x3F));
  const __m256i r1 = _mm256_and_si256(_mm256_slli_epi32(v, 2), _mm256_set1_epi32(0x3F00));
  const __m256i r2 = _mm256_and_si256(_mm256_slli_epi32(v, 4), _mm256_set1_epi32(0x3F0000));
  const __m256i r3 = _mm256_and_si256(_mm256_slli_epi32(v, 6), _mm256_set1_epi32(0x3F000000));
  return _mm256_or_si256(_mm256_or_si256(r0, r1), _mm256_or_si256(r2, r3));
}

__attribute__((target("avx2"))) void MaxDenseAvx2(const uint8_t* packed, uint8_t* registers) {
  constexpr int kSteps = kHllRegisters / 32;  // 512 steps of 24 packed bytes
  // All steps but the last may over-read 4 bytes inside the packed array.
  for (int s = 0; s < kSteps - 1; ++s) {
    const uint8_t* p = packed + 24 * s;
    __m256i* dst = reinterpret_cast<__m256i*>(registers + 32 * s);
    _mm256_storeu_si256(dst, _mm256_max_epu8(_mm256_loadu_si256(dst), Unpack32(p, p + 12)));
  }
  // The last step reads from a padded copy: the caller's buffer may end here.
  uint8_t tail[32] = {};
  std::memcpy(tail, packed + 24 * (kSteps - 1), 24);
  __m256i* dst = reinterpret_cast<__m256i*>(registers + 32 * (kSteps - 1));
  _mm256_storeu_si256(dst, _mm256_max_epu8(_mm256_loadu_si256(dst), Unpack32(tail, tail + 12)));
}
#endif

using Kernel = void (*)(const uint8_t*, uint8_t*);

Kernel ChooseKernel() {
#ifdef SEG_HLL_HAVE_AVX2_KERNEL
  if (__builtin_cpu_supports("avx2")) return MaxDenseAvx2;
#endif
  return MaxDensePortable;
}

}  // namespace

void MaxDenseInto(const uint8_t* packed, uint8_t* registers) {
  static const Kernel kernel = ChooseKernel();
  kernel(packed, registers);
}

void MaxDenseIntoPortable(const uint8_t* packed, uint8_t* registers) {
  MaxDensePortable(packed, registers);
}

}  // namespace seg::stats::internal
