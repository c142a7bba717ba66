// cuda/kernels/moe.cuh — the three MoE primitives (ops/cpu/moe.h on the GPU), f32: permute (gather token rows into
// expert order), a grouped GEMM over all experts in one launch, unpermute (the gate-weighted sum back onto the
// tokens). Compiled by nvcc (cuda/moe.cu) and by g++ for the emulation (cuda/emu/moe_emu.cpp); see
// cuda/kernels/common.cuh. Layouts: ops/kernel_abi/moe.h (the routing plan of models/moe.cpp).
//
//   permute     one thread per (row, channel): a copy, the CPU's bits.
//   unpermute   one thread per (token, channel) owns out[t, c] and adds its slots in increasing k: no atomics,
//               the CPU reference's order. Each product w·y is rounded before the add (__fmul_rn on the GPU,
//               where nvcc would otherwise fuse acc + w·y into one FMA), so the GPU gives the CPU's bits too.
//   grouped GEMM  16×16 output tiles, 16×16 threads, x and W_e staged through shared memory 16 columns at a
//               time. The grid counts row tiles PER EXPERT (a tile never spans two experts, so it needs one W_e):
//               block x walks the experts' tile counts ceil(n_e / 16) to find its expert and tile; the host,
//               which only knows the total rows (offset is device memory), launches ceil(rows / 16) + n_experts
//               blocks — an upper bound on Σ_e ceil(n_e / 16) — and the spare ones return at once. An expert
//               with no rows has no tiles. Each thread sums its dot product in increasing input channel, the
//               order of sg::cpu::gemm_f32_naive: the emulation gives its bits; the GPU fuses the multiply-adds
//               (FMA), so there it agrees with the CPU within float rounding of an in_dim-term sum.
// What this is not: a tensor-core GEMM (a teaching tile, no mma/wgmma, no double buffering), nor the routing
// sort itself (the plan comes from the host, sg::cpu::moe_dispatch_plan).
#pragma once
#include "cuda/kernels/common.cuh"
#include "ops/kernel_abi/moe.h"

namespace sg::SG_BACKEND_NS {

constexpr int kMoeBlock = 256;   // permute / unpermute: threads a block
constexpr int kMoeTile = 16;     // grouped GEMM: output tile kMoeTile × kMoeTile, one thread per output

// a·b rounded to float on its own: no FMA contraction with what it is added to (the CPU's two roundings).
__device__ __forceinline__ float moe_mul_rounded(float a, float b) {
#if defined(__CUDACC__)
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}

// x_sorted[p, c] = x[token_sorted[p], c]; thread i = (p, c), grid-stride.
template <class T> __global__ void moe_permute_forward_kernel(MoePermuteArgs<T> a) {
  const int64_t numel = a.rows * a.dim;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < numel; i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t p = i / a.dim, c = i % a.dim;
    a.x_sorted[i] = a.x[a.token_sorted[p] * a.dim + c];
  }
}

// Thread i = (t, c) owns out[t, c]: acc = out[t, c], + w[t, k] · y[slot_pos[t, k], c] for k = 0..topk−1 kept.
template <class T> __global__ void moe_unpermute_forward_kernel(MoeUnpermuteArgs<T> a) {
  const int64_t numel = a.n_tokens * a.dim;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < numel; i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t t = i / a.dim, c = i % a.dim;
    T acc = a.out[i];
    for (int64_t k = 0; k < a.topk; k++) {
      const int64_t p = a.slot_pos[t * a.topk + k];
      if (p < 0) continue;   // dropped by the capacity
      acc += moe_mul_rounded(a.weights[t * a.topk + k], a.y_sorted[p * a.dim + c]);
    }
    a.out[i] = acc;
  }
}

