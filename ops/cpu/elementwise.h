// ops/cpu/elementwise.h — CPU kernels for elementwise unary and binary ops, pow, where and the dtype cast.
//
// Unary kernels take contiguous buffers (the op makes its input contiguous first). Binary kernels
// take each input with its own strides over the OUTPUT's shape — a broadcast input simply has
// stride 0 on the broadcast dims — and write a contiguous output. Contiguous inputs of the full
// shape take a flat loop the compiler vectorises; everything else walks the index odometer with
// the innermost dim as a plain strided loop. Large buffers are split over threads.
#pragma once
#include <cstdint>
#include <vector>

#include "ops/kernel_abi/cast.h"
#include "ops/kernel_abi/elementwise.h"

namespace sg::cpu {

using sg::BinaryOp;
using sg::ElemType;   // the op codes are the kernel ABI's (ops/kernel_abi/elementwise.h), shared by every backend
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

// y[i] = (T) pow((double) x[i], p);  x, y: n contiguous values. In double (libm's pow), so an f32 result is the
// double power rounded once.
template <class T> void pow_forward(const T* x, double p, T* y, int64_t n);

// out[idx] = cond[idx · cond_strides] != 0 ? a[idx · a_strides] : b[idx · b_strides] for every idx of `shape`;
// out contiguous. cond is f32, f64, i32 or i64 (cond_type); strides as binary_forward's (0 on broadcast dims).
template <class T>
void where_forward(const std::vector<int64_t>& shape, ElemType cond_type, const void* cond,
                   const std::vector<int64_t>& cond_strides, const T* a, const std::vector<int64_t>& a_strides,
                   const T* b, const std::vector<int64_t>& b_strides, T* out);

// dst[idx] = (dst_type) src[idx · src_strides] for every idx of `shape`; dst contiguous. Any pair of the eight
// element types; each element converts through cast_element::load / store (ops/kernel_abi/cast.h).
void cast(ElemType src_type, const std::vector<int64_t>& shape, const void* src, const std::vector<int64_t>& src_strides,
          ElemType dst_type, void* dst);

}  // namespace sg::cpu
