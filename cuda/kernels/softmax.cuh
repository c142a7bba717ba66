// cuda/kernels/softmax.cuh — softmax, log_softmax (forward, backward) and cross entropy (forward, backward) over
// the last dim, one block per row; a row longer than the block is looped over by each thread (columns
// threadIdx.x, threadIdx.x + blockDim.x, ...), and the row's max and sums are block_reduce.cuh's reductions.
// Compiled by nvcc (cuda/softmax.cu) and by g++ for the emulation (cuda/emu/softmax_emu.cpp).
//
// Mirrors ops/cpu/nn.h: the same formulas, term by term. What differs: the sums run in f32 in the block's order
// (the CPU sums left to right, in f32 SIMD lanes or in double), and exp is the platform's expf (the CPU's f32
// softmax / cross entropy use its polynomial exp_f32). So the two agree to a few f32 roundings, not bit for bit;
// the max is exact. Each row reads its inputs two or three times (max, sum, write): from L2 on the GPU.
#pragma once
#include "cuda/kernels/block_reduce.cuh"
#include "ops/kernel_abi/softmax.h"

namespace sg::SG_BACKEND_NS {

// max_c x[c] over the block's row (NaN skipped: a NaN row still comes out NaN, through exp(NaN − m)).
template <class T> __device__ T row_max(const T* x, int64_t cols, T* smem_partials) {
  T m = -INFINITY;
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) m = x[c] > m ? x[c] : m;
  return block_allreduce(m, MaxOp{}, T(-INFINITY), smem_partials);
}

// Σ_c exp(x[c] − m) over the block's row.
template <class T> __device__ T row_sum_exp(const T* x, T m, int64_t cols, T* smem_partials) {
  T s = T(0);
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) s += std::exp(x[c] - m);
  return block_allreduce(s, SumOp{}, T(0), smem_partials);
}

// y = exp(x − m) / Σ exp(x − m), m = row max (so no exp overflows); written as exp(x − m) · (1 / Σ) like the CPU.
template <class T> __global__ void softmax_forward_kernel(SoftmaxArgs<T> a) {
  __shared__ T smem_partials[32];
  const int64_t r = blockIdx.x;
  if (r >= a.rows) return;
  const T* x = a.x + r * a.cols;
  T* y = a.y + r * a.cols;
  const T m = row_max(x, a.cols, smem_partials);
  const T inv = T(1) / row_sum_exp(x, m, a.cols, smem_partials);
  for (int64_t c = threadIdx.x; c < a.cols; c += blockDim.x) y[c] = std::exp(x[c] - m) * inv;
}

// dx_c = y_c (dy_c − Σ_k dy_k y_k)
template <class T> __global__ void softmax_backward_kernel(SoftmaxBackwardArgs<T> a) {
  __shared__ T smem_partials[32];
  const int64_t r = blockIdx.x;
  if (r >= a.rows) return;
  const T *y = a.y + r * a.cols, *dy = a.dy + r * a.cols;
  T* dx = a.dx + r * a.cols;
  T d = T(0);
  for (int64_t c = threadIdx.x; c < a.cols; c += blockDim.x) d += dy[c] * y[c];
  d = block_allreduce(d, SumOp{}, T(0), smem_partials);
  for (int64_t c = threadIdx.x; c < a.cols; c += blockDim.x) dx[c] = y[c] * (dy[c] - d);
}

// y = x − m − log Σ exp(x − m)
template <class T> __global__ void log_softmax_forward_kernel(LogSoftmaxArgs<T> a) {
  __shared__ T smem_partials[32];
  const int64_t r = blockIdx.x;
  if (r >= a.rows) return;
  const T* x = a.x + r * a.cols;
  T* y = a.y + r * a.cols;
  const T m = row_max(x, a.cols, smem_partials);
  const T log_s = std::log(row_sum_exp(x, m, a.cols, smem_partials));
  for (int64_t c = threadIdx.x; c < a.cols; c += blockDim.x) y[c] = x[c] - m - log_s;
}

