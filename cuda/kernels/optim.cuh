// cuda/kernels/optim.cuh — the optimizer step and gradient clipping on the device: the AdamW and SGD updates,
// the sum of squares behind the global gradient norm, and the in-place scale that clips. Compiled by nvcc
// (cuda/optim.cu) and by g++ for the emulation (cuda/emu/optim_emu.cpp); see cuda/kernels/common.cuh.
//
// The element-wise kernels (AdamW, SGD, scale) are one thread per element, grid-stride loops, and do the CPU
// plain loop's operations (ops/cpu/optim.cpp, built with -ffp-contract=off) in the same order, each one
// rounded: the products and sums are spelled __fmul_rn / __fadd_rn, because nvcc would otherwise fuse
// β1·m + (1 − β1)·g into an FMA and round once where the CPU rounds twice. sqrt and division are IEEE
// (__fsqrt_rn, __fdiv_rn, also under --use_fast_math). So the updated p, m, v, buf are the CPU's bits.
//
// The sum of squares is DETERMINISTIC but not the CPU's bits: every buffer is cut into blocks of
// kSumSquaresBlockElems elements; thread t of a block sums its 32 elements (t, t + 256, ...) in double, the
// block's 256 sums are added as a fixed binary tree in shared memory, and the block's sum lands in its own
// slot of `partials`, in (buffer, block) order. A second kernel (one block) adds the slots the same way. No
// atomics, so every run and every lane order gives the same bits; the CPU adds in element order (v1) or in 8
// lanes (v2), so the results differ by rounding only (each square is exact in double; see the test).
#pragma once
#include "cuda/kernels/common.cuh"
#include "ops/kernel_abi/optim.h"

namespace sg::SG_BACKEND_NS {

constexpr int kOptimBlock = 256;  // threads per block, every kernel here

__global__ void adamw_update_kernel(AdamWKernelArgs a) {
  const AdamWUpdateArgs h = a.step;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < a.n; i += (int64_t)gridDim.x * blockDim.x) {
    const float g = a.g[i];
    const float p = __fmul_rn(a.p[i], h.decay_factor);
    const float m = __fadd_rn(__fmul_rn(h.beta1, a.m[i]), __fmul_rn(__fsub_rn(1.0f, h.beta1), g));
    const float v = __fadd_rn(__fmul_rn(h.beta2, a.v[i]), __fmul_rn(__fmul_rn(__fsub_rn(1.0f, h.beta2), g), g));
    const float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(v), h.bias_correction2_sqrt), h.eps);
    a.m[i] = m;
    a.v[i] = v;
    a.p[i] = __fsub_rn(p, __fdiv_rn(__fmul_rn(h.step_size, m), denom));
  }
}

__global__ void sgd_update_kernel(SGDKernelArgs a) {
  const SGDUpdateArgs h = a.step;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < a.n; i += (int64_t)gridDim.x * blockDim.x) {
    float d = __fadd_rn(a.g[i], __fmul_rn(h.weight_decay, a.p[i]));
    if (a.buf) {
      const float b = h.first ? d : __fadd_rn(__fmul_rn(h.momentum, a.buf[i]), d);
      a.buf[i] = b;
      d = h.nesterov ? __fadd_rn(d, __fmul_rn(h.momentum, b)) : b;
    }
    a.p[i] = __fsub_rn(a.p[i], __fmul_rn(h.lr, d));
  }
}

__global__ void scale_kernel(ScaleArgs a) {
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < a.n; i += (int64_t)gridDim.x * blockDim.x)
    a.x[i] = __fmul_rn(a.x[i], a.c);
}

// The block's kOptimBlock values in `s` summed as a fixed tree (s[t] += s[t + stride], stride 128, 64, ..., 1);
// the total ends in s[0]. Every lane of the block calls it.
__device__ __forceinline__ void block_tree_sum(double* s) {
  const int t = threadIdx.x;
  __syncthreads();
  for (int stride = kOptimBlock / 2; stride > 0; stride /= 2) {
    if (t < stride) s[t] = s[t] + s[t + stride];
    __syncthreads();
  }
}

