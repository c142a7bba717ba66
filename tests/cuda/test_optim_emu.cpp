// tests/cuda/test_optim_emu.cpp — the CUDA optimizer kernels (cuda/kernels/optim.cuh), run in the CPU emulation
// in both lane orders, against the CPU kernels (ops/cpu/optim.h) on random inputs:
//   AdamW, SGD (every momentum / Nesterov / first-step path) and scale: the SAME BITS as the CPU plain loop
//   (v1_naive) and its vector loop (v2_parallel), over sizes that leave the last block partly idle;
//   sum of squares: deterministic (same bits twice and in both lane orders), within the summation bound of both
//   CPU versions (it adds in another fixed order), exact on hand-made integers that need double;
//   argument errors name the kernel.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "autograd/rng.h"
#include "cuda/emu/emu.h"
#include "cuda/optim.h"
#include "ops/cpu/optim.h"
#include "tests/test_util.h"

using sg::emu::LaneOrder;
using sg::test::error_of;

namespace {

constexpr LaneOrder kOrders[] = {LaneOrder::forward, LaneOrder::reverse};

std::vector<float> normal(sg::Rng& rng, int64_t n, double std) {
  std::vector<float> v((size_t)n);
  for (float& x : v) x = (float)rng.normal(0.0, std);
  return v;
}
std::vector<float> uniform(sg::Rng& rng, int64_t n, double lo, double hi) {
  std::vector<float> v((size_t)n);
  for (float& x : v) x = (float)rng.uniform(lo, hi);
  return v;
}
bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}
bool same_bits(double a, double b) { return std::memcmp(&a, &b, sizeof a) == 0; }

// The step scalars as train/optim.cpp computes them (double, then rounded to f32).
sg::AdamWUpdateArgs adamw_step(double lr, double b1, double b2, double eps, double wd, int t) {
  sg::AdamWUpdateArgs a;
  a.lr = (float)lr, a.beta1 = (float)b1, a.beta2 = (float)b2, a.eps = (float)eps;
  a.decay_factor = (float)(1.0 - lr * wd);
  a.step_size = (float)(lr / (1.0 - std::pow(b1, t)));
  a.bias_correction2_sqrt = (float)std::sqrt(1.0 - std::pow(b2, t));
  return a;
}

}  // namespace

TEST_CASE("cuda emu optim: AdamW gives the CPU kernel's bits for p, m, v in both lane orders") {
  const int64_t n = 3 * 256 + 77;  // 4 blocks, the last one mostly idle
  sg::Rng rng(1);
  const std::vector<float> p0 = normal(rng, n, 1.0), m0 = normal(rng, n, 0.1), v0 = uniform(rng, n, 1e-6, 1e-2);
  const std::vector<sg::AdamWUpdateArgs> steps = {adamw_step(1e-3, 0.9, 0.999, 1e-8, 0.1, 1),
                                                  adamw_step(3e-4, 0.9, 0.95, 1e-8, 0.0, 7),
                                                  adamw_step(1e-2, 0.8, 0.99, 1e-6, 0.01, 1000)};
  int fused_would_differ = 0;
  for (size_t s = 0; s < steps.size(); s++) {
    CAPTURE(s);
    const sg::AdamWUpdateArgs& h = steps[s];
    // Three steps in a row, each with a new random gradient, so m and v carry state.
    std::vector<float> p1 = p0, m1 = m0, v1 = v0, p2 = p0, m2 = m0, v2 = v0;
    std::vector<float> pe[2] = {p0, p0}, me[2] = {m0, m0}, ve[2] = {v0, v0};
    for (int t = 0; t < 3; t++) {
      const std::vector<float> g = normal(rng, n, 0.05);
      for (int64_t i = 0; i < n; i++) {  // how often an FMA in m's update would change its bits
        volatile float decayed = h.beta1 * m1[i], fresh = (1.0f - h.beta1) * g[i];  // volatile: rounded here
        fused_would_differ += std::fma(h.beta1, m1[i], (float)fresh) != decayed + fresh;
      }
      sg::cpu::adamw_update_f32_v1_naive(p1.data(), g.data(), m1.data(), v1.data(), n, h);
      sg::cpu::adamw_update_f32_v2_parallel(p2.data(), g.data(), m2.data(), v2.data(), n, h);
      for (int o = 0; o < 2; o++) {
        sg::emu::LaneOrderScope scope(kOrders[o]);
        sg::cuda_emu::adamw_update_f32({n, pe[o].data(), g.data(), me[o].data(), ve[o].data(), h});
      }
    }
    REQUIRE(same_bits(p1, p2));  // the CPU's two versions agree (ops/cpu/optim.h), so one comparison covers both
    for (int o = 0; o < 2; o++) {
      CAPTURE(sg::emu::lane_order_name(kOrders[o]));
      CHECK(same_bits(pe[o], p1));
      CHECK(same_bits(me[o], m1));
      CHECK(same_bits(ve[o], v1));
    }
    CHECK(!same_bits(pe[0], p0));  // the step moved p
  }
  // The inputs are ones where fusing β1·m + (1 − β1)·g into an FMA changes bits: bit equality above means the
  // kernel rounds the CPU's way.
  CHECK(fused_would_differ > 100);
}

