// ops/nn.cpp — the fused nn ops (see nn.h): argument checks, the kernel through the device dispatch
// (ops/kernels.h: the CPU kernels of ops/cpu/nn.cpp, or the CUDA ones), the saved tensors and the backward,
// side by side, the derivative in a comment above each backward. ops/README.md indexes the formulas;
// tests/ops/test_nn.cpp checks every op against its composite twin built from elementwise/reduce ops, gradients
// included.
//
// Layout: the kernels read contiguous [rows, cols] buffers. An op over `dim` moves that dim last
// (a permute view) and copies to contiguous; its output is permuted back and copied again. The
// common case — dim is already last and x contiguous — copies nothing.
//
// What this is not: the composite versions. Those are written in the tests, from other ops.
#include "ops/nn.h"

#include <memory>

#include "autograd/node.h"
#include "ops/cpu/hadamard.h"
#include "ops/cpu/nn.h"
#include "ops/dispatch.h"
#include "ops/elementwise.h"
#include "ops/kernels.h"
#include "ops/shape.h"

namespace sg {

// ---- helpers: move a dim last and back --------------------------------------------------------

// The permutation that moves `dim` to the end, keeping the other dims in order; empty if it
// already is the last dim (no permute needed).
static std::vector<int64_t> dim_last_perm(int64_t ndim, int64_t dim) {
  if (dim == ndim - 1) return {};
  std::vector<int64_t> perm;
  for (int64_t d = 0; d < ndim; d++)
    if (d != dim) perm.push_back(d);
  perm.push_back(dim);
  return perm;
}

// t permuted by `perm` and made contiguous, with no history: the [rows, cols] buffer of a kernel.
static Tensor rows_of(const Tensor& t, const std::vector<int64_t>& perm) {
  NoGradGuard no_grad;
  Tensor v = t.detach();
  return contiguous(perm.empty() ? v : permute(v, perm));
}

// The inverse of rows_of: a contiguous tensor in the original dim order.
static Tensor unrows(const Tensor& t, const std::vector<int64_t>& perm) {
  if (perm.empty()) return t;
  std::vector<int64_t> inverse(perm.size());
  for (size_t i = 0; i < perm.size(); i++) inverse[perm[i]] = (int64_t)i;
  NoGradGuard no_grad;
  return contiguous(permute(t, inverse));
}

static void check_float_input(const char* op, const Tensor& x, const char* what) {
  check_defined(op, x, what);
  check_floating(op, x);
}

// A constant table (rope's cos/sin) in x's dtype, contiguous, outside the tape.
static Tensor constant_like(const Tensor& t, DType dtype) {
  NoGradGuard no_grad;
  return contiguous(to_dtype(t.detach(), dtype));
}

// ---- softmax / log_softmax --------------------------------------------------------------------
// softmax:      y = exp(x − max) / Σ exp(x − max)   dx = y ⊙ (dy − Σ dy ⊙ y)
// log_softmax:  y = x − max − log Σ exp(x − max)    dx = dy − exp(y) ⊙ Σ dy
// (sums over `dim`; the backward kernels are softmax_backward / log_softmax_backward, ops/kernels.h)
static Tensor softmax_op(bool log, const Tensor& x, int64_t dim) {
  const char* name = log ? "log_softmax" : "softmax";
  check_float_input(name, x, "x");
  int64_t d = normalize_dim(name, x, dim);
  std::vector<int64_t> perm = dim_last_perm(x.dim(), d);
  Tensor xr = rows_of(x, perm);
  int64_t cols = x.shape()[d], rows = cols ? x.numel() / cols : 0;
  Tensor yr = Tensor::empty(xr.shape(), x.dtype(), x.device());
  if (rows > 0) dispatch_float(x.dtype(), name, [&]<class T>() {
    const SoftmaxArgs<T> a{rows, cols, xr.device_data<T>(), yr.device_data<T>()};
    if (log) kernels::log_softmax_forward<T>(name, x.device(), a);
    else kernels::softmax_forward<T>(name, x.device(), a);
  });
  Tensor y = unrows(yr, perm);
  if (needs_grad(x)) {
    Tensor ys = yr.detach();  // the output in the [rows, cols] layout (detached: no cycle)
    record(name, y, {x}, [log, ys, perm, rows, cols](const Tensor& dy) {
      const char* bname = log ? "log_softmax_backward" : "softmax_backward";
      check_same_device(bname, dy, ys);
      Tensor dyr = rows_of(dy, perm);
      Tensor dxr = Tensor::empty(ys.shape(), ys.dtype(), ys.device());
      if (rows > 0) dispatch_float(ys.dtype(), bname, [&]<class T>() {
        const SoftmaxBackwardArgs<T> a{rows, cols, ys.device_data<T>(), dyr.device_data<T>(), dxr.device_data<T>()};
        if (log) kernels::log_softmax_backward<T>(bname, ys.device(), a);
        else kernels::softmax_backward<T>(bname, ys.device(), a);
      });
      return std::vector<Tensor>{unrows(dxr, perm)};
    });
  }
  return y;
}

Tensor softmax(const Tensor& x, int64_t dim) { return softmax_op(false, x, dim); }
Tensor log_softmax(const Tensor& x, int64_t dim) { return softmax_op(true, x, dim); }

// ---- cross_entropy ----------------------------------------------------------------------------
// loss = (1/n) Σ_{r: t_r ≠ ignore} (lse_r − x_r[t_r]),  n = #non-ignored rows (loss 0 if n = 0)
// dlogits_r = dloss / n · (softmax(x_r) − onehot(t_r)),  0 on ignored rows; targets get none.
Tensor cross_entropy(const Tensor& logits, const Tensor& targets, int64_t ignore_index) {
  const char* name = "cross_entropy";
  check_float_input(name, logits, "logits");
  check_defined(name, targets, "targets");
  check_same_device(name, logits, targets);
  dispatch_index(targets.dtype(), name, []<class I>() {});  // throws unless targets are i32/i64
  if (logits.dim() < 1) op_error(name, "logits " + logits.describe() + " needs a vocabulary dim");
  Shape lead(logits.shape().begin(), logits.shape().end() - 1);
  if (targets.shape() != lead)
    op_error(name, "targets " + targets.describe() + " does not match logits " + logits.describe() +
                       ", which needs targets of shape " + shape_str(lead));
  int64_t V = logits.shape().back(), rows = shape_numel(lead);
  if (V == 0 && rows > 0) op_error(name, "logits " + logits.describe() + " has an empty vocabulary dim");

  const std::vector<int64_t> t = targets.to_i64_vector();  // row-major, like the rows (read on the host)
  int64_t n_valid = 0;
  for (int64_t i = 0; i < rows; i++) {
    int64_t ti = t[i];
    if (ti == ignore_index) continue;
    if (ti < 0 || ti >= V)
      op_error(name, "target " + std::to_string(ti) + " at position " + std::to_string(i) + " is outside [0, " +
                         std::to_string(V) + ")");
    n_valid++;
  }

  // The kernels read the targets as i64 in the memory of the logits' device; the per-row losses come back to the
  // host and are added there in row order, in double, on every device.
  const Device dev = logits.device();
  Tensor x = rows_of(logits, {});
  Tensor t64 = Tensor::from_vector(t, {rows}).to(dev);
  Tensor lse = Tensor::empty({rows}, logits.dtype(), dev);
  Tensor loss = Tensor::empty({rows}, logits.dtype(), dev);
  double total = 0;
  if (rows > 0) dispatch_float(logits.dtype(), name, [&]<class T>() {
    kernels::cross_entropy_forward<T>(name, dev, {rows, V, ignore_index, x.device_data<T>(), t64.device_data<int64_t>(),
                                                  lse.device_data<T>(), loss.device_data<T>()});
    Tensor loss_host = loss.to(Device::CPU);
    const T* l = loss_host.data<T>();
    for (int64_t i = 0; i < rows; i++) total += l[i];
  });
  Tensor y = Tensor::scalar(n_valid ? total / (double)n_valid : 0.0, logits.dtype(), dev);
  if (needs_grad(logits)) {
    record(name, y, {logits}, [x, t64, lse, rows, V, ignore_index, n_valid](const Tensor& dy) {
      Tensor dx = Tensor::empty(x.shape(), x.dtype(), x.device());
      double scale = n_valid ? dy.item() / (double)n_valid : 0.0;
      if (rows > 0) dispatch_float(x.dtype(), "cross_entropy_backward", [&]<class T>() {
        kernels::cross_entropy_backward<T>("cross_entropy_backward", x.device(),
                                           {rows, V, ignore_index, (T)scale, x.device_data<T>(), t64.device_data<int64_t>(),
                                            lse.device_data<T>(), dx.device_data<T>()});
      });
      return std::vector<Tensor>{dx};
    });
  }
  return y;
}

// ---- rms_norm ---------------------------------------------------------------------------------
// y = w ⊙ x · r,  r = (mean(x²) + eps)^(−1/2) per row of the last dim
// dx = w ⊙ dy · r − x · r³ · mean(w ⊙ dy ⊙ x),   dw = Σ_rows dy ⊙ x · r
static void check_norm_param(const char* op, const Tensor& x, const Tensor& p, const char* what) {
  check_float_input(op, p, what);
  check_same_dtype(op, x, p);
  check_same_device(op, x, p);
  if (p.dim() != 1 || p.shape()[0] != x.shape().back())
    op_error(op, std::string(what) + " has shape " + shape_str(p.shape()) + " but x has last dim " +
                     std::to_string(x.shape().back()));
}

Tensor rms_norm(const Tensor& x, const Tensor& weight, double eps) {
  const char* name = "rms_norm";
  check_float_input(name, x, "x");
  if (x.dim() < 1) op_error(name, "x " + x.describe() + " needs at least one dim");
  check_defined(name, weight, "weight");
  check_norm_param(name, x, weight, "weight");
  int64_t D = x.shape().back(), rows = D ? x.numel() / D : 0;
  const Device dev = x.device();
  Tensor xc = rows_of(x, {}), wc = rows_of(weight, {});
  Tensor y = Tensor::empty(x.shape(), x.dtype(), dev);
  Tensor rstd = Tensor::empty({rows}, x.dtype(), dev);
  if (rows > 0) dispatch_float(x.dtype(), name, [&]<class T>() {
    kernels::rms_norm_forward<T>(name, dev, {rows, D, (T)eps, xc.device_data<T>(), wc.device_data<T>(), y.device_data<T>(),
                                             rstd.device_data<T>()}, eps);
  });
  if (needs_grad({x, weight})) {
    bool gw = weight.requires_grad();
    record(name, y, {x, weight}, [xc, wc, rstd, rows, D, gw](const Tensor& dy_in) {
      const char* bname = "rms_norm_backward";
      const Device dev = xc.device();
      check_same_device(bname, dy_in, xc);
      Tensor dy = rows_of(dy_in, {});
      Tensor dx = Tensor::empty(xc.shape(), xc.dtype(), dev);
      Tensor dweight = gw ? Tensor::empty(wc.shape(), wc.dtype(), dev) : Tensor();
      // a device sums dweight over rows through per-block partial rows (ops/kernel_abi/norm.h); the CPU needs none
      const int64_t n_scratch = gw ? kernels::rms_norm_backward_scratch_size(dev, rows, D) : 0;
      Tensor scratch = n_scratch ? Tensor::empty({n_scratch}, xc.dtype(), dev) : Tensor();
      if (rows > 0 || gw) dispatch_float(xc.dtype(), bname, [&]<class T>() {
        kernels::rms_norm_backward<T>(bname, dev, {rows, D, xc.device_data<T>(), wc.device_data<T>(), rstd.device_data<T>(),
                                                   dy.device_data<T>(), dx.device_data<T>(), gw ? dweight.device_data<T>() : nullptr,
                                                   n_scratch ? scratch.device_data<T>() : nullptr});
      });
      return std::vector<Tensor>{dx, dweight};
    });
  }
  return y;
}

// ---- layer_norm -------------------------------------------------------------------------------
// y = x̂ ⊙ w + b,  x̂ = (x − mean) · r,  r = (var + eps)^(−1/2)  (population variance, last dim)
// dx = r · (g − mean(g) − x̂ · mean(g ⊙ x̂)),  g = w ⊙ dy;   dw = Σ_rows dy ⊙ x̂;   db = Σ_rows dy
Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps) {
  const char* name = "layer_norm";
  check_float_input(name, x, "x");
  if (x.dim() < 1) op_error(name, "x " + x.describe() + " needs at least one dim");
  check_defined(name, weight, "weight");
  check_norm_param(name, x, weight, "weight");
  bool has_bias = bias.defined();
  if (has_bias) check_norm_param(name, x, bias, "bias");
  int64_t D = x.shape().back(), rows = D ? x.numel() / D : 0;
  const Device dev = x.device();
  Tensor xc = rows_of(x, {}), wc = rows_of(weight, {}), bc = has_bias ? rows_of(bias, {}) : Tensor();
  Tensor y = Tensor::empty(x.shape(), x.dtype(), dev);
  Tensor mean = Tensor::empty({rows}, x.dtype(), dev), rstd = Tensor::empty({rows}, x.dtype(), dev);
  if (rows > 0) dispatch_float(x.dtype(), name, [&]<class T>() {
    kernels::layer_norm_forward<T>(name, dev, {rows, D, (T)eps, xc.device_data<T>(), wc.device_data<T>(),
                                               has_bias ? bc.device_data<T>() : nullptr, y.device_data<T>(),
                                               mean.device_data<T>(), rstd.device_data<T>()}, eps);
  });
  if (needs_grad({x, weight, bias})) {
    bool gw = weight.requires_grad(), gb = has_bias && bias.requires_grad();
    record(name, y, {x, weight, bias}, [xc, wc, mean, rstd, rows, D, gw, gb](const Tensor& dy_in) {
      const char* bname = "layer_norm_backward";
      const Device dev = xc.device();
      check_same_device(bname, dy_in, xc);
      Tensor dy = rows_of(dy_in, {});
      Tensor dx = Tensor::empty(xc.shape(), xc.dtype(), dev);
      Tensor dweight = gw ? Tensor::empty(wc.shape(), wc.dtype(), dev) : Tensor();
      Tensor dbias = gb ? Tensor::empty(wc.shape(), wc.dtype(), dev) : Tensor();
      const int64_t n_scratch = gw || gb ? kernels::layer_norm_backward_scratch_size(dev, rows, D) : 0;
      Tensor scratch = n_scratch ? Tensor::empty({n_scratch}, xc.dtype(), dev) : Tensor();
      if (rows > 0 || gw || gb) dispatch_float(xc.dtype(), bname, [&]<class T>() {
        kernels::layer_norm_backward<T>(bname, dev, {rows, D, xc.device_data<T>(), wc.device_data<T>(), mean.device_data<T>(),
                                                     rstd.device_data<T>(), dy.device_data<T>(), dx.device_data<T>(),
                                                     gw ? dweight.device_data<T>() : nullptr,
                                                     gb ? dbias.device_data<T>() : nullptr,
                                                     n_scratch ? scratch.device_data<T>() : nullptr});
      });
      return std::vector<Tensor>{dx, dweight, dbias};
    });
  }
  return y;
}

