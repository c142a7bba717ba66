// ops/cpu/index.cpp — see index.h. Plain loop first, the threaded path right below it.
#include "ops/cpu/index.h"

#include <algorithm>

#include "autograd/runtime.h"
#include "ops/cpu/runtime.h"

namespace sg::cpu {

static constexpr int64_t kGrain = 1 << 15;  // elements per thread chunk: below ~32K, threads cost more than they save

// Row-major strides of a contiguous buffer of `shape`.
static std::vector<int64_t> row_major_strides(const std::vector<int64_t>& shape) {
  std::vector<int64_t> st(shape.size());
  int64_t acc = 1;
  for (int64_t d = (int64_t)shape.size() - 1; d >= 0; d--) {
    st[d] = acc;
    acc *= shape[d];
  }
  return st;
}

// The offset (under `strides`) of every multi-index of shape[d0:d1], in row-major order.
// gather/scatter_add use two of these tables — dims before `dim` and dims after it — to turn a
// position (o, j, c) of the index into an offset into x without an odometer.
static std::vector<int64_t> coordinate_offsets(const std::vector<int64_t>& shape, const std::vector<int64_t>& strides,
                                               int64_t d0, int64_t d1) {
  std::vector<int64_t> offs{0};
  for (int64_t d = d0; d < d1; d++) {
    std::vector<int64_t> next;
    next.reserve(offs.size() * shape[d]);
    for (int64_t base : offs)
      for (int64_t i = 0; i < shape[d]; i++) next.push_back(base + i * strides[d]);
    offs = std::move(next);
  }
  return offs;
}

// ---- index_select / index_add ----------------------------------------------------------------

template <class T, class I>
void index_select_forward(const T* x, const I* index, T* out, int64_t outer, int64_t n, int64_t k, int64_t inner) {
  // rows r = (o, j) of out, each a copy of one row of x
  auto copy_rows = [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      int64_t o = r / k, j = r % k;
      const T* src_row = x + (o * n + (int64_t)index[j]) * inner;
      T* dst_row = out + r * inner;
      for (int64_t c = 0; c < inner; c++) dst_row[c] = src_row[c];
    }
  };
  if (naive_kernels()) {
    copy_rows(0, outer * k);
    return;
  }
  parallel_for(outer * k, std::max<int64_t>(1, kGrain / std::max<int64_t>(inner, 1)), copy_rows);
}

template <class T, class I>
void index_add_forward(T* out, const I* index, const T* src, int64_t outer, int64_t n, int64_t k, int64_t inner) {
  if (naive_kernels()) {
    for (int64_t o = 0; o < outer; o++)
      for (int64_t j = 0; j < k; j++)
        for (int64_t c = 0; c < inner; c++) out[(o * n + (int64_t)index[j]) * inner + c] += src[(o * k + j) * inner + c];
    return;
  }
  // Threads own disjoint columns u = (o, c) of out; each walks ALL j for its columns, so rows hit
  // by repeated indices are only ever written by one thread, in the plain loop's order.
  parallel_for(outer * inner, std::max<int64_t>(1, kGrain / std::max<int64_t>(k, 1)), [&](int64_t u0, int64_t u1) {
    for (int64_t u = u0; u < u1;) {
      int64_t o = u / inner, c0 = u % inner, c1 = std::min(inner, c0 + (u1 - u));
      for (int64_t j = 0; j < k; j++) {
        T* dst_row = out + (o * n + (int64_t)index[j]) * inner;
        const T* src_row = src + (o * k + j) * inner;
        for (int64_t c = c0; c < c1; c++) dst_row[c] += src_row[c];
      }
      u += c1 - c0;
    }
  });
}

// ---- gather / scatter_add --------------------------------------------------------------------
// The threaded paths view index as (outer, k, inner) around `dim`:
//   outer = prod index_shape[:dim],  k = index_shape[dim],  inner = prod index_shape[dim+1:]
// and find x's element for index position (o, j, c) at  outer_off[o] + index·x_stride[dim] + inner_off[c].

