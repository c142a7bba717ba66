// cuda/kernels/cast.cuh — the dtype cast (to_dtype): one thread per output element, grid-stride loops, a strided
// source and a contiguous destination, any pair of the eight element types. Compiled by nvcc (cuda/cast.cu) and by
// g++ for the emulation (cuda/emu/cast_emu.cpp); see cuda/kernels/common.cuh.
//
// Each element converts through cast_element::load / store (ops/kernel_abi/cast.h): the CPU kernel's functions,
// with ops/fp8.h's encoders for bf16 / f16 / FP8, so the backends give the same bits. The buffers are addressed
// with each type's own size: a 1- or 2-byte element is read and written as itself (the copy kernel, which moves
// 32-bit words, cannot move those).
#pragma once
#include "cuda/kernels/common.cuh"
#include "ops/kernel_abi/cast.h"

namespace sg::SG_BACKEND_NS {

__global__ void cast_kernel(CastArgs a, int64_t n) {
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    int64_t rest = i, is = 0;
    for (int d = a.ndim - 1; d >= 0; d--) {
      is += rest % a.shape[d] * a.src_strides[d];
      rest /= a.shape[d];
    }
    cast_element::store(a.dst, i, a.dst_type, cast_element::load(a.src, is, a.src_type));
  }
}

inline bool known_elem_type(ElemType t) { return (int32_t)t >= (int32_t)ElemType::f32 && (int32_t)t <= (int32_t)ElemType::f8e5m2; }

// 256 threads a block; at most 65535 blocks, the grid-stride loop covers the rest.
void cast(const CastArgs& a) {
  if (a.ndim < 0 || a.ndim > kMaxKernelDims)
    throw std::runtime_error("[cuda] cast: ndim " + std::to_string(a.ndim) + " is outside [0, " +
                             std::to_string(kMaxKernelDims) + "]");
  if (!known_elem_type(a.src_type) || !known_elem_type(a.dst_type))
    throw std::runtime_error("[cuda] cast: unknown element type (codes " + std::to_string((int)a.src_type) + " -> " +
                             std::to_string((int)a.dst_type) + ")");
  int64_t n = 1;
  for (int d = 0; d < a.ndim; d++) {
    if (a.shape[d] < 0) throw std::runtime_error("[cuda] cast: shape[" + std::to_string(d) + "] < 0");
    n *= a.shape[d];
  }
  if (n == 0) return;
  const unsigned g = grid_for(n, 256);
  launch_kernel("cast", dim3(g > 65535u ? 65535u : g), dim3(256), cast_kernel, a, n);
}

}  // namespace sg::SG_BACKEND_NS
