// ops/index.cpp — the index ops, forward and backward side by side. See index.h.
//
// Every op: check the arguments (errors name the op, the tensors and the shapes), make x / src /
// index contiguous, check every index against its bound (the kernels trust them), run the kernel
// through the device dispatch (ops/kernels.h: ops/cpu/index.cpp or the CUDA kernels), record the backward. Indices
// are checked on the host (copied there when they live on a device). The four ops are each other's backward:
//
//   index_select  ⇄  index_add       (one index per slice along dim; embedding = index_select of rows)
//   gather        ⇄  scatter_add     (one index per element)
//
// What this is not: advanced (numpy-style) indexing, negative indices or int8/uint8 masks.
#include "ops/index.h"

#include "autograd/node.h"
#include "ops/dispatch.h"
#include "ops/kernels.h"
#include "ops/shape.h"

namespace sg {

// ---- argument checks shared by the four ops ----------------------------------------------------

// "x (4, 3)": a tensor by the name it has in the op's signature, for error messages.
static std::string named(const char* role, const Tensor& t) { return std::string(role) + " " + shape_str(t.shape()); }

static void check_float_input(const char* op, const Tensor& t, const char* role) {
  check_defined(op, t, role);
  if (!is_floating(t.dtype())) op_error(op, named(role, t) + " must be f32 or f64, got " + dtype_name(t.dtype()));
}

static void check_index_input(const char* op, const Tensor& index, const char* role) {
  check_defined(op, index, role);
  if (index.dtype() != DType::i32 && index.dtype() != DType::i64)
    op_error(op, named(role, index) + " must be an integer tensor (i32 or i64), got " + dtype_name(index.dtype()));
}

// Flat position of the first value of `index` (contiguous, i32/i64) outside [0, bound), or -1. Read on the host
// (an index on a device is copied here first: the kernels trust their indices, so the op checks them).
static int64_t first_out_of_range(const Tensor& index_in, int64_t bound) {
  const Tensor index = index_in.to(Device::CPU);
  return dispatch_index(index.dtype(), "index", [&]<class I>() -> int64_t {
    const I* p = index.data<I>();
    for (int64_t i = 0; i < index.numel(); i++)
      if (p[i] < 0 || (int64_t)p[i] >= bound) return i;
    return -1;
  });
}

// The multi-index "(1, 0)" of flat position `flat` in `shape`.
static std::string position_str(const Shape& shape, int64_t flat) {
  Shape pos(shape.size());
  for (int64_t d = (int64_t)shape.size() - 1; d >= 0; d--) {
    pos[d] = flat % shape[d];
    flat /= shape[d];
  }
  return shape_str(pos);
}

// Throws "[op] index 7 at position (1, 0) is out of range for dim 1 of x (2, 3), which has size 3".
static void check_index_range(const char* op, const Tensor& index, const Tensor& x, const char* x_role, int64_t dim) {
  int64_t bad = first_out_of_range(index, x.shape()[dim]);
  if (bad < 0) return;
  std::string pos = index.dim() == 1 ? std::to_string(bad) : position_str(index.shape(), bad);
  op_error(op, "index " + std::to_string(index.to_i64_vector()[bad]) + " at position " + pos + " is out of range for dim " +
                   std::to_string(dim) + " of " + named(x_role, x) + ", which has size " + std::to_string(x.shape()[dim]));
}

static void check_same_float_dtype(const char* op, const Tensor& x, const Tensor& src) {
  if (x.dtype() != src.dtype())
    op_error(op, "src " + shape_str(src.shape()) + " " + dtype_name(src.dtype()) + " and x " + shape_str(x.shape()) + " " +
                     dtype_name(x.dtype()) + " have different dtypes");
}

// gather / scatter_add: index has x's rank and is no larger than x in every dim but `dim`.
static void check_fits(const char* op, const Tensor& index, const Tensor& x, int64_t dim) {
  if (index.dim() != x.dim())
    op_error(op, named("index", index) + " is " + std::to_string(index.dim()) + "-D but " + named("x", x) + " is " +
                     std::to_string(x.dim()) + "-D; they must have the same rank");
  for (int64_t d = 0; d < x.dim(); d++)
    if (d != dim && index.shape()[d] > x.shape()[d])
      op_error(op, named("index", index) + " is larger than " + named("x", x) + " in dim " + std::to_string(d) +
                       " (only dim " + std::to_string(dim) + ", the indexed one, may be larger)");
}

// Every tensor an op reads on one device (an index on the CPU for a CUDA x is refused, not copied).
static void check_one_device(const char* op, const Tensor& x, const Tensor& index, const Tensor& src = Tensor()) {
  check_same_device(op, x, index);
  if (src.defined()) check_same_device(op, x, src);
}

// gather / scatter_add's kernel arguments carry the full shapes, at most kMaxKernelDims dims.
static void check_rank(const char* op, const Tensor& x) {
  if (x.dim() > kMaxKernelDims)
    op_error(op, named("x", x) + " has " + std::to_string(x.dim()) + " dims; the kernels take at most " +
                     std::to_string(kMaxKernelDims));
}

// x seen as (outer, n, inner) around `dim`, the layout of the index_select / index_add kernels.
struct DimSplit {
  int64_t outer = 1, n = 1, inner = 1;
};
static DimSplit split_at(const Shape& shape, int64_t dim) {
  DimSplit s;
  for (int64_t d = 0; d < dim; d++) s.outer *= shape[d];
  s.n = shape[dim];
  for (int64_t d = dim + 1; d < (int64_t)shape.size(); d++) s.inner *= shape[d];
  return s;
}

static Tensor contiguous_data(const Tensor& t) { return t.is_contiguous() ? t.detach() : contiguous(t.detach()); }

// zeros(shape) with src's slices added at `index` along dim d: the backward of index_select and embedding.
// The same as index_add(zeros, d, index, src) without index_add's copy of its zero input (backward runs
// with grad mode off, so nothing is recorded either way). index must be contiguous and in range (it was
// checked by the forward); src may have any layout.
static Tensor index_add_into_zeros(const Shape& shape, int64_t d, const Tensor& index, const Tensor& src) {
  check_same_device("index_add", src, index);
  Tensor y = Tensor::zeros(shape, src.dtype(), src.device()), sc = contiguous_data(src);
  DimSplit s = split_at(shape, d);
  dispatch_float(src.dtype(), "index_add", [&]<class T>() {
    dispatch_index(index.dtype(), "index_add", [&]<class I>() {
      kernels::index_add_forward<T, I>("index_add", src.device(), {s.outer, s.n, index.numel(), s.inner, y.device_data<T>(),
                                                                   index.device_data<I>(), sc.device_data<T>()});
    });
  });
  return y;
}

// ---- embedding -------------------------------------------------------------------------------
// y[p, :] = weight[ids[p], :]        weight [V, D], ids [...] → y [..., D]
// dweight = index_add(zeros [V, D], 0, ids, dy as [N, D])   — rows of repeated ids accumulate
Tensor embedding(const Tensor& weight, const Tensor& ids) {
  check_float_input("embedding", weight, "weight");
  check_index_input("embedding", ids, "ids");
  check_one_device("embedding", weight, ids);
  if (weight.dim() != 2) op_error("embedding", named("weight", weight) + " must be 2-D (vocab, dim)");
  int64_t V = weight.shape()[0], D = weight.shape()[1];
  Tensor w = contiguous_data(weight), id = contiguous_data(ids);
  int64_t N = id.numel();
  int64_t bad = first_out_of_range(id, V);
  if (bad >= 0)
    op_error("embedding", "id " + std::to_string(id.to_i64_vector()[bad]) + " at position " + std::to_string(bad) +
                              " is outside the vocabulary of " + named("weight", weight));
  Shape out_shape = ids.shape();
  out_shape.push_back(D);
  Tensor y = Tensor::empty(out_shape, weight.dtype(), weight.device());
  dispatch_float(w.dtype(), "embedding", [&]<class T>() {
    dispatch_index(id.dtype(), "embedding", [&]<class I>() {
      kernels::index_select_forward<T, I>("embedding", w.device(),
                                          {1, V, N, D, w.device_data<T>(), id.device_data<I>(), y.device_data<T>()});
    });
  });
  if (needs_grad(weight)) {
    Tensor ids_flat = reshape(id, {N});
    Shape weight_shape = weight.shape();
    record("embedding", y, {weight}, [ids_flat, weight_shape, N, D](const Tensor& dy) {
      Tensor dweight = index_add_into_zeros(weight_shape, 0, ids_flat, reshape(dy, {N, D}));
      return std::vector<Tensor>{dweight};
    });
  }
  return y;
}

// ---- index_select ----------------------------------------------------------------------------
// y[.., j, ..] = x[.., index[j], ..]   along dim;   x [.., n, ..], index [k] → y [.., k, ..]
// dx = index_add(zeros like x, dim, index, dy)
Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index) {
  const char* op = "index_select";
  check_float_input(op, x, "x");
  check_index_input(op, index, "index");
  check_one_device(op, x, index);
  int64_t d = normalize_dim(op, x, dim);
  if (index.dim() != 1) op_error(op, named("index", index) + " must be 1-D");
  Tensor xc = contiguous_data(x), ic = contiguous_data(index);
  check_index_range(op, ic, x, "x", d);
  DimSplit s = split_at(x.shape(), d);
  int64_t k = ic.numel();
  Shape out_shape = x.shape();
  out_shape[d] = k;
  Tensor y = Tensor::empty(out_shape, x.dtype(), x.device());
  dispatch_float(x.dtype(), op, [&]<class T>() {
    dispatch_index(ic.dtype(), op, [&]<class I>() {
      kernels::index_select_forward<T, I>(op, x.device(), {s.outer, s.n, k, s.inner, xc.device_data<T>(), ic.device_data<I>(),
                                                           y.device_data<T>()});
    });
  });
  if (needs_grad(x)) {
    Shape x_shape = x.shape();
    record(op, y, {x}, [ic, x_shape, d](const Tensor& dy) {
      return std::vector<Tensor>{index_add_into_zeros(x_shape, d, ic, dy)};
    });
  }
  return y;
}

