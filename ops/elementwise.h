// ops/elementwise.h — elementwise ops: arithmetic with numpy broadcasting, activations, where,
// masked_fill, pow, dtype casts. Forward and backward side by side in ops/elementwise.cpp;
// kernels in ops/cpu/elementwise.cpp.
#pragma once
#include "autograd/tensor.h"

namespace sg {

Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor add(const Tensor& a, double b);
Tensor mul(const Tensor& a, double b);
Tensor neg(const Tensor& x);
Tensor square(const Tensor& x);
Tensor pow(const Tensor& x, double p);   // x^p; for non-integer p, x must be positive
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor sqrt(const Tensor& x);
Tensor rsqrt(const Tensor& x);
Tensor abs(const Tensor& x);
Tensor relu(const Tensor& x);
Tensor sigmoid(const Tensor& x);
Tensor silu(const Tensor& x);
Tensor gelu(const Tensor& x);             // tanh approximation
Tensor tanh(const Tensor& x);
Tensor softplus(const Tensor& x);
Tensor logsigmoid(const Tensor& x);

// out = cond ? a : b, broadcasting all three; cond is any dtype (non-zero = true).
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);
// out = mask ? value : x, mask broadcast to x's shape (non-zero = true).
Tensor masked_fill(const Tensor& x, const Tensor& mask, double value);
// dtype conversion (differentiable between f32 and f64).
Tensor to_dtype(const Tensor& x, DType dtype);

inline Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
inline Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
inline Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
inline Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
inline Tensor operator-(const Tensor& a) { return neg(a); }
inline Tensor operator+(const Tensor& a, double b) { return add(a, b); }
inline Tensor operator-(const Tensor& a, double b) { return add(a, -b); }
inline Tensor operator*(const Tensor& a, double b) { return mul(a, b); }
inline Tensor operator*(double a, const Tensor& b) { return mul(b, a); }
inline Tensor operator/(const Tensor& a, double b) { return mul(a, 1.0 / b); }

}  // namespace sg