// One block per kSumSquaresBlockElems elements of x: partials[blockIdx.x] = Σ x[j]² over the block's elements.
// (double)x·(double)x is exact (24-bit significands), so a fused multiply-add rounds as the separate add does.
__global__ void sum_squares_blocks_kernel(const float* x, int64_t n, double* partials) {
  __shared__ double s[kOptimBlock];
  const int t = threadIdx.x;
  const int64_t base = (int64_t)blockIdx.x * kSumSquaresBlockElems;
  const int64_t end = base + kSumSquaresBlockElems < n ? base + kSumSquaresBlockElems : n;
  double acc = 0.0;
  for (int64_t j = base + t; j < end; j += kOptimBlock) acc += (double)x[j] * (double)x[j];
  s[t] = acc;
  block_tree_sum(s);
  if (t == 0) partials[blockIdx.x] = s[0];
}

// One block: out[0] = Σ partials[j], j < count — thread t adds j = t, t + 256, ... in order, then the tree.
__global__ void sum_squares_final_kernel(const double* partials, int64_t count, double* out) {
  __shared__ double s[kOptimBlock];
  const int t = threadIdx.x;
  double acc = 0.0;
  for (int64_t j = t; j < count; j += kOptimBlock) acc += partials[j];
  s[t] = acc;
  block_tree_sum(s);
  if (t == 0) out[0] = s[0];
}

// At most 65535 blocks for the element-wise kernels; the grid-stride loops cover the rest.
inline unsigned optim_grid(int64_t n) {
  const unsigned g = grid_for(n, kOptimBlock);
  return g > 65535u ? 65535u : g;
}

inline void optim_check(bool ok, const char* kernel, const std::string& what) {
  if (!ok) throw std::runtime_error(std::string("[cuda] ") + kernel + ": " + what);
}

void adamw_update_f32(const AdamWKernelArgs& a) {
  optim_check(a.n >= 0, "adamw_update_f32", "n = " + std::to_string(a.n) + " is negative");
  if (a.n == 0) return;
  optim_check(a.p && a.g && a.m && a.v, "adamw_update_f32", "p, g, m and v must not be null");
  launch_kernel("adamw_update_f32", dim3(optim_grid(a.n)), dim3(kOptimBlock), adamw_update_kernel, a);
}

void sgd_update_f32(const SGDKernelArgs& a) {
  optim_check(a.n >= 0, "sgd_update_f32", "n = " + std::to_string(a.n) + " is negative");
  if (a.n == 0) return;
  optim_check(a.p && a.g, "sgd_update_f32", "p and g must not be null");
  launch_kernel("sgd_update_f32", dim3(optim_grid(a.n)), dim3(kOptimBlock), sgd_update_kernel, a);
}

void scale_f32(const ScaleArgs& a) {
  optim_check(a.n >= 0, "scale_f32", "n = " + std::to_string(a.n) + " is negative");
  if (a.n == 0) return;
  optim_check(a.x != nullptr, "scale_f32", "x must not be null");
  launch_kernel("scale_f32", dim3(optim_grid(a.n)), dim3(kOptimBlock), scale_kernel, a);
}

// One launch per non-empty buffer (its blocks' sums go to consecutive slots), then the final pass. An empty
// list, or only empty buffers, gives out[0] = 0.
void sum_squares_f32(const SumSquaresArgs& a) {
  optim_check(a.count >= 0, "sum_squares_f32", "count = " + std::to_string(a.count) + " is negative");
  optim_check(a.count == 0 || (a.x && a.n), "sum_squares_f32", "the x and n tables must not be null");
  optim_check(a.out != nullptr, "sum_squares_f32", "out must not be null");
  for (int64_t i = 0; i < a.count; ++i) {
    optim_check(a.n[i] >= 0, "sum_squares_f32", "n[" + std::to_string(i) + "] = " + std::to_string(a.n[i]) + " is negative");
    optim_check(a.n[i] == 0 || a.x[i], "sum_squares_f32", "x[" + std::to_string(i) + "] is null");
  }
  const int64_t slots = sum_squares_partials(a.n, a.count);
  optim_check(slots == 0 || a.partials, "sum_squares_f32", "partials must not be null (" + std::to_string(slots) + " slots)");
  int64_t offset = 0;
  for (int64_t i = 0; i < a.count; ++i) {
    if (a.n[i] == 0) continue;
    const unsigned blocks = grid_for(a.n[i], kSumSquaresBlockElems);
    launch_kernel("sum_squares_f32 (blocks)", dim3(blocks), dim3(kOptimBlock), sum_squares_blocks_kernel, a.x[i], a.n[i],
                  a.partials + offset);
    offset += blocks;
  }
  launch_kernel("sum_squares_f32 (final)", dim3(1), dim3(kOptimBlock), sum_squares_final_kernel,
                (const double*)a.partials, offset, a.out);
}

}  // namespace sg::SG_BACKEND_NS
