// ops/cpu/fp8_quant.h — DeepSeek-V3's fine-grained FP8 (E4M3) quantization (report §3.3) as plain CPU
// loops over raw, contiguous row-major pointers: activations get one scale per 1×block tile along K
// (per token, per `block` channels), weights one scale per block×block block. The semantics are those
// of the official inference kernels act_quant / weight_dequant:
//   amax  = max |x| over the tile, floored at 1e-4 (an all-zero tile gets a finite, non-zero scale)
//   scale = amax / 448                      (448 = the largest finite E4M3 value)
//   ue8m0 (activations only): scale rounded UP to a power of two, 2^ceil(log2(scale)), so that the
//         scale is an exponent-only (UE8M0) number and x / scale is exact
//   code  = f32_to_e4m3(x / scale)          (RNE, saturating: ops/fp8.h)
//   dequantized value = e4m3_to_f32(code) * scale
// Tiles at the right / bottom edge may be ragged (K or N not a multiple of block): they cover what is
// left and get their own amax. Scales are stored row-major: activations [rows, ceil(K/block)], weights
// [ceil(N/block), ceil(K/block)] ("scale_inv" in the checkpoint's naming: the factor that dequantizes).
//
// Error of a round trip (derived in tests/ops/test_fp8_quant.cpp): |x − dq(q(x))| ≤ 2^-4·|x| where
// |x/scale| ≥ 2^-6 (E4M3 normals: half an ulp is at most 2^-4 of the value), and ≤ scale·2^-10 below
// (subnormal spacing 2^-9), up to the f32 rounding of the division and product.
//
// What it is not: autograd ops, tensors, an FP8 GEMM or a device kernel; codes are E4M3 only (no E5M2
// gradients). Deterministic: the same inputs give the same bits on any thread count.
//
// Two versions of each kernel, with the same bits: <name>_naive is the plain single-threaded loop
// above (the reference, and what runs under SEEKGRAD_NAIVE=1 / sg::naive_kernels()); <name> splits
// rows (weights: 128-row block rows) over sg::parallel_for — rows are disjoint, so no sum is cut —
// and encodes with f32_to_e4m3_fast, a branch-free bit encoder the compiler vectorizes, and decodes
// through a 256-entry table. Measured (seekgrad bench gemm --fp8 --quick, fp8_quant_a at 2048x4096,
// this 2-core dev box): naive 71 ms (8.5 ns/element) -> 15.4 ms (1.8 ns/element) on 1 thread,
// 7.3 ms (0.87 ns/element) on 2 threads. The weight and dequant kernels were not timed separately.
#pragma once
#include <bit>
#include <cstdint>

namespace sg::cpu {

// lowp::f32_to_e4m3 (RNE, saturating to ±448, NaN → NaN with its sign, ±0 kept) without branches:
//   |x| ≥ 2^-6 (E4M3 normal): rebias the exponent (127 → 7) and round the f32 mantissa to 3 bits
//             with the add-half-minus-one-plus-lsb trick, carrying into the exponent as RNE does;
//   |x| < 2^-6 (subnormal, step 2^-9): |x|·2^9 + 2^23 rounds |x|·2^9 to an integer (RNE, the
//             default rounding mode) in the low mantissa bits; 8 there is the smallest normal, 0x08;
//   |x| ≥ 448 and ±inf → 0x7E; NaN → 0x7F. Tested against lowp::f32_to_e4m3 on every tie ± 1 ulp.
inline uint8_t f32_to_e4m3_fast(float x) {
  const uint32_t b = std::bit_cast<uint32_t>(x), a = b & 0x7FFFFFFFu;
  const uint32_t sign = (b >> 24) & 0x80u;
  const uint32_t an = a - (120u << 23);
  const uint32_t rn = (an + 0x7FFFFu + ((an >> 20) & 1u)) >> 20;
  const float f = std::bit_cast<float>(a) * 512.0f + 8388608.0f;
  const uint32_t rs = std::bit_cast<uint32_t>(f) - 0x4B000000u;
  uint32_t code = a >= 0x3C800000u ? rn : rs;
  code = a >= 0x43E00000u ? 0x7Eu : code;
  code = a > 0x7F800000u ? 0x7Fu : code;
  return (uint8_t)(sign | code);
}

// Number of tiles of width `block` covering n (the last one may be ragged): ceil(n / block), exact up to
// n = INT64_MAX. n < 0 or block < 1 throws std::invalid_argument.
int64_t fp8_num_blocks(int64_t n, int64_t block);

// The scale of one tile from its amax: max(amax, 1e-4) / 448, and with ue8m0 the smallest power of
// two ≥ that (computed exactly from the f32 bits, not with log2).
float fp8_tile_scale(float amax, bool ue8m0);

// Activation quantization, x [rows, K] → codes [rows, K] (E4M3 bits), scales [rows, ceil(K/block)]:
// one scale per 1×block tile of each row. DeepSeek-V3 uses block = 128.
void act_quant_f32(const float* x, int64_t rows, int64_t K, int64_t block, bool ue8m0, uint8_t* codes,
                   float* scales);
void act_quant_f32_naive(const float* x, int64_t rows, int64_t K, int64_t block, bool ue8m0, uint8_t* codes,
                         float* scales);

// out[r, k] = e4m3_to_f32(codes[r, k]) * scales[r, k / block].
void act_dequant_f32(const uint8_t* codes, const float* scales, int64_t rows, int64_t K, int64_t block,
                     float* out);
void act_dequant_f32_naive(const uint8_t* codes, const float* scales, int64_t rows, int64_t K, int64_t block,
                           float* out);

// Weight quantization, w [N, K] → codes [N, K], scale_inv [ceil(N/block), ceil(K/block)]: one scale per
// block×block block (ragged at the bottom / right edges). DeepSeek-V3 uses block = 128.
void weight_quant_f32(const float* w, int64_t N, int64_t K, int64_t block, uint8_t* codes,
                      float* scale_inv);
void weight_quant_f32_naive(const float* w, int64_t N, int64_t K, int64_t block, uint8_t* codes,
                            float* scale_inv);

// out[n, k] = e4m3_to_f32(codes[n, k]) * scale_inv[n / block, k / block] (the weight_dequant kernel).
void weight_dequant_f32(const uint8_t* codes, const float* scale_inv, int64_t N, int64_t K, int64_t block,
                        float* out);
void weight_dequant_f32_naive(const uint8_t* codes, const float* scale_inv, int64_t N, int64_t K, int64_t block,
                              float* out);

}  // namespace sg::cpu