// dx_c = dy_c − exp(y_c) Σ_k dy_k
template <class T> __global__ void log_softmax_backward_kernel(LogSoftmaxBackwardArgs<T> a) {
  __shared__ T smem_partials[32];
  const int64_t r = blockIdx.x;
  if (r >= a.rows) return;
  const T *y = a.y + r * a.cols, *dy = a.dy + r * a.cols;
  T* dx = a.dx + r * a.cols;
  T s = T(0);
  for (int64_t c = threadIdx.x; c < a.cols; c += blockDim.x) s += dy[c];
  s = block_allreduce(s, SumOp{}, T(0), smem_partials);
  for (int64_t c = threadIdx.x; c < a.cols; c += blockDim.x) dx[c] = dy[c] - std::exp(y[c]) * s;
}

// loss_r = −log softmax(x_r)[t_r] = lse_r − x_r[t_r],  lse_r = m + log Σ exp(x_r − m)
// An ignored row is decided by its target alone, so the whole block leaves together (no barrier is skipped).
template <class T> __global__ void cross_entropy_forward_kernel(CrossEntropyArgs<T> a) {
  __shared__ T smem_partials[32];
  const int64_t r = blockIdx.x;
  if (r >= a.rows) return;
  const int64_t t = a.targets[r];
  if (t == a.ignore_index) {
    if (threadIdx.x == 0) a.lse[r] = T(0), a.loss[r] = T(0);
    return;
  }
  const T* x = a.logits + r * a.V;
  const T m = row_max(x, a.V, smem_partials);
  const T lse = m + std::log(row_sum_exp(x, m, a.V, smem_partials));
  if (threadIdx.x == 0) {
    a.lse[r] = lse;
    a.loss[r] = t >= 0 && t < a.V ? lse - x[t] : T(NAN);
  }
}

// ∂loss_r/∂x_r[c] = softmax(x_r)[c] − [c == t_r], times scale; softmax from the saved lse: exp(x − lse).
// As on the CPU the target's entry is scale · exp(x_t − lse) − scale (two roundings).
template <class T> __global__ void cross_entropy_backward_kernel(CrossEntropyBackwardArgs<T> a) {
  const int64_t r = blockIdx.x;
  if (r >= a.rows) return;
  const int64_t t = a.targets[r];
  const T* x = a.logits + r * a.V;
  T* dx = a.dlogits + r * a.V;
  const bool ignored = t == a.ignore_index, bad = !ignored && (t < 0 || t >= a.V);
  const T lse = a.lse[r];
  for (int64_t c = threadIdx.x; c < a.V; c += blockDim.x) {
    if (ignored) {
      dx[c] = T(0);
      continue;
    }
    T v = a.scale * std::exp(x[c] - lse);
    if (c == t) v -= a.scale;
    dx[c] = bad ? T(NAN) : v;
  }
}

inline void check_softmax_rows(const char* kernel, int64_t rows, int64_t cols) {
  if (rows < 0 || cols < 1)
    throw kernel_argument_error(kernel, "rows " + std::to_string(rows) + " must be >= 0 and cols " +
                                            std::to_string(cols) + " >= 1");
}

// One block per row, row_block_threads(cols) threads.
template <class Args> void launch_rows(const char* kernel_name, void (*kernel)(Args), const Args& a, int64_t cols) {
  check_softmax_rows(kernel_name, a.rows, cols);
  if (a.rows == 0) return;
  launch_kernel(kernel_name, dim3(grid_for(a.rows, 1)), dim3(row_block_threads(cols)), kernel, a);
}

void softmax_forward(const SoftmaxArgs<float>& a) { launch_rows("softmax_forward", softmax_forward_kernel<float>, a, a.cols); }
void softmax_backward(const SoftmaxBackwardArgs<float>& a) {
  launch_rows("softmax_backward", softmax_backward_kernel<float>, a, a.cols);
}
void log_softmax_forward(const LogSoftmaxArgs<float>& a) {
  launch_rows("log_softmax_forward", log_softmax_forward_kernel<float>, a, a.cols);
}
void log_softmax_backward(const LogSoftmaxBackwardArgs<float>& a) {
  launch_rows("log_softmax_backward", log_softmax_backward_kernel<float>, a, a.cols);
}
void cross_entropy_forward(const CrossEntropyArgs<float>& a) {
  launch_rows("cross_entropy_forward", cross_entropy_forward_kernel<float>, a, a.V);
}
void cross_entropy_backward(const CrossEntropyBackwardArgs<float>& a) {
  launch_rows("cross_entropy_backward", cross_entropy_backward_kernel<float>, a, a.V);
}

}  // namespace sg::SG_BACKEND_NS
