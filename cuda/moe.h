// cuda/moe.h — the MoE primitives' host functions (cuda/kernels/moe.cuh), declared for both builds of that header:
// sg::cuda (the GPU; pointers are device memory) and sg::cuda_emu (the CPU emulation, fibers per lane; pointers
// are host memory). f32. Arguments and the routing-plan layout: ops/kernel_abi/moe.h; CPU references: ops/cpu/moe.h.
#pragma once
#include "ops/kernel_abi/moe.h"

namespace sg::cuda {
void moe_permute_forward(const MoePermuteArgs<float>& a);
void moe_grouped_gemm_forward(const MoeGroupedGemmArgs<float>& a);
void moe_unpermute_forward(const MoeUnpermuteArgs<float>& a);
}  // namespace sg::cuda

namespace sg::cuda_emu {
void moe_permute_forward(const MoePermuteArgs<float>& a);
void moe_grouped_gemm_forward(const MoeGroupedGemmArgs<float>& a);
void moe_unpermute_forward(const MoeUnpermuteArgs<float>& a);
}  // namespace sg::cuda_emu
