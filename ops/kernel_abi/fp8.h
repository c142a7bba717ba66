// ops/kernel_abi/fp8.h — the fine-grained FP8 kernels' arguments (DeepSeek-V3 report §3.3): activation
// quantization per 1×block tile, weight quantization per block×block block, their dequantization, and the
// blockwise FP8 GEMM with one f32 promotion per K block. One plain struct per kernel; the semantics are the
// CPU kernels' (ops/cpu/fp8_quant.h, ops/cpu/fp8_gemm.h), whose naive loops the device kernels
// (cuda/kernels/fp8.cuh) match bit for bit. Pointers are host memory for the CPU kernels and the CUDA
// emulation, device memory for CUDA. Codes are E4M3 bits (ops/fp8.h). Compiles as C++ and CUDA.
#pragma once
#include <cstdint>

namespace sg {

// x [rows, K] → codes [rows, K], scales [rows, ceil(K/block)]: one scale per 1×block tile of each row,
// scale = max(amax, 1e-4)/448, with ue8m0 (≠ 0) rounded up to a power of two (ops/cpu/fp8_quant.h).
struct Fp8ActQuantArgs {
  const float* x = nullptr;
  int64_t rows = 0, K = 0, block = 128;
  int32_t ue8m0 = 0;
  uint8_t* codes = nullptr;
  float* scales = nullptr;
};

// out[r, k] = e4m3_to_f32(codes[r, k]) · scales[r, k / block].
struct Fp8ActDequantArgs {
  const uint8_t* codes = nullptr;
  const float* scales = nullptr;
  int64_t rows = 0, K = 0, block = 128;
  float* out = nullptr;
};

// w [N, K] → codes [N, K], scale_inv [ceil(N/block), ceil(K/block)]: one scale per block×block block,
// ragged at the bottom / right edges (never ue8m0, as the CPU kernel).
struct Fp8WeightQuantArgs {
  const float* w = nullptr;
  int64_t N = 0, K = 0, block = 128;
  uint8_t* codes = nullptr;
  float* scale_inv = nullptr;
};

// out[n, k] = e4m3_to_f32(codes[n, k]) · scale_inv[n / block, k / block].
struct Fp8WeightDequantArgs {
  const uint8_t* codes = nullptr;
  const float* scale_inv = nullptr;
  int64_t N = 0, K = 0, block = 128;
  float* out = nullptr;
};

// The FP8 GEMM's accumulation (ops/cpu/fp8_gemm.h says what each mode models).
enum class Fp8Accumulation : int32_t { fp32_promoted = 0, limited_promoted = 1, limited = 2 };

// C[m, n] = Σ_kb (Σ_{k ∈ kb} q_a[m, k] · q_b[n, k]) · s_a[m / a_scale_rows, kb] · s_b[n / b_scale_rows, kb]
// (ops/cpu/fp8_gemm.h has the layouts and the three accumulation modes).
struct Fp8GemmArgs {
  const uint8_t* a = nullptr;      // [M, K] E4M3 codes, row stride K
  const float* a_scale = nullptr;  // [ceil(M / a_scale_rows), ceil(K / block)]
  const uint8_t* b = nullptr;      // [N, K] E4M3 codes, row stride K
  const float* b_scale = nullptr;  // [ceil(N / b_scale_rows), ceil(K / block)]
  float* c = nullptr;              // [M, N], row stride N; overwritten
  int64_t M = 0, N = 0, K = 0;
  int64_t block = 128;             // K-block width: one scale and one promotion per block
  int64_t a_scale_rows = 1;        // rows of A sharing a scale: 1 (tiles) or block (blocks)
  int64_t b_scale_rows = 128;      // rows of B sharing a scale: block (weights) or 1 (re-quantized tiles)
  Fp8Accumulation accumulation = Fp8Accumulation::fp32_promoted;
  int32_t accum_bits = 14;         // limited modes: significant bits the accumulator keeps
};

}  // namespace sg
