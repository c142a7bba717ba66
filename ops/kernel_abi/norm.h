// ops/kernel_abi/norm.h — the rms_norm, layer_norm and rope kernels' arguments, one plain struct per kernel
// (the CPU kernels: ops/cpu/nn.h; the CUDA ones: cuda/kernels/norm.cuh).
//
// Same rules as ops/kernel_abi/elementwise.h: fixed-width fields and raw pointers. Every buffer is contiguous,
// row-major, the normalised dim last. Compiles as C++ and CUDA.
//
// dweight (and dbias) are sums over rows. To give the same bits on every run without atomics, the backward
// kernels sum them in two passes: block g of G = norm_backward_blocks(rows) adds the rows g, g + G, g + 2G, ...
// into its own partial row scratch[g, 0..D), then one thread per column adds the G partials in the order
// g = 0, 1, ..., G−1. The caller provides that scratch buffer (its size below); G is a constant, not a
// property of the device, so every GPU adds in the same order.
#pragma once
#include <cstdint>

namespace sg {

constexpr int64_t kNormBackwardBlocks = 256;   // G for rows >= 256
inline int64_t norm_backward_blocks(int64_t rows) { return rows < kNormBackwardBlocks ? rows : kNormBackwardBlocks; }
// Elements of RmsNormBackwardArgs::scratch: G·D (none needed when dweight is null).
inline int64_t rms_norm_backward_scratch_size(int64_t rows, int64_t D) { return norm_backward_blocks(rows) * D; }
// Elements of LayerNormBackwardArgs::scratch: 2·G·D, dweight's partials then dbias's (none needed when both are null).
inline int64_t layer_norm_backward_scratch_size(int64_t rows, int64_t D) { return 2 * norm_backward_blocks(rows) * D; }

// x, y: [rows, D], weight: [D], rstd: [rows] out.
//   rstd[r] = 1 / sqrt(mean_c x[r, c]² + eps);   y = (x · rstd) ⊙ weight
template <class T> struct RmsNormArgs {
  int64_t rows;
  int64_t D;
  T eps;
  const T* x;
  const T* weight;
  T* y;
  T* rstd;
};

// dx: [rows, D] out; dweight: [D] out (overwritten) or null; scratch: rms_norm_backward_scratch_size(rows, D).
// With g = weight ⊙ dy and r = rstd:  dx = r · g − x · r³ · mean_c(g ⊙ x),   dweight = Σ_rows dy ⊙ x · r
template <class T> struct RmsNormBackwardArgs {
  int64_t rows;
  int64_t D;
  const T* x;
  const T* weight;
  const T* rstd;
  const T* dy;
  T* dx;
  T* dweight;
  T* scratch;
};

// x, y: [rows, D], weight: [D], bias: [D] or null, mean, rstd: [rows] out.
//   mean[r] = mean_c x,  rstd[r] = 1 / sqrt(mean_c (x − mean)² + eps),  y = (x − mean) · rstd ⊙ weight + bias
template <class T> struct LayerNormArgs {
  int64_t rows;
  int64_t D;
  T eps;
  const T* x;
  const T* weight;
  const T* bias;
  T* y;
  T* mean;
  T* rstd;
};

// dx: [rows, D] out; dweight, dbias: [D] out or null; scratch: layer_norm_backward_scratch_size(rows, D).
// With x̂ = (x − mean) · rstd, g = weight ⊙ dy:  dx = rstd · (g − mean_c g − x̂ · mean_c(g ⊙ x̂)),
//                                               dweight = Σ_rows dy ⊙ x̂,   dbias = Σ_rows dy
template <class T> struct LayerNormBackwardArgs {
  int64_t rows;
  int64_t D;
  const T* x;
  const T* weight;
  const T* mean;
  const T* rstd;
  const T* dy;
  T* dx;
  T* dweight;
  T* dbias;
  T* scratch;
};

// x, y: [B, S, H, dr] (H = 1 for [B, S, dr]), dr even; cos, sin: [S, dr/2]. Each pair rotated by the angle of its
// position s (scalar::rope_rotate): interleaved != 0: pair i = (x[2i], x[2i+1]); else pair i = (x[i], x[i + dr/2]).
// y may be x.
template <class T> struct RopeArgs {
  int64_t B;
  int64_t S;
  int64_t H;
  int64_t dr;
  int32_t interleaved;
  const T* x;
  const T* cos;
  const T* sin;
  T* y;
};

// The rotation by −φ (a rotation's transpose): dx = rope(dy, cos, −sin). Layout as RopeArgs; dx may be dy.
template <class T> struct RopeBackwardArgs {
  int64_t B;
  int64_t S;
  int64_t H;
  int64_t dr;
  int32_t interleaved;
  const T* dy;
  const T* cos;
  const T* sin;
  T* dx;
};

}  // namespace sg
