// cuda/kernels/index.cuh — the index kernels (ops/cpu/index.h on the GPU): index_select, index_add, gather,
// scatter_add, f32 data with int32 or int64 indices. Compiled by nvcc (cuda/index.cu) and by g++ for the emulation
// (cuda/emu/index_emu.cpp); see cuda/kernels/common.cuh. Layouts and argument meaning: ops/kernel_abi/index.h.
//
// The copies (index_select, gather) are one thread per output element. The scatters (index_add, scatter_add) add
// without atomics, so the sums are the same bits on every run AND the CPU's bits: every output element is
// owned by exactly one thread, which adds its contributions in increasing source position j, the order of
// the CPU's plain loop (and of its threaded path). Two versions, same bits, chosen by size only:
//
//   elements   one thread per output element; it scans all k source positions and adds those whose index
//              names it. k reads per thread, out_numel threads.
//   columns    one thread per column (o, c) of the source — the CPU threaded path's split; it walks j and adds
//              src[o, j, c] into out[o, index[j], c]. k reads per thread, outer·inner threads.
//
// Both take k steps per thread; `elements` runs more threads, which is free while they fit in one wave of
// the GPU (kIndexOneWave threads, about an H100's 132 SMs × 2048), and the columns' fewer threads win beyond.
// What this is not: fast for a huge k with a small outer·inner (one long serial loop per column either way:
// that wants a sort of the indices first), nor bounds-checked (ops/index.cpp checks the indices).
#pragma once
#include "cuda/kernels/common.cuh"
#include "ops/kernel_abi/index.h"

