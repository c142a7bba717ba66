// tests/cuda/test_dispatch_registry_emu.cpp — the op registry (ops/registry.h) walked on emulated CUDA: every case,
// with its inputs converted to f32 (the CUDA backend computes f32) and copied to Device::CUDA, gives the values and
// input gradients (backward from a seeded random dy) the same case gives on the CPU's plain loops, in the forward
// lane order (the per-family files run both orders).
//
// A case whose op (or a callee) has no CUDA kernel yet throws "[op] has no CUDA kernel yet; ..." on the device: it
// is counted as SKIPPED and its name and the op that refused are printed — not passed. Any other error fails.
//
// Tolerance: |got - want| <= 1e-4 + 1e-4 |want|: the CUDA kernels sum rows in another order than the CPU's loops
// and take libm's expf / logf (per family: tests/cuda/test_dispatch_*_emu.cpp, where most ops are held to the same
// bits or 2e-5); the registry's values are of order 1 and its rows short, so 1e-4 is loose for them, and it
// still fails any wrong element, index or gradient path.
#include <doctest/doctest.h>

#include <map>
#include <set>
#include <string>

#include "tests/cuda/dispatch_checks.h"

#include "autograd/device.h"
#include "autograd/node.h"
#include "ops/registry.h"

using namespace sg;

namespace {

// f32 copies of the f64 inputs, requires_grad kept; integer inputs as they are.
std::vector<Tensor> f32_inputs(const std::vector<Tensor>& inputs) {
  std::vector<Tensor> out;
  for (const Tensor& t : inputs) {
    if (!t.defined() || t.dtype() != DType::f64) {
      out.push_back(t);
      continue;
    }
    Tensor c;
    {
      NoGradGuard no_grad;
      c = to_dtype(t.detach(), DType::f32).detach();
    }
    if (t.requires_grad()) c.requires_grad_();
    out.push_back(c);
  }
  return out;
}

uint64_t seed_of(const std::string& name) {  // FNV-1a, as tests/ops/test_registry.cpp
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char ch : name) h = (h ^ ch) * 1099511628211ULL;
  return h;
}

}  // namespace

TEST_CASE("dispatch registry emu: every registry op on emulated CUDA equals the CPU, values and gradients") {
  CudaEmulationScope emu(true);
  const sg::test::dispatch::Tol tol{1e-4, 1e-4};
  int passed = 0;
  std::map<std::string, std::vector<std::string>> skipped;  // refusing op -> cases
  for (const OpCase& c : op_registry()) {
    Rng rng(seed_of(c.name));
    const std::vector<Tensor> inputs = f32_inputs(c.make_inputs(rng));
    // Does the case run on the device at all? (The refusal is an exception before any kernel, by design.)
    std::string refusal;
    try {
      std::vector<Tensor> probe;
      for (const Tensor& t : inputs) probe.push_back(t.defined() ? t.detach().clone_data().to(Device::CUDA) : t);
      NoGradGuard no_grad;
      (void)c.fn(probe);
    } catch (const std::exception& e) {
      const std::string what = e.what();
      if (what.find("has no CUDA kernel yet") == std::string::npos) {
        INFO("case " << c.name << " threw on CUDA: " << what);
        CHECK(false);
        continue;
      }
      refusal = what.substr(0, what.find(']') + 1);
    }
    if (!refusal.empty()) {
      skipped[refusal].push_back(c.name);
      continue;
    }
    sg::test::dispatch::check_on_cuda(c.name, [&](const std::vector<Tensor>& in) { return c.fn(in); }, inputs, tol);
    passed++;
  }
  int n_skipped = 0;
  std::string report;
  for (const auto& [op, cases] : skipped) {
    report += "  " + op + " has no CUDA kernel yet:";
    for (const std::string& name : cases) report += " " + name;
    report += "\n";
    n_skipped += (int)cases.size();
  }
  MESSAGE(passed << " registry cases passed on emulated CUDA; " << n_skipped << " SKIPPED (not dispatched):\n" << report);
  CHECK(passed > 0);
}