// ---- hadamard_rotate --------------------------------------------------------------------------
// y = x · M,  M = H_n / √n symmetric and orthonormal (M = Mᵀ = M⁻¹)
// dx = dy · Mᵀ = dy · M: the backward is the same rotation.
// (kernels::hadamard_rotate; on CUDA n <= 4096, cuda/kernels/indexer.cuh, a larger n refused by the kernel.)
static Tensor hadamard_rows(const char* op, const Tensor& xc, int64_t rows, int64_t n) {
  Tensor y = Tensor::empty(xc.shape(), xc.dtype(), xc.device());
  if (rows > 0) dispatch_float(xc.dtype(), op, [&]<class T>() {
    kernels::hadamard_rotate<T>(op, xc.device(), {rows, n, xc.device_data<T>(), y.device_data<T>()});
  });
  return y;
}

Tensor hadamard_rotate(const Tensor& x) {
  const char* name = "hadamard_rotate";
  check_float_input(name, x, "x");
  if (x.dim() < 1) op_error(name, "x " + x.describe() + " needs at least one dim");
  const int64_t n = x.shape().back(), rows = n ? x.numel() / n : 0;
  if (!cpu::is_power_of_two(n))
    op_error(name, "x " + x.describe() + ": the last dim n = " + std::to_string(n) +
                       " must be a power of two (the Sylvester Hadamard matrix H_n)");
  Tensor y = hadamard_rows(name, rows_of(x, {}), rows, n);
  if (needs_grad(x)) {
    const Device dev = x.device();
    record(name, y, {x}, [rows, n, dev](const Tensor& dy_in) {
      if (dy_in.device() != dev)
        op_error("hadamard_rotate_backward", "dy " + dy_in.describe() + " is not on x's device " + device_name(dev));
      return std::vector<Tensor>{hadamard_rows("hadamard_rotate_backward", rows_of(dy_in, {}), rows, n)};
    });
  }
  return y;
}

