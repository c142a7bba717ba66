// ops/reduce.cpp — reductions, forward and backward side by side. See reduce.h.
//
// Every reduction: normalise the axes, permute them to the end, make the tensor contiguous as
// [rows, cols], reduce each row (ops/cpu/reduce.cpp), reshape to the kept dims.
#include "ops/reduce.h"

#include <algorithm>

#include "autograd/node.h"
#include "ops/cpu/reduce.h"
#include "ops/dispatch.h"
#include "ops/elementwise.h"
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
  check_cpu("sum", x);
  ReducePlan p = plan_reduce("sum", x, axes, keepdim);
  Tensor xr = rows_view(x, p);
  Tensor y = Tensor::empty(p.out_shape, x.dtype());
  if (p.cols == 0) {
    y = Tensor::zeros(p.out_shape, x.dtype());
  } else {
    dispatch_float(x.dtype(), "sum", [&]<class T>() { cpu::reduce_rows<T>(cpu::ReduceOp::sum, xr.data<T>(), p.rows, p.cols, y.data<T>()); });
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
// y = max_axes x:  dx = dy at the (first) position of the maximum, 0 elsewhere.
static Tensor extreme(cpu::ReduceOp op, const char* name, const Tensor& x, const std::vector<int64_t>& axes, bool keepdim) {
  check_defined(name, x, "x");
  check_floating(name, x);
  check_cpu(name, x);
  ReducePlan p = plan_reduce(name, x, axes, keepdim);
  if (p.cols == 0) op_error(name, "reduction over an empty set of elements of " + x.describe());
  Tensor xr = rows_view(x, p);
  Tensor y = Tensor::empty(p.out_shape, x.dtype());
  dispatch_float(x.dtype(), name, [&]<class T>() { cpu::reduce_rows<T>(op, xr.data<T>(), p.rows, p.cols, y.data<T>()); });
  if (needs_grad(x)) {
    std::vector<int64_t> arg(p.rows);
    dispatch_float(x.dtype(), name, [&]<class T>() { cpu::arg_reduce_rows<T>(op, xr.data<T>(), p.rows, p.cols, arg.data()); });
    Shape in_shape = x.shape(), permuted_shape = xr.shape();
    std::vector<int64_t> perm = p.perm;
    int64_t rows = p.rows, cols = p.cols;
    record(name, y, {x}, [arg, in_shape, permuted_shape, perm, rows, cols](const Tensor& dy_in) {
      Tensor dy = contiguous(dy_in);
      Tensor dxr = Tensor::zeros(permuted_shape, dy.dtype());  // in the permuted [rows, cols] layout
      dispatch_float(dy.dtype(), "max_backward", [&]<class T>() {
        const T* g = dy.data<T>();
        T* d = dxr.data<T>();
        for (int64_t r = 0; r < rows; r++) d[r * cols + arg[r]] = g[r];
      });
      std::vector<int64_t> inverse(perm.size());
      for (size_t i = 0; i < perm.size(); i++) inverse[perm[i]] = (int64_t)i;
      return std::vector<Tensor>{contiguous(permute(dxr, inverse))};
    });
  }
  return y;
}
Tensor max(const Tensor& x, const std::vector<int64_t>& axes, bool keepdim) { return extreme(cpu::ReduceOp::max, "max", x, axes, keepdim); }
Tensor min(const Tensor& x, const std::vector<int64_t>& axes, bool keepdim) { return extreme(cpu::ReduceOp::min, "min", x, axes, keepdim); }

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
