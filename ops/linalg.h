// ops/linalg.h — matrix products.
//   matmul(a, b): a [..., M, K] · b [..., K, N] -> [..., M, N], batch dims broadcast (numpy rules);
//                 a 1-D a is treated as [1, K], a 1-D b as [K, 1] (that dim is dropped again).
//   linear(x, W): x [..., in] · Wᵀ, W [out, in] (DeepSeek convention: y = x Wᵀ, no bias).
// Both call the hand-written GEMM (ops/cpu/gemm.h); transposed views reach it as trans flags, not copies.
#pragma once
#include "autograd/tensor.h"

namespace sg {

Tensor matmul(const Tensor& a, const Tensor& b);
Tensor linear(const Tensor& x, const Tensor& weight);

}  // namespace sg