// ---- rope -------------------------------------------------------------------------------------
// Each pair (a, b) of the last dim is rotated by the angle φ(s, i) of its token's position s:
//   (a, b) -> (a cos φ − b sin φ, a sin φ + b cos φ)
// The Jacobian of a rotation is the rotation; its transpose is the rotation by −φ:
//   dx = rope(dy, cos, −sin).  cos and sin are constants (no gradient).
Tensor rope(const Tensor& x, const Tensor& cos, const Tensor& sin, RopeLayout layout) {
  const char* name = "rope";
  check_float_input(name, x, "x");
  check_float_input(name, cos, "cos");
  check_float_input(name, sin, "sin");
  check_same_device(name, x, cos);
  check_same_device(name, x, sin);
  if (x.dim() != 3 && x.dim() != 4)
    op_error(name, "x " + x.describe() + " must be [B, S, H, dr] or [B, S, dr]");
  int64_t B = x.shape()[0], S = x.shape()[1], H = x.dim() == 4 ? x.shape()[2] : 1, dr = x.shape().back();
  if (dr % 2 != 0) op_error(name, "x " + x.describe() + " has an odd rope dim " + std::to_string(dr) + "; rope rotates pairs");
  Shape table{S, dr / 2};
  if (cos.shape() != table)
    op_error(name, "cos " + cos.describe() + " does not match x " + x.describe() + ", which needs " + shape_str(table));
  if (sin.shape() != table)
    op_error(name, "sin " + sin.describe() + " does not match x " + x.describe() + ", which needs " + shape_str(table));
  bool interleaved = layout == RopeLayout::interleaved;
  Tensor xc = rows_of(x, {}), cs = constant_like(cos, x.dtype()), sn = constant_like(sin, x.dtype());
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  dispatch_float(x.dtype(), name, [&]<class T>() {
    kernels::rope_forward<T>(name, x.device(), {B, S, H, dr, interleaved ? 1 : 0, xc.device_data<T>(), cs.device_data<T>(),
                                                sn.device_data<T>(), y.device_data<T>()});
  });
  if (needs_grad(x)) {
    record(name, y, {x}, [cs, sn, B, S, H, dr, interleaved](const Tensor& dy_in) {
      check_same_device("rope_backward", dy_in, cs);
      Tensor dy = rows_of(dy_in, {});
      Tensor dx = Tensor::empty(dy.shape(), dy.dtype(), dy.device());
      dispatch_float(dy.dtype(), "rope_backward", [&]<class T>() {
        kernels::rope_backward<T>("rope_backward", dy.device(), {B, S, H, dr, interleaved ? 1 : 0, dy.device_data<T>(),
                                                                 cs.device_data<T>(), sn.device_data<T>(), dx.device_data<T>()});
      });
      return std::vector<Tensor>{dx};
    });
  }
  return y;
}

