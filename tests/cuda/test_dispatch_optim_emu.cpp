// tests/cuda/test_dispatch_optim_emu.cpp — the optimizer kernels through the device dispatch, under the CUDA
// emulation: adamw_update / sgd_update / scale_in_place on Device::CUDA tensors give the CPU kernels' bits (the
// same f32 operations, each rounded separately on both sides: cuda/optim.h), sum_squares a double within 1e-12
// relative of the CPU's (both sum f32 squares in double, in other groupings); and train/'s AdamW, SGD and
// clip_grad_norm step CUDA parameters where they live, as they step CPU ones — state checkpoints included.
#include <doctest/doctest.h>

#include "tests/cuda/dispatch_checks.h"
#include "tests/test_util.h"

#include "autograd/device.h"
#include "ops/ops.h"
#include "ops/optim.h"
#include "train/clip.h"
#include "train/optim.h"

using namespace sg;
using sg::emu::LaneOrder;
using sg::test::error_of;

namespace {
Tensor values(const Shape& shape, uint64_t seed, double lo = -1.0, double hi = 1.0) {
  Rng rng(seed);
  return Tensor::rand(shape, rng, lo, hi);
}
std::vector<float> host(const Tensor& t) { return t.to_f32_vector(); }
}  // namespace

TEST_CASE("dispatch optim emu: adamw_update, sgd_update, scale_in_place and sum_squares on CUDA equal the CPU") {
  CudaEmulationScope emu(true);
  for (LaneOrder order : {LaneOrder::forward, LaneOrder::reverse}) {
    sg::emu::LaneOrderScope scope(order);
    // 1000 values: 4 blocks of 256 lanes, the last partial
    Tensor p = values({10, 100}, 1), g = values({10, 100}, 2), m = values({10, 100}, 3, 0.0, 0.1),
           v = values({10, 100}, 4, 0.0, 0.01);
    AdamWUpdateArgs a;
    a.lr = 1e-2f, a.beta1 = 0.9f, a.beta2 = 0.95f, a.eps = 1e-8f, a.decay_factor = 0.999f, a.step_size = 0.1f,
    a.bias_correction2_sqrt = 0.3f;
    Tensor pc = p.to(Device::CUDA), gc = g.to(Device::CUDA), mc = m.to(Device::CUDA), vc = v.to(Device::CUDA);
    adamw_update(p, g, m, v, a);
    adamw_update(pc, gc, mc, vc, a);
    CHECK(host(pc) == host(p));
    CHECK(host(mc) == host(m));
    CHECK(host(vc) == host(v));

    SGDUpdateArgs s;
    s.lr = 0.05f, s.momentum = 0.9f, s.weight_decay = 0.01f, s.nesterov = 1, s.first = 0;
    Tensor buf = values({10, 100}, 5), bufc = buf.to(Device::CUDA);
    sgd_update(p, g, buf, s);
    sgd_update(pc, gc, bufc, s);
    CHECK(host(pc) == host(p));
    CHECK(host(bufc) == host(buf));
    sgd_update(p, g, Tensor(), SGDUpdateArgs{0.1f, 0, 0, 0, 1});
    sgd_update(pc, gc, Tensor(), SGDUpdateArgs{0.1f, 0, 0, 0, 1});
    CHECK(host(pc) == host(p));

    scale_in_place(p, 0.37);
    scale_in_place(pc, 0.37);
    CHECK(host(pc) == host(p));

    // 20000 values: three blocks of 8192 for the first buffer, the second one block
    Tensor big = values({20000}, 6), small = values({7}, 7);
    const double want = sum_squares({big, small}), got = sum_squares({big.to(Device::CUDA), small.to(Device::CUDA)});
    CHECK(std::abs(got - want) <= 1e-12 * want);
  }
  CHECK(error_of([&] { sum_squares({Tensor::ones({2}).to(Device::CUDA), Tensor::ones({2})}); }).find("[sum_squares] xs[1]") == 0);
}

