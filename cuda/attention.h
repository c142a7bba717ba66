// cuda/attention.h — the fused attention kernels' host functions (cuda/kernels/attention.cuh), declared for both
// builds of that header: sg::cuda (the GPU; pointers are device memory) and sg::cuda_emu (the CPU emulation,
// fibers per lane; pointers are host memory). f32. The contract is the CPU kernels' (ops/cpu/attention.h):
//   attention_forward   q, k, v (strided, AttentionArgs) -> o [B, H, S, Dv], lse [B, H, S]   (contiguous)
//   attention_backward  + o, lse, do_ [B, H, S, Dv] -> dq [B, H, S, D], dk [B, Hkv, T, D], dv [B, Hkv, T, Dv]
//                       (contiguous, overwritten; GQA heads summed in a fixed order, no atomics)
// Head dims D, Dv up to 256; a bad argument throws "[cuda] attention_forward: ..." (or _backward).
#pragma once
#include "ops/kernel_abi/attention.h"

namespace sg::cuda {
void attention_forward(const AttentionArgs& a, const float* q, const float* k, const float* v, float* o, float* lse);
void attention_backward(const AttentionArgs& a, const float* q, const float* k, const float* v, const float* o,
                        const float* lse, const float* do_, float* dq, float* dk, float* dv);
}  // namespace sg::cuda

namespace sg::cuda_emu {
void attention_forward(const AttentionArgs& a, const float* q, const float* k, const float* v, float* o, float* lse);
void attention_backward(const AttentionArgs& a, const float* q, const float* k, const float* v, const float* o,
                        const float* lse, const float* do_, float* dq, float* dk, float* dv);
}  // namespace sg::cuda_emu
