// ops/kernel_abi/index.h — the index kernels' arguments (ops/cpu/index.h), one plain struct per kernel.
//
// Same layouts as the CPU kernels: every buffer contiguous and row-major. index_select / index_add see their
// tensors as 3-D (outer, n, inner) around the indexed dim; gather / scatter_add carry the full shapes (at most
// kMaxKernelDims dims, ops/kernel_abi/elementwise.h) because their index may be smaller than x in the other
// dims (torch.gather semantics). I is the index type, int32_t or int64_t. Indices are in range: the op checked
// them (ops/index.cpp), a kernel cannot throw.
#pragma once
#include <cstdint>

#include "ops/kernel_abi/elementwise.h"

namespace sg {

// out[o, j, c] = x[o, index[j], c]
// x is (outer, n, inner), index is (k), out is (outer, k, inner)
template <class T, class I> struct IndexSelectArgs {
  int64_t outer, n, k, inner;
  const T* x;
  const I* index;
  T* out;
};

// out[o, index[j], c] += src[o, j, c]   (repeated indices accumulate, in increasing j)
// out is (outer, n, inner) and already holds x, index is (k), src is (outer, k, inner)
template <class T, class I> struct IndexAddArgs {
  int64_t outer, n, k, inner;
  T* out;
  const I* index;
  const T* src;
};

// out[i] = x[i with i[dim] replaced by index[i]]   for every multi-index i of index_shape
// x is x_shape, index and out are index_shape (ndim dims each; index_shape[d] <= x_shape[d] for d != dim)
template <class T, class I> struct GatherArgs {
  int32_t ndim;
  int32_t dim;
  int64_t x_shape[kMaxKernelDims];
  int64_t index_shape[kMaxKernelDims];
  const T* x;
  const I* index;
  T* out;
};

// out[i with i[dim] replaced by index[i]] += src[i]   for every multi-index i of index_shape (in increasing i[dim])
// out is out_shape and already holds x, index and src are index_shape (ndim dims each; index_shape[d] <=
// out_shape[d] for d != dim)
template <class T, class I> struct ScatterAddArgs {
  int32_t ndim;
  int32_t dim;
  int64_t out_shape[kMaxKernelDims];
  int64_t index_shape[kMaxKernelDims];
  T* out;
  const I* index;
  const T* src;
};

}  // namespace sg
