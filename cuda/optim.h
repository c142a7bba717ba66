// cuda/optim.h — the optimizer kernels' host functions (cuda/kernels/optim.cuh), declared for both builds of
// that header: sg::cuda (the GPU; pointers are device memory) and sg::cuda_emu (the CPU emulation, fibers per
// lane; pointers are host memory). Same names and math as ops/cpu/optim.h; AdamW, SGD and scale give the CPU
// plain loops' bits, sum_squares a deterministic double within rounding of the CPU's (optim.cuh says why).
#pragma once
#include "ops/kernel_abi/optim.h"

namespace sg::cuda {
void adamw_update_f32(const AdamWKernelArgs& a);
void sgd_update_f32(const SGDKernelArgs& a);
void sum_squares_f32(const SumSquaresArgs& a);  // the result in a.out[0] (device memory)
void scale_f32(const ScaleArgs& a);
}  // namespace sg::cuda

namespace sg::cuda_emu {
void adamw_update_f32(const AdamWKernelArgs& a);
void sgd_update_f32(const SGDKernelArgs& a);
void sum_squares_f32(const SumSquaresArgs& a);
void scale_f32(const ScaleArgs& a);
}  // namespace sg::cuda_emu
