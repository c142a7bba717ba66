// cuda/norm.h — the rms_norm, layer_norm and rope kernels' host functions (cuda/kernels/norm.cuh), declared for
// both builds of that header: sg::cuda (the GPU; pointers are device memory) and sg::cuda_emu (the CPU emulation;
// pointers are host memory). f32. rows >= 0, D >= 1, dr even, else std::runtime_error("[cuda] <kernel>: ...").
// The backward functions need a scratch buffer for dweight / dbias: its size is in ops/kernel_abi/norm.h
// (rms_norm_backward_scratch_size, layer_norm_backward_scratch_size, in floats).
#pragma once
#include "ops/kernel_abi/norm.h"

namespace sg::cuda {
void rms_norm_forward(const RmsNormArgs<float>& a);
void rms_norm_backward(const RmsNormBackwardArgs<float>& a);
void layer_norm_forward(const LayerNormArgs<float>& a);
void layer_norm_backward(const LayerNormBackwardArgs<float>& a);
void rope_forward(const RopeArgs<float>& a);
void rope_backward(const RopeBackwardArgs<float>& a);
}  // namespace sg::cuda

namespace sg::cuda_emu {
void rms_norm_forward(const RmsNormArgs<float>& a);
void rms_norm_backward(const RmsNormBackwardArgs<float>& a);
void layer_norm_forward(const LayerNormArgs<float>& a);
void layer_norm_backward(const LayerNormBackwardArgs<float>& a);
void rope_forward(const RopeArgs<float>& a);
void rope_backward(const RopeBackwardArgs<float>& a);
}  // namespace sg::cuda_emu