// ---- topk / argmax ----------------------------------------------------------------------------
// values_j = x[indices_j] along dim:  dx = dvalues scattered to indices_j, 0 elsewhere.
TopK topk(const Tensor& x, int64_t k, int64_t dim, bool largest) {
  const char* name = "topk";
  check_float_input(name, x, "x");
  int64_t d = normalize_dim(name, x, dim);
  int64_t n = x.shape()[d];
  if (k < 0 || k > n)
    op_error(name, "k = " + std::to_string(k) + " is outside [0, " + std::to_string(n) + "] for dim " + std::to_string(d) +
                       " of x " + x.describe());
  std::vector<int64_t> perm = dim_last_perm(x.dim(), d);
  Tensor xr = rows_of(x, perm);
  int64_t rows = shape_numel(Shape(xr.shape().begin(), xr.shape().end() - 1));
  Shape out_shape = xr.shape();
  out_shape.back() = k;
  Tensor vr = Tensor::empty(out_shape, x.dtype(), x.device()), ir = Tensor::empty(out_shape, DType::i64, x.device());
  dispatch_float(x.dtype(), name, [&]<class T>() {
    kernels::topk_forward<T>(name, x.device(), {rows, n, k, largest ? 1 : 0, xr.device_data<T>(), vr.device_data<T>(),
                                                ir.device_data<int64_t>()});
  });
  TopK out{unrows(vr, perm), unrows(ir, perm)};
  if (needs_grad(x)) {
    Shape in_rows_shape = xr.shape();
    record(name, out.values, {x}, [ir, in_rows_shape, perm, rows, n, k](const Tensor& dv) {
      check_same_device("topk_backward", dv, ir);
      Tensor dvr = rows_of(dv, perm);
      Tensor dxr = Tensor::empty(in_rows_shape, dvr.dtype(), dvr.device());
      dispatch_float(dvr.dtype(), "topk_backward", [&]<class T>() {
        kernels::topk_backward<T>("topk_backward", dvr.device(),
                                  {rows, n, k, dvr.device_data<T>(), ir.device_data<int64_t>(), dxr.device_data<T>()});
      });
      return std::vector<Tensor>{unrows(dxr, perm)};
    });
  }
  return out;
}

