// ops/elementwise.cpp — elementwise ops, forward and backward side by side. See elementwise.h.
//
// Every op here runs its kernels through the device dispatch (ops/kernels.h): on the CPU, or on CUDA (the GPU, or
// its emulation): unary, binary, scalar affine, pow, where / masked_fill, and the dtype cast (to_dtype).
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

// The dims a strided kernel walks over `shape` (the output's, contiguous), reading K inputs through their own
// strides over it (`in`, 0 on broadcast dims): size-1 dims dropped, and neighbouring dims merged where every input
// steps through them as one run (outer stride = inner stride × inner size), so the kernel walks as few dims as it
// can: a (B, T, D) + (D) bias becomes (B·T, D). Writes them to out_shape / out_strides[k] and returns how many, or
// -1 when more than kMaxKernelDims remain.
template <size_t K>
static int merge_dims(const Shape& shape, const Shape* const (&in)[K], int64_t* out_shape, int64_t* const (&out_strides)[K]) {
  int nd = 0;
  for (size_t d = 0; d < shape.size(); d++) {
    if (shape[d] == 1) continue;
    bool merge = nd > 0;
    for (size_t k = 0; k < K && merge; k++) merge = out_strides[k][nd - 1] == (*in[k])[d] * shape[d];
    if (merge) {
      out_shape[nd - 1] *= shape[d];
      for (size_t k = 0; k < K; k++) out_strides[k][nd - 1] = (*in[k])[d];
      continue;
    }
    if (nd == kMaxKernelDims) return -1;
    out_shape[nd] = shape[d];
    for (size_t k = 0; k < K; k++) out_strides[k][nd] = (*in[k])[d];
    nd++;
  }
  return nd;
}

[[noreturn]] static void too_many_dims(const char* name, const std::string& what) {
  op_error(name, what + " over more than " + std::to_string(kMaxKernelDims) +
                     " dims that cannot be merged; the kernels walk at most that many");
}

