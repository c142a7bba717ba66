// ops/elementwise.cpp — elementwise ops, forward and backward side by side. See elementwise.h.
//
// Unary, binary and scalar-affine ops run their kernels through the device dispatch (ops/kernels.h): on the CPU,
// or on CUDA (the GPU, or its emulation). pow, where/masked_fill and to_dtype are CPU-only so far (check_cpu).
#include "ops/fp8.h"
#include "ops/elementwise.h"

#include <cmath>

#include "autograd/node.h"
#include "ops/cpu/elementwise.h"
#include "ops/dispatch.h"
#include "ops/kernels.h"
#include "ops/reduce.h"
#include "ops/shape.h"

namespace sg {

// ---- unary -----------------------------------------------------------------------------------
// y = f(x);  dx = f'(x) ⊙ dy, computed by the unary_backward kernel (formulas in ops/cpu/elementwise.cpp and
// cuda/kernels/elementwise.cuh, one per op).
static Tensor unary(UnaryOp op, const Tensor& x_in) {
  const char* name = cpu::unary_op_name(op);
  check_defined(name, x_in, "x");
  check_floating(name, x_in);
  Tensor x = x_in.is_contiguous() ? x_in : contiguous(x_in.detach());
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  dispatch_float(x.dtype(), name, [&]<class T>() {
    kernels::unary_forward<T>(name, x.device(), {op, x.numel(), x.device_data<T>(), y.device_data<T>()});
  });
  if (needs_grad(x_in)) {
    Tensor xs = x.detach(), ys = y.detach();
    record(name, y, {x_in}, [op, name, xs, ys](const Tensor& dy_in) {
      check_same_device(name, dy_in, xs);
      Tensor dy = dy_in.is_contiguous() ? dy_in : contiguous(dy_in);
      Tensor dx = Tensor::empty(xs.shape(), xs.dtype(), xs.device());
      dispatch_float(xs.dtype(), name, [&]<class T>() {
        kernels::unary_backward<T>(name, xs.device(),
                                   {op, xs.numel(), xs.device_data<T>(), ys.device_data<T>(), dy.device_data<T>(), dx.device_data<T>()});
      });
      return std::vector<Tensor>{dx};
    });
  }
  return y;
}

Tensor neg(const Tensor& x) { return unary(UnaryOp::neg, x); }
Tensor square(const Tensor& x) { return unary(UnaryOp::square, x); }
Tensor exp(const Tensor& x) { return unary(UnaryOp::exp, x); }
Tensor log(const Tensor& x) { return unary(UnaryOp::log, x); }
Tensor sqrt(const Tensor& x) { return unary(UnaryOp::sqrt, x); }
Tensor rsqrt(const Tensor& x) { return unary(UnaryOp::rsqrt, x); }
Tensor abs(const Tensor& x) { return unary(UnaryOp::abs, x); }
Tensor relu(const Tensor& x) { return unary(UnaryOp::relu, x); }
Tensor sigmoid(const Tensor& x) { return unary(UnaryOp::sigmoid, x); }
Tensor silu(const Tensor& x) { return unary(UnaryOp::silu, x); }
Tensor gelu(const Tensor& x) { return unary(UnaryOp::gelu, x); }
Tensor tanh(const Tensor& x) { return unary(UnaryOp::tanh, x); }
Tensor softplus(const Tensor& x) { return unary(UnaryOp::softplus, x); }
Tensor logsigmoid(const Tensor& x) { return unary(UnaryOp::logsigmoid, x); }

// ---- binary with broadcasting ---------------------------------------------------------------

// Strides of t when broadcast to `shape` (0 on broadcast dims).
static Shape broadcast_strides(const Tensor& t, const Shape& shape) {
  Shape st(shape.size(), 0);
  int64_t lead = (int64_t)shape.size() - t.dim();
  for (int64_t i = 0; i < t.dim(); i++) st[lead + i] = t.shape()[i] == 1 ? 0 : t.strides()[i];
  return st;
}

// The binary kernel's arguments for out[idx] = a[idx] (op) b[idx] over `shape` (out contiguous): each input's
// strides over the output's shape (0 on broadcast dims), size-1 dims dropped, and neighbouring dims merged where
// both inputs step through them as one run (outer stride = inner stride × inner size), so the kernel walks as few
// dims as it can: a (B, T, D) + (D) bias becomes (B·T, D). At most kMaxKernelDims remain after merging.
template <class T>
static BinaryArgs<T> binary_args(const char* name, BinaryOp op, const Shape& shape, const Tensor& a, const Tensor& b,
                                 const Tensor& out) {
  const Shape sa = broadcast_strides(a, shape), sb = broadcast_strides(b, shape);
  BinaryArgs<T> args{};
  args.op = op;
  int nd = 0;
  for (size_t d = 0; d < shape.size(); d++) {
    if (shape[d] == 1) continue;
    if (nd > 0 && args.a_strides[nd - 1] == sa[d] * shape[d] && args.b_strides[nd - 1] == sb[d] * shape[d]) {
      args.shape[nd - 1] *= shape[d];
      args.a_strides[nd - 1] = sa[d];
      args.b_strides[nd - 1] = sb[d];
      continue;
    }
    if (nd == kMaxKernelDims)
      op_error(name, a.describe() + " and " + b.describe() + " broadcast over more than " + std::to_string(kMaxKernelDims) +
                         " dims that cannot be merged; the kernels walk at most that many");
    args.shape[nd] = shape[d];
    args.a_strides[nd] = sa[d];
    args.b_strides[nd] = sb[d];
    nd++;
  }
  args.ndim = nd;
  args.a = a.device_data<T>();
  args.b = b.device_data<T>();
  args.out = out.device_data<T>();
  return args;
}

static Tensor binary_forward(BinaryOp op, const Tensor& a, const Tensor& b) {
  const char* name = cpu::binary_op_name(op);
  check_defined(name, a, "a");
  check_defined(name, b, "b");
  check_floating(name, a);
  check_same_dtype(name, a, b);
  check_same_device(name, a, b);
  Shape shape = broadcast_shapes(name, a, b);
  Tensor out = Tensor::empty(shape, a.dtype(), a.device());
  dispatch_float(a.dtype(), name, [&]<class T>() {
    kernels::binary_forward<T>(name, a.device(), binary_args<T>(name, op, shape, a, b, out));
  });
  return out;
}

// add:  da = sum_to(dy, a.shape),        db = sum_to(dy, b.shape)
Tensor add(const Tensor& a, const Tensor& b) {
  Tensor y = binary_forward(BinaryOp::add, a, b);
  if (needs_grad({a, b})) {
    Shape sa = a.shape(), sb = b.shape();
    bool ga = a.requires_grad(), gb = b.requires_grad();
    record("add", y, {a, b}, [sa, sb, ga, gb](const Tensor& dy) {
      return std::vector<Tensor>{ga ? sum_to(dy, sa) : Tensor(), gb ? sum_to(dy, sb) : Tensor()};
    });
  }
  return y;
}

// sub:  da = sum_to(dy),                 db = -sum_to(dy)
Tensor sub(const Tensor& a, const Tensor& b) {
  Tensor y = binary_forward(BinaryOp::sub, a, b);
  if (needs_grad({a, b})) {
    Shape sa = a.shape(), sb = b.shape();
    bool ga = a.requires_grad(), gb = b.requires_grad();
    record("sub", y, {a, b}, [sa, sb, ga, gb](const Tensor& dy) {
      return std::vector<Tensor>{ga ? sum_to(dy, sa) : Tensor(), gb ? neg(sum_to(dy, sb)) : Tensor()};
    });
  }
  return y;
}

// mul:  da = sum_to(dy ⊙ b),             db = sum_to(dy ⊙ a)
Tensor mul(const Tensor& a, const Tensor& b) {
  Tensor y = binary_forward(BinaryOp::mul, a, b);
  if (needs_grad({a, b})) {
    Tensor as = a.detach(), bs = b.detach();
    bool ga = a.requires_grad(), gb = b.requires_grad();
    record("mul", y, {a, b}, [as, bs, ga, gb](const Tensor& dy) {
      return std::vector<Tensor>{ga ? sum_to(mul(dy, bs), as.shape()) : Tensor(), gb ? sum_to(mul(dy, as), bs.shape()) : Tensor()};
    });
  }
  return y;
}

// div:  da = sum_to(dy / b),             db = -sum_to(dy ⊙ a / b²) = -sum_to(dy ⊙ y / b)
Tensor div(const Tensor& a, const Tensor& b) {
  Tensor y = binary_forward(BinaryOp::div, a, b);
  if (needs_grad({a, b})) {
    Tensor bs = b.detach(), ys = y.detach();
    Shape sa = a.shape();
    bool ga = a.requires_grad(), gb = b.requires_grad();
    record("div", y, {a, b}, [bs, ys, sa, ga, gb](const Tensor& dy) {
      Tensor dy_over_b = div(dy, bs);
      return std::vector<Tensor>{ga ? sum_to(dy_over_b, sa) : Tensor(), gb ? neg(sum_to(mul(dy_over_b, ys), bs.shape())) : Tensor()};
    });
  }
  return y;
}

// y = alpha x + beta:  dx = alpha dy
static Tensor affine(const char* name, const Tensor& x_in, double alpha, double beta) {
  check_defined(name, x_in, "x");
  check_floating(name, x_in);
  Tensor x = x_in.is_contiguous() ? x_in : contiguous(x_in.detach());
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  dispatch_float(x.dtype(), name, [&]<class T>() {
    kernels::affine_forward<T>(name, x.device(), {x.numel(), (T)alpha, (T)beta, x.device_data<T>(), y.device_data<T>()});
  });
  if (needs_grad(x_in))
    record(name, y, {x_in}, [alpha](const Tensor& dy) { return std::vector<Tensor>{alpha == 1.0 ? dy : mul(dy, alpha)}; });
  return y;
}
Tensor add(const Tensor& a, double b) { return affine("add_scalar", a, 1.0, b); }
Tensor mul(const Tensor& a, double b) { return affine("mul_scalar", a, b, 0.0); }

// y = x^p:  dx = p x^(p-1) dy
Tensor pow(const Tensor& x, double p) {
  check_defined("pow", x, "x");
  check_floating("pow", x);
  check_cpu("pow", x);
  if (p == 2.0) return square(x);
  Tensor xc = contiguous(x.detach());
  Tensor y = Tensor::empty(x.shape(), x.dtype());
  dispatch_float(x.dtype(), "pow", [&]<class T>() {
    const T* px = xc.data<T>();
    T* py = y.data<T>();
    for (int64_t i = 0; i < xc.numel(); i++) py[i] = (T)std::pow((double)px[i], p);
  });
  if (needs_grad(x)) {
    record("pow", y, {x}, [xc, p](const Tensor& dy) { return std::vector<Tensor>{mul(dy, mul(pow(xc, p - 1.0), p))}; });
  }
  return y;
}

// ---- where / masked_fill ---------------------------------------------------------------------
// out = cond ? a : b:  da = sum_to(dy ⊙ cond), db = sum_to(dy ⊙ !cond); cond gets no gradient.
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  check_defined("where", cond, "cond");
  check_defined("where", a, "a");
  check_defined("where", b, "b");
  check_floating("where", a);
  check_same_dtype("where", a, b);
  check_cpu("where", cond);
  check_cpu("where", a);
  check_cpu("where", b);
  Shape shape = broadcast_shapes("where", a, b);
  Tensor shape_probe = Tensor::empty(shape, a.dtype());
  shape = broadcast_shapes("where", cond, shape_probe);
  Tensor out = Tensor::empty(shape, a.dtype());
  Shape cs = broadcast_strides(cond, shape), as = broadcast_strides(a, shape), bs = broadcast_strides(b, shape);
  int64_t n = out.numel(), nd = (int64_t)shape.size();
  dispatch_float(a.dtype(), "where", [&]<class T>() {
    const T* pa = static_cast<const T*>(a.raw_data());
    const T* pb = static_cast<const T*>(b.raw_data());
    const char* pc = static_cast<const char*>(cond.raw_data());
    size_t ces = dtype_size(cond.dtype());
    T* po = out.data<T>();
    for (int64_t i = 0; i < n; i++) {
      int64_t rem = i, co = 0, ao = 0, bo = 0;
      for (int64_t d = nd - 1; d >= 0; d--) {
        int64_t k = rem % shape[d];
        rem /= shape[d];
        co += k * cs[d];
        ao += k * as[d];
        bo += k * bs[d];
      }
      bool c;
      switch (cond.dtype()) {
        case DType::f32: c = reinterpret_cast<const float*>(pc)[co] != 0; break;
        case DType::f64: c = reinterpret_cast<const double*>(pc)[co] != 0; break;
        case DType::i32: c = reinterpret_cast<const int32_t*>(pc)[co] != 0; break;
        default: c = reinterpret_cast<const int64_t*>(pc)[co] != 0; break;
      }
      (void)ces;
      po[i] = c ? pa[ao] : pb[bo];
    }
  });
  if (needs_grad({a, b})) {
    Tensor cd = cond.detach();
    Shape sa = a.shape(), sb = b.shape();
    record("where", out, {a, b}, [cd, sa, sb](const Tensor& dy) {
      Tensor zeros = Tensor::zeros({}, dy.dtype());
      return std::vector<Tensor>{sum_to(where(cd, dy, zeros), sa), sum_to(where(cd, zeros, dy), sb)};
    });
  }
  return out;
}