// ---- index_add -------------------------------------------------------------------------------
// y = x;  y[.., index[j], ..] += src[.., j, ..]   along dim;   x [.., n, ..], index [k], src [.., k, ..]
// dx = dy,   dsrc = index_select(dy, dim, index)
Tensor index_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src) {
  const char* op = "index_add";
  check_float_input(op, x, "x");
  check_index_input(op, index, "index");
  check_float_input(op, src, "src");
  check_same_float_dtype(op, x, src);
  check_one_device(op, x, index, src);
  int64_t d = normalize_dim(op, x, dim);
  if (index.dim() != 1) op_error(op, named("index", index) + " must be 1-D");
  int64_t k = index.numel();
  Shape src_shape = x.shape();
  src_shape[d] = k;
  if (src.shape() != src_shape)
    op_error(op, named("src", src) + " must have shape " + shape_str(src_shape) + ": " + named("x", x) + " with dim " +
                     std::to_string(d) + " replaced by the length of " + named("index", index));
  Tensor ic = contiguous_data(index), sc = contiguous_data(src);
  check_index_range(op, ic, x, "x", d);
  DimSplit s = split_at(x.shape(), d);
  Tensor y = x.clone_data();
  dispatch_float(x.dtype(), op, [&]<class T>() {
    dispatch_index(ic.dtype(), op, [&]<class I>() {
      kernels::index_add_forward<T, I>(op, x.device(), {s.outer, s.n, k, s.inner, y.device_data<T>(), ic.device_data<I>(),
                                                        sc.device_data<T>()});
    });
  });
  if (needs_grad({x, src})) {
    bool src_needs = src.requires_grad();
    record(op, y, {x, src}, [ic, d, src_needs](const Tensor& dy) {
      return std::vector<Tensor>{dy, src_needs ? index_select(dy, d, ic) : Tensor()};
    });
  }
  return y;
}