// The binary kernel's arguments for out[idx] = a[idx] (op) b[idx] over `shape` (out contiguous): each input's
// strides over the output's shape, merged (merge_dims). At most kMaxKernelDims remain after merging.
template <class T>
static BinaryArgs<T> binary_args(const char* name, BinaryOp op, const Shape& shape, const Tensor& a, const Tensor& b,
                                 const Tensor& out) {
  const Shape sa = broadcast_strides(a, shape), sb = broadcast_strides(b, shape);
  BinaryArgs<T> args{};
  args.op = op;
  const Shape* const in[2] = {&sa, &sb};
  int64_t* const strides[2] = {args.a_strides, args.b_strides};
  args.ndim = merge_dims(shape, in, args.shape, strides);
  if (args.ndim < 0) too_many_dims(name, a.describe() + " and " + b.describe() + " broadcast");
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

// y = x^p, in double as (T) pow((double) x, p):  dx = p x^(p-1) dy
Tensor pow(const Tensor& x, double p) {
  check_defined("pow", x, "x");
  check_floating("pow", x);
  if (p == 2.0) return square(x);
  Tensor xc = contiguous(x.detach());
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  dispatch_float(x.dtype(), "pow", [&]<class T>() {
    kernels::pow_forward<T>("pow", x.device(), {xc.numel(), p, xc.device_data<T>(), y.device_data<T>()});
  });
  if (needs_grad(x)) {
    record("pow", y, {x}, [xc, p](const Tensor& dy) { return std::vector<Tensor>{mul(dy, mul(pow(xc, p - 1.0), p))}; });
  }
  return y;
}

// The kernels' element-type codes are DType's (ops/kernel_abi/elementwise.h).
static_assert((int)ElemType::f32 == (int)DType::f32 && (int)ElemType::f64 == (int)DType::f64 &&
              (int)ElemType::i32 == (int)DType::i32 && (int)ElemType::i64 == (int)DType::i64 &&
              (int)ElemType::bf16 == (int)DType::bf16 && (int)ElemType::f16 == (int)DType::f16 &&
              (int)ElemType::f8e4m3 == (int)DType::f8e4m3 && (int)ElemType::f8e5m2 == (int)DType::f8e5m2);
static ElemType elem_type(DType dt) { return (ElemType)(int)dt; }

// ---- where / masked_fill ---------------------------------------------------------------------
// out = cond ? a : b:  da = sum_to(dy ⊙ cond), db = sum_to(dy ⊙ !cond); cond gets no gradient.
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  check_defined("where", cond, "cond");
  check_defined("where", a, "a");
  check_defined("where", b, "b");
  check_floating("where", a);
  check_same_dtype("where", a, b);
  check_same_device("where", a, b);
  check_same_device("where", cond, a);
  const DType ct = cond.dtype();
  if (ct != DType::f32 && ct != DType::f64 && ct != DType::i32 && ct != DType::i64)
    op_error("where", "the condition " + cond.describe() + " must be f32, f64, i32 or i64");
  Shape shape = broadcast_shapes("where", a, b);
  shape = broadcast_shapes("where", cond, expand(Tensor::empty({}, a.dtype()), shape));  // a view: allocates nothing
  Tensor out = Tensor::empty(shape, a.dtype(), a.device());
  const Shape cs = broadcast_strides(cond, shape), as = broadcast_strides(a, shape), bs = broadcast_strides(b, shape);
  dispatch_float(a.dtype(), "where", [&]<class T>() {
    WhereArgs<T> args{};
    args.cond_type = elem_type(ct);
    const Shape* const in[3] = {&cs, &as, &bs};
    int64_t* const strides[3] = {args.cond_strides, args.a_strides, args.b_strides};
    args.ndim = merge_dims(shape, in, args.shape, strides);
    if (args.ndim < 0) too_many_dims("where", cond.describe() + ", " + a.describe() + " and " + b.describe() + " broadcast");
    args.cond = cond.raw_device_data();
    args.a = a.device_data<T>();
    args.b = b.device_data<T>();
    args.out = out.device_data<T>();
    kernels::where_forward<T>("where", a.device(), args);
  });
  if (needs_grad({a, b})) {
    Tensor cd = cond.detach();
    Shape sa = a.shape(), sb = b.shape();
    record("where", out, {a, b}, [cd, sa, sb](const Tensor& dy) {
      Tensor zeros = Tensor::zeros({}, dy.dtype(), dy.device());
      return std::vector<Tensor>{sum_to(where(cd, dy, zeros), sa), sum_to(where(cd, zeros, dy), sb)};
    });
  }
  return out;
}

Tensor masked_fill(const Tensor& x, const Tensor& mask, double value) {
  check_defined("masked_fill", x, "x");
  check_defined("masked_fill", mask, "mask");
  check_same_device("masked_fill", x, mask);
  Shape shape = broadcast_shapes("masked_fill", x, mask);
  if (shape != x.shape())
    op_error("masked_fill", "mask " + mask.describe() + " must broadcast to x " + x.describe() + " without growing it");
  return where(mask, Tensor::full({}, value, x.dtype(), x.device()), x);
}

// ---- dtype cast ------------------------------------------------------------------------------
// y = (dtype) x, element by element through double (ops/kernel_abi/cast.h: RNE to bf16 / f16 / FP8 via f32, E4M3
// saturating, integers toward zero):  dx = (x.dtype) dy
Tensor to_dtype(const Tensor& x, DType dtype) {
  check_defined("to_dtype", x, "x");
  if (x.dtype() == dtype) return x;  // on any device
  Tensor y = Tensor::empty(x.shape(), dtype, x.device());
  CastArgs args{};
  args.src_type = elem_type(x.dtype());
  args.dst_type = elem_type(dtype);
  const Shape* const in[1] = {&x.strides()};
  int64_t* const strides[1] = {args.src_strides};
  args.ndim = merge_dims(x.shape(), in, args.shape, strides);
  if (args.ndim < 0) too_many_dims("to_dtype", x.describe() + " is strided");
  args.src = x.raw_device_data();
  args.dst = y.raw_device_data();
  kernels::cast("to_dtype", x.device(), args);
  if (is_floating(dtype) && needs_grad(x)) {
    DType from = x.dtype();
    record("to_dtype", y, {x}, [from](const Tensor& dy) { return std::vector<Tensor>{to_dtype(dy, from)}; });
  }
  return y;
}

}  // namespace sg
