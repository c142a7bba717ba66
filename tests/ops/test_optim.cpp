// tests/ops/test_optim.cpp — the optimizer and clipping kernels (ops/cpu/optim.h) against independent
// formulas in double on random inputs, v2_parallel (vector loops on threads) against v1_naive bit for
// bit on several thread counts, sum_squares' fixed order (the same number on any thread count), and the ops-level
// dispatch (ops/optim.h): it runs the CPU kernel and names the op, the tensor and the device in errors.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <vector>

#include "autograd/rng.h"
#include "autograd/runtime.h"
#include "ops/cpu/optim.h"
#include "ops/cpu/runtime.h"
#include "ops/optim.h"
#include "ops/shape.h"
#include "tests/test_util.h"

using namespace sg;
using sg::test::error_of;

namespace {

std::vector<float> normal(Rng& rng, int64_t n, double std = 1.0) {
  std::vector<float> v(n);
  for (auto& x : v) x = (float)rng.normal(0.0, std);
  return v;
}
std::vector<float> uniform(Rng& rng, int64_t n, double lo, double hi) {
  std::vector<float> v(n);
  for (auto& x : v) x = (float)rng.uniform(lo, hi);
  return v;
}
bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// Runs `body` with 1, 2, 3 and 4 threads (more than this machine may have: the pool still splits the
// work), then restores the thread count.
template <class F> void for_thread_counts(F&& body) {
  const int saved = num_threads();
  for (int t : {1, 2, 3, 4}) {
    set_num_threads(t);
    body(t);
  }
  set_num_threads(saved);
}

// The arguments train/optim.cpp builds for step t (in double, rounded to f32).
cpu::AdamWUpdateArgs adamw_args(double lr, double b1, double b2, double eps, double wd, int t) {
  cpu::AdamWUpdateArgs a;
  a.lr = (float)lr;
  a.beta1 = (float)b1;
  a.beta2 = (float)b2;
  a.eps = (float)eps;
  a.decay_factor = (float)(1.0 - lr * wd);
  a.step_size = (float)(lr / (1.0 - std::pow(b1, t)));
  a.bias_correction2_sqrt = (float)std::sqrt(1.0 - std::pow(b2, t));
  return a;
}

}  // namespace

TEST_CASE("optim kernels: adamw_update_f32 against AdamW in double over 5 steps") {
  // The textbook form (bias-corrected m̂ = m/(1 − β1^t), v̂ = v/(1 − β2^t), p ← p − lr·m̂/(sqrt(v̂) + ε))
  // after the decoupled decay p ← p(1 − lr·λ): PyTorch's torch.optim.AdamW, written independently of
  // the kernel's step_size / bias_correction2_sqrt form.
  const int64_t n = 3001;
  const double lr = 1e-2, b1 = 0.9, b2 = 0.95, eps = 1e-8, wd = 0.1;
  Rng rng(1);
  std::vector<float> p = normal(rng, n), m = normal(rng, n, 0.1), v = uniform(rng, n, 0.0, 0.1);
  // Every third element has gradients and moments ~1e-5: there sqrt(v̂) ~ 1e-5 and ε = 1e-8 moves the
  // update by ~1e-3 of itself, so ε in the wrong place (inside the sqrt, or before the bias correction)
  // fails the check.
  for (int64_t i = 0; i < n; i += 3) m[i] *= 1e-5f, v[i] *= 1e-10f;
  std::vector<double> rp(p.begin(), p.end()), rm(m.begin(), m.end()), rv(v.begin(), v.end());
  for (int t = 1; t <= 5; ++t) {
    std::vector<float> g = normal(rng, n);
    for (int64_t i = 0; i < n; i += 3) g[i] *= 1e-5f;
    cpu::adamw_update_f32_v1_naive(p.data(), g.data(), m.data(), v.data(), n, adamw_args(lr, b1, b2, eps, wd, t));
    for (int64_t i = 0; i < n; ++i) {
      rp[i] *= 1 - lr * wd;
      rm[i] = b1 * rm[i] + (1 - b1) * g[i];
      rv[i] = b2 * rv[i] + (1 - b2) * (double)g[i] * g[i];
      const double mhat = rm[i] / (1 - std::pow(b1, t)), vhat = rv[i] / (1 - std::pow(b2, t));
      rp[i] -= lr * mhat / (std::sqrt(vhat) + eps);
    }
  }
  double dp = 0, dm = 0, dv = 0;
  for (int64_t i = 0; i < n; ++i) {
    dp = std::max(dp, std::abs(p[i] - rp[i]) / (1 + std::abs(rp[i])));
    dm = std::max(dm, std::abs(m[i] - rm[i]) / (1 + std::abs(rm[i])));
    dv = std::max(dv, std::abs(v[i] - rv[i]) / (1 + std::abs(rv[i])));
  }
  MESSAGE("adamw f32 vs f64 after 5 steps: p " << dp << ", m " << dm << ", v " << dv);
  CHECK(dp < 2e-6);
  CHECK(dm < 1e-6);
  CHECK(dv < 1e-6);
}

