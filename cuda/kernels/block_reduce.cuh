// cuda/kernels/block_reduce.cuh — the row kernels' block-wide reductions (reduce.cuh, softmax.cuh, norm.cuh):
// one block per row, each thread folds its strided share of the row, then the block combines the threads'
// values with warp shuffles and one round through shared memory.
//
// The order of every combination is fixed by the thread indices alone (a butterfly within each warp, then the
// warps' partials in a second butterfly), never by which lane runs first, so a reduction gives the same bits on
// every run and in both emulator lane orders. With a commutative op (a + b, max) the butterfly leaves the same
// bits in every lane: lane i computes v_i ∘ v_j, lane j computes v_j ∘ v_i.
//
// Only templates and inline functions: each family's .cuh includes this into its own build.
#pragma once
#include "cuda/kernels/common.cuh"

namespace sg::SG_BACKEND_NS {

constexpr int kRowBlockMax = 256;   // threads per row block; a longer row loops
// Threads for a block over rows of `cols` values: `cols` rounded up to whole warps, at most kRowBlockMax
// (a short row does not leave most of the block idle). A function of cols alone, so the summation order is
// the same on every device.
inline int row_block_threads(int64_t cols) {
  int64_t t = (cols + 31) / 32 * 32;
  if (t < 32) t = 32;
  return t > kRowBlockMax ? kRowBlockMax : (int)t;
}

struct SumOp {
  template <class T> __device__ T operator()(T a, T b) const { return a + b; }
};
// NaN-free inputs (the callers' per-thread folds skip NaN): the larger of two, either one when equal.
struct MaxOp {
  template <class T> __device__ T operator()(T a, T b) const { return b > a ? b : a; }
};

template <class T> __device__ __forceinline__ T shfl_xor(T v, int lane_mask) {
  return __shfl_xor_sync(0xffffffffu, v, lane_mask);
}

// Every lane of the warp gets op over the warp's 32 values (a butterfly: 5 exchanges).
template <class T, class Op> __device__ __forceinline__ T warp_allreduce(T v, Op op) {
  for (int m = 16; m > 0; m >>= 1) v = op(v, shfl_xor(v, m));
  return v;
}

// Every thread of the block gets op over the block's values. blockDim.x a multiple of 32, at most 1024;
// smem_partials: 32 values of __shared__ memory, free again when this returns. `identity` fills the lanes past
// the last warp (op(v, identity) = v). Every thread of the block must call it (it holds two barriers).
template <class T, class Op> __device__ T block_allreduce(T v, Op op, T identity, T* smem_partials) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  v = warp_allreduce(v, op);
  if (lane == 0) smem_partials[warp] = v;
  __syncthreads();
  v = warp_allreduce(lane < warps ? smem_partials[lane] : identity, op);
  // Every thread has read the partials: the next reduction may write them. (The emulator cannot show this
  // barrier missing: it runs every lane up to its first exchange before any warp's exchange opens, so all the
  // reads happen first; on the GPU a fast warp would overwrite a partial a slow warp has yet to read.)
  __syncthreads();
  return v;
}

// The row launchers' argument errors: "[cuda] <kernel>: <what>".
inline std::runtime_error kernel_argument_error(const char* kernel, const std::string& what) {
  return std::runtime_error(std::string("[cuda] ") + kernel + ": " + what);
}

}  // namespace sg::SG_BACKEND_NS
