// cuda/kernels/norm.cuh — rms_norm and layer_norm (forward, backward) over the last dim, and rope (forward,
// backward). Compiled by nvcc (cuda/norm.cu) and by g++ for the emulation (cuda/emu/norm_emu.cpp).
//
// Mirrors ops/cpu/nn.h, the same formulas term by term. The norms: one block per row in the forward; a row's
// sums are block_reduce.cuh's reductions in f32 (the CPU sums in double), so the two agree to a few f32
// roundings. The backward's dweight / dbias are sums over rows, in two deterministic passes (ops/kernel_abi/norm.h):
// norm_backward_blocks(rows) = G blocks each walk rows g, g + G, ... and keep their running column sums in
// their own row of the caller's scratch (each thread touches only its own columns); then column_partials_sum
// adds the G partial rows in order. No atomics, the same bits on every run.
// rope: one thread per rotated pair, through scalar::rope_rotate, the CPU's function: the same bits.
#pragma once
#include "cuda/kernels/block_reduce.cuh"
#include "ops/kernel_abi/norm.h"

namespace sg::SG_BACKEND_NS {

// ---- rms_norm -----------------------------------------------------------------------------------
// rstd = 1 / sqrt(mean_c x² + eps),  y = (x · rstd) ⊙ weight
template <class T> __global__ void rms_norm_forward_kernel(RmsNormArgs<T> a) {
  __shared__ T smem_partials[32];
  const int64_t r = blockIdx.x;
  if (r >= a.rows) return;
  const T* x = a.x + r * a.D;
  T* y = a.y + r * a.D;
  T ss = T(0);
  for (int64_t c = threadIdx.x; c < a.D; c += blockDim.x) ss += x[c] * x[c];
  ss = block_allreduce(ss, SumOp{}, T(0), smem_partials);
  const T rs = T(1) / std::sqrt(ss / T(a.D) + a.eps);
  for (int64_t c = threadIdx.x; c < a.D; c += blockDim.x) y[c] = (x[c] * rs) * a.weight[c];
  if (threadIdx.x == 0) a.rstd[r] = rs;
}

// partial[c] = term on the block's first row, partial[c] + term after: the running column sum of this block's
// rows, in this block's row of the scratch buffer. The thread owning column c is the only one to touch it.
template <class T> __device__ __forceinline__ void add_partial(T* partial, int64_t c, bool first_row, T term) {
  partial[c] = first_row ? term : partial[c] + term;
}

// y_c = w_c x_c r,  r = (mean_k x_k² + eps)^(−1/2),  ∂r/∂x_c = −r³ x_c / D
// dx_c = r g_c − x_c r³ mean_k(g_k x_k),  g = w ⊙ dy;   dw_c = Σ_rows dy_c x_c r  (partials: scratch[g, :])
template <class T> __global__ void rms_norm_backward_kernel(RmsNormBackwardArgs<T> a) {
  __shared__ T smem_partials[32];
  T* partial = a.dweight ? a.scratch + (int64_t)blockIdx.x * a.D : nullptr;
  for (int64_t r = blockIdx.x; r < a.rows; r += gridDim.x) {
    const T *x = a.x + r * a.D, *dy = a.dy + r * a.D;
    T* dx = a.dx + r * a.D;
    const T rs = a.rstd[r];
    T dot = T(0);
    for (int64_t c = threadIdx.x; c < a.D; c += blockDim.x) dot += a.weight[c] * dy[c] * x[c];
    dot = block_allreduce(dot, SumOp{}, T(0), smem_partials);
    const T k = rs * rs * rs * dot / T(a.D);
    for (int64_t c = threadIdx.x; c < a.D; c += blockDim.x) {
      dx[c] = rs * a.weight[c] * dy[c] - x[c] * k;
      if (partial) add_partial(partial, c, r == blockIdx.x, dy[c] * x[c] * rs);
    }
  }
}

// out[c] = Σ_{g < G} partials[g, c], g = 0, 1, ... in order; one thread per column. G = 0 (no rows) gives 0.
template <class T> __global__ void column_partials_sum_kernel(const T* partials, int64_t G, int64_t D, T* out) {
  const int64_t c = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= D) return;
  T s = T(0);
  for (int64_t g = 0; g < G; g++) s += partials[g * D + c];
  out[c] = s;
}

