// cuda/index.h — the index kernels' host functions (cuda/kernels/index.cuh), declared for both builds of that
// header: sg::cuda (the GPU; pointers are device memory) and sg::cuda_emu (the CPU emulation, fibers per lane;
// pointers are host memory). f32 data, as the GPU trains; int64 or int32 indices, as ops/cpu/index.h.
// Argument meaning and layouts: ops/kernel_abi/index.h.
#pragma once
#include <cstdint>

#include "ops/kernel_abi/index.h"

namespace sg::cuda {
void index_select_forward(const IndexSelectArgs<float, int64_t>& a);
void index_select_forward(const IndexSelectArgs<float, int32_t>& a);
void index_add_forward(const IndexAddArgs<float, int64_t>& a);
void index_add_forward(const IndexAddArgs<float, int32_t>& a);
void gather_forward(const GatherArgs<float, int64_t>& a);
void gather_forward(const GatherArgs<float, int32_t>& a);
void scatter_add_forward(const ScatterAddArgs<float, int64_t>& a);
void scatter_add_forward(const ScatterAddArgs<float, int32_t>& a);
}  // namespace sg::cuda

namespace sg::cuda_emu {
void index_select_forward(const IndexSelectArgs<float, int64_t>& a);
void index_select_forward(const IndexSelectArgs<float, int32_t>& a);
void index_add_forward(const IndexAddArgs<float, int64_t>& a);
void index_add_forward(const IndexAddArgs<float, int32_t>& a);
void gather_forward(const GatherArgs<float, int64_t>& a);
void gather_forward(const GatherArgs<float, int32_t>& a);
void scatter_add_forward(const ScatterAddArgs<float, int64_t>& a);
void scatter_add_forward(const ScatterAddArgs<float, int32_t>& a);
}  // namespace sg::cuda_emu
