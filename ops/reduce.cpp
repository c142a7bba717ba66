// ops/reduce.cpp — reductions, forward and backward side by side. See reduce.h.
//
// Every reduction: normalise the axes, permute them to the end, make the tensor contiguous as
// [rows, cols], reduce each row (the reduce_rows kernel, ops/kernels.h), reshape to the kept dims.
#include "ops/reduce.h"

#include <algorithm>

#include "autograd/node.h"
#include "ops/dispatch.h"
#include "ops/elementwise.h"
#include "ops/kernels.h"
#include "ops/shape.h"

namespace sg {

// Normalised, sorted, de-duplicated axes; empty `axes` means all of them.
static std::vector<int64_t> normalize_axes(const char* op, const Tensor& x, const std::vector<int64_t>& axes) {
  std::vector<int64_t> out;
  if (axes.empty()) {
    for (int64_t d = 0; d < x.dim(); d++) out.push_back(d);
    return out;
  }
  for (int64_t a : axes) out.push_back(normalize_dim(op, x, a));
  std::sort(out.begin(), out.end());
  if (std::adjacent_find(out.begin(), out.end()) != out.end()) op_error(op, "repeated axis in " + shape_str(axes));
  return out;
}

// The reduced layout of x for `axes`: result shape (keepdim or not), kept-dims-first permutation.
struct ReducePlan {
  std::vector<int64_t> axes, perm;
  Shape out_shape, keep_shape;  // keep_shape has 1s at the reduced axes
  int64_t rows = 1, cols = 1;
};
static ReducePlan plan_reduce(const char* op, const Tensor& x, const std::vector<int64_t>& axes_in, bool keepdim) {
  ReducePlan p;
  p.axes = normalize_axes(op, x, axes_in);
  std::vector<bool> reduced(x.dim(), false);
  for (int64_t a : p.axes) reduced[a] = true;
  for (int64_t d = 0; d < x.dim(); d++) {
    if (!reduced[d]) {
      p.perm.push_back(d);
      p.rows *= x.shape()[d];
      p.out_shape.push_back(x.shape()[d]);
      p.keep_shape.push_back(x.shape()[d]);
    } else {
      p.keep_shape.push_back(1);
      if (keepdim) p.out_shape.push_back(1);
    }
  }
  for (int64_t a : p.axes) {
    p.perm.push_back(a);
    p.cols *= x.shape()[a];
  }
  return p;
}

static Tensor rows_view(const Tensor& x, const ReducePlan& p) {
  NoGradGuard no_grad;
  return contiguous(permute(x.detach(), p.perm));
}

// ---- sum -------------------------------------------------------------------------------------
// y = Σ_axes x:  dx = expand(dy with 1s at the reduced axes, x.shape)
Tensor sum(const Tensor& x, const std::vector<int64_t>& axes, bool keepdim) {
  check_defined("sum", x, "x");
  check_floating("sum", x);
  ReducePlan p = plan_reduce("sum", x, axes, keepdim);
  Tensor xr = rows_view(x, p);
  Tensor y = Tensor::empty(p.out_shape, x.dtype(), x.device());
  if (p.cols == 0) {
    y = Tensor::zeros(p.out_shape, x.dtype(), x.device());
  } else {
    dispatch_float(x.dtype(), "sum", [&]<class T>() {
      kernels::reduce_rows<T>("sum", x.device(), {ReduceOp::sum, p.rows, p.cols, xr.device_data<T>(), y.device_data<T>()});
    });
  }
  if (needs_grad(x)) {
    Shape keep = p.keep_shape, in_shape = x.shape();
    record("sum", y, {x}, [keep, in_shape](const Tensor& dy) { return std::vector<Tensor>{expand(reshape(dy, keep), in_shape)}; });
  }
  return y;
}
Tensor sum(const Tensor& x) { return sum(x, {}, false); }

// y = Σ_axes x / n:  dx = expand(dy) / n
Tensor mean(const Tensor& x, const std::vector<int64_t>& axes, bool keepdim) {
  ReducePlan p = plan_reduce("mean", x, axes, keepdim);
  if (p.cols == 0) op_error("mean", "mean over an empty set of elements of " + x.describe());
  return mul(sum(x, axes, keepdim), 1.0 / (double)p.cols);
}
Tensor mean(const Tensor& x) { return mean(x, {}, false); }

// ---- max / min -------------------------------------------------------------------------------
// y = max_axes x:  dx = dy at the (first) position of the maximum, 0 elsewhere — the topk backward with k = 1
// (dx[r, arg[r]] = 0 + dy[r]), in the permuted [rows, cols] layout, permuted back.
static Tensor extreme(ReduceOp op, const char* name, const Tensor& x, const std::vector<int64_t>& axes, bool keepdim) {
  check_defined(name, x, "x");
  check_floating(name, x);
  ReducePlan p = plan_reduce(name, x, axes, keepdim);
  if (p.cols == 0) op_error(name, "reduction over an empty set of elements of " + x.describe());
  Tensor xr = rows_view(x, p);
  Tensor y = Tensor::empty(p.out_shape, x.dtype(), x.device());
  dispatch_float(x.dtype(), name, [&]<class T>() {
    kernels::reduce_rows<T>(name, x.device(), {op, p.rows, p.cols, xr.device_data<T>(), y.device_data<T>()});
  });
  if (needs_grad(x)) {
    Tensor arg = Tensor::empty({p.rows}, DType::i64, x.device());  // [rows]: the column of each row's extreme
    dispatch_float(x.dtype(), name, [&]<class T>() {
      kernels::arg_reduce_rows<T>(name, x.device(), {op, p.rows, p.cols, xr.device_data<T>(), arg.device_data<int64_t>()});
    });
    Shape in_shape = x.shape(), permuted_shape = xr.shape();
    std::vector<int64_t> perm = p.perm;
    int64_t rows = p.rows, cols = p.cols;
    record(name, y, {x}, [arg, in_shape, permuted_shape, perm, rows, cols](const Tensor& dy_in) {
      Tensor dy = contiguous(dy_in);
      check_same_device("max_backward", dy, arg);
      Tensor dxr = Tensor::empty(permuted_shape, dy.dtype(), dy.device());  // in the permuted [rows, cols] layout
      dispatch_float(dy.dtype(), "max_backward", [&]<class T>() {
        kernels::topk_backward<T>("max_backward", dy.device(),
                                  {rows, cols, 1, dy.device_data<T>(), arg.device_data<int64_t>(), dxr.device_data<T>()});
      });
      std::vector<int64_t> inverse(perm.size());
      for (size_t i = 0; i < perm.size(); i++) inverse[perm[i]] = (int64_t)i;
      return std::vector<Tensor>{contiguous(permute(dxr, inverse))};
    });
  }
  return y;
}
Tensor max(const Tensor& x, const std::vector<int64_t>& axes, bool keepdim) { return extreme(ReduceOp::max, "max", x, axes, keepdim); }
Tensor min(const Tensor& x, const std::vector<int64_t>& axes, bool keepdim) { return extreme(ReduceOp::min, "min", x, axes, keepdim); }

// ---- var -------------------------------------------------------------------------------------
// var = Σ (x - mean)² / (n - correction), composed from differentiable ops, so its backward is
// the chain rule through them: dx = 2 (x - mean) dy / (n - correction).
Tensor var(const Tensor& x, const std::vector<int64_t>& axes, bool keepdim, int64_t correction) {
  ReducePlan p = plan_reduce("var", x, axes, keepdim);
  if (p.cols - correction <= 0)
    op_error("var", "needs more than " + std::to_string(correction) + " elements per reduction, " + x.describe() + " has " +
                        std::to_string(p.cols));
  Tensor centered = sub(x, mean(x, axes, true));
  return mul(sum(square(centered), axes, keepdim), 1.0 / (double)(p.cols - correction));
}

// ---- sum_to ----------------------------------------------------------------------------------
Tensor sum_to(const Tensor& g, const Shape& shape) {
  if (g.shape() == shape) return g;
  int64_t lead = g.dim() - (int64_t)shape.size();
  if (lead < 0) op_error("sum_to", "cannot reduce " + g.describe() + " to the larger shape " + shape_str(shape));
  std::vector<int64_t> axes;
  for (int64_t d = 0; d < g.dim(); d++) {
    if (d < lead) axes.push_back(d);
    else if (shape[d - lead] == 1 && g.shape()[d] != 1) axes.push_back(d);
    else if (shape[d - lead] != g.shape()[d])
      op_error("sum_to", "cannot reduce " + g.describe() + " to " + shape_str(shape));
  }
  Tensor s = axes.empty() ? g : sum(g, axes, true);
  return reshape(s, shape);
}

}  // namespace sg