TEST_CASE("optim kernels: adamw v2_parallel equals v1_naive bit for bit on 1-4 threads") {
  const int64_t n = 200003;  // > 2 grains of 16K: the pool splits it
  Rng rng(2);
  const std::vector<float> p0 = normal(rng, n), m0 = normal(rng, n, 0.1), v0 = uniform(rng, n, 0.0, 0.1),
                           g = normal(rng, n);
  const cpu::AdamWUpdateArgs a = adamw_args(3e-3, 0.9, 0.95, 1e-8, 0.1, 3);
  std::vector<float> p1 = p0, m1 = m0, v1 = v0;
  cpu::adamw_update_f32_v1_naive(p1.data(), g.data(), m1.data(), v1.data(), n, a);
  for_thread_counts([&](int t) {
    std::vector<float> p2 = p0, m2 = m0, v2 = v0;
    cpu::adamw_update_f32_v2_parallel(p2.data(), g.data(), m2.data(), v2.data(), n, a);
    CHECK_MESSAGE(same_bits(p1, p2), t << " threads");
    CHECK_MESSAGE(same_bits(m1, m2), t << " threads");
    CHECK_MESSAGE(same_bits(v1, v2), t << " threads");
  });
}

TEST_CASE("optim kernels: sgd_update_f32 against SGD in double, every mode; v2 equals v1") {
  const int64_t n = 100001;
  Rng rng(3);
  const std::vector<float> p0 = normal(rng, n), g = normal(rng, n), b0 = normal(rng, n);
  struct Mode {
    float momentum, weight_decay;
    int32_t nesterov, first;
    bool buffer;
  };
  for (const Mode& mode : {Mode{0.0f, 0.0f, 0, 0, false}, Mode{0.0f, 0.01f, 0, 0, false}, Mode{0.9f, 0.0f, 0, 1, true},
                           Mode{0.9f, 0.01f, 0, 0, true}, Mode{0.9f, 0.01f, 1, 0, true}, Mode{0.5f, 0.0f, 1, 1, true}}) {
    CAPTURE(mode.momentum);
    CAPTURE(mode.weight_decay);
    CAPTURE(mode.nesterov);
    CAPTURE(mode.first);
    cpu::SGDUpdateArgs a;
    a.lr = 0.05f;
    a.momentum = mode.momentum;
    a.weight_decay = mode.weight_decay;
    a.nesterov = mode.nesterov;
    a.first = mode.first;
    std::vector<float> p1 = p0, b1 = b0;
    cpu::sgd_update_f32_v1_naive(p1.data(), g.data(), mode.buffer ? b1.data() : nullptr, n, a);
    double dp = 0, db = 0;
    for (int64_t i = 0; i < n; ++i) {  // torch.optim.SGD with dampening 0, in double
      double d = (double)g[i] + (double)mode.weight_decay * p0[i];
      double step = d, buf = 0;
      if (mode.buffer) {
        buf = mode.first ? d : (double)mode.momentum * b0[i] + d;
        step = mode.nesterov ? d + (double)mode.momentum * buf : buf;
      }
      const double p = (double)p0[i] - 0.05 * step;
      dp = std::max(dp, std::abs(p1[i] - p));
      if (mode.buffer) db = std::max(db, std::abs(b1[i] - buf));
    }
    CHECK(dp < 1e-6);
    CHECK(db < 1e-6);
    if (!mode.buffer) CHECK(same_bits(b1, b0));  // no buffer: nothing else written
    for_thread_counts([&](int t) {
      std::vector<float> p2 = p0, b2 = b0;
      cpu::sgd_update_f32_v2_parallel(p2.data(), g.data(), mode.buffer ? b2.data() : nullptr, n, a);
      CHECK_MESSAGE(same_bits(p1, p2), t << " threads");
      CHECK_MESSAGE(same_bits(b1, b2), t << " threads");
    });
  }
}

