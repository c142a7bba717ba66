// cuda/kernels/topk.cuh — topk (forward, backward) and argmax (ops/cpu/nn.h on the GPU): one block per row, f32.
// Compiled by nvcc (cuda/topk.cu) and by g++ for the emulation (cuda/emu/topk_emu.cpp); see cuda/kernels/common.cuh.
//
// The order is the CPU's (ops/cpu/nn.cpp): value first (NaN above every number), equal values by the lower
// index. That makes "a comes before b" a strict total order on the row's positions, so the j-th output is
// simply the best position that comes AFTER output j−1 — no "taken" marks, no sort:
//
//   for j in 0..k:   each thread scans its positions c = tid, tid + 128, ... for the best one after prev,
//                    the block reduces the 128 candidates (warp shuffles, then the 4 warp winners;
//                    a candidate travels as its position alone, its value is re-read from the row),
//                    thread 0 writes values[r, j], indices[r, j]; every thread takes it as prev.
//
// That is the CPU's plain loop (k selection passes) with "not taken" replaced by "after prev": same picks,
// same order, and the values are the row's own floats, so values and indices are equal bit for bit.
// Cost: k passes over the row, k·n/128 reads per thread — right for routing (n = experts, k ≤ 8) and
// sampling (k ≤ 64); hence the limit kTopkMaxK = 256, beyond which a sort of the row is the kernel to write.
// argmax is the k = 1 pass, largest first: the first maximum, as the CPU's. topk_backward stages the row's k
// (index, dvalue) pairs in shared memory (the other reason for the limit) and gives each dx element to one
// thread, which sums the dvalues naming it in increasing j — the CPU's order, no atomics.
#pragma once
#include "cuda/kernels/common.cuh"
#include "ops/kernel_abi/topk.h"

namespace sg::SG_BACKEND_NS {

constexpr int kTopkBlock = 128;   // 4 warps
constexpr int64_t kTopkMaxK = 256;

// ops/cpu/nn.cpp value_less: a total order on values with NaN above every number (v != v: NaN).
template <class T> __device__ __forceinline__ bool topk_value_less(T a, T b) {
  const bool na = a != a, nb = b != b;
  if (na || nb) return !na && nb;
  return a < b;
}

// Position a of row xr comes before position b in the result: a better value, or an equal value and a lower
// index. Position −1 is "no candidate", after everything. A candidate is only its position: its value is xr[a].
template <class T> __device__ __forceinline__ bool topk_before(const T* xr, int64_t a, int64_t b, bool largest) {
  if (a < 0) return false;
  if (b < 0) return true;
  const bool lt = topk_value_less(xr[a], xr[b]), gt = topk_value_less(xr[b], xr[a]);
  if (lt || gt) return largest ? gt : lt;
  return a < b;
}

// The block's best position under topk_before, returned to every thread. Every thread of the block calls it
// (5 shuffles, two barriers). Shared memory: one candidate per warp, then the winner.
template <class T> __device__ int64_t topk_block_best(const T* xr, int64_t best, bool largest) {
  __shared__ int64_t smem_warp_best[kTopkBlock / 32];
  __shared__ int64_t smem_best;
  for (int offset = 16; offset > 0; offset /= 2) {
    const int64_t other = __shfl_down_sync(0xffffffffu, best, offset);
    if (topk_before(xr, other, best, largest)) best = other;
  }
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) smem_warp_best[warp] = best;
  __syncthreads();
  if (threadIdx.x == 0) {   // holds warp 0's winner already
    for (int w = 1; w < kTopkBlock / 32; w++)
      if (topk_before(xr, smem_warp_best[w], best, largest)) best = smem_warp_best[w];
    smem_best = best;
  }
  __syncthreads();
  return smem_best;
}

// Block r: row r. x is (rows, n); values, indices are (rows, k).
template <class T> __global__ void topk_forward_kernel(TopkArgs<T> a) {
  const int64_t r = blockIdx.x;
  const T* xr = a.x + r * a.n;
  const bool largest = a.largest != 0;
  int64_t prev = -1;   // none yet: every position is eligible
  for (int64_t j = 0; j < a.k; j++) {
    int64_t best = -1;
    for (int64_t c = threadIdx.x; c < a.n; c += blockDim.x) {
      const bool after_prev = prev < 0 || topk_before(xr, prev, c, largest);
      if (after_prev && topk_before(xr, c, best, largest)) best = c;
    }
    best = topk_block_best(xr, best, largest);
    if (threadIdx.x == 0) {
      a.values[r * a.k + j] = xr[best];
      a.indices[r * a.k + j] = best;
    }
    prev = best;
  }
}