// ---- gather ----------------------------------------------------------------------------------
// y[i] = x[i with i[dim] replaced by index[i]]   for every multi-index i of index;  y has index's shape
// dx = scatter_add(zeros like x, dim, index, dy)   — positions gathered twice get both gradients
Tensor gather(const Tensor& x, int64_t dim, const Tensor& index) {
  const char* op = "gather";
  check_float_input(op, x, "x");
  check_index_input(op, index, "index");
  check_one_device(op, x, index);
  int64_t d = normalize_dim(op, x, dim);
  check_fits(op, index, x, d);
  check_rank(op, x);
  Tensor xc = contiguous_data(x), ic = contiguous_data(index);
  check_index_range(op, ic, x, "x", d);
  Tensor y = Tensor::empty(index.shape(), x.dtype(), x.device());
  dispatch_float(x.dtype(), op, [&]<class T>() {
    dispatch_index(ic.dtype(), op, [&]<class I>() {
      GatherArgs<T, I> a{};
      a.ndim = (int32_t)x.dim();
      a.dim = (int32_t)d;
      for (int64_t k = 0; k < x.dim(); k++) a.x_shape[k] = xc.shape()[k], a.index_shape[k] = ic.shape()[k];
      a.x = xc.device_data<T>();
      a.index = ic.device_data<I>();
      a.out = y.device_data<T>();
      kernels::gather_forward<T, I>(op, x.device(), a);
    });
  });
  if (needs_grad(x)) {
    Shape x_shape = x.shape();
    record(op, y, {x}, [ic, x_shape, d](const Tensor& dy) {
      return std::vector<Tensor>{scatter_add(Tensor::zeros(x_shape, dy.dtype(), dy.device()), d, ic, dy)};
    });
  }
  return y;
}

