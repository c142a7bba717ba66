// ops/cpu/elementwise.h — CPU kernels for elementwise unary and binary ops.
//
// Unary kernels take contiguous buffers (the op makes its input contiguous first). Binary kernels
// take each input with its own strides over the OUTPUT's shape — a broadcast input simply has
// stride 0 on the broadcast dims — and write a contiguous output. Contiguous inputs of the full
// shape take a flat loop the compiler vectorises; everything else walks the index odometer with
// the innermost dim as a plain strided loop. Large buffers are split over threads.
#pragma once
#include <cstdint>
#include <vector>

#include "ops/kernel_abi/elementwise.h"

namespace sg::cpu {

using sg::BinaryOp;   // the op codes are the kernel ABI's (ops/kernel_abi/elementwise.h), shared by every backend
using sg::UnaryOp;

const char* unary_op_name(UnaryOp op);
const char* binary_op_name(BinaryOp op);

// y[i] = f(x[i]);  x, y: n contiguous values
template <class T> void unary_forward(UnaryOp op, const T* x, T* y, int64_t n);
// dx[i] = f'(x[i]) dy[i], using x and/or the forward output y, whichever is cheaper.
template <class T> void unary_backward(UnaryOp op, const T* x, const T* y, const T* dy, T* dx, int64_t n);

// out[idx] = a[idx · a_strides] (op) b[idx · b_strides] for every idx of `shape`; out contiguous.
template <class T>
void binary_forward(BinaryOp op, const std::vector<int64_t>& shape, const T* a, const std::vector<int64_t>& a_strides,
                    const T* b, const std::vector<int64_t>& b_strides, T* out);

// y[i] = x[i] * alpha + beta   (scalar affine, used by mul/add with a scalar)
template <class T> void affine_forward(const T* x, T alpha, T beta, T* y, int64_t n);

}  // namespace sg::cpu
