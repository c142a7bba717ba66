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
// gradients). Deterministic and single-threaded: the same inputs give the same bits everywhere.
#pragma once
#include <cstdint>

namespace sg::cpu {

// Number of tiles of width `block` covering n (the last one may be ragged): ceil(n / block).
int64_t fp8_num_blocks(int64_t n, int64_t block);

// The scale of one tile from its amax: max(amax, 1e-4) / 448, and with ue8m0 the smallest power of
// two ≥ that (computed exactly from the f32 bits, not with log2).
float fp8_tile_scale(float amax, bool ue8m0);

// Activation quantization, x [rows, K] → codes [rows, K] (E4M3 bits), scales [rows, ceil(K/block)]:
// one scale per 1×block tile of each row. DeepSeek-V3 uses block = 128.
void act_quant_f32(const float* x, int64_t rows, int64_t K, int64_t block, bool ue8m0, uint8_t* codes,
                   float* scales);

// out[r, k] = e4m3_to_f32(codes[r, k]) * scales[r, k / block].
void act_dequant_f32(const uint8_t* codes, const float* scales, int64_t rows, int64_t K, int64_t block,
                     float* out);

// Weight quantization, w [N, K] → codes [N, K], scale_inv [ceil(N/block), ceil(K/block)]: one scale per
// block×block block (ragged at the bottom / right edges). DeepSeek-V3 uses block = 128.
void weight_quant_f32(const float* w, int64_t N, int64_t K, int64_t block, uint8_t* codes,
                      float* scale_inv);

// out[n, k] = e4m3_to_f32(codes[n, k]) * scale_inv[n / block, k / block] (the weight_dequant kernel).
void weight_dequant_f32(const uint8_t* codes, const float* scale_inv, int64_t N, int64_t K, int64_t block,
                        float* out);

}  // namespace sg::cpu