// Not differentiable (an index).
Tensor argmax(const Tensor& x, int64_t dim, bool keepdim) {
  const char* name = "argmax";
  check_float_input(name, x, "x");
  int64_t d = normalize_dim(name, x, dim);
  int64_t n = x.shape()[d];
  if (n == 0) op_error(name, "dim " + std::to_string(d) + " of x " + x.describe() + " is empty");
  Tensor xr = rows_of(x, dim_last_perm(x.dim(), d));
  Shape out_shape = x.shape();
  if (keepdim) out_shape[d] = 1;
  else out_shape.erase(out_shape.begin() + d);
  Tensor out = Tensor::empty(out_shape, DType::i64, x.device());
  dispatch_float(x.dtype(), name, [&]<class T>() {
    kernels::argmax_forward<T>(name, x.device(), {x.numel() / n, n, xr.device_data<T>(), out.device_data<int64_t>()});
  });
  return out;
}

// ---- dropout ----------------------------------------------------------------------------------
// y = x ⊙ m,  m_i = 1/(1−p) with probability 1−p, else 0 (drawn from rng, row-major order)
// dx = dy ⊙ m  (the same mask)
// The mask is drawn on the HOST on every device (cpu::dropout_mask: one rng.uniform() per element, row-major) and
// then moved to x's device: the same seed gives the same mask, hence the same numbers, on the CPU and on CUDA, and
// rng advances by the same n draws, so the calls after it draw the same numbers too. (A device RNG would give
// another mask per device.) The product is the elementwise mul kernel (kernels::binary_forward), forward and
// backward; x * m is the CPU's dropout_apply to the bit.
static void mul_by_mask(const char* op, const Tensor& x, const Tensor& mask, const Tensor& y) {
  const int64_t n = x.numel();
  if (n == 0) return;
  dispatch_float(x.dtype(), op, [&]<class T>() {
    BinaryArgs<T> a{};
    a.op = BinaryOp::mul;
    a.ndim = 1;
    a.shape[0] = n;
    a.a_strides[0] = 1;
    a.b_strides[0] = 1;
    a.a = x.device_data<T>();
    a.b = mask.device_data<T>();
    a.out = y.device_data<T>();
    kernels::binary_forward<T>(op, x.device(), a);
  });
}

