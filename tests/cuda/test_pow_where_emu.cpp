// tests/cuda/test_pow_where_emu.cpp — the CUDA pow and where kernels (cuda/kernels/elementwise.cuh), run in the
// CPU emulation in both lane orders, against the CPU kernels (ops/cpu/elementwise.h) on random inputs. Both do the
// same operations per element (pow: the same libm call in double, then one rounding to f32; where: a select), so
// the results are the same bits.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "autograd/rng.h"
#include "cuda/elementwise.h"
#include "cuda/emu/emu.h"
#include "ops/cpu/elementwise.h"
#include "tests/cuda/emu_test_util.h"
#include "tests/test_util.h"

using sg::ElemType;
using sg::emu::LaneOrder;
using sg::test::error_of;
using sg::test::emu::NaiveScope;
using sg::test::emu::random_values;
using sg::test::emu::same_bits;

namespace {

constexpr LaneOrder kOrders[] = {LaneOrder::forward, LaneOrder::reverse};

// n condition values of type C from `seed`: about a third zero (for f32 / f64 also -0, which is false, and NaN,
// which is true), the rest nonzero of either sign.
template <class C> std::vector<C> random_conditions(int64_t n, uint64_t seed) {
  sg::Rng rng(seed);
  std::vector<C> c((size_t)n);
  for (size_t i = 0; i < c.size(); i++) {
    const double u = rng.uniform(0.0, 1.0);
    if (u < 0.3) c[i] = C(0);
    else c[i] = (C)(u < 0.65 ? -1.0 - 7.0 * u : 9.0 * u);
    if constexpr (std::is_floating_point_v<C>) {
      if (i % 97 == 5) c[i] = -C(0);
      if (i % 89 == 7) c[i] = std::numeric_limits<C>::quiet_NaN();
    }
  }
  return c;
}

// out (5, 7, 11) = 385 elements: two blocks of 256, the second partly idle. cond is a (11, 7, 5) buffer seen
// transposed (strides {1, 5, 35}), a a (7, 11, 5) buffer seen permuted (strides {1, 55, 5}), b broadcasts (1, 7, 1).
template <class C> void check_where(ElemType cond_type, uint64_t seed) {
  const std::vector<int64_t> shape = {5, 7, 11}, cs = {1, 5, 35}, as = {1, 55, 5}, bs = {0, 1, 0};
  const std::vector<C> cond = random_conditions<C>(385, seed);
  const std::vector<float> a = random_values(385, seed + 1, -3.0, 3.0), b = random_values(7, seed + 2, -3.0, 3.0);
  std::vector<float> want(385, NAN);
  sg::cpu::where_forward<float>(shape, cond_type, cond.data(), cs, a.data(), as, b.data(), bs, want.data());
  // One element by hand: out[3, 2, 9] = cond[3 + 10 + 315] ? a[3 + 110 + 45] : b[2].
  const int64_t flat = 3 * 77 + 2 * 11 + 9;
  CHECK(want[flat] == (cond[3 + 10 + 315] != C(0) ? a[3 + 110 + 45] : b[2]));
  for (LaneOrder order : kOrders) {
    CAPTURE(sg::emu::lane_order_name(order));
    sg::emu::LaneOrderScope scope(order);
    sg::WhereArgs<float> args{};
    args.ndim = 3;
    args.cond_type = cond_type;
    for (int d = 0; d < 3; d++)
      args.shape[d] = shape[d], args.cond_strides[d] = cs[d], args.a_strides[d] = as[d], args.b_strides[d] = bs[d];
    args.cond = cond.data();
    args.a = a.data();
    args.b = b.data();
    std::vector<float> out(385, NAN);
    args.out = out.data();
    sg::cuda_emu::where_forward(args);
    CHECK(same_bits(out, want));
    CHECK(sg::emu::last_launch().blocks == 2);
  }
  // Both branches are taken somewhere (the test would pass trivially otherwise).
  int64_t from_a = 0, from_b = 0;
  for (int64_t i0 = 0; i0 < 5; i0++)
    for (int64_t i1 = 0; i1 < 7; i1++)
      for (int64_t i2 = 0; i2 < 11; i2++) (cond[i0 * cs[0] + i1 * cs[1] + i2 * cs[2]] != C(0) ? from_a : from_b)++;
  CHECK(from_a > 50);
  CHECK(from_b > 50);
}

}  // namespace

