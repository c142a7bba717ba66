// tests/cuda/dispatch_checks.h — one check for the dispatched ops (ops/kernels.h): an op run on Device::CUDA copies
// of its inputs gives the values and the input gradients the op gives on the CPU. The CPU side runs the plain loops
// (SEEKGRAD_NAIVE), the CUDA side whatever mode the caller chose (tests/cuda/test_dispatch_*_emu.cpp: the emulation,
// in both lane orders). (doctest must be included first.)
//
//   check_on_cuda("sum/rows", fn, inputs, {atol, rtol})
//     inputs: CPU tensors; floating ones that require grad get gradients. fn's output is differentiated with a
//     random dy of its shape (seeded), so every gradient path is exercised with values, not ones.
//     Tolerance {0, 0}: the same bits (NaN == NaN, -0 == +0 as floats compare); else |got - want| <= atol + rtol |want|.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "autograd/rng.h"
#include "cuda/emu/emu.h"
#include "ops/cpu/runtime.h"
#include "ops/ops.h"

namespace sg::test::dispatch {

using sg::Device;
using sg::Tensor;
using OpFn = std::function<Tensor(const std::vector<Tensor>&)>;

struct Tol {
  double atol = 0, rtol = 0;
};

struct OpRun {
  Tensor out;
  std::vector<Tensor> grads;  // one per input (undefined where it takes none)
};

// Copies of the inputs on `device`, fn on them, backward from dy (moved there) when any input requires grad.
inline OpRun run_on(Device device, const OpFn& fn, const std::vector<Tensor>& inputs, const Tensor& dy_cpu) {
  std::vector<Tensor> in;
  for (const Tensor& t : inputs) {
    Tensor c = t.detach().clone_data().to(device);
    if (t.requires_grad()) c.requires_grad_();
    in.push_back(c);
  }
  OpRun r;
  r.out = fn(in);
  if (r.out.requires_grad()) r.out.backward(dy_cpu.to(device));
  for (const Tensor& t : in) r.grads.push_back(t.requires_grad() ? t.grad() : Tensor());
  return r;
}

inline void compare(const Tensor& got, const Tensor& want, Tol tol, const std::string& what) {
  INFO(what << ": " << got.describe() << " vs " << want.describe());
  REQUIRE(got.defined() == want.defined());
  if (!want.defined()) return;
  REQUIRE(got.shape() == want.shape());
  CHECK(got.dtype() == want.dtype());
  if (sg::is_floating(want.dtype())) {
    const std::vector<double> g = got.to_f64_vector(), w = want.to_f64_vector();
    int64_t bad = 0, first_bad = -1;
    double worst = 0;
    for (size_t i = 0; i < g.size(); i++) {
      const bool nan = std::isnan(g[i]) && std::isnan(w[i]);
      const double err = nan ? 0 : std::abs(g[i] - w[i]);
      const bool ok = nan || (tol.atol == 0 && tol.rtol == 0 ? g[i] == w[i] : err <= tol.atol + tol.rtol * std::abs(w[i]));
      if (!ok && bad++ == 0) first_bad = (int64_t)i;
      if (!std::isnan(err)) worst = std::max(worst, err);
    }
    INFO("max |got - want| = " << worst << " (atol " << tol.atol << ", rtol " << tol.rtol << "); first bad element "
                               << first_bad);
    CHECK(bad == 0);
  } else {
    CHECK(got.to_i64_vector() == want.to_i64_vector());
  }
}

// The op on CUDA against the op on the CPU (plain loops), values and gradients, in the CUDA mode the caller set.
inline void check_on_cuda(const std::string& name, const OpFn& fn, const std::vector<Tensor>& inputs, Tol tol = {}) {
  CAPTURE(name);
  OpRun want;
  Tensor dy;
  {
    const bool saved = sg::naive_kernels();
    sg::set_naive_kernels(true);
    Tensor probe = fn(inputs);  // for dy's shape and dtype
    sg::Rng rng(std::hash<std::string>{}(name) & 0xffff);
    dy = sg::is_floating(probe.dtype()) ? Tensor::rand(probe.shape(), rng, -1.0, 1.0, probe.dtype()) : Tensor();
    want = run_on(Device::CPU, fn, inputs, dy);
    sg::set_naive_kernels(saved);
  }
  OpRun got = run_on(Device::CUDA, fn, inputs, dy);
  CHECK(got.out.device() == Device::CUDA);
  compare(got.out, want.out, tol, name + " value");
  for (size_t i = 0; i < inputs.size(); i++) {
    if (!want.grads[i].defined()) continue;
    REQUIRE(got.grads[i].defined());
    CHECK(got.grads[i].device() == Device::CUDA);
    compare(got.grads[i], want.grads[i], tol, name + " grad of input " + std::to_string(i));
  }
}

// check_on_cuda in both lane orders of the emulator (the caller turned the emulation on).
inline void check_on_cuda_both_orders(const std::string& name, const OpFn& fn, const std::vector<Tensor>& inputs, Tol tol = {}) {
  for (sg::emu::LaneOrder order : {sg::emu::LaneOrder::forward, sg::emu::LaneOrder::reverse}) {
    const std::string lane_order = sg::emu::lane_order_name(order);
    CAPTURE(lane_order);
    sg::emu::LaneOrderScope scope(order);
    check_on_cuda(name, fn, inputs, tol);
  }
}

}  // namespace sg::test::dispatch
