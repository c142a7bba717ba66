// ops/dispatch.h — small helpers every op file uses: dtype dispatch, and (through ops/checks.h) the argument checks.
//
//   dispatch_float(dt, "op", [&]<class T>() { ... })  runs the body with T = float or double.
//   dispatch_index(dt, "op", [&]<class I>() { ... })  runs the body with I = int32_t or int64_t.
//   check_same_dtype / check_same_device / check_cpu  throw "[op] ..." naming tensors, shapes and devices.
// The DEVICE dispatch (which backend's kernel runs) is ops/kernels.h.
#pragma once
#include <stdexcept>
#include <string>

#include "autograd/tensor.h"
#include "ops/checks.h"

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

}  // namespace sg
