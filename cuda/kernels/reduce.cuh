// cuda/kernels/reduce.cuh — row reductions (sum / max / min and their argmax / argmin) over the last dim of a
// [rows, cols] buffer, one block per row; and the strided copy that makes a view contiguous, one thread per
// element. Compiled by nvcc (cuda/reduce.cu) and by g++ for the emulation (cuda/emu/reduce_emu.cpp).
//
// Mirrors ops/cpu/reduce.h and ops/cpu/copy.h. max, min, argmax, argmin and the copy give the CPU's bits;
// the sum adds in f32 in the block's order (each thread's strided share, then block_reduce.cuh's butterflies),
// where the CPU adds the row left to right in double: the two agree to the f32 rounding of a sum, not bit for bit.
#pragma once
#include "cuda/kernels/block_reduce.cuh"
#include "ops/kernel_abi/reduce.h"

namespace sg::SG_BACKEND_NS {

// A candidate for a row's extreme: value v at column i; i < 0 is "none yet" (the reduction's identity).
template <class T> struct ArgBest {
  T v;
  int64_t i;
};

template <class T> __device__ __forceinline__ ArgBest<T> shfl_xor(ArgBest<T> a, int lane_mask) {
  ArgBest<T> b;
  b.v = __shfl_xor_sync(0xffffffffu, a.v, lane_mask);
  b.i = (int64_t)__shfl_xor_sync(0xffffffffu, (long long)a.i, lane_mask);
  return b;
}

// The better of two candidates: the larger (smaller) value, or of equal values the lower column. A total order,
// so the reduction's result does not depend on the order it combines in: the first extreme of the row.
struct ArgBestOp {
  bool is_max;
  template <class T> __device__ ArgBest<T> operator()(ArgBest<T> a, ArgBest<T> b) const {
    if (b.i < 0) return a;
    if (a.i < 0) return b;
    const bool b_better = is_max ? b.v > a.v : b.v < a.v;
    return b_better || (b.v == a.v && b.i < a.i) ? b : a;
  }
};

// The CPU's argmax of a row: `best = 0; for c: if (x[c] > x[best]) best = c` (argmin with <). A NaN never
// compares greater, so the scan skips NaN, except that it never moves off a NaN at x[0]. Here each thread
// scans its columns (increasing, so it keeps its first extreme), skipping NaN, and the block takes the best
// candidate; then x[0] = NaN (or an all-NaN row) gives 0, as on the CPU. Every thread gets the answer.
template <class T> __device__ int64_t row_arg_best(ReduceOp op, const T* x, int64_t cols, ArgBest<T>* smem_partials) {
  const bool is_max = op == ReduceOp::max;
  ArgBest<T> best{T(0), -1};
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
    const T v = x[c];
    if (std::isnan(v)) continue;
    if (best.i < 0 || (is_max ? v > best.v : v < best.v)) best = ArgBest<T>{v, c};
  }
  best = block_allreduce(best, ArgBestOp{is_max}, ArgBest<T>{T(0), -1}, smem_partials);
  return std::isnan(x[0]) || best.i < 0 ? 0 : best.i;
}

// x: [rows, cols], out: [rows]; block r reduces row r. max/min is the value at the first extreme: the CPU's
// `if (x[c] > best) best = x[c]` scan keeps exactly that one (it matters for −0 vs +0 and NaN).
template <class T> __global__ void reduce_rows_kernel(ReduceRowsArgs<T> a) {
  __shared__ T smem_sums[32];
  __shared__ ArgBest<T> smem_best[32];
  const int64_t r = blockIdx.x;
  if (r >= a.rows) return;
  const T* x = a.x + r * a.cols;
  if (a.op == ReduceOp::sum) {
    T acc = T(0);
    for (int64_t c = threadIdx.x; c < a.cols; c += blockDim.x) acc += x[c];
    acc = block_allreduce(acc, SumOp{}, T(0), smem_sums);
    if (threadIdx.x == 0) a.out[r] = acc;
  } else {
    const int64_t c = row_arg_best(a.op, x, a.cols, smem_best);
    if (threadIdx.x == 0) a.out[r] = x[c];
  }
}

template <class T> __global__ void arg_reduce_rows_kernel(ArgReduceRowsArgs<T> a) {
  __shared__ ArgBest<T> smem_best[32];
  const int64_t r = blockIdx.x;
  if (r >= a.rows) return;
  const int64_t c = row_arg_best(a.op, a.x + r * a.cols, a.cols, smem_best);
  if (threadIdx.x == 0) a.out[r] = c;
}

// dst[i] = src[coords(i) · src_strides]: each output element decodes its row-major index (last dim fastest).
template <class T> __global__ void strided_copy_kernel(StridedCopyArgs<T> a, int64_t n) {
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    int64_t rest = i, is = 0;
    for (int d = a.ndim - 1; d >= 0; d--) {
      is += rest % a.shape[d] * a.src_strides[d];
      rest /= a.shape[d];
    }
    a.dst[i] = a.src[is];
  }
}

inline void check_rows(const char* kernel, int64_t rows, int64_t cols) {
  if (rows < 0 || cols < 0)
    throw kernel_argument_error(kernel, "rows " + std::to_string(rows) + " and cols " + std::to_string(cols) +
                                            " must be >= 0");
}

void reduce_rows(const ReduceRowsArgs<float>& a) {
  check_rows("reduce_rows", a.rows, a.cols);
  if (a.op != ReduceOp::sum && a.op != ReduceOp::max && a.op != ReduceOp::min)
    throw kernel_argument_error("reduce_rows", "unknown op " + std::to_string((int)a.op));
  if (a.op != ReduceOp::sum && a.cols == 0 && a.rows > 0)
    throw kernel_argument_error("reduce_rows", "max/min of an empty row (cols = 0)");
  if (a.rows == 0) return;
  launch_kernel("reduce_rows", dim3(grid_for(a.rows, 1)), dim3(row_block_threads(a.cols)), reduce_rows_kernel<float>, a);
}

void arg_reduce_rows(const ArgReduceRowsArgs<float>& a) {
  check_rows("arg_reduce_rows", a.rows, a.cols);
  if (a.op != ReduceOp::max && a.op != ReduceOp::min)
    throw kernel_argument_error("arg_reduce_rows", "op must be max or min, not " + std::to_string((int)a.op));
  if (a.cols == 0 && a.rows > 0) throw kernel_argument_error("arg_reduce_rows", "an empty row (cols = 0)");
  if (a.rows == 0) return;
  launch_kernel("arg_reduce_rows", dim3(grid_for(a.rows, 1)), dim3(row_block_threads(a.cols)),
                arg_reduce_rows_kernel<float>, a);
}

// 256 threads a block, at most 65535 blocks; the grid-stride loop covers the rest.
void strided_copy(const StridedCopyArgs<float>& a) {
  if (a.ndim < 0 || a.ndim > kMaxKernelDims)
    throw kernel_argument_error("strided_copy", "ndim " + std::to_string(a.ndim) + " is outside [0, " +
                                                    std::to_string(kMaxKernelDims) + "]");
  int64_t n = 1;
  for (int d = 0; d < a.ndim; d++) {
    if (a.shape[d] < 0) throw kernel_argument_error("strided_copy", "shape[" + std::to_string(d) + "] < 0");
    n *= a.shape[d];
  }
  if (n == 0) return;
  const unsigned g = grid_for(n, 256);
  launch_kernel("strided_copy", dim3(g > 65535u ? 65535u : g), dim3(256), strided_copy_kernel<float>, a, n);
}

}  // namespace sg::SG_BACKEND_NS
