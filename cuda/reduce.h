// cuda/reduce.h — the row-reduction and strided-copy kernels' host functions (cuda/kernels/reduce.cuh), declared
// for both builds of that header: sg::cuda (the GPU; pointers are device memory) and sg::cuda_emu (the CPU
// emulation; pointers are host memory). f32. Bad arguments throw std::runtime_error("[cuda] <kernel>: ...").
#pragma once
#include "ops/kernel_abi/reduce.h"

namespace sg::cuda {
void reduce_rows(const ReduceRowsArgs<float>& a);          // op sum / max / min; max/min need cols >= 1
void arg_reduce_rows(const ArgReduceRowsArgs<float>& a);   // op max / min; cols >= 1
void strided_copy(const StridedCopyArgs<float>& a);        // 0 <= ndim <= kMaxKernelDims
}  // namespace sg::cuda

namespace sg::cuda_emu {
void reduce_rows(const ReduceRowsArgs<float>& a);
void arg_reduce_rows(const ArgReduceRowsArgs<float>& a);
void strided_copy(const StridedCopyArgs<float>& a);
}  // namespace sg::cuda_emu
