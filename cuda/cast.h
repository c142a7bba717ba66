// cuda/cast.h — the dtype cast kernel's host function (cuda/kernels/cast.cuh), declared for both builds of that
// header: sg::cuda (the GPU; pointers are device memory) and sg::cuda_emu (the CPU emulation; pointers are host
// memory). Every pair of element types, f64 included (the dispatch, ops/kernels.h, decides what a CUDA tensor may
// be). Bad arguments throw std::runtime_error("[cuda] cast: ...").
#pragma once
#include "ops/kernel_abi/cast.h"

namespace sg::cuda {
void cast(const CastArgs& a);   // 0 <= ndim <= kMaxKernelDims
}  // namespace sg::cuda

namespace sg::cuda_emu {
void cast(const CastArgs& a);
}  // namespace sg::cuda_emu