TEST_CASE("dispatch optim emu: AdamW, SGD and gradient clipping step CUDA parameters like CPU ones") {
  CudaEmulationScope emu(true);
  Tensor w_cpu = values({6, 5}, 10).requires_grad_(), b_cpu = values({5}, 11).requires_grad_();
  Tensor w_cuda = w_cpu.detach().clone_data().to(Device::CUDA).requires_grad_();
  Tensor b_cuda = b_cpu.detach().clone_data().to(Device::CUDA).requires_grad_();
  w_cpu.set_param_kind(ParamKind::weight);
  w_cuda.set_param_kind(ParamKind::weight);
  NamedParameters cpu_params{{"w", &w_cpu}, {"b", &b_cpu}}, cuda_params{{"w", &w_cuda}, {"b", &b_cuda}};
  AdamWConfig cfg;
  cfg.weight_decay = 0.1;
  AdamW opt_cpu(cpu_params, cfg), opt_cuda(cuda_params, cfg);
  SGD sgd_cpu(cpu_params, SGDConfig{1e-2, 0.9, 0.01, true}), sgd_cuda(cuda_params, SGDConfig{1e-2, 0.9, 0.01, true});
  for (int step = 0; step < 3; step++) {
    // The same gradients on both (set by hand: the backward's sums are checked elsewhere, not bit-equal).
    Tensor gw = values({6, 5}, 20 + step, -3.0, 3.0), gb = values({5}, 30 + step, -3.0, 3.0);
    w_cpu.set_grad(gw.clone_data());
    b_cpu.set_grad(gb.clone_data());
    w_cuda.set_grad(gw.to(Device::CUDA));
    b_cuda.set_grad(gb.to(Device::CUDA));
    const double n_cpu = clip_grad_norm(cpu_params, 1.0), n_cuda = clip_grad_norm(cuda_params, 1.0);
    CHECK(std::abs(n_cuda - n_cpu) <= 1e-12 * n_cpu);
    CHECK(w_cuda.grad().device() == Device::CUDA);
    // c = max_norm / (norm + 1e-6) rounded to f32: the norms agree to 1e-12, so c (and the scaled gradients) to an ulp
    sg::test::dispatch::compare(w_cuda.grad(), w_cpu.grad(), {0, 2e-7}, "clipped grad w");
    w_cuda.set_grad(w_cpu.grad().to(Device::CUDA));  // step from the same clipped gradients
    b_cuda.set_grad(b_cpu.grad().to(Device::CUDA));
    opt_cpu.step(1e-2);
    opt_cuda.step(1e-2);
    CHECK(w_cuda.device() == Device::CUDA);
    CHECK(host(w_cuda) == host(w_cpu));
    CHECK(host(b_cuda) == host(b_cpu));
    sgd_cpu.step(1e-2);
    sgd_cuda.step(1e-2);
    CHECK(host(w_cuda) == host(w_cpu));
    CHECK(host(b_cuda) == host(b_cpu));
  }
  // The state: the same tensors by name and bytes; loaded back, it lands on the parameters' device.
  const std::vector<StTensor> st_cpu = opt_cpu.state_tensors(), st_cuda = opt_cuda.state_tensors();
  REQUIRE(st_cpu.size() == st_cuda.size());
  for (size_t i = 0; i < st_cpu.size(); i++) {
    CHECK(st_cuda[i].name == st_cpu[i].name);
    CHECK(st_cuda[i].bytes == st_cpu[i].bytes);
  }
  CHECK(sgd_cuda.state_tensors()[1].bytes == sgd_cpu.state_tensors()[1].bytes);
  // bf16 moments are CPU-only: named
  AdamWConfig bf16 = cfg;
  bf16.moment_dtype = DType::bf16;
  CHECK(error_of([&] { AdamW bad(cuda_params, bf16); }).find("[adamw] parameter 'w' is on cuda: bf16 moments") == 0);
}