// values_j = x[indices_j]  =>  dx[c] = Σ_{j: indices_j = c} dvalues_j (increasing j), 0 where none.
// Block r: row r; the k pairs in shared memory, then thread c of the row owns dx[r, c].
template <class T> __global__ void topk_backward_kernel(TopkBackwardArgs<T> a) {
  __shared__ int64_t smem_index[kTopkMaxK];
  __shared__ T smem_dvalue[kTopkMaxK];
  const int64_t r = blockIdx.x;
  for (int64_t j = threadIdx.x; j < a.k; j += blockDim.x) {
    smem_index[j] = a.indices[r * a.k + j];
    smem_dvalue[j] = a.dvalues[r * a.k + j];
  }
  __syncthreads();
  for (int64_t c = threadIdx.x; c < a.n; c += blockDim.x) {
    T acc = T(0);
    for (int64_t j = 0; j < a.k; j++)
      if (smem_index[j] == c) acc += smem_dvalue[j];
    a.dx[r * a.n + c] = acc;
  }
}

// Block r: row r; one topk pass, largest first.
template <class T> __global__ void argmax_forward_kernel(ArgmaxArgs<T> a) {
  const int64_t r = blockIdx.x;
  const T* xr = a.x + r * a.n;
  int64_t best = -1;
  for (int64_t c = threadIdx.x; c < a.n; c += blockDim.x)
    if (topk_before(xr, c, best, true)) best = c;
  best = topk_block_best(xr, best, true);
  if (threadIdx.x == 0) a.out[r] = best;
}

// ---- host functions ------------------------------------------------------------------------------------------

[[noreturn]] inline void topk_error(const char* kernel, const std::string& message) {
  throw std::runtime_error(std::string("[cuda] ") + kernel + ": " + message);
}

// rows >= 0 (one block each, within CUDA's grid), 0 <= k <= n, k <= kTopkMaxK.
inline void check_topk_sizes(const char* kernel, int64_t rows, int64_t n, int64_t k) {
  if (rows < 0 || n < 0 || k < 0)
    topk_error(kernel, "sizes (rows " + std::to_string(rows) + ", n " + std::to_string(n) + ", k " + std::to_string(k) + ") must be >= 0");
  if (k > n) topk_error(kernel, "k " + std::to_string(k) + " is more than the row's " + std::to_string(n) + " values");
  if (k > kTopkMaxK)
    topk_error(kernel, "k " + std::to_string(k) + " is over this kernel's limit of " + std::to_string(kTopkMaxK) +
                           " (one pass over the row per output; a larger k wants a sort)");
  if (rows > 0x7fffffff) topk_error(kernel, "rows " + std::to_string(rows) + " is over CUDA's grid limit (one block per row)");
}

void topk_forward(const TopkArgs<float>& a) {
  check_topk_sizes("topk_forward", a.rows, a.n, a.k);
  if (a.rows == 0 || a.k == 0) return;
  launch_kernel("topk_forward", dim3((unsigned)a.rows), dim3(kTopkBlock), topk_forward_kernel<float>, a);
}

void topk_backward(const TopkBackwardArgs<float>& a) {
  check_topk_sizes("topk_backward", a.rows, a.n, a.k);
  if (a.rows == 0 || a.n == 0) return;
  launch_kernel("topk_backward", dim3((unsigned)a.rows), dim3(kTopkBlock), topk_backward_kernel<float>, a);
}

void argmax_forward(const ArgmaxArgs<float>& a) {
  check_topk_sizes("argmax_forward", a.rows, a.n, 0);
  if (a.rows > 0 && a.n == 0) topk_error("argmax_forward", "a row of 0 values has no maximum");
  if (a.rows == 0) return;
  launch_kernel("argmax_forward", dim3((unsigned)a.rows), dim3(kTopkBlock), argmax_forward_kernel<float>, a);
}

}  // namespace sg::SG_BACKEND_NS
