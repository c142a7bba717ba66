// ops/optim.cpp — see optim.h: checks, then each optimizer kernel through the device dispatch (ops/kernels.h).
#include "ops/optim.h"

#include "ops/dispatch.h"
#include "ops/kernels.h"

namespace sg {

namespace {

// `t` (called `what`) must be a defined, contiguous f32 tensor on `device` shaped like `like`.
void check_operand(const char* op, const Tensor& t, const char* what, const Tensor& like, Device device) {
  check_defined(op, t, what);
  if (t.dtype() != DType::f32) op_error(op, std::string(what) + " " + t.describe() + " is not f32");
  if (!t.is_contiguous()) op_error(op, std::string(what) + " " + t.describe() + " is not contiguous");
  if (t.device() != device)
    op_error(op, std::string(what) + " " + t.describe() + " is on " + device_name(t.device()) + " but " +
                     like.describe() + " is on " + device_name(device));
  if (t.shape() != like.shape())
    op_error(op, std::string(what) + " has shape " + shape_str(t.shape()) + " but the parameter has shape " +
                     shape_str(like.shape()));
}

}  // namespace

void adamw_update(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
                  const AdamWUpdateArgs& args) {
  const char* op = "adamw_update";
  check_defined(op, param, "param");
  const Device d = param.device();
  check_operand(op, param, "param", param, d);
  check_operand(op, grad, "grad", param, d);
  check_operand(op, exp_avg, "exp_avg", param, d);
  check_operand(op, exp_avg_sq, "exp_avg_sq", param, d);
  AdamWKernelArgs a;
  a.n = param.numel();
  a.p = param.device_data<float>();
  a.g = grad.device_data<float>();
  a.m = exp_avg.device_data<float>();
  a.v = exp_avg_sq.device_data<float>();
  a.step = args;
  kernels::adamw_update(op, d, a);
}

void sgd_update(const Tensor& param, const Tensor& grad, const Tensor& momentum_buffer, const SGDUpdateArgs& args) {
  const char* op = "sgd_update";
  check_defined(op, param, "param");
  const Device d = param.device();
  check_operand(op, param, "param", param, d);
  check_operand(op, grad, "grad", param, d);
  if (momentum_buffer.defined()) check_operand(op, momentum_buffer, "momentum_buffer", param, d);
  SGDKernelArgs a;
  a.n = param.numel();
  a.p = param.device_data<float>();
  a.g = grad.device_data<float>();
  a.buf = momentum_buffer.defined() ? momentum_buffer.device_data<float>() : nullptr;
  a.step = args;
  kernels::sgd_update(op, d, a);
}

double sum_squares(const std::vector<Tensor>& xs) {
  const char* op = "sum_squares";
  if (xs.empty()) return 0.0;
  check_defined(op, xs[0], "xs[0]");
  const Device d = xs[0].device();
  std::vector<const float*> data;
  std::vector<int64_t> n;
  for (size_t i = 0; i < xs.size(); ++i) {
    const std::string what = "xs[" + std::to_string(i) + "]";
    check_defined(op, xs[i], what.c_str());
    check_operand(op, xs[i], what.c_str(), xs[i], d);
    data.push_back(xs[i].device_data<float>());
    n.push_back(xs[i].numel());
  }
  SumSquaresArgs a;
  a.x = data.data();  // a host table of pointers into the device's memory (ops/kernel_abi/optim.h)
  a.n = n.data();
  a.count = (int64_t)xs.size();
  if (d == Device::CPU) return kernels::sum_squares(op, d, a);
  // A device writes the sum in its memory, through per-block partials there: both are f64 device tensors.
  Tensor partials = Tensor::empty({std::max<int64_t>(1, sum_squares_partials(a.n, a.count))}, DType::f64, d);
  Tensor out = Tensor::empty({1}, DType::f64, d);
  a.partials = partials.device_data<double>();
  a.out = out.device_data<double>();
  kernels::sum_squares(op, d, a);
  return out.item();
}

void scale_in_place(const Tensor& x, double c) {
  const char* op = "scale_in_place";
  check_defined(op, x, "x");
  check_operand(op, x, "x", x, x.device());
  kernels::scale(op, x.device(), {x.numel(), x.device_data<float>(), (float)c});
}

}  // namespace sg
