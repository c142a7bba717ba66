// cuda/elementwise.h — the elementwise kernels' host functions (cuda/kernels/elementwise.cuh), declared for both
// builds of that header: sg::cuda (the GPU; pointers are device memory) and sg::cuda_emu (the CPU emulation,
// fibers per lane; pointers are host memory). f32, as the GPU trains; the CPU kernels keep f64 for gradchecks.
// Bad arguments to pow_forward / where_forward throw std::runtime_error("[cuda] <kernel>: ...").
#pragma once
#include "ops/kernel_abi/elementwise.h"

namespace sg::cuda {
void unary_forward(const UnaryArgs<float>& a);
void unary_backward(const UnaryBackwardArgs<float>& a);
void binary_forward(const BinaryArgs<float>& a);
void affine_forward(const AffineArgs<float>& a);
void pow_forward(const PowArgs<float>& a);       // n >= 0
void where_forward(const WhereArgs<float>& a);   // 0 <= ndim <= kMaxKernelDims; cond f32, f64, i32 or i64
}  // namespace sg::cuda

namespace sg::cuda_emu {
void unary_forward(const UnaryArgs<float>& a);
void unary_backward(const UnaryBackwardArgs<float>& a);
void binary_forward(const BinaryArgs<float>& a);
void affine_forward(const AffineArgs<float>& a);
void pow_forward(const PowArgs<float>& a);       // n >= 0
void where_forward(const WhereArgs<float>& a);   // 0 <= ndim <= kMaxKernelDims; cond f32, f64, i32 or i64
}  // namespace sg::cuda_emu