TEST_CASE("cuda emu pow: (float) pow((double) x, p) equals the CPU kernel bit for bit in both lane orders") {
  const int64_t n = 1000;  // 4 blocks of 256, the last one partly idle
  for (double p : {3.0, 0.5, -1.5, 2.5, 1.0 / 3.0, -2.0, 7.25}) {
    CAPTURE(p);
    const bool integral = p == std::floor(p);
    const std::vector<float> x = random_values(n, 31 + (uint64_t)(p * 8 + 64), integral ? -2.5 : 0.05, 2.5);
    std::vector<float> want(n), want_fast(n);
    {
      NaiveScope naive(true);
      sg::cpu::pow_forward(x.data(), p, want.data(), n);
    }
    {
      NaiveScope naive(false);
      sg::cpu::pow_forward(x.data(), p, want_fast.data(), n);  // threads split the range, same per-element math
    }
    CHECK(same_bits(want, want_fast));
    CHECK(want[17] == (float)std::pow((double)x[17], p));
    for (LaneOrder order : kOrders) {
      CAPTURE(sg::emu::lane_order_name(order));
      sg::emu::LaneOrderScope scope(order);
      std::vector<float> y(n, NAN);
      sg::cuda_emu::pow_forward({n, p, x.data(), y.data()});
      CHECK(same_bits(y, want));
      CHECK(sg::emu::last_launch().blocks == 4);
    }
  }
  // NaN, inf, zero and a negative base to a fractional power (NaN) go through libm as on the CPU.
  const std::vector<float> x = {NAN, INFINITY, -INFINITY, 0.0f, -0.0f, -2.0f, 1e-30f};
  for (double p : {0.5, -1.0, 3.0}) {
    std::vector<float> want(x.size()), got(x.size(), 1.0f);
    sg::cpu::pow_forward(x.data(), p, want.data(), (int64_t)x.size());
    sg::cuda_emu::pow_forward({(int64_t)x.size(), p, x.data(), got.data()});
    CHECK(same_bits(got, want));
  }
  CHECK(error_of([&] { sg::cuda_emu::pow_forward({-1, 2.0, nullptr, nullptr}); }) == "[cuda] pow_forward: n -1 < 0");
}

TEST_CASE("cuda emu where: f32 / f64 / i32 / i64 conditions, permuted and broadcast inputs, equal the CPU kernel") {
  SUBCASE("f32") { check_where<float>(ElemType::f32, 101); }
  SUBCASE("f64") { check_where<double>(ElemType::f64, 202); }
  SUBCASE("i32") { check_where<int32_t>(ElemType::i32, 303); }
  SUBCASE("i64") { check_where<int64_t>(ElemType::i64, 404); }
}

TEST_CASE("cuda emu where: a single element (ndim 0), an empty shape, and bad arguments") {
  const float a = 1.5f, b = -2.0f, cond = 3.0f;
  float out = 0;
  sg::WhereArgs<float> args{};
  args.ndim = 0;
  args.cond_type = ElemType::f32;
  args.cond = &cond;
  args.a = &a;
  args.b = &b;
  args.out = &out;
  sg::cuda_emu::where_forward(args);
  CHECK(out == 1.5f);
  args.ndim = 1;
  args.shape[0] = 0;
  out = 7.0f;
  sg::cuda_emu::where_forward(args);   // nothing to do: out untouched
  CHECK(out == 7.0f);
  args.ndim = 9;
  CHECK(error_of([&] { sg::cuda_emu::where_forward(args); }) == "[cuda] where_forward: ndim 9 is outside [0, 8]");
  args.ndim = 0;
  args.cond_type = ElemType::bf16;
  CHECK(error_of([&] { sg::cuda_emu::where_forward(args); }) ==
        "[cuda] where_forward: the condition must be f32, f64, i32 or i64 (type code 4)");
}
