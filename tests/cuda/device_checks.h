// tests/cuda/device_checks.h — the checks that a Device::CUDA tensor behaves like a CPU one, written once and run
// twice: under the CUDA emulation (tests/autograd/test_devices.cpp, tests/cuda/test_dispatch_emu.cpp: host memory,
// the CUDA kernels stepped by the CPU fiber emulator) and on a real GPU (tests/cuda/test_devices_gpu.cpp, skipped
// without one). The caller picks the mode (sg::CudaEmulationScope) and the tolerance:
//   emulation: 0 — the emulated kernels do the same float operations as the CPU's plain loops (SEEKGRAD_NAIVE,
//              which the references here use), from the same formulas (ops/scalar_math.h): the same bits.
//   GPU:       |got - want| <= tol · (1 + |want|) with tol = 1e-5: CUDA's expf/logf/tanhf are within 2 ulp of
//              glibc's, nvcc contracts a·b + c into an FMA, and the backward formulas chain up to ~5 such
//              operations (gelu'), so a few ulp of f32 (1.2e-7 each) on values of order 1.
// (doctest must be included first.)
#pragma once
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "autograd/allocator.h"
#include "autograd/rng.h"
#include "ops/cpu/runtime.h"
#include "ops/ops.h"

namespace sg::test::devices {

using sg::Device;
using sg::Tensor;

// The CPU's plain loops for one scope (the references below), restored after it.
struct NaiveScope {
  bool saved = sg::naive_kernels();
  explicit NaiveScope(bool on) { sg::set_naive_kernels(on); }
  ~NaiveScope() { sg::set_naive_kernels(saved); }
};

// Values of `got` (any device) against `want` (CPU): bit-equal when tol == 0, else within tol · (1 + |want|).
inline void check_close(const Tensor& got, const Tensor& want, double tol, const std::string& what) {
  INFO(what << ": " << got.describe() << " vs " << want.describe());
  REQUIRE(got.shape() == want.shape());
  const std::vector<float> g = got.to_f32_vector(), w = want.to_f32_vector();
  int64_t bad = 0;
  double worst = 0;
  for (size_t i = 0; i < g.size(); i++) {
    const double err = std::abs((double)g[i] - w[i]);
    const bool ok = tol == 0 ? (g[i] == w[i] || (std::isnan(g[i]) && std::isnan(w[i]))) : err <= tol * (1 + std::abs(w[i]));
    if (!ok) bad++;
    worst = std::max(worst, err);
  }
  INFO("max |got - want| = " << worst << ", tolerance " << tol);
  CHECK(bad == 0);
}

// ---- to(Device) and reading numbers --------------------------------------------------------------------------
inline void check_round_trip() {
  Rng rng(1);
  Tensor x = Tensor::randn({3, 5}, rng);
  x.set_name("x");
  Tensor xc = x.to(Device::CUDA);
  CHECK(xc.device() == Device::CUDA);
  CHECK(xc.name() == "x");
  CHECK(xc.describe() == "x (3, 5) f32 on cuda");
  CHECK(!xc.requires_grad());
  CHECK(xc.to_f32_vector() == x.to_f32_vector());  // reading copies to the host first
  Tensor back = xc.to(Device::CPU);
  CHECK(back.device() == Device::CPU);
  CHECK(back.to_f32_vector() == x.to_f32_vector());
  CHECK(xc.to(Device::CUDA).same(xc));  // already there: the same tensor
  CHECK(x.to(Device::CPU).same(x));
  CHECK(xc.at({2, 4}) == x.at({2, 4}));
  CHECK(xc.at({-1, 0}) == x.at({2, 0}));
  CHECK(Tensor::scalar(3.5, DType::f32, Device::CUDA).item() == 3.5);

  // Strided views: a view of a CUDA tensor is stride arithmetic (no kernel); to() gathers it, both ways.
  CHECK(transpose(xc, 0, 1).to(Device::CPU).to_f32_vector() == transpose(x, 0, 1).to_f32_vector());
  CHECK(transpose(xc, 0, 1).to_f32_vector() == transpose(x, 0, 1).to_f32_vector());
  CHECK(narrow(xc, 1, 1, 3).to_f32_vector() == narrow(x, 1, 1, 3).to_f32_vector());
  Tensor t_up = transpose(x, 0, 1).to(Device::CUDA);
  CHECK(t_up.is_contiguous());
  CHECK(t_up.shape() == Shape{5, 3});
  CHECK(t_up.to_f32_vector() == transpose(x, 0, 1).to_f32_vector());
  Tensor row = Tensor::randn({1, 5}, rng);
  CHECK(expand(row.to(Device::CUDA), {4, 5}).to_f32_vector() == expand(row, {4, 5}).to_f32_vector());
  // A strided view starting inside its storage (offset 2).
  Tensor inner = narrow(transpose(xc, 0, 1), 0, 2, 2);
  CHECK(inner.to_f32_vector() == narrow(transpose(x, 0, 1), 0, 2, 2).to_f32_vector());

  // Every dtype keeps its bits.
  Tensor xd = Tensor::randn({4}, rng, 1.0, DType::f64);
  CHECK(xd.to(Device::CUDA).to_f64_vector() == xd.to_f64_vector());
  Tensor ids = Tensor::from_vector(std::vector<int64_t>{7, -3, 1LL << 40}, {3});
  CHECK(ids.to(Device::CUDA).to_i64_vector() == ids.to_i64_vector());
  Tensor h = to_dtype(x, DType::bf16);
  CHECK(h.to(Device::CUDA).to(Device::CPU).to_f32_vector() == h.to_f32_vector());

  // Factories on the device; clone_data stays there; empty tensors travel too.
  CHECK(Tensor::zeros({2, 3}, DType::f32, Device::CUDA).to_f32_vector() == std::vector<float>(6, 0.0f));
  CHECK(Tensor::ones({2}, DType::f32, Device::CUDA).to_f32_vector() == std::vector<float>{1.0f, 1.0f});
  CHECK(Tensor::full({3}, -2.5, DType::f32, Device::CUDA).to_f32_vector() == std::vector<float>(3, -2.5f));
  Tensor copy = xc.clone_data();
  CHECK(copy.device() == Device::CUDA);
  CHECK(copy.impl()->storage != xc.impl()->storage);
  CHECK(copy.to_f32_vector() == x.to_f32_vector());
  Tensor tcopy = transpose(xc, 0, 1).clone_data();
  CHECK(tcopy.device() == Device::CUDA);
  CHECK(tcopy.is_contiguous());
  CHECK(tcopy.to_f32_vector() == transpose(x, 0, 1).to_f32_vector());
  CHECK(Tensor::empty({0, 3}).to(Device::CUDA).numel() == 0);
  CHECK(Tensor::empty({0, 3}).to(Device::CUDA).to(Device::CPU).shape() == Shape{0, 3});
}

// ---- the CUDA pool of the caching allocator --------------------------------------------------------------------
inline void check_cuda_pool_stats() {
  allocator_release_cached(Device::CUDA);
  const AllocatorStats cpu0 = allocator_stats(Device::CPU);
  const AllocatorStats s0 = allocator_stats(Device::CUDA);
  CHECK(s0.cached_bytes == 0);
  const size_t size = allocator_size_class(1000 * sizeof(float));  // 4000 bytes -> the 4096 class
  CHECK(size == 4096);
  {
    Tensor t = Tensor::empty({1000}, DType::f32, Device::CUDA);
    const AllocatorStats s1 = allocator_stats(Device::CUDA);
    CHECK(s1.allocated_bytes - s0.allocated_bytes == (int64_t)size);
    CHECK(s1.n_allocs == s0.n_allocs + 1);
    CHECK(s1.n_cache_hits == s0.n_cache_hits);
    CHECK(s1.peak_bytes >= s1.allocated_bytes);
    const AllocatorStats cpu1 = allocator_stats(Device::CPU);  // the CPU pool saw nothing
    CHECK(cpu1.n_allocs == cpu0.n_allocs);
    CHECK(cpu1.allocated_bytes == cpu0.allocated_bytes);
  }
  const AllocatorStats s2 = allocator_stats(Device::CUDA);
  CHECK(s2.allocated_bytes == s0.allocated_bytes);
  CHECK(s2.cached_bytes == (int64_t)size);
  {
    Tensor t = Tensor::empty({1010}, DType::f32, Device::CUDA);  // 4040 bytes: the same class, from the cache
    const AllocatorStats s3 = allocator_stats(Device::CUDA);
    CHECK(s3.n_cache_hits == s0.n_cache_hits + 1);
    CHECK(s3.cached_bytes == 0);
  }
  allocator_reset_peak(Device::CUDA);
  CHECK(allocator_stats(Device::CUDA).peak_bytes == allocator_stats(Device::CUDA).allocated_bytes);
  allocator_release_cached(Device::CUDA);
  CHECK(allocator_stats(Device::CUDA).cached_bytes == 0);
}

// ---- elementwise ops on CUDA tensors == on CPU tensors, values and gradients ---------------------------------
struct UnaryCase {
  const char* name;
  Tensor (*fn)(const Tensor&);
  bool positive;  // domain x > 0 (log, sqrt, rsqrt)
};
inline const std::vector<UnaryCase>& unary_cases() {
  static const std::vector<UnaryCase> cases = {
      {"neg", sg::neg, false},         {"square", sg::square, false},   {"exp", sg::exp, false},
      {"log", sg::log, true},          {"sqrt", sg::sqrt, true},        {"rsqrt", sg::rsqrt, true},
      {"abs", sg::abs, false},         {"relu", sg::relu, false},       {"sigmoid", sg::sigmoid, false},
      {"silu", sg::silu, false},       {"gelu", sg::gelu, false},       {"tanh", sg::tanh, false},
      {"softplus", sg::softplus, false}, {"logsigmoid", sg::logsigmoid, false},
  };
  return cases;
}

// Every unary op, forward and backward, on a (37, 29) tensor: 1073 values, 5 blocks of 256 with the last partial.
inline void check_unary_ops(double tol) {
  for (const UnaryCase& c : unary_cases()) {
    CAPTURE(c.name);
    Rng rng(100 + std::string(c.name).size() * 7 + c.name[0]);
    Tensor x = Tensor::rand({37, 29}, rng, c.positive ? 0.05 : -6.0, 6.0);
    Tensor dy = Tensor::rand({37, 29}, rng, -2.0, 2.0);
    Tensor x_cpu = x.clone_data().requires_grad_(), y_cpu;
    {
      NaiveScope naive(true);
      y_cpu = c.fn(x_cpu);
      y_cpu.backward(dy);
    }
    Tensor x_cuda = x.to(Device::CUDA).requires_grad_();
    Tensor y_cuda = c.fn(x_cuda);
    CHECK(y_cuda.device() == Device::CUDA);
    y_cuda.backward(dy.to(Device::CUDA));
    REQUIRE(x_cuda.grad().defined());
    CHECK(x_cuda.grad().device() == Device::CUDA);
    check_close(y_cuda, y_cpu, tol, std::string(c.name) + " forward");
    check_close(x_cuda.grad(), x_cpu.grad(), tol, std::string(c.name) + " backward");
  }
}

// add/sub/mul/div: a transposed view against a full-shape tensor (both get gradients), and against a broadcast
// constant on either side (the broadcast input takes no gradient here: its backward, sum_to, adds in another order
// than the CPU, so it is not bit-equal; tests/cuda/test_dispatch_reduce_emu.cpp checks it within a tolerance).
inline void check_binary_ops(double tol) {
  using BinaryFn = Tensor (*)(const Tensor&, const Tensor&);
  const std::vector<std::pair<const char*, BinaryFn>> ops = {
      {"add", sg::add}, {"sub", sg::sub}, {"mul", sg::mul}, {"div", sg::div}};
  for (const auto& [name, fn] : ops) {
    CAPTURE(name);
    Rng rng(7);
    Tensor abuf = Tensor::rand({5, 4, 3}, rng, -3.0, 3.0);
    Tensor c = Tensor::rand({3, 4, 5}, rng, 0.5, 2.0);
    Tensor r = Tensor::rand({4, 1}, rng, 0.5, 2.0);
    Tensor dy = Tensor::rand({3, 4, 5}, rng, -1.0, 1.0);
    Tensor abuf_cpu = abuf.clone_data().requires_grad_(), c_cpu = c.clone_data().requires_grad_();
    Tensor y_cpu, yr_cpu, ry_cpu;
    {
      NaiveScope naive(true);
      y_cpu = fn(permute(abuf_cpu, {2, 1, 0}), c_cpu);
      y_cpu.backward(dy);
      yr_cpu = fn(permute(abuf, {2, 1, 0}), r);
      ry_cpu = fn(r, permute(abuf, {2, 1, 0}));
    }
    Tensor abuf_cuda = abuf.to(Device::CUDA).requires_grad_(), c_cuda = c.to(Device::CUDA).requires_grad_();
    Tensor y_cuda = fn(permute(abuf_cuda, {2, 1, 0}), c_cuda);
    y_cuda.backward(dy.to(Device::CUDA));
    check_close(y_cuda, y_cpu, tol, "a (op) c");
    CHECK(abuf_cuda.grad().device() == Device::CUDA);
    CHECK(c_cuda.grad().device() == Device::CUDA);
    check_close(abuf_cuda.grad(), abuf_cpu.grad(), tol, "grad a");
    check_close(c_cuda.grad(), c_cpu.grad(), tol, "grad c");
    Tensor r_cuda = r.to(Device::CUDA), a_view = permute(abuf.to(Device::CUDA), {2, 1, 0});
    check_close(fn(a_view, r_cuda), yr_cpu, tol, "a (op) broadcast r");
    check_close(fn(r_cuda, a_view), ry_cpu, tol, "broadcast r (op) a");
  }
  // the scalar affine: add/mul with a double
  Rng rng(9);
  Tensor x = Tensor::rand({3 * 256 + 77}, rng, -1.0, 1.0);
  Tensor want_add, want_mul;
  {
    NaiveScope naive(true);
    want_add = add(x, 0.75);
    want_mul = mul(x, -1.5);
  }
  check_close(add(x.to(Device::CUDA), 0.75), want_add, tol, "add_scalar");
  check_close(mul(x.to(Device::CUDA), -1.5), want_mul, tol, "mul_scalar");
}

// The small graph: out = silu(a ⊙ b + c) ⊙ a with b (4) broadcast over a (3, 4), backward from an explicit
// gradient on the device (b takes no gradient: see check_binary_ops). a is used twice, so its two gradients are added on the
// device by backward()'s accumulation.
inline void check_graph(double tol) {
  Rng rng(21);
  Tensor a = Tensor::randn({3, 4}, rng), b = Tensor::randn({4}, rng), c = Tensor::randn({3, 4}, rng);
  Tensor dout = Tensor::randn({3, 4}, rng);
  auto graph = [](const Tensor& a, const Tensor& b, const Tensor& c) { return silu(a * b + c) * a; };
  Tensor a_cpu = a.clone_data().requires_grad_(), c_cpu = c.clone_data().requires_grad_(), out_cpu;
  {
    NaiveScope naive(true);
    out_cpu = graph(a_cpu, b, c_cpu);
    out_cpu.backward(dout);
  }
  Tensor a_cuda = a.to(Device::CUDA).requires_grad_(), c_cuda = c.to(Device::CUDA).requires_grad_();
  Tensor out_cuda = graph(a_cuda, b.to(Device::CUDA), c_cuda);
  CHECK(out_cuda.device() == Device::CUDA);
  out_cuda.backward(dout.to(Device::CUDA));
  check_close(out_cuda, out_cpu, tol, "silu(a*b + c)*a");
  CHECK(a_cuda.grad().device() == Device::CUDA);
  CHECK(c_cuda.grad().device() == Device::CUDA);
  check_close(a_cuda.grad(), a_cpu.grad(), tol, "grad a");
  check_close(c_cuda.grad(), c_cpu.grad(), tol, "grad c");
  // A second backward adds into the existing .grad, on the device.
  Tensor out2 = graph(a_cuda, b.to(Device::CUDA), c_cuda);
  out2.backward(dout.to(Device::CUDA));
  check_close(a_cuda.grad(), a_cpu.grad() * 2.0, tol, "grad a after two backward calls");

  // A one-element root: backward() seeds ones ON THE ROOT'S DEVICE. y = 2 exp(x) + 1, dy/dx = 2 exp(x).
  Tensor x = Tensor::full({1}, 0.3, DType::f32, Device::CUDA).requires_grad_();
  Tensor y = exp(x) * 2.0 + 1.0;
  y.backward();
  CHECK(x.grad().device() == Device::CUDA);
  CHECK(x.grad().item() == doctest::Approx(2.0 * std::exp(0.3)).epsilon(1e-6));
}

// to_device is differentiable: the gradient goes back to the device the input lives on.
inline void check_to_device_grad(double tol) {
  Rng rng(33);
  Tensor p = Tensor::randn({3, 4}, rng).requires_grad_();  // a CPU parameter used on CUDA
  Tensor dy = Tensor::randn({3, 4}, rng);
  Tensor y = silu(to_device(p, Device::CUDA));
  CHECK(y.device() == Device::CUDA);
  y.backward(dy.to(Device::CUDA));
  REQUIRE(p.grad().defined());
  CHECK(p.grad().device() == Device::CPU);
  Tensor p_ref = p.detach().clone_data().requires_grad_();
  {
    NaiveScope naive(true);
    silu(p_ref).backward(dy);
  }
  check_close(p.grad(), p_ref.grad(), tol, "grad of a CPU parameter used on cuda");

  // and the other way: a CUDA leaf, the loss on the CPU (sum runs there)
  Tensor q = Tensor::randn({2, 3}, rng).to(Device::CUDA).requires_grad_();
  Tensor loss = sum(to_device(q, Device::CPU) * 3.0);
  loss.backward();
  CHECK(q.grad().device() == Device::CUDA);
  CHECK(q.grad().to_f32_vector() == std::vector<float>(6, 3.0f));
  CHECK(to_device(q, Device::CUDA).same(q));
}

}  // namespace sg::test::devices