// ---- layer_norm ---------------------------------------------------------------------------------
// mean = mean_c x, rstd = 1 / sqrt(mean_c (x − mean)² + eps) (two passes, as the CPU),
// y = x̂ ⊙ weight + bias,  x̂ = (x − mean) · rstd
template <class T> __global__ void layer_norm_forward_kernel(LayerNormArgs<T> a) {
  __shared__ T smem_partials[32];
  const int64_t r = blockIdx.x;
  if (r >= a.rows) return;
  const T* x = a.x + r * a.D;
  T* y = a.y + r * a.D;
  T s = T(0);
  for (int64_t c = threadIdx.x; c < a.D; c += blockDim.x) s += x[c];
  const T mu = block_allreduce(s, SumOp{}, T(0), smem_partials) / T(a.D);
  T v = T(0);
  for (int64_t c = threadIdx.x; c < a.D; c += blockDim.x) v += (x[c] - mu) * (x[c] - mu);
  v = block_allreduce(v, SumOp{}, T(0), smem_partials);
  const T rs = T(1) / std::sqrt(v / T(a.D) + a.eps);
  for (int64_t c = threadIdx.x; c < a.D; c += blockDim.x) {
    const T xhat = (x[c] - mu) * rs;
    y[c] = xhat * a.weight[c] + (a.bias ? a.bias[c] : T(0));
  }
  if (threadIdx.x == 0) a.mean[r] = mu, a.rstd[r] = rs;
}

// x̂ = (x − μ) r;  dx_c = r (g_c − mean(g) − x̂_c mean(g ⊙ x̂)),  g = w ⊙ dy
// dw = Σ_rows dy ⊙ x̂ (partials: scratch[g, :]),  db = Σ_rows dy (partials: scratch[G + g, :])
template <class T> __global__ void layer_norm_backward_kernel(LayerNormBackwardArgs<T> a) {
  __shared__ T smem_partials[32];
  const int64_t G = gridDim.x;
  T* partial_w = a.dweight ? a.scratch + (int64_t)blockIdx.x * a.D : nullptr;
  T* partial_b = a.dbias ? a.scratch + (G + (int64_t)blockIdx.x) * a.D : nullptr;
  for (int64_t r = blockIdx.x; r < a.rows; r += G) {
    const T *x = a.x + r * a.D, *dy = a.dy + r * a.D;
    T* dx = a.dx + r * a.D;
    const T mu = a.mean[r], rs = a.rstd[r];
    T sg = T(0), sgx = T(0);
    for (int64_t c = threadIdx.x; c < a.D; c += blockDim.x) {
      const T g = a.weight[c] * dy[c], xhat = (x[c] - mu) * rs;
      sg += g;
      sgx += g * xhat;
    }
    sg = block_allreduce(sg, SumOp{}, T(0), smem_partials) / T(a.D);
    sgx = block_allreduce(sgx, SumOp{}, T(0), smem_partials) / T(a.D);
    const bool first_row = r == blockIdx.x;
    for (int64_t c = threadIdx.x; c < a.D; c += blockDim.x) {
      const T g = a.weight[c] * dy[c], xhat = (x[c] - mu) * rs;
      dx[c] = rs * (g - sg - xhat * sgx);
      if (partial_w) add_partial(partial_w, c, first_row, dy[c] * xhat);
      if (partial_b) add_partial(partial_b, c, first_row, dy[c]);
    }
  }
}

// ---- rope ---------------------------------------------------------------------------------------
// Pair p of head h of token t = (b, s): element offsets (t·H + h)·dr + {ia, ib}, angles cos/sin[s, p].
// sign = −1 rotates by −φ (the backward). One thread per pair reads both values before writing either,
// so y may be x.
template <class T>
__global__ void rope_kernel(const T* x, const T* cos, const T* sin, T* y, int64_t B, int64_t S, int64_t H, int64_t dr,
                            int32_t interleaved, int32_t sign) {
  const int64_t half = dr / 2, pairs = B * S * H * half;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < pairs; i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t p = i % half, th = i / half, s = th / H % S;
    const int64_t ia = interleaved ? 2 * p : p, ib = interleaved ? 2 * p + 1 : p + half;
    const T* xh = x + th * dr;
    T* yh = y + th * dr;
    const T c = cos[s * half + p], sn = sin[s * half + p];
    scalar::rope_rotate<T>(xh[ia], xh[ib], c, sign > 0 ? sn : -sn, yh[ia], yh[ib]);
  }
}

// ---- host functions -----------------------------------------------------------------------------
inline void check_norm_rows(const char* kernel, int64_t rows, int64_t D) {
  if (rows < 0 || D < 1)
    throw kernel_argument_error(kernel, "rows " + std::to_string(rows) + " must be >= 0 and D " + std::to_string(D) +
                                            " >= 1");
}

