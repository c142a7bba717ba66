// ops/kernel_abi/elementwise.h — the elementwise kernels' arguments, one plain struct per kernel.
//
// The kernel ABI (README.md, Design §3): every backend's kernel takes the same struct of fixed-width fields and
// raw pointers (host memory for the CPU kernels and the CUDA emulation, device memory for CUDA), so the dispatch
// in ops/ fills it once and any backend can run it. Compiles as C++ and CUDA (and, later, Metal).
#pragma once
#include <cstdint>

namespace sg {

enum class UnaryOp : int32_t { neg, exp, log, sqrt, rsqrt, abs, relu, sigmoid, silu, gelu, tanh, softplus, logsigmoid, square };
enum class BinaryOp : int32_t { add, sub, mul, div };

constexpr int kMaxKernelDims = 8;   // the largest tensor rank a strided kernel walks

// y[i] = f(x[i]), i < n; x, y contiguous.
template <class T> struct UnaryArgs {
  UnaryOp op;
  int64_t n;
  const T* x;
  T* y;
};

// dx[i] = f'(x[i]) dy[i] (from x or from the forward output y, whichever the formula needs), i < n.
template <class T> struct UnaryBackwardArgs {
  UnaryOp op;
  int64_t n;
  const T* x;
  const T* y;
  const T* dy;
  T* dx;
};

// out[idx] = a[idx · a_strides] (op) b[idx · b_strides] over `shape` (ndim dims, row-major); out contiguous.
// A broadcast input has stride 0 on its broadcast dims.
template <class T> struct BinaryArgs {
  BinaryOp op;
  int32_t ndim;
  int64_t shape[kMaxKernelDims];
  int64_t a_strides[kMaxKernelDims];
  int64_t b_strides[kMaxKernelDims];
  const T* a;
  const T* b;
  T* out;
};

// y[i] = x[i] * alpha + beta, i < n.
template <class T> struct AffineArgs {
  int64_t n;
  T alpha;
  T beta;
  const T* x;
  T* y;
};

// An element type a kernel reads or writes by code (where's condition, the cast's two sides): autograd/tensor.h's
// DType, the same codes in the same order (ops/elementwise.cpp asserts they agree). The ABI names no DType.
enum class ElemType : int32_t { f32, f64, i32, i64, bf16, f16, f8e4m3, f8e5m2 };

// y[i] = (T) pow((double) x[i], p), i < n; x, y contiguous. In double, as the CPU op always computed it.
template <class T> struct PowArgs {
  int64_t n;
  double p;
  const T* x;
  T* y;
};

// out[idx] = cond[idx · cond_strides] != 0 ? a[idx · a_strides] : b[idx · b_strides] over `shape` (ndim dims,
// row-major, ndim = 0 is one element); out contiguous. cond is f32, f64, i32 or i64 (cond_type); a broadcast
// input has stride 0 on its broadcast dims, as in BinaryArgs.
template <class T> struct WhereArgs {
  int32_t ndim;
  ElemType cond_type;
  int64_t shape[kMaxKernelDims];
  int64_t cond_strides[kMaxKernelDims];
  int64_t a_strides[kMaxKernelDims];
  int64_t b_strides[kMaxKernelDims];
  const void* cond;
  const T* a;
  const T* b;
  T* out;
};

}  // namespace sg
