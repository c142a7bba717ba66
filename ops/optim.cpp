// ops/optim.cpp — see optim.h: checks, then the device switch of each optimizer kernel.
#include "ops/optim.h"

#include "ops/dispatch.h"

namespace sg {

namespace {

[[noreturn]] void no_kernel(const char* op, Device d) {
  op_error(op, std::string("no kernel for device ") + device_name(d) + " (only cpu has one)");
}

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
  switch (d) {
    case Device::CPU:
      cpu::adamw_update_f32(param.data<float>(), grad.data<float>(), exp_avg.data<float>(), exp_avg_sq.data<float>(),
                            param.numel(), args);
      return;
    case Device::CUDA:
    case Device::Metal: break;
  }
  no_kernel(op, d);
}

void sgd_update(const Tensor& param, const Tensor& grad, const Tensor& momentum_buffer, const SGDUpdateArgs& args) {
  const char* op = "sgd_update";
  check_defined(op, param, "param");
  const Device d = param.device();
  check_operand(op, param, "param", param, d);
  check_operand(op, grad, "grad", param, d);
  if (momentum_buffer.defined()) check_operand(op, momentum_buffer, "momentum_buffer", param, d);
  switch (d) {
    case Device::CPU:
      cpu::sgd_update_f32(param.data<float>(), grad.data<float>(),
                          momentum_buffer.defined() ? momentum_buffer.data<float>() : nullptr, param.numel(), args);
      return;
    case Device::CUDA:
    case Device::Metal: break;
  }
  no_kernel(op, d);
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
  }
  switch (d) {
    case Device::CPU:
      for (const Tensor& x : xs) {
        data.push_back(x.data<float>());
        n.push_back(x.numel());
      }
      return cpu::sum_squares_f32(data.data(), n.data(), (int64_t)xs.size());
    case Device::CUDA:
    case Device::Metal: break;
  }
  no_kernel(op, d);
}

void scale_in_place(const Tensor& x, double c) {
  const char* op = "scale_in_place";
  check_defined(op, x, "x");
  check_operand(op, x, "x", x, x.device());
  switch (x.device()) {
    case Device::CPU: cpu::scale_f32(x.data<float>(), x.numel(), (float)c); return;
    case Device::CUDA:
    case Device::Metal: break;
  }
  no_kernel(op, x.device());
}

}  // namespace sg