// ---- scatter_add -----------------------------------------------------------------------------
// y = x;  y[i with i[dim] replaced by index[i]] += src[i]   for every multi-index i of index (= src's shape)
// dx = dy,   dsrc = gather(dy, dim, index)
Tensor scatter_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src) {
  const char* op = "scatter_add";
  check_float_input(op, x, "x");
  check_index_input(op, index, "index");
  check_float_input(op, src, "src");
  check_same_float_dtype(op, x, src);
  check_one_device(op, x, index, src);
  int64_t d = normalize_dim(op, x, dim);
  check_fits(op, index, x, d);
  check_rank(op, x);
  if (src.shape() != index.shape())
    op_error(op, named("src", src) + " and " + named("index", index) + " must have the same shape");
  Tensor ic = contiguous_data(index), sc = contiguous_data(src);
  check_index_range(op, ic, x, "x", d);
  Tensor y = x.clone_data();
  dispatch_float(x.dtype(), op, [&]<class T>() {
    dispatch_index(ic.dtype(), op, [&]<class I>() {
      ScatterAddArgs<T, I> a{};
      a.ndim = (int32_t)x.dim();
      a.dim = (int32_t)d;
      for (int64_t k = 0; k < x.dim(); k++) a.out_shape[k] = y.shape()[k], a.index_shape[k] = ic.shape()[k];
      a.out = y.device_data<T>();
      a.index = ic.device_data<I>();
      a.src = sc.device_data<T>();
      kernels::scatter_add_forward<T, I>(op, x.device(), a);
    });
  });
  if (needs_grad({x, src})) {
    bool src_needs = src.requires_grad();
    record(op, y, {x, src}, [ic, d, src_needs](const Tensor& dy) {
      return std::vector<Tensor>{dy, src_needs ? gather(dy, d, ic) : Tensor()};
    });
  }
  return y;
}

}  // namespace sg
