// ops/dispatch.h — small helpers every op file uses: dtype dispatch and argument checks.
//
//   dispatch_float(dt, "op", [&]<class T>() { ... })  runs the body with T = float or double.
//   dispatch_index(dt, "op", [&]<class I>() { ... })  runs the body with I = int32_t or int64_t.
//   check_same_dtype / check_cpu / check_dim ...      throw "[op] ..." naming tensors and shapes.
#pragma once
#include <stdexcept>
#include <string>

#include "autograd/tensor.h"

namespace sg {

template <class F>
decltype(auto) dispatch_float(DType dt, const char* op, F&& body) {
  switch (dt) {
    case DType::f32: return body.template operator()<float>();
    case DType::f64: return body.template operator()<double>();
    default: throw std::runtime_error(std::string("[") + op + "] needs a floating-point tensor, got " + dtype_name(dt));
  }
}

template <class F>
decltype(auto) dispatch_index(DType dt, const char* op, F&& body) {
  switch (dt) {
    case DType::i32: return body.template operator()<int32_t>();
    case DType::i64: return body.template operator()<int64_t>();
    default: throw std::runtime_error(std::string("[") + op + "] needs an integer index tensor (i32 or i64), got " + dtype_name(dt));
  }
}

// Every kernel in this build runs on the CPU; a tensor elsewhere gets a clear error (cuda/ adds its path).
void check_cpu(const char* op, const Tensor& t);
void check_defined(const char* op, const Tensor& t, const char* what);
void check_same_dtype(const char* op, const Tensor& a, const Tensor& b);
void check_floating(const char* op, const Tensor& t);
// Normalises a possibly negative dimension against t.dim(), or throws naming the op.
int64_t normalize_dim(const char* op, const Tensor& t, int64_t dim);
int64_t normalize_dim(const char* op, int64_t ndim, int64_t dim, const std::string& what);
[[noreturn]] void op_error(const char* op, const std::string& message);

}  // namespace sg
