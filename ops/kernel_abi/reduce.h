// ops/kernel_abi/reduce.h — the row reductions' and the strided copy's arguments, one plain struct per kernel
// (the CPU kernels: ops/cpu/reduce.h, ops/cpu/copy.h; the CUDA ones: cuda/kernels/reduce.cuh).
//
// Same rules as ops/kernel_abi/elementwise.h: fixed-width fields and raw pointers (host memory for the CPU and
// the CUDA emulation, device memory for CUDA). Compiles as C++ and CUDA.
#pragma once
#include <cstdint>

#include "ops/kernel_abi/elementwise.h"   // kMaxKernelDims

namespace sg {

enum class ReduceOp : int32_t { sum, max, min };

// x: [rows, cols] contiguous, out: [rows].  out[r] = sum / max / min over c of x[r, c].
// max and min keep the row's first extreme value (x[r, arg_reduce_rows]), as the CPU's scan does.
template <class T> struct ReduceRowsArgs {
  ReduceOp op;
  int64_t rows;
  int64_t cols;
  const T* x;
  T* out;
};

// x: [rows, cols] contiguous, out: [rows].  out[r] = the first c where x[r, c] is the row's max (min).
// op is max or min. NaN is skipped unless it is x[r, 0] (the CPU's scan `x[c] > x[best]` never moves off it).
template <class T> struct ArgReduceRowsArgs {
  ReduceOp op;
  int64_t rows;
  int64_t cols;
  const T* x;
  int64_t* out;
};

// dst[idx] = src[idx · src_strides] over `shape` (ndim dims, row-major, ndim = 0 is one element); dst contiguous.
template <class T> struct StridedCopyArgs {
  int32_t ndim;
  int64_t shape[kMaxKernelDims];
  int64_t src_strides[kMaxKernelDims];
  const T* src;
  T* dst;
};

}  // namespace sg