// dweight (dbias) = the G partial rows summed per column: 256 threads a block, a thread per column.
inline void launch_column_partials_sum(const char* kernel, const float* partials, int64_t G, int64_t D, float* out) {
  launch_kernel(kernel, dim3(grid_for(D, 256)), dim3(256), column_partials_sum_kernel<float>, partials, G, D, out);
}

void rms_norm_forward(const RmsNormArgs<float>& a) {
  check_norm_rows("rms_norm_forward", a.rows, a.D);
  if (a.rows == 0) return;
  launch_kernel("rms_norm_forward", dim3(grid_for(a.rows, 1)), dim3(row_block_threads(a.D)),
                rms_norm_forward_kernel<float>, a);
}

// scratch: rms_norm_backward_scratch_size(rows, D) = norm_backward_blocks(rows) · D floats when dweight is wanted.
void rms_norm_backward(const RmsNormBackwardArgs<float>& a) {
  check_norm_rows("rms_norm_backward", a.rows, a.D);
  if (a.dweight && !a.scratch && a.rows > 0)
    throw kernel_argument_error("rms_norm_backward", "dweight needs a scratch buffer of rms_norm_backward_scratch_size = " +
                                                         std::to_string(rms_norm_backward_scratch_size(a.rows, a.D)) +
                                                         " floats");
  const int64_t G = norm_backward_blocks(a.rows);
  if (G > 0)
    launch_kernel("rms_norm_backward", dim3((unsigned)G), dim3(row_block_threads(a.D)), rms_norm_backward_kernel<float>, a);
  if (a.dweight) launch_column_partials_sum("rms_norm_backward dweight", a.scratch, G, a.D, a.dweight);
}

void layer_norm_forward(const LayerNormArgs<float>& a) {
  check_norm_rows("layer_norm_forward", a.rows, a.D);
  if (a.rows == 0) return;
  launch_kernel("layer_norm_forward", dim3(grid_for(a.rows, 1)), dim3(row_block_threads(a.D)),
                layer_norm_forward_kernel<float>, a);
}

// scratch: layer_norm_backward_scratch_size(rows, D) = 2 · norm_backward_blocks(rows) · D floats when dweight or
// dbias is wanted: dweight's partial rows first, then dbias's.
void layer_norm_backward(const LayerNormBackwardArgs<float>& a) {
  check_norm_rows("layer_norm_backward", a.rows, a.D);
  if ((a.dweight || a.dbias) && !a.scratch && a.rows > 0)
    throw kernel_argument_error("layer_norm_backward",
                                "dweight/dbias need a scratch buffer of layer_norm_backward_scratch_size = " +
                                    std::to_string(layer_norm_backward_scratch_size(a.rows, a.D)) + " floats");
  const int64_t G = norm_backward_blocks(a.rows);
  if (G > 0)
    launch_kernel("layer_norm_backward", dim3((unsigned)G), dim3(row_block_threads(a.D)),
                  layer_norm_backward_kernel<float>, a);
  if (a.dweight) launch_column_partials_sum("layer_norm_backward dweight", a.scratch, G, a.D, a.dweight);
  if (a.dbias) launch_column_partials_sum("layer_norm_backward dbias", a.scratch + G * a.D, G, a.D, a.dbias);
}

// 256 threads a block, at most 65535 blocks; the grid-stride loop covers the rest.
inline void launch_rope(const char* kernel, const float* x, const float* cos, const float* sin, float* y, int64_t B,
                        int64_t S, int64_t H, int64_t dr, int32_t interleaved, int32_t sign) {
  if (B < 0 || S < 0 || H < 0 || dr < 0 || dr % 2 != 0)
    throw kernel_argument_error(kernel, "B " + std::to_string(B) + ", S " + std::to_string(S) + ", H " +
                                            std::to_string(H) + " must be >= 0 and dr " + std::to_string(dr) +
                                            " even and >= 0");
  const int64_t pairs = B * S * H * (dr / 2);
  if (pairs == 0) return;
  const unsigned g = grid_for(pairs, 256);
  launch_kernel(kernel, dim3(g > 65535u ? 65535u : g), dim3(256), rope_kernel<float>, x, cos, sin, y, B, S, H, dr,
                interleaved, sign);
}

void rope_forward(const RopeArgs<float>& a) {
  launch_rope("rope_forward", a.x, a.cos, a.sin, a.y, a.B, a.S, a.H, a.dr, a.interleaved, +1);
}
void rope_backward(const RopeBackwardArgs<float>& a) {
  launch_rope("rope_backward", a.dy, a.cos, a.sin, a.dx, a.B, a.S, a.H, a.dr, a.interleaved, -1);
}

}  // namespace sg::SG_BACKEND_NS