Tensor dropout(const Tensor& x, double p, Rng& rng, bool training) {
  const char* name = "dropout";
  check_float_input(name, x, "x");
  if (!(p >= 0.0 && p < 1.0)) op_error(name, "p = " + std::to_string(p) + " must be in [0, 1)");
  if (!training || p == 0.0) return x;  // the identity (on any device); rng is not advanced
  if (x.device() == Device::CUDA && x.dtype() != DType::f32)  // before any draw: a refusal leaves rng as it was
    op_error(name, "the CUDA backend computes f32; this tensor on cuda is " + std::string(dtype_name(x.dtype())) +
                       " (convert it to f32 on the CPU, then move it)");
  Tensor xc = rows_of(x, {});
  Tensor host_mask = Tensor::empty(x.shape(), x.dtype());
  const int64_t n = x.numel();
  dispatch_float(x.dtype(), name, [&]<class T>() { cpu::dropout_mask<T>(rng, p, host_mask.data<T>(), n); });
  Tensor mask = x.device() == Device::CPU ? host_mask : host_mask.to(x.device());
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  mul_by_mask(name, xc, mask, y);
  if (needs_grad(x)) {
    record(name, y, {x}, [mask](const Tensor& dy_in) {
      check_same_device("dropout_backward", dy_in, mask);
      Tensor dy = rows_of(dy_in, {});
      Tensor dx = Tensor::empty(dy.shape(), dy.dtype(), dy.device());
      mul_by_mask("dropout_backward", dy, mask, dx);
      return std::vector<Tensor>{dx};
    });
  }
  return y;
}

}  // namespace sg
