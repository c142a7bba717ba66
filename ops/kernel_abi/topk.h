// ops/kernel_abi/topk.h — the topk / argmax kernels' arguments (ops/cpu/nn.h topk_forward, topk_backward,
// argmax_forward), one plain struct per kernel. Rows are contiguous: the op (ops/nn.cpp) moves the reduced dim
// last and makes it contiguous first, so a row is `n` adjacent values.
//
// Order (the CPU's): largest first (smallest first when !largest), NaN above every number (as in PyTorch), equal
// values (−0 == +0, NaN == NaN) broken by the lower index. So the result is one sorted order, never "some" top k.
#pragma once
#include <cstdint>

namespace sg {

// values[r, j] = x[r, indices[r, j]], the k best of row r in order, j < k.
// x is (rows, n); values and indices are (rows, k); k <= n.
template <class T> struct TopkArgs {
  int64_t rows, n, k;
  int32_t largest;   // 1: largest first; 0: smallest first
  const T* x;
  T* values;
  int64_t* indices;
};

// dx[r, indices[r, j]] = Σ dvalues[r, j] over the j naming it, 0 elsewhere (the sum in increasing j).
// dvalues and indices are (rows, k); dx is (rows, n).
template <class T> struct TopkBackwardArgs {
  int64_t rows, n, k;
  const T* dvalues;
  const int64_t* indices;
  T* dx;
};

// out[r] = the index of the first maximum of row r (NaN counts as the maximum).  x is (rows, n), out is (rows).
template <class T> struct ArgmaxArgs {
  int64_t rows, n;
  const T* x;
  int64_t* out;
};

}  // namespace sg