TEST_CASE("optim kernels: sum_squares_f32 against a long double sum; the same bits on any thread count") {
  // Buffers of awkward sizes: empty, one element, one chunk exactly, a chunk and a bit, many chunks.
  const int64_t K = cpu::kSumSquaresChunk;
  const std::vector<int64_t> sizes = {0, 1, 17, K, K + 1, 5 * K + 123, 3};
  Rng rng(4);
  std::vector<std::vector<float>> bufs;
  for (int64_t s : sizes) bufs.push_back(normal(rng, s, 2.0));
  std::vector<const float*> x;
  for (auto& b : bufs) x.push_back(b.data());
  long double ref = 0;
  for (auto& b : bufs)
    for (float f : b) ref += (long double)f * f;
  const double v1 = cpu::sum_squares_f32_v1_naive(x.data(), sizes.data(), (int64_t)sizes.size());
  const double v2 = cpu::sum_squares_f32_v2_parallel(x.data(), sizes.data(), (int64_t)sizes.size());
  MESSAGE("sum_squares: " << v1 << ", relative error vs long double: v1 " << (double)std::abs((v1 - ref) / ref)
                          << ", v2 " << (double)std::abs((v2 - ref) / ref));
  CHECK(std::abs((long double)v1 - ref) / ref < 1e-13);
  CHECK(std::abs((long double)v2 - ref) / ref < 1e-13);
  for_thread_counts([&](int t) {
    const double v2t = cpu::sum_squares_f32_v2_parallel(x.data(), sizes.data(), (int64_t)sizes.size());
    CHECK_MESSAGE(std::memcmp(&v2, &v2t, sizeof(double)) == 0, t << " threads: " << v2t << " vs " << v2);
  });
  // The v2 order written out: per chunk, lane j sums x[i] for i ≡ j (mod 8) over the full groups of 8,
  // lanes added in order, then the tail; chunk sums added in order.
  double by_hand = 0.0;
  for (size_t b = 0; b < bufs.size(); ++b)
    for (int64_t c0 = 0; c0 < sizes[b]; c0 += K) {
      const int64_t cn = std::min(K, sizes[b] - c0), full = cn / 8 * 8;
      double lane[8] = {0, 0, 0, 0, 0, 0, 0, 0}, chunk = 0.0;
      for (int64_t i = 0; i < full; ++i) lane[i % 8] += (double)bufs[b][c0 + i] * (double)bufs[b][c0 + i];
      for (double l : lane) chunk += l;
      for (int64_t i = full; i < cn; ++i) chunk += (double)bufs[b][c0 + i] * (double)bufs[b][c0 + i];
      by_hand += chunk;
    }
  CHECK(std::memcmp(&by_hand, &v2, sizeof(double)) == 0);
  CHECK(cpu::sum_squares_f32_v2_parallel(nullptr, nullptr, 0) == 0.0);
}

