// cuda/topk.h — the topk / argmax kernels' host functions (cuda/kernels/topk.cuh), declared for both builds of
// that header: sg::cuda (the GPU; pointers are device memory) and sg::cuda_emu (the CPU emulation, fibers per
// lane; pointers are host memory). f32, as the GPU trains. Arguments and the order: ops/kernel_abi/topk.h.
// k is at most 256 (cuda/kernels/topk.cuh says why); a larger k throws, naming the kernel.
#pragma once
#include "ops/kernel_abi/topk.h"

namespace sg::cuda {
void topk_forward(const TopkArgs<float>& a);
void topk_backward(const TopkBackwardArgs<float>& a);
void argmax_forward(const ArgmaxArgs<float>& a);
}  // namespace sg::cuda

namespace sg::cuda_emu {
void topk_forward(const TopkArgs<float>& a);
void topk_backward(const TopkBackwardArgs<float>& a);
void argmax_forward(const ArgmaxArgs<float>& a);
}  // namespace sg::cuda_emu