TEST_CASE("cuda emu optim: SGD gives the CPU kernel's bits with and without momentum, Nesterov, first step") {
  const int64_t n = 2 * 256 + 31;
  sg::Rng rng(2);
  struct Case {
    float lr, momentum, weight_decay;
    int32_t nesterov, first;
    bool buffer;
  };
  const Case cases[] = {{0.1f, 0.0f, 0.0f, 0, 0, false}, {0.05f, 0.0f, 1e-2f, 0, 0, false}, {0.1f, 0.9f, 1e-4f, 0, 1, true},
                        {0.1f, 0.9f, 1e-4f, 0, 0, true}, {0.02f, 0.8f, 0.0f, 1, 0, true},    {0.02f, 0.8f, 5e-3f, 1, 1, true}};
  for (const Case& c : cases) {
    CAPTURE(c.momentum);
    CAPTURE(c.nesterov);
    CAPTURE(c.first);
    const sg::SGDUpdateArgs h{c.lr, c.momentum, c.weight_decay, c.nesterov, c.first};
    const std::vector<float> p0 = normal(rng, n, 1.0), g = normal(rng, n, 0.1), b0 = normal(rng, n, 0.05);
    std::vector<float> p1 = p0, b1 = b0;
    sg::cpu::sgd_update_f32_v1_naive(p1.data(), g.data(), c.buffer ? b1.data() : nullptr, n, h);
    for (LaneOrder order : kOrders) {
      CAPTURE(sg::emu::lane_order_name(order));
      sg::emu::LaneOrderScope scope(order);
      std::vector<float> p = p0, b = b0;
      sg::cuda_emu::sgd_update_f32({n, p.data(), g.data(), c.buffer ? b.data() : nullptr, h});
      CHECK(same_bits(p, p1));
      CHECK(same_bits(b, b1));  // untouched (== b0) when there is no buffer
    }
  }
}

TEST_CASE("cuda emu optim: scale gives the CPU kernel's bits") {
  const int64_t n = 5 * 256 + 3;
  sg::Rng rng(3);
  const std::vector<float> x0 = normal(rng, n, 2.0);
  std::vector<float> want = x0;
  sg::cpu::scale_f32_v1_naive(want.data(), n, 0.37f);
  for (LaneOrder order : kOrders) {
    sg::emu::LaneOrderScope scope(order);
    std::vector<float> x = x0;
    sg::cuda_emu::scale_f32({n, x.data(), 0.37f});
    CHECK(same_bits(x, want));
  }
}

