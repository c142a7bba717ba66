// cuda/softmax.h — the softmax, log_softmax and cross-entropy kernels' host functions (cuda/kernels/softmax.cuh),
// declared for both builds of that header: sg::cuda (the GPU; pointers are device memory) and sg::cuda_emu (the
// CPU emulation; pointers are host memory). f32. rows >= 0, cols (V) >= 1, else std::runtime_error("[cuda] ...").
#pragma once
#include "ops/kernel_abi/softmax.h"

namespace sg::cuda {
void softmax_forward(const SoftmaxArgs<float>& a);
void softmax_backward(const SoftmaxBackwardArgs<float>& a);
void log_softmax_forward(const LogSoftmaxArgs<float>& a);
void log_softmax_backward(const LogSoftmaxBackwardArgs<float>& a);
void cross_entropy_forward(const CrossEntropyArgs<float>& a);
void cross_entropy_backward(const CrossEntropyBackwardArgs<float>& a);
}  // namespace sg::cuda

namespace sg::cuda_emu {
void softmax_forward(const SoftmaxArgs<float>& a);
void softmax_backward(const SoftmaxBackwardArgs<float>& a);
void log_softmax_forward(const LogSoftmaxArgs<float>& a);
void log_softmax_backward(const LogSoftmaxBackwardArgs<float>& a);
void cross_entropy_forward(const CrossEntropyArgs<float>& a);
void cross_entropy_backward(const CrossEntropyBackwardArgs<float>& a);
}  // namespace sg::cuda_emu
