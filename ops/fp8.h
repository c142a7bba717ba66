// ops/fp8.h — the low-precision storage formats and their scalar conversions to and from f32:
// FP8 E4M3 ("fn"), FP8 E5M2, bf16 and IEEE f16. Written once, as plain inline constexpr functions on
// bits (no std::vector, no exceptions, no libm), so that CPU, CUDA and Metal code can share them.
// ops/README.md ("low-precision formats") has the ranges, spacing and rounding rules in one table.
//
// Every encoder rounds to nearest, ties to even (RNE) and keeps the sign of zero. Every decoder is
// exact (each of these formats is a subset of f32).
//
// What it is not: arithmetic in these formats, block scales, tensors of them or GEMM kernels — later
// parts of the FP8 work build on these functions. The safetensors reader (models/safetensors.h) and
// the FP8 import (tools/cli/commands.h) call these; there is no second copy.
#pragma once
#include <cstdint>
#if !defined(__CUDACC__)
#include <bit>
#endif

#if defined(__CUDACC__)
#define SG_HOST_DEVICE __host__ __device__
#else
#define SG_HOST_DEVICE
#endif

namespace sg::lowp {

namespace detail {

// The f32 bits of x and back (C++20 std::bit_cast is constexpr). nvcc compiles the .cu files as C++17,
// which has no std::bit_cast: there the builtin behind it, constexpr on host and device alike.
#if defined(__CUDACC__)
SG_HOST_DEVICE constexpr uint32_t bits_of(float x) { return __builtin_bit_cast(uint32_t, x); }
SG_HOST_DEVICE constexpr float float_of(uint32_t b) { return __builtin_bit_cast(float, b); }
#else
constexpr uint32_t bits_of(float x) { return std::bit_cast<uint32_t>(x); }
constexpr float float_of(uint32_t b) { return std::bit_cast<float>(b); }
#endif

// Rounds a finite, non-negative f32 (given by its bits `a`, sign bit clear) to a binary format with
// M mantissa bits and exponent bias B, to nearest, ties to even, with an UNBOUNDED exponent above:
// returns the code (exponent << M) | mantissa without sign, which may lie beyond the format's
// largest finite code — the callers decide what overflow means. A rounding carry out of the mantissa
// goes into the exponent, which is the correct result (1.11..1·2^e rounds up to 1.0·2^(e+1)). The
// target's subnormals (exponent field 0, value m · 2^(1−B−M)) are produced too. An f32 inf (bits
// 0x7F800000) comes back as a code far beyond every format's range; callers handle NaN first.
SG_HOST_DEVICE constexpr uint32_t round_to_format(uint32_t a, int M, int B) {
  const int exp32 = (int)(a >> 23);       // f32 biased exponent (bias 127); 0 for zero / subnormals
  const uint32_t mant = a & 0x7FFFFFu;    // 23 bits
  const int e = exp32 - 127 + B;          // the target's biased exponent
  const int drop = 23 - M;                // mantissa bits dropped in the normal case
  if (e >= 1) {
    uint32_t code = ((uint32_t)e << M) | (mant >> drop);
    const uint32_t rest = mant & ((1u << drop) - 1u), half = 1u << (drop - 1);
    if (rest > half || (rest == half && (code & 1u))) ++code;
    return code;
  }
  // Target subnormal: value = mant24 · 2^(exp32 − 150) and the unit is 2^(1 − B − M), so
  // m = mant24 >> shift with shift = 24 − M − e. f32 zero and subnormals have e far below this and
  // land in shift > 24, where everything is below half a unit: 0.
  const int shift = 24 - M - e;
  if (shift > 24) return 0u;
  const uint32_t mant24 = mant | 0x800000u;
  uint32_t m = mant24 >> shift;
  const uint32_t rest = mant24 & ((1u << shift) - 1u), half = 1u << (shift - 1);
  if (rest > half || (rest == half && (m & 1u))) ++m;  // may carry into the smallest normal: right
  return m;
}

// The value of an unsigned code (exponent << M) | mantissa of a format with M mantissa bits, bias B,
// ignoring specials (the callers handle the top exponent).
SG_HOST_DEVICE constexpr float decode_finite(uint32_t code, int M, int B) {
  const uint32_t e = code >> M, m = code & ((1u << M) - 1u);
  if (e == 0) {
    // Subnormal m · 2^(1−B−M): exact as an f32 product of a small integer and a power of two.
    return (float)m * float_of((uint32_t)(127 + 1 - B - M) << 23);
  }
  return float_of(((e - (uint32_t)B + 127u) << 23) | (m << (23 - M)));
}

}  // namespace detail

// ---- FP8 E4M3 ("fn", OCP FP8) ---------------------------------------------------------------------
// bits  S EEEE MMM: 1 sign, 4 exponent bits with bias 7, 3 mantissa bits.
//   E = 0        subnormal  (−1)^S · m/8 · 2^-6    (smallest 2^-9 = 0.001953125)
//   E = 1..15    normal     (−1)^S · (1 + m/8) · 2^(E−7)
//   S.1111.111   NaN (0x7F, 0xFF) — the only special: no infinities, so E = 15 with m = 0..6 are
//                normal numbers and the largest finite value is 1.75 · 2^8 = 448 (0x7E).
// Encoding is SATURATING, as DeepSeek-V3's weight casts (clamp to ±448, then
// torch.float8_e4m3fn) and CUDA's __NV_SATFINITE mode do: a finite value beyond ±448, and ±inf,
// become ±448 (0x7E / 0xFE), never NaN. NaN → NaN with its sign kept (0x7F, or 0xFF when the sign
// bit is set). ±0 → 0x00 / 0x80.
SG_HOST_DEVICE constexpr uint8_t f32_to_e4m3(float x) {
  const uint32_t b = detail::bits_of(x), a = b & 0x7FFFFFFFu;
  const uint8_t sign = (uint8_t)((b >> 24) & 0x80u);
  if (a > 0x7F800000u) return (uint8_t)(sign | 0x7Fu);  // NaN
  if (a == 0x7F800000u) return (uint8_t)(sign | 0x7Eu);  // ±inf saturates
  uint32_t code = detail::round_to_format(a, 3, 7);
  if (code > 0x7Eu) code = 0x7Eu;  // beyond 448 (this includes rounding up into the NaN code)
  return (uint8_t)(sign | code);
}

SG_HOST_DEVICE constexpr float e4m3_to_f32(uint8_t bits) {
  const uint32_t sign = (uint32_t)(bits & 0x80u) << 24, code = bits & 0x7Fu;
  if (code == 0x7Fu) return detail::float_of(sign | 0x7FC00000u);  // NaN (quiet)
  return detail::float_of(sign | detail::bits_of(detail::decode_finite(code, 3, 7)));
}

// ---- FP8 E5M2 -------------------------------------------------------------------------------------
// bits  S EEEEE MM: 1 sign, 5 exponent bits with bias 15, 2 mantissa bits (the top byte of an f16).
//   E = 0        subnormal  (−1)^S · m/4 · 2^-14   (smallest 2^-16)
//   E = 1..30    normal     (−1)^S · (1 + m/4) · 2^(E−15)   (largest 1.75 · 2^15 = 57344, 0x7B)
//   E = 31       m = 0: ±inf (0x7C / 0xFC);  m = 1..3: NaN.
// f32_to_e5m2 follows IEEE: a value whose RNE result (with unbounded exponent) exceeds 57344 is
// ±inf, i.e. |x| ≥ 61440 (the midpoint to 2^16; the tie goes to the even code, inf) → ±inf, and
// ±inf → ±inf. f32_to_e5m2_sat is the saturating variant (CUDA's __NV_SATFINITE): finite values
// beyond, and ±inf, become ±57344. Both keep NaN a NaN (0x7F / 0xFF: quiet, sign kept) and ±0.
SG_HOST_DEVICE constexpr uint8_t f32_to_e5m2(float x) {
  const uint32_t b = detail::bits_of(x), a = b & 0x7FFFFFFFu;
  const uint8_t sign = (uint8_t)((b >> 24) & 0x80u);
  if (a > 0x7F800000u) return (uint8_t)(sign | 0x7Fu);  // NaN
  uint32_t code = detail::round_to_format(a, 2, 15);  // ±inf comes back beyond 0x7B
  if (code > 0x7Bu) code = 0x7Cu;  // overflow: inf
  return (uint8_t)(sign | code);
}

SG_HOST_DEVICE constexpr uint8_t f32_to_e5m2_sat(float x) {
  const uint32_t b = detail::bits_of(x), a = b & 0x7FFFFFFFu;
  const uint8_t sign = (uint8_t)((b >> 24) & 0x80u);
  if (a > 0x7F800000u) return (uint8_t)(sign | 0x7Fu);  // NaN
  uint32_t code = detail::round_to_format(a, 2, 15);
  if (code > 0x7Bu) code = 0x7Bu;  // beyond 57344, and ±inf: ±57344
  return (uint8_t)(sign | code);
}

SG_HOST_DEVICE constexpr float e5m2_to_f32(uint8_t bits) {
  const uint32_t sign = (uint32_t)(bits & 0x80u) << 24, code = bits & 0x7Fu;
  if ((code >> 2) == 31u)  // inf (m = 0) or NaN (m ≠ 0, made quiet with its payload kept)
    return detail::float_of(sign | 0x7F800000u | ((code & 3u) ? 0x400000u | ((code & 3u) << 21) : 0u));
  return detail::float_of(sign | detail::bits_of(detail::decode_finite(code, 2, 15)));
}

// ---- bf16 -----------------------------------------------------------------------------------------
// bits  S EEEEEEEE MMMMMMM: the top 16 bits of an f32 (1 sign, 8 exponent bits bias 127, 7 mantissa
// bits): the f32 range (max ≈ 3.39e38, smallest normal 2^-126, smallest subnormal 2^-133) with 8
// significant bits. RNE on the 16 dropped bits; values that round beyond the largest finite become
// ±inf (IEEE), ±inf stays; NaN keeps its sign and top payload bits and is made quiet.
SG_HOST_DEVICE constexpr uint16_t f32_to_bf16(float x) {
  const uint32_t b = detail::bits_of(x);
  if ((b & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)((b >> 16) | 0x0040u);  // NaN: quiet
  // Add 0x7FFF, plus 1 when the kept lsb is odd: RNE; a carry out of the mantissa bumps the exponent
  // (up to inf), which is the correct rounding.
  const uint32_t lsb = (b >> 16) & 1u;
  return (uint16_t)((b + 0x7FFFu + lsb) >> 16);
}

SG_HOST_DEVICE constexpr float bf16_to_f32(uint16_t h) { return detail::float_of((uint32_t)h << 16); }

// ---- f16 (IEEE binary16) --------------------------------------------------------------------------
// bits  S EEEEE MMMMMMMMMM: 1 sign, 5 exponent bits with bias 15, 10 mantissa bits.
//   E = 0        subnormal  m · 2^-24     (smallest 2^-24 ≈ 5.96e-8, largest 1023 · 2^-24)
//   E = 1..30    normal     (1 + m/1024) · 2^(E−15)   (smallest 2^-14, largest 65504, 0x7BFF)
//   E = 31       m = 0: ±inf;  m ≠ 0: NaN.
// RNE; |x| ≥ 65520 (the midpoint to 2^16; ties to even = inf) → ±inf; NaN keeps its sign and top
// payload bits and is made quiet (0x7E00 | payload).
SG_HOST_DEVICE constexpr uint16_t f32_to_f16(float x) {
  const uint32_t b = detail::bits_of(x), a = b & 0x7FFFFFFFu;
  const uint16_t sign = (uint16_t)((b >> 16) & 0x8000u);
  if (a > 0x7F800000u) return (uint16_t)(sign | 0x7E00u | ((a >> 13) & 0x3FFu));  // NaN: quiet
  uint32_t code = detail::round_to_format(a, 10, 15);
  if (code > 0x7BFFu) code = 0x7C00u;  // overflow (and ±inf): inf
  return (uint16_t)(sign | code);
}

SG_HOST_DEVICE constexpr float f16_to_f32(uint16_t h) {
  const uint32_t sign = (uint32_t)(h & 0x8000u) << 16, code = h & 0x7FFFu;
  if ((code >> 10) == 31u) return detail::float_of(sign | 0x7F800000u | ((code & 0x3FFu) << 13));  // inf / NaN
  return detail::float_of(sign | detail::bits_of(detail::decode_finite(code, 10, 15)));
}

// ---- limited-precision accumulation ----------------------------------------------------------
// x with only its `bits` most significant mantissa bits kept (the implicit 1 counts as one of them),
// the rest cut off toward zero — what an adder that aligns its operands into a register of `bits`
// significant bits does to the sum (DeepSeek-V3 report §3.3: Hopper's FP8 tensor-core accumulation
// keeps about 14 bits). bits >= 24 returns x; zero, inf and NaN pass through; f32 subnormals too
// (their spacing is already below anything this models).
SG_HOST_DEVICE constexpr float truncate_to_bits(float x, int bits) {
  if (bits >= 24) return x;
  const uint32_t b = detail::bits_of(x);
  if ((b & 0x7F800000u) == 0u || (b & 0x7F800000u) == 0x7F800000u) return x;
  const uint32_t drop = (uint32_t)(24 - (bits < 1 ? 1 : bits));
  return detail::float_of(b & ~((1u << drop) - 1u));
}

}  // namespace sg::lowp