Tensor masked_fill(const Tensor& x, const Tensor& mask, double value) {
  check_defined("masked_fill", x, "x");
  check_defined("masked_fill", mask, "mask");
  check_cpu("masked_fill", x);
  check_cpu("masked_fill", mask);
  Shape shape = broadcast_shapes("masked_fill", x, mask);
  if (shape != x.shape())
    op_error("masked_fill", "mask " + mask.describe() + " must broadcast to x " + x.describe() + " without growing it");
  return where(mask, Tensor::full({}, value, x.dtype()), x);
}

// ---- dtype cast ------------------------------------------------------------------------------
// y = (dtype) x:  dx = (x.dtype) dy
Tensor to_dtype(const Tensor& x, DType dtype) {
  check_defined("to_dtype", x, "x");
  if (x.dtype() == dtype) return x;  // on any device
  check_cpu("to_dtype", x);
  std::vector<double> v = x.to_f64_vector();
  Tensor y = Tensor::empty(x.shape(), dtype);
  for (int64_t i = 0; i < y.numel(); i++) {
    switch (dtype) {
      case DType::f32: y.data<float>()[i] = (float)v[i]; break;
      case DType::f64: y.data<double>()[i] = v[i]; break;
      case DType::i32: y.data<int32_t>()[i] = (int32_t)v[i]; break;
      case DType::i64: y.data<int64_t>()[i] = (int64_t)v[i]; break;
      // Storage dtypes (autograd/tensor.h): round to nearest even; E4M3 saturates at ±448.
      case DType::bf16: static_cast<uint16_t*>(y.raw_data())[i] = lowp::f32_to_bf16((float)v[i]); break;
      case DType::f16: static_cast<uint16_t*>(y.raw_data())[i] = lowp::f32_to_f16((float)v[i]); break;
      case DType::f8e4m3: y.fp8_codes()[i] = lowp::f32_to_e4m3((float)v[i]); break;
      case DType::f8e5m2: y.fp8_codes()[i] = lowp::f32_to_e5m2((float)v[i]); break;
    }
  }
  if (is_floating(dtype) && needs_grad(x)) {
    DType from = x.dtype();
    record("to_dtype", y, {x}, [from](const Tensor& dy) { return std::vector<Tensor>{to_dtype(dy, from)}; });
  }
  return y;
}

}  // namespace sg
