// cuda/kernels/elementwise.cuh — elementwise unary (forward, backward), binary with broadcast and strides,
// the scalar affine, pow and where (a strided condition of its own type): one thread per output element, grid-stride loops. Compiled by nvcc (cuda/elementwise.cu)
// and by g++ for the emulation (cuda/emu/elementwise_emu.cpp); see cuda/kernels/common.cuh.
//
// The math per element is the CPU kernels' (ops/cpu/elementwise.cpp), from ops/scalar_math.h where it is
// more than one operation, so the backends agree to the last bit wherever the libm calls do.
#pragma once
#include "cuda/kernels/common.cuh"
#include "ops/kernel_abi/elementwise.h"

namespace sg::SG_BACKEND_NS {

template <class T> __device__ __forceinline__ T unary_value(UnaryOp op, T x) {
  switch (op) {
    case UnaryOp::neg: return -x;
    case UnaryOp::exp: return std::exp(x);
    case UnaryOp::log: return std::log(x);
    case UnaryOp::sqrt: return std::sqrt(x);
    case UnaryOp::rsqrt: return T(1) / std::sqrt(x);
    case UnaryOp::abs: return std::abs(x);
    case UnaryOp::relu: return x > T(0) ? x : T(0);
    case UnaryOp::sigmoid: return scalar::sigmoid(x);
    case UnaryOp::silu: return scalar::silu(x);
    case UnaryOp::gelu: return scalar::gelu(x);
    case UnaryOp::tanh: return std::tanh(x);
    case UnaryOp::softplus: return scalar::softplus(x);
    case UnaryOp::logsigmoid: return scalar::logsigmoid(x);
    case UnaryOp::square: return x * x;
  }
  return x;
}

template <class T> __device__ __forceinline__ T unary_derivative(UnaryOp op, T x, T y, T dy) {
  switch (op) {
    case UnaryOp::neg: return -dy;
    case UnaryOp::exp: return dy * y;
    case UnaryOp::log: return dy / x;
    case UnaryOp::sqrt: return dy / (T(2) * y);
    case UnaryOp::rsqrt: return T(-0.5) * dy * y * y * y;
    case UnaryOp::abs: return x > T(0) ? dy : (x < T(0) ? -dy : T(0));
    case UnaryOp::relu: return x > T(0) ? dy : T(0);
    case UnaryOp::sigmoid: return scalar::sigmoid_backward(y, dy);
    case UnaryOp::silu: return scalar::silu_backward(x, dy);
    case UnaryOp::gelu: return scalar::gelu_backward(x, dy);
    case UnaryOp::tanh: return dy * (T(1) - y * y);
    case UnaryOp::softplus: return scalar::softplus_backward(x, dy);
    case UnaryOp::logsigmoid: return scalar::logsigmoid_backward(x, dy);
    case UnaryOp::square: return T(2) * x * dy;
  }
  return dy;
}

template <class T> __device__ __forceinline__ T binary_value(BinaryOp op, T a, T b) {
  switch (op) {
    case BinaryOp::add: return a + b;
    case BinaryOp::sub: return a - b;
    case BinaryOp::mul: return a * b;
    case BinaryOp::div: return a / b;
  }
  return a;
}

// The flat index of this thread and the grid's stride, as 64-bit numbers (n may exceed 2^31).
__device__ __forceinline__ int64_t global_thread() { return (int64_t)blockIdx.x * blockDim.x + threadIdx.x; }
__device__ __forceinline__ int64_t grid_stride() { return (int64_t)gridDim.x * blockDim.x; }

template <class T> __global__ void unary_forward_kernel(UnaryArgs<T> a) {
  for (int64_t i = global_thread(); i < a.n; i += grid_stride()) a.y[i] = unary_value(a.op, a.x[i]);
}

template <class T> __global__ void unary_backward_kernel(UnaryBackwardArgs<T> a) {
  for (int64_t i = global_thread(); i < a.n; i += grid_stride())
    a.dx[i] = unary_derivative(a.op, a.x ? a.x[i] : T(0), a.y ? a.y[i] : T(0), a.dy[i]);
}

// Each output element decodes its row-major index into coordinates (last dim fastest) and reads a and b
// through their own strides.
template <class T> __global__ void binary_forward_kernel(BinaryArgs<T> a) {
  int64_t n = 1;
  for (int d = 0; d < a.ndim; d++) n *= a.shape[d];
  for (int64_t i = global_thread(); i < n; i += grid_stride()) {
    int64_t rest = i, ia = 0, ib = 0;
    for (int d = a.ndim - 1; d >= 0; d--) {
      const int64_t c = rest % a.shape[d];
      rest /= a.shape[d];
      ia += c * a.a_strides[d];
      ib += c * a.b_strides[d];
    }
    a.out[i] = binary_value(a.op, a.a[ia], a.b[ib]);
  }
}

template <class T> __global__ void affine_forward_kernel(AffineArgs<T> a) {
  for (int64_t i = global_thread(); i < a.n; i += grid_stride()) a.y[i] = a.x[i] * a.alpha + a.beta;
}

// In double, as the CPU kernel: (T) pow((double) x, p). In the emulation that is the CPU's own libm call (the same
// bits); on a GPU CUDA's pow (within 2 ulp of double) rounded to f32, which moves the f32 result only when the
// double lies within 2 ulp of a rounding boundary (about one value in 2^28).
template <class T> __global__ void pow_forward_kernel(PowArgs<T> a) {
  for (int64_t i = global_thread(); i < a.n; i += grid_stride()) a.y[i] = (T)std::pow((double)a.x[i], a.p);
}

__device__ __forceinline__ bool where_condition(const void* cond, int64_t i, ElemType t) {
  switch (t) {
    case ElemType::f32: return static_cast<const float*>(cond)[i] != 0.0f;
    case ElemType::f64: return static_cast<const double*>(cond)[i] != 0.0;
    case ElemType::i32: return static_cast<const int32_t*>(cond)[i] != 0;
    default: return static_cast<const int64_t*>(cond)[i] != 0;   // i64 (the host function admits no other)
  }
}

// As binary_forward_kernel, with a third strided input: the condition, read as its own type.
template <class T> __global__ void where_forward_kernel(WhereArgs<T> a, int64_t n) {
  for (int64_t i = global_thread(); i < n; i += grid_stride()) {
    int64_t rest = i, ic = 0, ia = 0, ib = 0;
    for (int d = a.ndim - 1; d >= 0; d--) {
      const int64_t c = rest % a.shape[d];
      rest /= a.shape[d];
      ic += c * a.cond_strides[d];
      ia += c * a.a_strides[d];
      ib += c * a.b_strides[d];
    }
    a.out[i] = where_condition(a.cond, ic, a.cond_type) ? a.a[ia] : a.b[ib];
  }
}

// 256 threads a block; at most 65535 blocks, the grid-stride loops cover the rest.
constexpr int kElementwiseBlock = 256;
inline unsigned elementwise_grid(int64_t n) {
  const unsigned g = grid_for(n, kElementwiseBlock);
  return g > 65535u ? 65535u : g;
}

void unary_forward(const UnaryArgs<float>& a) {
  launch_kernel("unary_forward", dim3(elementwise_grid(a.n)), dim3(kElementwiseBlock), unary_forward_kernel<float>, a);
}
void unary_backward(const UnaryBackwardArgs<float>& a) {
  launch_kernel("unary_backward", dim3(elementwise_grid(a.n)), dim3(kElementwiseBlock), unary_backward_kernel<float>, a);
}
void binary_forward(const BinaryArgs<float>& a) {
  int64_t n = 1;
  for (int d = 0; d < a.ndim; d++) n *= a.shape[d];
  launch_kernel("binary_forward", dim3(elementwise_grid(n)), dim3(kElementwiseBlock), binary_forward_kernel<float>, a);
}
void affine_forward(const AffineArgs<float>& a) {
  launch_kernel("affine_forward", dim3(elementwise_grid(a.n)), dim3(kElementwiseBlock), affine_forward_kernel<float>, a);
}
void pow_forward(const PowArgs<float>& a) {
  if (a.n < 0) throw std::runtime_error("[cuda] pow_forward: n " + std::to_string(a.n) + " < 0");
  launch_kernel("pow_forward", dim3(elementwise_grid(a.n)), dim3(kElementwiseBlock), pow_forward_kernel<float>, a);
}
void where_forward(const WhereArgs<float>& a) {
  if (a.ndim < 0 || a.ndim > kMaxKernelDims)
    throw std::runtime_error("[cuda] where_forward: ndim " + std::to_string(a.ndim) + " is outside [0, " +
                             std::to_string(kMaxKernelDims) + "]");
  if (a.cond_type != ElemType::f32 && a.cond_type != ElemType::f64 && a.cond_type != ElemType::i32 &&
      a.cond_type != ElemType::i64)
    throw std::runtime_error("[cuda] where_forward: the condition must be f32, f64, i32 or i64 (type code " +
                             std::to_string((int)a.cond_type) + ")");
  int64_t n = 1;
  for (int d = 0; d < a.ndim; d++) {
    if (a.shape[d] < 0) throw std::runtime_error("[cuda] where_forward: shape[" + std::to_string(d) + "] < 0");
    n *= a.shape[d];
  }
  if (n == 0) return;
  launch_kernel("where_forward", dim3(elementwise_grid(n)), dim3(kElementwiseBlock), where_forward_kernel<float>, a, n);
}

}  // namespace sg::SG_BACKEND_NS
