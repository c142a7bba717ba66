// ops/cpu/optim.h — CPU kernels of the optimizer step and of gradient clipping: the AdamW and SGD
// updates, the sum of squares behind the global gradient norm, and the in-place scale that clips.
// train/optim.cpp and train/clip.cpp reach them through ops/optim.h (one device switch per kernel),
// never directly, so a device backend can run the same step.
//
// Every kernel is a plain function over raw, contiguous f32 buffers of n elements, in numbered
// versions side by side: v1_naive (one plain loop on the calling thread, the reference) and
// v2_parallel (the same formula as a vector loop — ops/cpu/simd.h — over contiguous chunks on
// sg::parallel_for). The unnumbered name picks v1 under sg::naive_kernels(), else v2. The element-wise
// kernels do the same arithmetic in the same order for every element in both versions, so v1 and v2
// agree bit for bit. sum_squares fixes its chunking (kSumSquaresChunk) and, in v2, the order inside a
// chunk (8 lanes), so its result is the same on any thread count (and any CPU); v1 and v2 differ by
// rounding only (~1e-16 relative).
//
// The math (the PyTorch order, the placement of ε) is written out in train/optim.h.
//
// What this is not: autograd (these functions know nothing about Tensor or the tape), nor a fused
// multi-tensor ("foreach") step — one parameter per call, except sum_squares which takes a list.
#pragma once
#include <cstdint>

#include "ops/kernel_abi/optim.h"

namespace sg::cpu {

// ---- AdamW ------------------------------------------------------------------------------------
// The per-step scalars (lr, β1, β2, ε, decay_factor, step_size, bias_correction2_sqrt): one struct for
// every backend, in ops/kernel_abi/optim.h.
using sg::AdamWUpdateArgs;
// p, g, m, v: (n). p, m, v are updated in place:
//   p ← p·decay_factor;  m ← β1·m + (1 − β1)·g;  v ← β2·v + (1 − β2)·g²;
//   p ← p − step_size · m / (sqrt(v) / bias_correction2_sqrt + ε)
void adamw_update_f32(float* p, const float* g, float* m, float* v, int64_t n, const AdamWUpdateArgs& a);
void adamw_update_f32_v1_naive(float* p, const float* g, float* m, float* v, int64_t n, const AdamWUpdateArgs& a);
void adamw_update_f32_v2_parallel(float* p, const float* g, float* m, float* v, int64_t n, const AdamWUpdateArgs& a);

// ---- SGD with momentum (PyTorch's torch.optim.SGD, dampening 0) --------------------------------
using sg::SGDUpdateArgs;  // lr, momentum, weight_decay, nesterov, first (ops/kernel_abi/optim.h)
// p, g: (n); buf: (n), or null when momentum is 0 (plain SGD, no buffer). p, buf updated in place:
//   d ← g + λ·p;  buf ← first ? d : μ·buf + d;  p ← p − lr·(buf ? (nesterov ? d + μ·buf : buf) : d)
void sgd_update_f32(float* p, const float* g, float* buf, int64_t n, const SGDUpdateArgs& a);
void sgd_update_f32_v1_naive(float* p, const float* g, float* buf, int64_t n, const SGDUpdateArgs& a);
void sgd_update_f32_v2_parallel(float* p, const float* g, float* buf, int64_t n, const SGDUpdateArgs& a);

// ---- sum of squares (the global gradient norm is its square root) -------------------------------
// Elements per chunk. The sum is computed chunk by chunk: every buffer is cut into chunks of
// kSumSquaresChunk elements (the last one shorter), each chunk is summed in double (v1: in element
// order; v2: in 8 interleaved lanes, added in lane order), and the chunk sums are added in (buffer,
// chunk) order. So the result does not depend on the thread count.
constexpr int64_t kSumSquaresChunk = 1 << 16;
// x[i]: (n[i]) for i < count. Returns Σ_i Σ_j x[i][j]² (double).
double sum_squares_f32(const float* const* x, const int64_t* n, int64_t count);
double sum_squares_f32_v1_naive(const float* const* x, const int64_t* n, int64_t count);
double sum_squares_f32_v2_parallel(const float* const* x, const int64_t* n, int64_t count);

// ---- scale (the clipping step) ------------------------------------------------------------------
// x: (n), in place: x ← c·x.
void scale_f32(float* x, int64_t n, float c);
void scale_f32_v1_naive(float* x, int64_t n, float c);
void scale_f32_v2_parallel(float* x, int64_t n, float c);

}  // namespace sg::cpu
