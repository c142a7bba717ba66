// ops/cpu/index.h — CPU kernels for the index ops: index_select / index_add (one index per slice
// along a dim; embedding is index_select of rows) and gather / scatter_add (one index per element).
//
// Layout: every buffer is contiguous and row-major. index_select / index_add see their tensors as
// 3-D (outer, n, inner) around the indexed dim; gather / scatter_add take the full shapes because
// their index may be smaller than x in the other dims (torch.gather semantics).
// Indices are int32_t or int64_t (template I) and ALREADY CHECKED to be in range by the op
// (ops/index.cpp): a kernel never throws.
//
// Each kernel has a plain loop (taken when sg::naive_kernels()) and a threaded path beside it that
// must give the same bits. The scatters (index_add, scatter_add) split threads over the NON-indexed
// coordinates only, so two threads never add into the same output element and repeated indices
// accumulate in the same order as in the plain loop.
//
// What this is not: bounds checking, autograd or dtype dispatch — that is ops/index.cpp.
#pragma once
#include <cstdint>
#include <vector>

namespace sg::cpu {

// out[o, j, c] = x[o, index[j], c]
// x is (outer, n, inner), index is (k), out is (outer, k, inner)
template <class T, class I>
void index_select_forward(const T* x, const I* index, T* out, int64_t outer, int64_t n, int64_t k, int64_t inner);

// out[o, index[j], c] += src[o, j, c]   (repeated indices accumulate)
// out is (outer, n, inner) and already holds x, index is (k), src is (outer, k, inner)
template <class T, class I>
void index_add_forward(T* out, const I* index, const T* src, int64_t outer, int64_t n, int64_t k, int64_t inner);

// out[i] = x[i with i[dim] replaced by index[i]]   for every multi-index i of index_shape
// x is x_shape, index and out are index_shape (same rank; index_shape[d] <= x_shape[d] for d != dim)
template <class T, class I>
void gather_forward(const T* x, const std::vector<int64_t>& x_shape, const I* index, const std::vector<int64_t>& index_shape,
                    int64_t dim, T* out);

// out[i with i[dim] replaced by index[i]] += src[i]   for every multi-index i of index_shape
// out is out_shape and already holds x, index and src are index_shape (same rank as out;
// index_shape[d] <= out_shape[d] for d != dim)
template <class T, class I>
void scatter_add_forward(T* out, const std::vector<int64_t>& out_shape, const I* index,
                         const std::vector<int64_t>& index_shape, int64_t dim, const T* src);

}  // namespace sg::cpu
