// ops/checks.h — the argument checks every op runs first; each throws "[op] ..." naming the tensors, their
// shapes, dtypes and devices (ops/dispatch.h includes this header, so op files get both).
//
//   check_defined(op, t, "x")          t is a tensor, not a default-constructed handle
//   check_same_dtype(op, a, b)         a and b have one dtype
//   check_same_device(op, a, b)        a and b are on one device (binary ops never copy between devices)
//   check_floating(op, t)              f32 or f64
//   check_cpu(op, t)                   t is on the CPU: for the ops whose kernels are not dispatched to other
//                                      devices yet (ops/kernels.h lists the ones that are)
//   normalize_dim(op, t, dim)          a possibly negative dim, checked against t.dim()
#pragma once
#include <string>

#include "autograd/tensor.h"

namespace sg {

[[noreturn]] void op_error(const char* op, const std::string& message);
void check_defined(const char* op, const Tensor& t, const char* what);
void check_same_dtype(const char* op, const Tensor& a, const Tensor& b);
// "[add] a (3, 4) f32 on cuda and b (4) f32 are on different devices (cuda and cpu); move one with to_device"
void check_same_device(const char* op, const Tensor& a, const Tensor& b);
void check_floating(const char* op, const Tensor& t);
// "[matmul] has no CUDA kernel yet; x (2, 3) f32 on cuda" — the op runs on the CPU only, in this build.
void check_cpu(const char* op, const Tensor& t);
// Normalises a possibly negative dimension against t.dim(), or throws naming the op.
int64_t normalize_dim(const char* op, const Tensor& t, int64_t dim);
int64_t normalize_dim(const char* op, int64_t ndim, int64_t dim, const std::string& what);

}  // namespace sg
