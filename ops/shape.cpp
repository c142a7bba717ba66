// ops/shape.cpp — views and shape ops, forward and backward side by side. See shape.h.
#include "ops/shape.h"

#include <algorithm>
#include <cstring>

#include "autograd/node.h"
#include "ops/dispatch.h"
#include "ops/kernels.h"
#include "ops/reduce.h"

namespace sg {

// ---- the copies (the strided copy kernels, ops/kernels.h) ------------------------------------
// A copy moves element-size words whatever the dtype: `body` runs with W = the word of x's element size.
template <class F> static void with_word(const char* op, const Tensor& x, F&& body) {
  switch (dtype_size(x.dtype())) {
    case 1: body.template operator()<uint8_t>(); return;
    case 2: body.template operator()<uint16_t>(); return;
    case 4: body.template operator()<uint32_t>(); return;
    case 8: body.template operator()<uint64_t>(); return;
  }
  op_error(op, x.describe() + " has " + std::to_string(dtype_size(x.dtype())) + "-byte elements");
}

// dst (contiguous, x's shape, in the memory of x's device) = x. The kernel walks x's dims with size-1 dims
// dropped and neighbouring dims merged where x steps through them as one run (a (B, T, D) slice of a
// (B, T, 2D) tensor copies as (B·T, D) rows), so any rank whose runs fit kMaxKernelDims dims is copied.
static void copy_to_contiguous(const char* op, const Tensor& x, void* dst) {
  with_word(op, x, [&]<class W>() {
    StridedCopyArgs<W> a{};
    int nd = 0;
    for (int64_t d = 0; d < x.dim(); d++) {
      const int64_t n = x.shape()[d], st = x.strides()[d];
      if (n == 1) continue;
      if (nd > 0 && a.src_strides[nd - 1] == st * n) {
        a.shape[nd - 1] *= n;
        a.src_strides[nd - 1] = st;
        continue;
      }
      if (nd == kMaxKernelDims)
        op_error(op, x.describe() + " with strides " + shape_str(x.strides()) + " has more than " +
                         std::to_string(kMaxKernelDims) + " dims that cannot be merged; the copy kernels walk at most that many");
      a.shape[nd] = n;
      a.src_strides[nd] = st;
      nd++;
    }
    a.ndim = nd;
    a.src = static_cast<const W*>(x.raw_device_data());
    a.dst = static_cast<W*>(dst);
    kernels::strided_copy<W>(op, x.device(), a);
  });
}

// The view `dst` (of a CPU tensor) = src, both walked through their own strides: the CPU's copy into a strided
// destination (cat, slice's backward). src and dst have one shape.
static void copy_into_view(const char* op, const Tensor& src, const Tensor& dst) {
  with_word(op, src, [&]<class W>() {
    kernels::StridedCopyIntoArgs<W> a{};
    a.ndim = src.dim();
    a.shape = src.shape().data();
    a.src_strides = src.strides().data();
    a.dst_strides = dst.strides().data();
    a.src = static_cast<const W*>(src.raw_device_data());
    a.dst = static_cast<W*>(dst.raw_device_data());
    kernels::strided_copy_into<W>(op, dst.device(), a);
  });
}

// Where row `row` of dim 0 of a contiguous tensor t starts, in the memory of its device.
static void* row_start(const Tensor& t, int64_t row) {
  return static_cast<char*>(t.raw_device_data()) + (size_t)(row * (t.dim() ? t.strides()[0] : 0)) * dtype_size(t.dtype());
}

// The permutation that moves `dim` first, the other dims in order, and its inverse.
static std::vector<int64_t> dim_first_perm(int64_t ndim, int64_t dim) {
  std::vector<int64_t> perm{dim};
  for (int64_t d = 0; d < ndim; d++)
    if (d != dim) perm.push_back(d);
  return perm;
}
static std::vector<int64_t> inverse_perm(const std::vector<int64_t>& perm) {
  std::vector<int64_t> inverse(perm.size());
  for (size_t i = 0; i < perm.size(); i++) inverse[perm[i]] = (int64_t)i;
  return inverse;
}

// ---- contiguous ------------------------------------------------------------------------------
// y = x laid out row-major.  dx = dy.
Tensor contiguous(const Tensor& x) {
  check_defined("contiguous", x, "x");
  if (x.is_contiguous()) return x;
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  copy_to_contiguous("contiguous", x, y.raw_device_data());
  if (needs_grad(x)) record("contiguous", y, {x}, [](const Tensor& dy) { return std::vector<Tensor>{dy}; });
  return y;
}

// ---- copy_into -------------------------------------------------------------------------------
void copy_into(const Tensor& dst, const Tensor& src) {
  const char* op = "copy_into";
  check_defined(op, dst, "dst");
  check_defined(op, src, "src");
  check_same_dtype(op, dst, src);
  check_same_device(op, dst, src);
  if (dst.shape() != src.shape()) op_error(op, "src " + src.describe() + " does not have the shape of dst " + dst.describe());
  if (dst.numel() == 0) return;
  if (dst.device() == Device::CPU) {
    copy_into_view(op, src, dst);
    return;
  }
  // The innermost dims [first, ndim) over which dst is one contiguous run, and one contiguous copy per index of
  // the dims before them (src walked through its strides).
  int64_t first = dst.dim(), run = 1;
  while (first > 0 && (dst.shape()[first - 1] == 1 || dst.strides()[first - 1] == run)) run *= dst.shape()[--first];
  const Shape outer_shape(dst.shape().begin(), dst.shape().begin() + first);
  const int64_t outer = shape_numel(outer_shape);
  const size_t es = dtype_size(dst.dtype());
  NoGradGuard no_grad;
  for (int64_t o = 0; o < outer; o++) {
    int64_t rest = o, dst_off = 0;
    Tensor piece = src.detach();
    for (int64_t d = first - 1; d >= 0; d--) {
      const int64_t i = rest % dst.shape()[d];
      rest /= dst.shape()[d];
      dst_off += i * dst.strides()[d];
    }
    for (int64_t d = 0, r = o, div = outer; d < first; d++) {  // the src sub-tensor of index o (dims [0, first) fixed)
      div /= dst.shape()[d];
      piece = narrow(piece, 0, r / div, 1);
      piece = squeeze(piece, 0);
      r %= div;
    }
    copy_to_contiguous(op, piece, static_cast<char*>(dst.raw_device_data()) + (size_t)dst_off * es);
  }
}

// ---- reshape / view --------------------------------------------------------------------------

static Shape infer_shape(const char* op, const Tensor& x, Shape shape) {
  int64_t known = 1, infer = -1;
  bool overflow = false, has_zero = false;
  for (size_t i = 0; i < shape.size(); i++) {
    if (shape[i] == -1) {
      if (infer >= 0) op_error(op, "only one dimension may be -1 in " + shape_str(shape));
      infer = (int64_t)i;
    } else if (shape[i] < 0) {
      op_error(op, "negative dimension in " + shape_str(shape));
    } else {
      overflow |= __builtin_mul_overflow(known, shape[i], &known);  // a wrapped product could pass the checks below
      has_zero |= shape[i] == 0;
    }
  }
  if (overflow && !has_zero)
    op_error(op, "cannot reshape " + x.describe() + " into " + shape_str(shape) + ": its element count overflows int64");
  if (overflow) known = 0;  // a 0 in the shape: 0 elements, whatever the other dims' product
  if (infer >= 0) {
    if (known == 0 || x.numel() % known != 0)
      op_error(op, "cannot reshape " + x.describe() + " into " + shape_str(shape));
    shape[infer] = x.numel() / known;
  }
  if (shape_numel(shape) != x.numel())
    op_error(op, "cannot reshape " + x.describe() + " (" + std::to_string(x.numel()) + " elements) into " + shape_str(shape));
  return shape;
}

// Strides for viewing x as `shape` without a copy; false if impossible. Walk x's dims from the
// last, grouping runs of dims that are contiguous with each other ("chunks"); each chunk can be
// re-split into new dims freely, but a new dim may not straddle two chunks.
static bool view_strides(const Tensor& x, const Shape& shape, Shape& out) {
  if (x.is_contiguous() || x.numel() == 0) {
    out = contiguous_strides(shape);
    return true;
  }
  const Shape& os = x.shape();
  const Shape& ost = x.strides();
  out.assign(shape.size(), 0);
  int64_t view_d = (int64_t)shape.size() - 1;
  int64_t chunk_base_stride = ost.back();
  int64_t tensor_numel = 1, view_numel = 1;
  for (int64_t tensor_d = (int64_t)os.size() - 1; tensor_d >= 0; tensor_d--) {
    tensor_numel *= os[tensor_d];
    bool chunk_ends = tensor_d == 0 || (os[tensor_d - 1] != 1 && ost[tensor_d - 1] != tensor_numel * chunk_base_stride);
    if (!chunk_ends) continue;
    while (view_d >= 0 && (view_numel < tensor_numel || shape[view_d] == 1)) {
      out[view_d] = view_numel * chunk_base_stride;
      view_numel *= shape[view_d];
      view_d--;
    }
    if (view_numel != tensor_numel) return false;
    if (tensor_d > 0) {
      chunk_base_stride = ost[tensor_d - 1];
      tensor_numel = 1;
      view_numel = 1;
    }
  }
  return view_d == -1;
}

static Tensor reshape_impl(const char* op, const Tensor& x, Shape shape, bool allow_copy) {
  check_defined(op, x, "x");
  shape = infer_shape(op, x, shape);
  if (shape == x.shape()) return x;
  Shape strides;
  Tensor y;
  if (view_strides(x, shape, strides)) {
    y = make_view(x, shape, strides, x.offset());
  } else {
    if (!allow_copy) op_error(op, x.describe() + " with strides " + shape_str(x.strides()) + " cannot be viewed as " +
                                      shape_str(shape) + "; use reshape (copies) or contiguous() first");
    NoGradGuard no_grad;
    Tensor c = contiguous(x);
    y = make_view(c, shape, contiguous_strides(shape), c.offset());
  }
  if (needs_grad(x)) {
    Shape in_shape = x.shape();
    record(op, y, {x}, [in_shape](const Tensor& dy) { return std::vector<Tensor>{reshape(dy, in_shape)}; });
  }
  return y;
}
Tensor reshape(const Tensor& x, Shape shape) { return reshape_impl("reshape", x, std::move(shape), true); }
Tensor view(const Tensor& x, Shape shape) { return reshape_impl("view", x, std::move(shape), false); }

Tensor flatten(const Tensor& x, int64_t start_dim, int64_t end_dim) {
  if (x.dim() == 0) return reshape(x, {1});
  int64_t s = normalize_dim("flatten", x, start_dim), e = normalize_dim("flatten", x, end_dim);
  if (s > e) op_error("flatten", "start_dim " + std::to_string(start_dim) + " is after end_dim " + std::to_string(end_dim));
  Shape shape(x.shape().begin(), x.shape().begin() + s);
  int64_t m = 1;
  for (int64_t d = s; d <= e; d++) m *= x.shape()[d];
  shape.push_back(m);
  shape.insert(shape.end(), x.shape().begin() + e + 1, x.shape().end());
  return reshape(x, shape);
}

Tensor squeeze(const Tensor& x, int64_t dim) {
  int64_t d = normalize_dim("squeeze", x, dim);
  if (x.shape()[d] != 1) op_error("squeeze", "dim " + std::to_string(dim) + " of " + x.describe() + " is not 1");
  Shape s = x.shape();
  s.erase(s.begin() + d);
  return reshape(x, s);
}

Tensor unsqueeze(const Tensor& x, int64_t dim) {
  int64_t d = normalize_dim("unsqueeze", x.dim() + 1, dim, x.describe());
  Shape s = x.shape();
  s.insert(s.begin() + d, 1);
  return reshape(x, s);
}

// ---- permute / transpose ---------------------------------------------------------------------
// y[..i_p(k)..] = x[..i_k..].  dx = permute(dy, inverse permutation).
Tensor permute(const Tensor& x, const std::vector<int64_t>& dims) {
  check_defined("permute", x, "x");
  if ((int64_t)dims.size() != x.dim())
    op_error("permute", "got " + std::to_string(dims.size()) + " dims for " + x.describe());
  Shape shape(dims.size()), strides(dims.size());
  std::vector<int64_t> inverse(dims.size(), -1);
  for (size_t i = 0; i < dims.size(); i++) {
    int64_t d = normalize_dim("permute", x, dims[i]);
    if (inverse[d] != -1) op_error("permute", "dim " + std::to_string(d) + " repeated in " + shape_str(dims) + " for " + x.describe());
    inverse[d] = (int64_t)i;
    shape[i] = x.shape()[d];
    strides[i] = x.strides()[d];
  }
  Tensor y = make_view(x, shape, strides, x.offset());
  if (needs_grad(x)) record("permute", y, {x}, [inverse](const Tensor& dy) { return std::vector<Tensor>{permute(dy, inverse)}; });
  return y;
}

Tensor transpose(const Tensor& x, int64_t dim0, int64_t dim1) {
  int64_t a = normalize_dim("transpose", x, dim0), b = normalize_dim("transpose", x, dim1);
  std::vector<int64_t> dims(x.dim());
  for (int64_t i = 0; i < x.dim(); i++) dims[i] = i;
  std::swap(dims[a], dims[b]);
  return permute(x, dims);
}

// ---- expand ----------------------------------------------------------------------------------
// y = x broadcast to `shape` (stride 0 on expanded dims).  dx = sum of dy over the expanded dims.
Tensor expand(const Tensor& x, const Shape& shape) {
  check_defined("expand", x, "x");
  if ((int64_t)shape.size() < x.dim())
    op_error("expand", "cannot expand " + x.describe() + " to fewer dims " + shape_str(shape));
  int64_t lead = (int64_t)shape.size() - x.dim();
  Shape out_shape(shape.size()), strides(shape.size());
  for (int64_t i = 0; i < (int64_t)shape.size(); i++) {
    if (i < lead) {
      if (shape[i] < 0) op_error("expand", "new leading dim cannot be -1 in " + shape_str(shape));
      out_shape[i] = shape[i];
      strides[i] = 0;
      continue;
    }
    int64_t xs = x.shape()[i - lead];
    int64_t want = shape[i] == -1 ? xs : shape[i];
    if (xs == want) {
      out_shape[i] = xs;
      strides[i] = x.strides()[i - lead];
    } else if (xs == 1) {
      out_shape[i] = want;
      strides[i] = 0;
    } else {
      op_error("expand", "cannot expand " + x.describe() + " to " + shape_str(shape) + ": dim " + std::to_string(i) +
                             " is " + std::to_string(xs) + ", not 1");
    }
  }
  Tensor y = make_view(x, out_shape, strides, x.offset());
  if (needs_grad(x)) {
    Shape in_shape = x.shape();
    record("expand", y, {x}, [in_shape](const Tensor& dy) { return std::vector<Tensor>{sum_to(dy, in_shape)}; });
  }
  return y;
}

Shape broadcast_shapes(const char* op, const Tensor& a, const Tensor& b) {
  const Shape &sa = a.shape(), &sb = b.shape();
  size_t n = std::max(sa.size(), sb.size());
  Shape out(n);
  for (size_t i = 0; i < n; i++) {
    int64_t da = i < n - sa.size() ? 1 : sa[i - (n - sa.size())];
    int64_t db = i < n - sb.size() ? 1 : sb[i - (n - sb.size())];
    if (da != db && da != 1 && db != 1)
      op_error(op, "cannot broadcast " + a.describe() + " with " + b.describe());
    out[i] = da == 1 ? db : da;
  }
  return out;
}

// ---- slice / narrow --------------------------------------------------------------------------
// y = x[.., start:end:step, ..].  dx = zeros like x with dx[.., start:end:step, ..] = dy.
// The CPU copies dy into the strided view of dx. The CUDA copy kernel writes contiguous destinations, so there dx
// is built with `dim` first, where each slice row (all of them at once when step is 1) is one contiguous run, and
// permuted back.
static Tensor slice_backward(const Tensor& dy, const Shape& in_shape, int64_t dim, int64_t start, int64_t step) {
  if (dy.device() == Device::CPU) {
    Tensor dx = Tensor::zeros(in_shape, dy.dtype());
    Shape st = dx.strides();
    st[dim] *= step;
    copy_into_view("slice", dy, make_view(dx, dy.shape(), st, start * dx.strides()[dim]));
    return dx;
  }
  NoGradGuard no_grad;
  const std::vector<int64_t> perm = dim_first_perm((int64_t)in_shape.size(), dim);
  Shape first_shape(in_shape.size());
  for (size_t i = 0; i < perm.size(); i++) first_shape[i] = in_shape[perm[i]];
  Tensor dx_first = Tensor::zeros(first_shape, dy.dtype(), dy.device());
  Tensor dy_first = permute(dy.detach(), perm);
  if (step == 1) {
    copy_to_contiguous("slice", dy_first, row_start(dx_first, start));
  } else {
    for (int64_t j = 0; j < dy_first.size(0); j++)
      copy_to_contiguous("slice", narrow(dy_first, 0, j, 1), row_start(dx_first, start + j * step));
  }
  return dim == 0 ? dx_first : contiguous(permute(dx_first, inverse_perm(perm)));
}

Tensor slice(const Tensor& x, int64_t dim, int64_t start, int64_t end, int64_t step) {
  check_defined("slice", x, "x");
  int64_t d = normalize_dim("slice", x, dim);
  int64_t n = x.shape()[d];
  if (step <= 0) op_error("slice", "step must be positive, got " + std::to_string(step));
  if (start < 0) start += n;
  if (end < 0) end += n;
  start = std::clamp<int64_t>(start, 0, n);
  end = std::clamp<int64_t>(end, start, n);
  Shape shape = x.shape(), strides = x.strides();
  shape[d] = (end - start + step - 1) / step;
  strides[d] *= step;
  Tensor y = make_view(x, shape, strides, x.offset() + start * x.strides()[d]);
  if (needs_grad(x)) {
    Shape in_shape = x.shape();
    record("slice", y, {x}, [in_shape, d, start, step](const Tensor& dy) {
      return std::vector<Tensor>{slice_backward(dy, in_shape, d, start, step)};
    });
  }
  return y;
}

Tensor narrow(const Tensor& x, int64_t dim, int64_t start, int64_t length) {
  int64_t d = normalize_dim("narrow", x, dim);
  if (start < 0 || length < 0 || start + length > x.shape()[d])
    op_error("narrow", "range [" + std::to_string(start) + ", " + std::to_string(start + length) + ") is outside dim " +
                           std::to_string(dim) + " of " + x.describe());
  return slice(x, d, start, start + length);
}

// ---- cat / stack / split ---------------------------------------------------------------------
// y = [x0; x1; ...] along dim.  dx_i = the matching slice of dy.
Tensor cat(const std::vector<Tensor>& xs, int64_t dim) {
  if (xs.empty()) op_error("cat", "needs at least one tensor");
  const Tensor& x0 = xs[0];
  int64_t d = normalize_dim("cat", x0, dim);
  Shape shape = x0.shape();
  int64_t total = 0;
  for (size_t i = 0; i < xs.size(); i++) {
    check_defined("cat", xs[i], "input");
    check_same_device("cat", xs[i], x0);
    if (xs[i].dtype() != x0.dtype() || xs[i].dim() != x0.dim())
      op_error("cat", "input " + std::to_string(i) + " " + xs[i].describe() + " does not match input 0 " + x0.describe());
    for (int64_t k = 0; k < x0.dim(); k++)
      if (k != d && xs[i].shape()[k] != x0.shape()[k])
        op_error("cat", "input " + std::to_string(i) + " " + xs[i].describe() + " differs from input 0 " + x0.describe() +
                            " in dim " + std::to_string(k));
    total += xs[i].shape()[d];
  }
  shape[d] = total;
  Tensor y = Tensor::empty(shape, x0.dtype(), x0.device());
  int64_t outer = 1;
  for (int64_t k = 0; k < d; k++) outer *= shape[k];
  int64_t at = 0;
  if (outer == 1) {  // each input's block of y is one contiguous run: a contiguous copy on any device
    for (const Tensor& x : xs) {
      copy_to_contiguous("cat", x, static_cast<char*>(y.raw_device_data()) + (size_t)(at * y.strides()[d]) * dtype_size(y.dtype()));
      at += x.shape()[d];
    }
  } else if (y.device() == Device::CPU) {  // the CPU copies into the strided view of y
    for (const Tensor& x : xs) {
      copy_into_view("cat", x, make_view(y, x.shape(), y.strides(), at * y.strides()[d]));
      at += x.shape()[d];
    }
  } else {
    // The CUDA copy kernel writes contiguous destinations: y is built with `d` first, where every input is one
    // contiguous block of rows, then permuted back (one more copy).
    NoGradGuard no_grad;
    const std::vector<int64_t> perm = dim_first_perm(x0.dim(), d);
    Shape first_shape(shape.size());
    for (size_t i = 0; i < perm.size(); i++) first_shape[i] = shape[perm[i]];
    Tensor y_first = Tensor::empty(first_shape, x0.dtype(), x0.device());
    for (const Tensor& x : xs) {
      copy_to_contiguous("cat", permute(x.detach(), perm), row_start(y_first, at));
      at += x.shape()[d];
    }
    y = contiguous(permute(y_first, inverse_perm(perm)));
  }
  if (needs_grad(xs)) {
    std::vector<int64_t> sizes;
    for (const Tensor& x : xs) sizes.push_back(x.shape()[d]);
    record("cat", y, xs, [sizes, d](const Tensor& dy) {
      std::vector<Tensor> dxs;
      int64_t start = 0;
      for (int64_t s : sizes) {
        dxs.push_back(slice(dy, d, start, start + s));
        start += s;
      }
      return dxs;
    });
  }
  return y;
}

Tensor stack(const std::vector<Tensor>& xs, int64_t dim) {
  if (xs.empty()) op_error("stack", "needs at least one tensor");
  int64_t d = normalize_dim("stack", xs[0].dim() + 1, dim, xs[0].describe());
  for (size_t i = 1; i < xs.size(); i++)
    if (xs[i].shape() != xs[0].shape())
      op_error("stack", "input " + std::to_string(i) + " " + xs[i].describe() + " differs from input 0 " + xs[0].describe());
  std::vector<Tensor> us;
  for (const Tensor& x : xs) us.push_back(unsqueeze(x, d));
  return cat(us, d);
}

std::vector<Tensor> split_sizes(const Tensor& x, const std::vector<int64_t>& sizes, int64_t dim) {
  int64_t d = normalize_dim("split", x, dim);
  int64_t total = 0;
  for (int64_t s : sizes) total += s;
  if (total != x.shape()[d])
    op_error("split", "sizes " + shape_str(sizes) + " sum to " + std::to_string(total) + " but dim " + std::to_string(dim) +
                          " of " + x.describe() + " is " + std::to_string(x.shape()[d]));
  std::vector<Tensor> out;
  int64_t start = 0;
  for (int64_t s : sizes) {
    out.push_back(slice(x, d, start, start + s));
    start += s;
  }
  return out;
}

std::vector<Tensor> split(const Tensor& x, int64_t split_size, int64_t dim) {
  int64_t d = normalize_dim("split", x, dim);
  if (split_size <= 0) op_error("split", "split_size must be positive, got " + std::to_string(split_size));
  std::vector<int64_t> sizes;
  for (int64_t start = 0; start < x.shape()[d]; start += split_size) sizes.push_back(std::min(split_size, x.shape()[d] - start));
  return split_sizes(x, sizes, d);
}

std::vector<Tensor> chunk(const Tensor& x, int64_t chunks, int64_t dim) {
  int64_t d = normalize_dim("chunk", x, dim);
  if (chunks <= 0) op_error("chunk", "chunks must be positive, got " + std::to_string(chunks));
  int64_t size = (x.shape()[d] + chunks - 1) / chunks;
  return split(x, std::max<int64_t>(size, 1), d);
}

}  // namespace sg
