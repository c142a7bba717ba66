// tests/cuda/registry_walk.h — the op registry (ops/registry.h) walked on Device::CUDA, in whatever CUDA mode the
// caller set (tests/cuda/test_dispatch_registry_emu.cpp: the emulation; test_dispatch_gpu.cpp: a real GPU). Every
// case, with its inputs converted to f32 (the CUDA backend computes f32) and copied to the device, must give the
// values and input gradients (backward from a seeded random dy) the same case gives on the CPU's plain loops,
// within `tol`.
//
// A case whose op (or a callee) has no CUDA kernel yet throws "[op] has no CUDA kernel yet; ..." on the device: it
// is counted as SKIPPED and its name and the op that refused are printed — not passed. Any other error fails.
// (doctest must be included first.)
#pragma once
#include <map>
#include <string>
#include <vector>

#include "tests/cuda/dispatch_checks.h"

#include "autograd/node.h"
#include "ops/registry.h"

namespace sg::test::dispatch {

// f32 copies of the f64 inputs, requires_grad kept; integer inputs as they are.
inline std::vector<Tensor> f32_inputs(const std::vector<Tensor>& inputs) {
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

inline uint64_t seed_of(const std::string& name) {  // FNV-1a, as tests/ops/test_registry.cpp
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char ch : name) h = (h ^ ch) * 1099511628211ULL;
  return h;
}

// Returns the number of cases that ran (and were checked) on the device.
inline int walk_registry_on_cuda(Tol tol) {
  int checked = 0;
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
    check_on_cuda(c.name, [&](const std::vector<Tensor>& in) { return c.fn(in); }, inputs, tol);
    checked++;
  }
  int n_skipped = 0;
  std::string report;
  for (const auto& [op, cases] : skipped) {
    report += "  " + op + " has no CUDA kernel yet:";
    for (const std::string& name : cases) report += " " + name;
    report += "\n";
    n_skipped += (int)cases.size();
  }
  const std::string where = cuda_emulation() ? "emulated CUDA" : "the GPU";
  MESSAGE(checked << " registry cases checked on " << where << "; " << n_skipped << " SKIPPED (not dispatched):\n" << report);
  return checked;
}

}  // namespace sg::test::dispatch