// Block (blockIdx.x, blockIdx.y): row tile `tile` of expert e (found by walking the experts' tile counts) ×
// output columns col0..col0+15. Thread (tx, ty) computes y[row0 + ty, col0 + tx].
//   smem_x[ty][q] = x[row0 + ty, p0 + q]      smem_w[ty][q] = W_e[col0 + ty, p0 + q]      (0 outside)
// so y[row, col] = Σ_q smem_x[ty][q] · smem_w[tx][q] over each 16-column chunk p0 of in_dim, in order.
template <class T> __global__ void moe_grouped_gemm_forward_kernel(MoeGroupedGemmArgs<T> a) {
  __shared__ T smem_x[kMoeTile][kMoeTile + 1];   // +1: the column reads smem_w[tx][q] hit 16 different banks
  __shared__ T smem_w[kMoeTile][kMoeTile + 1];
  int64_t tile = blockIdx.x, e = 0;
  for (; e < a.n_experts; e++) {
    const int64_t tiles_e = (a.offset[e + 1] - a.offset[e] + kMoeTile - 1) / kMoeTile;
    if (tile < tiles_e) break;
    tile -= tiles_e;
  }
  if (e == a.n_experts) return;   // a spare block: the whole block leaves before any barrier
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t row0 = a.offset[e] + tile * kMoeTile, row_end = a.offset[e + 1];
  const int64_t col0 = (int64_t)blockIdx.y * kMoeTile;
  const int64_t row = row0 + ty, col = col0 + tx, w_row = col0 + ty;
  const T* w_e = a.w + e * a.out_dim * a.in_dim;
  T sum = T(0);
  for (int64_t p0 = 0; p0 < a.in_dim; p0 += kMoeTile) {
    const int64_t p = p0 + tx;
    smem_x[ty][tx] = row < row_end && p < a.in_dim ? a.x[row * a.in_dim + p] : T(0);
    smem_w[ty][tx] = w_row < a.out_dim && p < a.in_dim ? w_e[w_row * a.in_dim + p] : T(0);
    __syncthreads();
    const int64_t steps = a.in_dim - p0 < kMoeTile ? a.in_dim - p0 : kMoeTile;   // no padded terms in the sum
    for (int q = 0; q < steps; q++) sum += smem_x[ty][q] * smem_w[tx][q];
    __syncthreads();   // the next chunk overwrites the tiles
  }
  if (row < row_end && col < a.out_dim) a.y[row * a.out_dim + col] = sum;
}

// ---- host functions ------------------------------------------------------------------------------------------

[[noreturn]] inline void moe_error(const char* kernel, const std::string& message) {
  throw std::runtime_error(std::string("[cuda] ") + kernel + ": " + message);
}

inline unsigned moe_grid(int64_t n) {   // at most 65535 blocks, the grid-stride loops cover the rest
  const unsigned g = grid_for(n, kMoeBlock);
  return g > 65535u ? 65535u : g;
}

void moe_permute_forward(const MoePermuteArgs<float>& a) {
  if (a.rows < 0 || a.dim < 0)
    moe_error("moe_permute_forward", "sizes (rows " + std::to_string(a.rows) + ", dim " + std::to_string(a.dim) + ") must be >= 0");
  if (a.rows * a.dim == 0) return;
  launch_kernel("moe_permute_forward", dim3(moe_grid(a.rows * a.dim)), dim3(kMoeBlock), moe_permute_forward_kernel<float>, a);
}

void moe_unpermute_forward(const MoeUnpermuteArgs<float>& a) {
  if (a.n_tokens < 0 || a.topk < 0 || a.dim < 0)
    moe_error("moe_unpermute_forward", "sizes (n_tokens " + std::to_string(a.n_tokens) + ", topk " + std::to_string(a.topk) +
                                           ", dim " + std::to_string(a.dim) + ") must be >= 0");
  if (a.n_tokens * a.dim == 0 || a.topk == 0) return;
  launch_kernel("moe_unpermute_forward", dim3(moe_grid(a.n_tokens * a.dim)), dim3(kMoeBlock), moe_unpermute_forward_kernel<float>, a);
}

void moe_grouped_gemm_forward(const MoeGroupedGemmArgs<float>& a) {
  if (a.n_experts < 0 || a.rows < 0 || a.in_dim < 0 || a.out_dim < 0)
    moe_error("moe_grouped_gemm_forward", "sizes (n_experts " + std::to_string(a.n_experts) + ", rows " + std::to_string(a.rows) +
                                              ", in_dim " + std::to_string(a.in_dim) + ", out_dim " + std::to_string(a.out_dim) +
                                              ") must be >= 0");
  const int64_t col_tiles = (a.out_dim + kMoeTile - 1) / kMoeTile;
  if (col_tiles > 65535)
    moe_error("moe_grouped_gemm_forward", "out_dim " + std::to_string(a.out_dim) + " is over this kernel's limit of " +
                                              std::to_string(65535 * kMoeTile) + " (grid y counts its 16-column tiles)");
  if (a.rows == 0 || a.out_dim == 0) return;
  const unsigned row_tiles = grid_for(a.rows, kMoeTile) + (unsigned)a.n_experts;   // >= Σ_e ceil(n_e / 16)
  launch_kernel("moe_grouped_gemm_forward", dim3(row_tiles, (unsigned)col_tiles), dim3(kMoeTile, kMoeTile),
                moe_grouped_gemm_forward_kernel<float>, a);
}

}  // namespace sg::SG_BACKEND_NS
