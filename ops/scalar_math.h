// ops/scalar_math.h — scalar math shared by every backend, written once so CPU, CUDA and Metal
// agree bit for bit by construction (README.md, Design §3). Each function's forward and derivative sit
// side by side. Compiles as C++ and as CUDA (SG_HOST_DEVICE); the Metal shim includes it too.
//
// Conventions: `x` is the input, `y` the forward output (some derivatives are cheaper from y),
// `dy` the incoming gradient; the *_backward functions return dx.
#pragma once
#include <cmath>

#if defined(__CUDACC__)
#define SG_HOST_DEVICE __host__ __device__
#else
#define SG_HOST_DEVICE
#endif

namespace sg::scalar {

// sigmoid(x) = 1 / (1 + e^-x), computed without overflow for large |x|.
template <class T> SG_HOST_DEVICE inline T sigmoid(T x) {
  if (x >= T(0)) return T(1) / (T(1) + std::exp(-x));
  T e = std::exp(x);
  return e / (T(1) + e);
}
// d sigmoid/dx = y (1 - y)
template <class T> SG_HOST_DEVICE inline T sigmoid_backward(T y, T dy) { return dy * y * (T(1) - y); }

// silu(x) = x sigmoid(x)
template <class T> SG_HOST_DEVICE inline T silu(T x) { return x * sigmoid(x); }
// d silu/dx = s + x s (1 - s),  s = sigmoid(x)
template <class T> SG_HOST_DEVICE inline T silu_backward(T x, T dy) {
  T s = sigmoid(x);
  return dy * (s + x * s * (T(1) - s));
}

// gelu, tanh form: 0.5 x (1 + tanh(u)),  u = sqrt(2/pi) (x + 0.044715 x^3)
template <class T> SG_HOST_DEVICE inline T gelu(T x) {
  const T c = T(0.7978845608028654);
  T u = c * (x + T(0.044715) * x * x * x);
  return T(0.5) * x * (T(1) + std::tanh(u));
}
// d gelu/dx = 0.5 (1 + t) + 0.5 x (1 - t^2) c (1 + 3 * 0.044715 x^2),  t = tanh(u)
template <class T> SG_HOST_DEVICE inline T gelu_backward(T x, T dy) {
  const T c = T(0.7978845608028654);
  T u = c * (x + T(0.044715) * x * x * x);
  T t = std::tanh(u);
  return dy * (T(0.5) * (T(1) + t) + T(0.5) * x * (T(1) - t * t) * c * (T(1) + T(3) * T(0.044715) * x * x));
}

// softplus(x) = log(1 + e^x) = max(x, 0) + log1p(e^-|x|)
template <class T> SG_HOST_DEVICE inline T softplus(T x) { return (x > T(0) ? x : T(0)) + std::log1p(std::exp(-std::abs(x))); }
// d softplus/dx = sigmoid(x)
template <class T> SG_HOST_DEVICE inline T softplus_backward(T x, T dy) { return dy * sigmoid(x); }

// logsigmoid(x) = -softplus(-x)
template <class T> SG_HOST_DEVICE inline T logsigmoid(T x) { return -softplus(-x); }
// d logsigmoid/dx = sigmoid(-x) = 1 - sigmoid(x)
template <class T> SG_HOST_DEVICE inline T logsigmoid_backward(T x, T dy) { return dy * sigmoid(-x); }


// a · b rounded to T on its own. nvcc fuses `a·c − b·s` into an fma (one rounding fewer) unless told not to;
// these products keep the GPU's rotation to the CPU's sequence of roundings (g++ fuses nothing on the default
// x86-64 target, which has no FMA).
SG_HOST_DEVICE inline float mul_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}
SG_HOST_DEVICE inline double mul_rn(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dmul_rn(a, b);
#else
  return a * b;
#endif
}

// RoPE: the rotation of one pair by angle φ, c = cos φ, s = sin φ (models/README.md §3):
//   (a, b) -> (a c − b s, a s + b c)
// The backward is the rotation by −φ: the same function with −s. Every backend's rope calls this one.
template <class T> SG_HOST_DEVICE inline void rope_rotate(T a, T b, T c, T s, T& out_a, T& out_b) {
  out_a = mul_rn(a, c) - mul_rn(b, s);
  out_b = mul_rn(a, s) + mul_rn(b, c);
}

}  // namespace sg::scalar