TEST_CASE("cuda emu optim: sum of squares is deterministic and within rounding of both CPU versions") {
  // Buffers that end mid-block, a 1-element one, an empty one, and one of several blocks.
  const std::vector<int64_t> sizes = {2 * sg::kSumSquaresBlockElems + 17, 1, 0, 300, 70000};
  sg::Rng rng(4);
  std::vector<std::vector<float>> bufs;
  for (int64_t s : sizes) bufs.push_back(normal(rng, s, 0.3));
  std::vector<const float*> ptrs;
  int64_t total = 0;
  for (auto& b : bufs) ptrs.push_back(b.data()), total += (int64_t)b.size();
  const int64_t count = (int64_t)sizes.size();
  const double v1 = sg::cpu::sum_squares_f32_v1_naive(ptrs.data(), sizes.data(), count);
  const double v2 = sg::cpu::sum_squares_f32_v2_parallel(ptrs.data(), sizes.data(), count);
  const int64_t slots = sg::sum_squares_partials(sizes.data(), count);
  CHECK(slots == 3 + 1 + 0 + 1 + 9);
  double first = -1;
  for (LaneOrder order : kOrders) {
    CAPTURE(sg::emu::lane_order_name(order));
    sg::emu::LaneOrderScope scope(order);
    for (int run = 0; run < 2; run++) {
      std::vector<double> partials((size_t)slots, -1.0);
      double out = -1;
      sg::cuda_emu::sum_squares_f32({ptrs.data(), sizes.data(), count, partials.data(), &out});
      if (first < 0) first = out;
      CHECK(same_bits(out, first));
    }
  }
  // Every square is exact in double (24-bit significands) and positive, so any order of additions of the
  // `total` terms lies within (total − 1)·2^-53 relative of the exact sum (recursive summation bound):
  // two such sums within twice that of each other.
  const double bound = 2.0 * (double)(total - 1) * std::ldexp(1.0, -53);
  CHECK(std::abs(first - v1) <= bound * v1);
  CHECK(std::abs(first - v2) <= bound * v2);
  CHECK(first > 0.05 * total);  // ~0.09 per element: the sum is not all zeros

  SUBCASE("hand-made: exact integers that f32 cannot hold, an empty list") {
    // 4097² + 1² + 3² = 16785409 + 1 + 9 = 16785419: above 2^24, odd, so only a double sum gets it exactly.
    const std::vector<float> a = {4097.0f, 1.0f}, b = {3.0f};
    const float* xs[] = {a.data(), b.data()};
    const int64_t ns[] = {2, 1};
    double partials[2], out = 0;
    sg::cuda_emu::sum_squares_f32({xs, ns, 2, partials, &out});
    CHECK(out == 16785419.0);
    sg::cuda_emu::sum_squares_f32({nullptr, nullptr, 0, nullptr, &out});
    CHECK(out == 0.0);
  }
}

TEST_CASE("cuda emu optim: bad arguments name the kernel") {
  float x = 1;
  CHECK(error_of([&] { sg::cuda_emu::adamw_update_f32({-1, &x, &x, &x, &x, {}}); }).find("[cuda] adamw_update_f32: n = -1") == 0);
  CHECK(error_of([&] { sg::cuda_emu::adamw_update_f32({1, &x, nullptr, &x, &x, {}}); }).find("[cuda] adamw_update_f32") == 0);
  CHECK(error_of([&] { sg::cuda_emu::sgd_update_f32({-5, &x, &x, nullptr, {}}); }).find("[cuda] sgd_update_f32: n = -5") == 0);
  CHECK(error_of([&] { sg::cuda_emu::scale_f32({3, nullptr, 2.0f}); }).find("[cuda] scale_f32: x must not be null") == 0);
  const float* xs[] = {&x};
  const int64_t bad[] = {-2}, one[] = {1};
  double out = 0;
  CHECK(error_of([&] { sg::cuda_emu::sum_squares_f32({xs, bad, 1, nullptr, &out}); }).find("[cuda] sum_squares_f32: n[0] = -2") == 0);
  CHECK(error_of([&] { sg::cuda_emu::sum_squares_f32({xs, one, 1, nullptr, &out}); }).find("[cuda] sum_squares_f32: partials") == 0);
  CHECK(error_of([&] { sg::cuda_emu::sum_squares_f32({xs, one, 1, &out, nullptr}); }).find("[cuda] sum_squares_f32: out") == 0);
}