template <class T, class I>
void gather_forward(const T* x, const std::vector<int64_t>& x_shape, const I* index, const std::vector<int64_t>& index_shape,
                    int64_t dim, T* out) {
  int64_t nd = (int64_t)index_shape.size();
  int64_t numel = 1;
  for (int64_t s : index_shape) numel *= s;
  if (numel == 0) return;
  std::vector<int64_t> xs = row_major_strides(x_shape);
  if (naive_kernels()) {
    std::vector<int64_t> i(nd, 0);  // multi-index into index/out, advanced like an odometer
    for (int64_t p = 0; p < numel; p++) {
      int64_t off = 0;
      for (int64_t d = 0; d < nd; d++) off += (d == dim ? (int64_t)index[p] : i[d]) * xs[d];
      out[p] = x[off];
      for (int64_t d = nd - 1; d >= 0; d--) {
        if (++i[d] < index_shape[d]) break;
        i[d] = 0;
      }
    }
    return;
  }
  int64_t outer = 1, k = index_shape[dim], inner = 1;
  for (int64_t d = 0; d < dim; d++) outer *= index_shape[d];
  for (int64_t d = dim + 1; d < nd; d++) inner *= index_shape[d];
  std::vector<int64_t> outer_off = coordinate_offsets(index_shape, xs, 0, dim);
  std::vector<int64_t> inner_off = coordinate_offsets(index_shape, xs, dim + 1, nd);
  int64_t x_stride = xs[dim];
  // rows r = (o, j) of out; every element is read independently, so any split over rows is safe
  parallel_for(outer * k, std::max<int64_t>(1, kGrain / std::max<int64_t>(inner, 1)), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const T* x_outer = x + outer_off[r / k];
      const I* index_row = index + r * inner;
      T* out_row = out + r * inner;
      for (int64_t c = 0; c < inner; c++) out_row[c] = x_outer[(int64_t)index_row[c] * x_stride + inner_off[c]];
    }
  });
}

template <class T, class I>
void scatter_add_forward(T* out, const std::vector<int64_t>& out_shape, const I* index,
                         const std::vector<int64_t>& index_shape, int64_t dim, const T* src) {
  int64_t nd = (int64_t)index_shape.size();
  int64_t numel = 1;
  for (int64_t s : index_shape) numel *= s;
  if (numel == 0) return;
  std::vector<int64_t> os = row_major_strides(out_shape);
  if (naive_kernels()) {
    std::vector<int64_t> i(nd, 0);  // multi-index into index/src, advanced like an odometer
    for (int64_t p = 0; p < numel; p++) {
      int64_t off = 0;
      for (int64_t d = 0; d < nd; d++) off += (d == dim ? (int64_t)index[p] : i[d]) * os[d];
      out[off] += src[p];
      for (int64_t d = nd - 1; d >= 0; d--) {
        if (++i[d] < index_shape[d]) break;
        i[d] = 0;
      }
    }
    return;
  }
  int64_t outer = 1, k = index_shape[dim], inner = 1;
  for (int64_t d = 0; d < dim; d++) outer *= index_shape[d];
  for (int64_t d = dim + 1; d < nd; d++) inner *= index_shape[d];
  std::vector<int64_t> outer_off = coordinate_offsets(index_shape, os, 0, dim);
  std::vector<int64_t> inner_off = coordinate_offsets(index_shape, os, dim + 1, nd);
  int64_t out_stride = os[dim];
  // Threads own disjoint columns u = (o, c): all positions (o, j, c) of one column land in one
  // fibre of out along `dim`, and no other column touches that fibre. Each column walks j in
  // increasing order, the plain loop's order, so the sums agree bit for bit.
  parallel_for(outer * inner, std::max<int64_t>(1, kGrain / std::max<int64_t>(k, 1)), [&](int64_t u0, int64_t u1) {
    for (int64_t u = u0; u < u1;) {
      int64_t o = u / inner, c0 = u % inner, c1 = std::min(inner, c0 + (u1 - u));
      T* out_outer = out + outer_off[o];
      for (int64_t j = 0; j < k; j++) {
        const I* index_row = index + (o * k + j) * inner;
        const T* src_row = src + (o * k + j) * inner;
        for (int64_t c = c0; c < c1; c++) out_outer[(int64_t)index_row[c] * out_stride + inner_off[c]] += src_row[c];
      }
      u += c1 - c0;
    }
  });
}

#define SG_INDEX_KERNELS(T, I)                                                                                        \
  template void index_select_forward<T, I>(const T*, const I*, T*, int64_t, int64_t, int64_t, int64_t);               \
  template void index_add_forward<T, I>(T*, const I*, const T*, int64_t, int64_t, int64_t, int64_t);                  \
  template void gather_forward<T, I>(const T*, const std::vector<int64_t>&, const I*, const std::vector<int64_t>&,    \
                                     int64_t, T*);                                                                    \
  template void scatter_add_forward<T, I>(T*, const std::vector<int64_t>&, const I*, const std::vector<int64_t>&,     \
                                          int64_t, const T*);
SG_INDEX_KERNELS(float, int32_t)
SG_INDEX_KERNELS(float, int64_t)
SG_INDEX_KERNELS(double, int32_t)
SG_INDEX_KERNELS(double, int64_t)
#undef SG_INDEX_KERNELS

}  // namespace sg::cpu