namespace sg::SG_BACKEND_NS {

// ---- index_select / index_add: (outer, n, inner) around the indexed dim ------------------------------------

// out[o, j, c] = x[o, index[j], c]; thread p = (o, j, c) of out, grid-stride.
template <class T, class I> __global__ void index_select_forward_kernel(IndexSelectArgs<T, I> a) {
  const int64_t numel = a.outer * a.k * a.inner;
  for (int64_t p = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; p < numel; p += (int64_t)gridDim.x * blockDim.x) {
    const int64_t c = p % a.inner, r = p / a.inner, j = r % a.k, o = r / a.k;
    a.out[p] = a.x[(o * a.n + (int64_t)a.index[j]) * a.inner + c];
  }
}

// elements: thread p = (o, r, c) of out owns out[p]; acc = out[p], then + src[o, j, c] for every j with
// index[j] == r, in increasing j.
template <class T, class I> __global__ void index_add_forward_elements_kernel(IndexAddArgs<T, I> a) {
  const int64_t numel = a.outer * a.n * a.inner;
  for (int64_t p = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; p < numel; p += (int64_t)gridDim.x * blockDim.x) {
    const int64_t c = p % a.inner, q = p / a.inner, r = q % a.n, o = q / a.n;
    T acc = a.out[p];
    for (int64_t j = 0; j < a.k; j++)
      if ((int64_t)a.index[j] == r) acc += a.src[(o * a.k + j) * a.inner + c];
    a.out[p] = acc;
  }
}

// columns: thread u = (o, c) owns the column out[o, :, c]; it adds src[o, j, c] into out[o, index[j], c], j in order.
template <class T, class I> __global__ void index_add_forward_columns_kernel(IndexAddArgs<T, I> a) {
  const int64_t columns = a.outer * a.inner;
  for (int64_t u = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; u < columns; u += (int64_t)gridDim.x * blockDim.x) {
    const int64_t o = u / a.inner, c = u % a.inner;
    T* out_col = a.out + o * a.n * a.inner + c;
    const T* src_col = a.src + o * a.k * a.inner + c;
    for (int64_t j = 0; j < a.k; j++) out_col[(int64_t)a.index[j] * a.inner] += src_col[j * a.inner];
  }
}

// ---- gather / scatter_add: full shapes, one index per element ------------------------------------------------

// out[p] = x[coords of p with coord[dim] replaced by index[p]]; thread p of index/out. The coordinates come off
// p last dim first, while x's row-major stride of that dim grows alongside.
template <class T, class I> __global__ void gather_forward_kernel(GatherArgs<T, I> a) {
  int64_t numel = 1;
  for (int d = 0; d < a.ndim; d++) numel *= a.index_shape[d];
  for (int64_t p = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; p < numel; p += (int64_t)gridDim.x * blockDim.x) {
    int64_t rest = p, off = 0, x_stride = 1;
    for (int d = a.ndim - 1; d >= 0; d--) {
      const int64_t c = rest % a.index_shape[d];
      rest /= a.index_shape[d];
      off += (d == a.dim ? (int64_t)a.index[p] : c) * x_stride;
      x_stride *= a.x_shape[d];
    }
    a.out[p] = a.x[off];
  }
}

// elements: thread q of out owns out[q]. Only index positions with q's coordinates in the dims != dim can
// land on q (so none when one of them is past index_shape); of those, position j along dim adds when
// index == q's coordinate along dim, in increasing j.
template <class T, class I> __global__ void scatter_add_forward_elements_kernel(ScatterAddArgs<T, I> a) {
  int64_t numel = 1;
  for (int d = 0; d < a.ndim; d++) numel *= a.out_shape[d];
  const int64_t k = a.index_shape[a.dim];
  for (int64_t q = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; q < numel; q += (int64_t)gridDim.x * blockDim.x) {
    int64_t rest = q, base = 0, index_stride = 1, target = 0, j_stride = 0;
    bool inside = true;
    for (int d = a.ndim - 1; d >= 0; d--) {
      const int64_t c = rest % a.out_shape[d];
      rest /= a.out_shape[d];
      if (d == a.dim) {
        target = c;
        j_stride = index_stride;
      } else {
        inside = inside && c < a.index_shape[d];
        base += c * index_stride;
      }
      index_stride *= a.index_shape[d];
    }
    if (!inside) continue;
    T acc = a.out[q];
    for (int64_t j = 0; j < k; j++) {
      const int64_t pos = base + j * j_stride;
      if ((int64_t)a.index[pos] == target) acc += a.src[pos];
    }
    a.out[q] = acc;
  }
}

// columns: index seen as (outer, k, inner) around dim; thread u = (o, c) owns the fibre of out along dim that
// positions (o, ·, c) land in, and adds them in increasing j. u's coordinates (all dims but dim) give the
// fibre's start in out.
template <class T, class I> __global__ void scatter_add_forward_columns_kernel(ScatterAddArgs<T, I> a) {
  int64_t outer = 1, inner = 1;
  for (int d = 0; d < a.dim; d++) outer *= a.index_shape[d];
  for (int d = a.dim + 1; d < a.ndim; d++) inner *= a.index_shape[d];
  const int64_t k = a.index_shape[a.dim], columns = outer * inner;
  for (int64_t u = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; u < columns; u += (int64_t)gridDim.x * blockDim.x) {
    int64_t rest = u, out_base = 0, out_stride = 1, dim_stride = 0;
    for (int d = a.ndim - 1; d >= 0; d--) {
      if (d == a.dim) {
        dim_stride = out_stride;
      } else {
        out_base += (rest % a.index_shape[d]) * out_stride;
        rest /= a.index_shape[d];
      }
      out_stride *= a.out_shape[d];
    }
    const int64_t index_base = (u / inner) * k * inner + u % inner;
    for (int64_t j = 0; j < k; j++) {
      const int64_t pos = index_base + j * inner;
      a.out[out_base + (int64_t)a.index[pos] * dim_stride] += a.src[pos];
    }
  }
}

// ---- host functions ------------------------------------------------------------------------------------------

// 256 threads a block; at most 65535 blocks, the grid-stride loops cover the rest.
constexpr int kIndexBlock = 256;
constexpr int64_t kIndexOneWave = int64_t(1) << 18;
inline unsigned index_grid(int64_t n) {
  const unsigned g = grid_for(n, kIndexBlock);
  return g > 65535u ? 65535u : g;
}

[[noreturn]] inline void index_error(const char* kernel, const std::string& message) {
  throw std::runtime_error(std::string("[cuda] ") + kernel + ": " + message);
}

inline void check_index_sizes(const char* kernel, int64_t outer, int64_t n, int64_t k, int64_t inner) {
  if (outer < 0 || n < 0 || k < 0 || inner < 0)
    index_error(kernel, "sizes (outer " + std::to_string(outer) + ", n " + std::to_string(n) + ", k " + std::to_string(k) +
                            ", inner " + std::to_string(inner) + ") must be >= 0");
  if (k > 0 && outer * inner > 0 && n == 0) index_error(kernel, "n is 0 but there are indices to use");
}

// ndim in [1, kMaxKernelDims], dim in [0, ndim), sizes >= 0, index_shape[d] <= shape[d] for d != dim.
// Returns the number of index elements.
inline int64_t check_index_shapes(const char* kernel, int32_t ndim, int32_t dim, const int64_t* shape, const int64_t* index_shape) {
  if (ndim < 1 || ndim > kMaxKernelDims)
    index_error(kernel, "ndim " + std::to_string(ndim) + " must be in [1, " + std::to_string(kMaxKernelDims) + "]");
  if (dim < 0 || dim >= ndim) index_error(kernel, "dim " + std::to_string(dim) + " must be in [0, " + std::to_string(ndim) + ")");
  int64_t numel = 1;
  for (int d = 0; d < ndim; d++) {
    if (shape[d] < 0 || index_shape[d] < 0)
      index_error(kernel, "dim " + std::to_string(d) + " has a negative size (" + std::to_string(shape[d]) + ", index " +
                              std::to_string(index_shape[d]) + ")");
    if (d != dim && index_shape[d] > shape[d])
      index_error(kernel, "index has size " + std::to_string(index_shape[d]) + " in dim " + std::to_string(d) +
                              " but the data only " + std::to_string(shape[d]));
    numel *= index_shape[d];
  }
  if (numel > 0 && shape[dim] == 0) index_error(kernel, "the indexed dim has size 0 but there are indices to use");
  return numel;
}

template <class I> void index_select_forward_launch(const IndexSelectArgs<float, I>& a) {
  check_index_sizes("index_select_forward", a.outer, a.n, a.k, a.inner);
  const int64_t numel = a.outer * a.k * a.inner;
  if (numel == 0) return;
  launch_kernel("index_select_forward", dim3(index_grid(numel)), dim3(kIndexBlock), index_select_forward_kernel<float, I>, a);
}

template <class I> void index_add_forward_launch(const IndexAddArgs<float, I>& a) {
  check_index_sizes("index_add_forward", a.outer, a.n, a.k, a.inner);
  const int64_t out_numel = a.outer * a.n * a.inner, columns = a.outer * a.inner;
  if (a.k == 0 || columns == 0) return;
  if (out_numel <= kIndexOneWave)
    launch_kernel("index_add_forward/elements", dim3(index_grid(out_numel)), dim3(kIndexBlock),
                  index_add_forward_elements_kernel<float, I>, a);
  else
    launch_kernel("index_add_forward/columns", dim3(index_grid(columns)), dim3(kIndexBlock),
                  index_add_forward_columns_kernel<float, I>, a);
}

template <class I> void gather_forward_launch(const GatherArgs<float, I>& a) {
  const int64_t numel = check_index_shapes("gather_forward", a.ndim, a.dim, a.x_shape, a.index_shape);
  if (numel == 0) return;
  launch_kernel("gather_forward", dim3(index_grid(numel)), dim3(kIndexBlock), gather_forward_kernel<float, I>, a);
}

template <class I> void scatter_add_forward_launch(const ScatterAddArgs<float, I>& a) {
  const int64_t numel = check_index_shapes("scatter_add_forward", a.ndim, a.dim, a.out_shape, a.index_shape);
  if (numel == 0) return;
  int64_t out_numel = 1;
  for (int d = 0; d < a.ndim; d++) out_numel *= a.out_shape[d];
  if (out_numel <= kIndexOneWave)
    launch_kernel("scatter_add_forward/elements", dim3(index_grid(out_numel)), dim3(kIndexBlock),
                  scatter_add_forward_elements_kernel<float, I>, a);
  else
    launch_kernel("scatter_add_forward/columns", dim3(index_grid(numel / a.index_shape[a.dim])), dim3(kIndexBlock),
                  scatter_add_forward_columns_kernel<float, I>, a);
}

void index_select_forward(const IndexSelectArgs<float, int64_t>& a) { index_select_forward_launch(a); }
void index_select_forward(const IndexSelectArgs<float, int32_t>& a) { index_select_forward_launch(a); }
void index_add_forward(const IndexAddArgs<float, int64_t>& a) { index_add_forward_launch(a); }
void index_add_forward(const IndexAddArgs<float, int32_t>& a) { index_add_forward_launch(a); }
void gather_forward(const GatherArgs<float, int64_t>& a) { gather_forward_launch(a); }
void gather_forward(const GatherArgs<float, int32_t>& a) { gather_forward_launch(a); }
void scatter_add_forward(const ScatterAddArgs<float, int64_t>& a) { scatter_add_forward_launch(a); }
void scatter_add_forward(const ScatterAddArgs<float, int32_t>& a) { scatter_add_forward_launch(a); }

}  // namespace sg::SG_BACKEND_NS
