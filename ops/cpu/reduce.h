// ops/cpu/reduce.h — row reductions: x is [rows, cols] contiguous, out is [rows].
// Every reduction op permutes the reduced axes to the end first, so this is the only loop.
#pragma once
#include <cstdint>

#include "ops/kernel_abi/reduce.h"

namespace sg::cpu {

using sg::ReduceOp;   // the op codes are the kernel ABI's (ops/kernel_abi/reduce.h), shared by every backend

// out[r] = reduce_{c} x[r, c]; the sum accumulates in double for f32 inputs.
template <class T> void reduce_rows(ReduceOp op, const T* x, int64_t rows, int64_t cols, T* out);
// argmax/argmin positions of reduce_rows (first occurrence), for max/min backward.
template <class T> void arg_reduce_rows(ReduceOp op, const T* x, int64_t rows, int64_t cols, int64_t* out);

}  // namespace sg::cpu
