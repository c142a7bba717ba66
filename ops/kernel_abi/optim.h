// ops/kernel_abi/optim.h — the optimizer kernels' arguments (AdamW, SGD, the gradient norm's sum of squares,
// the clipping scale), one plain struct per kernel.
//
// AdamWUpdateArgs and SGDUpdateArgs are the per-step scalars every backend's kernel takes (ops/cpu/optim.h
// names them sg::cpu::AdamWUpdateArgs / SGDUpdateArgs too); the *KernelArgs structs add the buffers, as the
// device kernels (cuda/kernels/optim.cuh) take them. Pointers are host memory for the CPU kernels and the
// CUDA emulation, device memory for CUDA. Compiles as C++ and CUDA. The math is written out in
// ops/cpu/optim.h and train/optim.h.
#pragma once
#include <cstdint>

namespace sg {

// ---- AdamW ------------------------------------------------------------------------------------
// The per-step scalars, computed once per parameter by the optimizer (train/optim.cpp) in double
// from its config and the parameter's step t, then rounded to f32.
struct AdamWUpdateArgs {
  float lr = 0, beta1 = 0, beta2 = 0, eps = 0;
  float decay_factor = 1;           // 1 − lr·λ (1 when this parameter is not decayed)
  float step_size = 0;              // lr / (1 − β1^t)
  float bias_correction2_sqrt = 1;  // sqrt(1 − β2^t)
};

// p, g, m, v: (n); p, m, v updated in place (ops/cpu/optim.h adamw_update_f32).
struct AdamWKernelArgs {
  int64_t n = 0;
  float* p = nullptr;
  const float* g = nullptr;
  float* m = nullptr;
  float* v = nullptr;
  AdamWUpdateArgs step;
};

// ---- SGD with momentum (PyTorch's torch.optim.SGD, dampening 0) --------------------------------
struct SGDUpdateArgs {
  float lr = 0, momentum = 0, weight_decay = 0;
  int32_t nesterov = 0;  // 1: p ← p − lr·(d + μ·buf)
  int32_t first = 0;     // 1: this parameter's first step, buf ← d (not μ·buf + d)
};

// p, g: (n); buf: (n), or null when momentum is 0 (ops/cpu/optim.h sgd_update_f32).
struct SGDKernelArgs {
  int64_t n = 0;
  float* p = nullptr;
  const float* g = nullptr;
  float* buf = nullptr;
  SGDUpdateArgs step;
};

// ---- sum of squares (the global gradient norm is its square root) -------------------------------
// out[0] = Σ_i Σ_j x[i][j]² in double, j < n[i], i < count. The TABLES x and n are host arrays (the
// launcher reads the sizes to size the grids); the buffers x[i], `partials` and `out` are in the kernel's
// memory (device memory for CUDA). `partials` is scratch of sum_squares_partials(n, count) doubles: one
// per block of one buffer, summed in a fixed order (ops/kernel_abi has no allocator; the caller owns it).
struct SumSquaresArgs {
  const float* const* x = nullptr;
  const int64_t* n = nullptr;
  int64_t count = 0;
  double* partials = nullptr;
  double* out = nullptr;
};

// Elements one block of the sum-of-squares kernel covers (256 threads × 32): the grid of buffer i has
// ceil(n[i] / kSumSquaresBlockElems) blocks.
constexpr int64_t kSumSquaresBlockElems = 8192;
inline int64_t sum_squares_partials(const int64_t* n, int64_t count) {
  int64_t total = 0;
  for (int64_t i = 0; i < count; ++i) total += (n[i] + kSumSquaresBlockElems - 1) / kSumSquaresBlockElems;
  return total;
}

// ---- scale (the clipping step) ------------------------------------------------------------------
// x: (n), in place: x ← c·x.
struct ScaleArgs {
  int64_t n = 0;
  float* x = nullptr;
  float c = 1;
};

}  // namespace sg