TEST_CASE("optim kernels: scale_f32 is x·c, v2 equals v1") {
  const int64_t n = 70001;
  Rng rng(5);
  const std::vector<float> x0 = normal(rng, n);
  const float c = 0.37f;
  std::vector<float> x1 = x0;
  cpu::scale_f32_v1_naive(x1.data(), n, c);
  for (int64_t i = 0; i < n; ++i) REQUIRE(x1[i] == x0[i] * c);
  for_thread_counts([&](int t) {
    std::vector<float> x2 = x0;
    cpu::scale_f32_v2_parallel(x2.data(), n, c);
    CHECK_MESSAGE(same_bits(x1, x2), t << " threads");
  });
}

TEST_CASE("optim dispatch: the tensor functions run the CPU kernels; errors name op, tensor, device") {
  Rng rng(6);
  Tensor p = Tensor::randn({3, 5}, rng), g = Tensor::randn({3, 5}, rng);
  Tensor m = Tensor::zeros({3, 5}), v = Tensor::zeros({3, 5});
  std::vector<float> rp = p.to_f32_vector(), rg = g.to_f32_vector(), rm(15, 0.0f), rv(15, 0.0f);
  const cpu::AdamWUpdateArgs a = adamw_args(1e-2, 0.9, 0.95, 1e-8, 0.1, 1);
  adamw_update(p, g, m, v, a);
  cpu::adamw_update_f32_v1_naive(rp.data(), rg.data(), rm.data(), rv.data(), 15, a);
  CHECK(same_bits(p.to_f32_vector(), rp));
  CHECK(same_bits(m.to_f32_vector(), rm));

  // sum_squares / scale_in_place over tensors
  Tensor x = Tensor::from_vector(std::vector<float>{3, 4}, {2}), y = Tensor::from_vector(std::vector<float>{12}, {1});
  CHECK(sum_squares({x, y}) == 169.0);
  CHECK(sum_squares({}) == 0.0);
  scale_in_place(x, 0.5);
  CHECK(x.to_f32_vector() == std::vector<float>{1.5f, 2.0f});

  // Errors: shape, dtype, layout, device.
  Tensor bad = Tensor::zeros({5, 3});
  CHECK(error_of([&] { adamw_update(p, bad, m, v, a); }) ==
        "[adamw_update] grad has shape (5, 3) but the parameter has shape (3, 5)");
  CHECK(error_of([&] { sgd_update(p, g, bad, cpu::SGDUpdateArgs{}); }).find("[sgd_update] momentum_buffer has shape (5, 3)") == 0);
  CHECK(error_of([&] { sum_squares({x, Tensor::zeros({2}, DType::f64)}); }).find("[sum_squares] xs[1]") == 0);
  CHECK(error_of([&] { scale_in_place(transpose(Tensor::zeros({2, 3}), 0, 1), 2.0); }).find("not contiguous") !=
        std::string::npos);
  // A tensor that claims to live on Metal (no storage is touched: the checks come first, then the device's memory,
  // which this build does not have). CUDA tensors run the CUDA kernels: tests/cuda/test_dispatch_optim_emu.cpp.
  auto impl = std::make_shared<TensorImpl>(*p.impl());
  impl->device = Device::Metal;
  Tensor pc(impl);
  CHECK(error_of([&] { scale_in_place(pc, 2.0); }) == "[metal] no Metal backend in this build");
  CHECK(error_of([&] { adamw_update(p, pc, m, v, a); }).find("[adamw_update] grad") == 0);
  auto gi = std::make_shared<TensorImpl>(*g.impl()), mi = std::make_shared<TensorImpl>(*m.impl()),
       vi = std::make_shared<TensorImpl>(*v.impl());
  gi->device = mi->device = vi->device = Device::Metal;
  CHECK(error_of([&] { adamw_update(pc, Tensor(gi), Tensor(mi), Tensor(vi), a); }) == "[metal] no Metal backend in this build");
}
