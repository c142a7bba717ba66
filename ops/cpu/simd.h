// ops/cpu/simd.h — what the fast f32 loops of the CPU kernels share: a switch that compiles a function
// once per instruction set, and an exp that vectorises.
//
// The project builds at -O2 with no -march (one binary for every x86-64), so a plain loop becomes SSE2
// code, and a call to std::exp stays a scalar libm call per element. The fast paths therefore:
//   * are plain loops marked `#pragma omp simd` (vectorised whatever GCC's -O2 cost model says) inside a
//     function marked SG_SIMD_CLONES: GCC builds it for AVX-512, AVX2+FMA and baseline x86-64 and the
//     dynamic loader picks one by the CPU's features (target_clones, an ifunc), as gemm.cpp does by hand;
//   * take exp from exp_f32 below, straight-line arithmetic the vectoriser turns into 16 lanes.
// The naive paths (sg::naive_kernels()) keep std::exp and ops/scalar_math.h, the reference the fast loops
// are tested against (tests/ops/test_registry.cpp, rtol 1e-4; exp_f32 is within ~1e-7 relative).
#pragma once
#include <bit>
#include <cstdint>

#if defined(__x86_64__) && defined(__linux__) && defined(__GNUC__)
#define SG_SIMD_CLONES __attribute__((target_clones("avx512f", "arch=x86-64-v3", "default")))
#else
#define SG_SIMD_CLONES
#endif

namespace sg::cpu {

// e^x for float, branch-free. exp(x) = 2ⁿ · e^r with n = round(x·log₂e) and r = x − n·ln 2 (|r| ≤ ln2/2,
// ln 2 split in two parts for precision); e^r is the Cephes expf polynomial (≈ 1 ulp, measured max relative
// error 8e−8 on [−87, 88]); 2ⁿ is built in the exponent bits. round() is the 1.5·2²³ trick (adding it
// leaves the integer part in the mantissa), so no rounding instruction is needed.
// Edges: x < −87.34 (result would be denormal) gives 0, x > 88.376 gives +inf (true overflow is at 88.72),
// NaN gives NaN — so exp(−inf) = 0 and a NaN stays visible to anomaly mode.
[[gnu::always_inline]] inline float exp_f32(float x) {
  constexpr float lo = -87.33654f, hi = 88.37626f;  // ln(FLT_MIN); the largest x with n = 127
  float z = x < lo ? lo : x;
  z = z > hi ? hi : z;
  float fn = (z * 1.44269504f + 12582912.0f) - 12582912.0f;  // round(z·log₂e)
  float r = z - fn * 0.693359375f - fn * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;                                       // e^r
  float two_n = std::bit_cast<float>(((int32_t)fn + 127) << 23);  // 2ⁿ: n + 127 in the exponent field
  float e = p * two_n;
  e = x < lo ? 0.0f : e;
  e = x > hi ? __builtin_inff() : e;
  return x != x ? x : e;
}

// sigmoid(x) = 1 / (1 + e^−x) with exp_f32: no branch on the sign (scalar_math.h's branch is there for the
// scalar std::exp's overflow; here e^−x saturates to 0 or +inf and 1/(1 + inf) = 0 is exact).
[[gnu::always_inline]] inline float sigmoid_f32(float x) { return 1.0f / (1.0f + exp_f32(-x)); }

}  // namespace sg::cpu
