// tests/cuda/test_topk_emu.cpp — the CUDA topk / argmax kernels (cuda/kernels/topk.cuh), run in the CPU emulation in
// both lane orders, against the CPU kernels (ops/cpu/nn.h) — its plain selection loop and its partial_sort — on
// random rows full of ties, with NaN, ±0 and ±inf mixed in. Values, indices and their order are compared bit for
// bit: the kernel picks the same positions in the same order and copies the row's own floats.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "autograd/rng.h"
#include "cuda/emu/emu.h"
#include "cuda/topk.h"
#include "ops/cpu/nn.h"
#include "ops/cpu/runtime.h"
#include "tests/test_util.h"
#include "tests/cuda/emu_test_util.h"

using sg::emu::LaneOrder;

using sg::test::emu::same_bits;
using sg::test::emu::NaiveScope;

namespace {

constexpr LaneOrder kOrders[] = {LaneOrder::forward, LaneOrder::reverse};

// Values on a grid of quarter steps in [-2, 2] (so a row of 300 has ~18 copies of each), a few specials mixed in.
std::vector<float> tied_values(int64_t n, uint64_t seed, bool specials) {
  sg::Rng rng(seed);
  std::vector<float> v((size_t)n);
  for (float& x : v) x = (float)std::round(rng.uniform(-8.0, 8.0)) / 4.0f;
  if (specials && n >= 8) {
    const float special[] = {NAN, -0.0f, 0.0f, INFINITY, -INFINITY, NAN, -0.0f, INFINITY};
    for (float s : special) v[rng.randint((uint64_t)n)] = s;
  }
  return v;
}

void check_topk(int64_t rows, int64_t n, int64_t k, bool specials, uint64_t seed) {
  CAPTURE(rows);
  CAPTURE(n);
  CAPTURE(k);
  const std::vector<float> x = tied_values(rows * n, seed, specials);
  for (bool largest : {true, false}) {
    CAPTURE(largest);
    std::vector<float> want_v(rows * k), fast_v(rows * k);
    std::vector<int64_t> want_i(rows * k), fast_i(rows * k);
    {
      NaiveScope naive(true);
      sg::cpu::topk_forward<float>(x.data(), want_v.data(), want_i.data(), rows, n, k, largest);
    }
    {
      NaiveScope naive(false);
      sg::cpu::topk_forward<float>(x.data(), fast_v.data(), fast_i.data(), rows, n, k, largest);
    }
    REQUIRE(same_bits(fast_v, want_v));
    REQUIRE(fast_i == want_i);
    // the backward of that topk, and of indices with repeats (dx sums them in increasing j, as the CPU)
    sg::Rng rng(seed + 7);
    std::vector<float> dvalues(rows * k);
    for (float& d : dvalues) d = (float)rng.uniform(-1.0, 1.0);
    std::vector<int64_t> repeated(rows * k);
    for (int64_t& i : repeated) i = (int64_t)rng.randint((uint64_t)std::min<int64_t>(n, 3));
    std::vector<float> want_dx(rows * n), want_dx_repeated(rows * n);
    sg::cpu::topk_backward<float>(dvalues.data(), want_i.data(), want_dx.data(), rows, n, k);
    sg::cpu::topk_backward<float>(dvalues.data(), repeated.data(), want_dx_repeated.data(), rows, n, k);
    for (LaneOrder order : kOrders) {
      CAPTURE(sg::emu::lane_order_name(order));
      sg::emu::LaneOrderScope scope(order);
      std::vector<float> v(rows * k, 7.0f), dx(rows * n, NAN);
      std::vector<int64_t> i(rows * k, -5);
      sg::cuda_emu::topk_forward({rows, n, k, largest ? 1 : 0, x.data(), v.data(), i.data()});
      CHECK(same_bits(v, want_v));
      CHECK(i == want_i);
      sg::cuda_emu::topk_backward({rows, n, k, dvalues.data(), i.data(), dx.data()});
      CHECK(same_bits(dx, want_dx));
      sg::cuda_emu::topk_backward({rows, n, k, dvalues.data(), repeated.data(), dx.data()});
      CHECK(same_bits(dx, want_dx_repeated));
    }
  }
}

}  // namespace

TEST_CASE("cuda emu topk: values, indices and their order equal the CPU's, ties to the lower index, both lane orders") {
  check_topk(3, 37, 5, true, 1);      // one partial warp of work per row
  check_topk(3, 37, 37, true, 2);     // k = n: the whole row sorted, NaNs and ±0 included
  check_topk(2, 300, 64, true, 3);    // a row over 2 strides of the block, 64 picks
  check_topk(4, 129, 8, false, 4);    // 129: one thread gets two positions
  check_topk(2, 1, 1, false, 5);
  check_topk(1, 700, 256, false, 6);  // the limit
}

TEST_CASE("cuda emu topk: argmax is the first maximum, NaN the largest, as the CPU's") {
  const int64_t rows = 5, n = 301;
  std::vector<float> x = tied_values(rows * n, 9, false);
  x[1 * n + 200] = NAN;   // row 1: the first NaN wins
  x[1 * n + 250] = NAN;
  x[2 * n + 17] = INFINITY;
  for (int64_t c = 0; c < n; c++) x[3 * n + c] = -0.0f;   // row 3: all equal, index 0
  x[3 * n + 5] = 0.0f;
  std::vector<int64_t> want(rows);
  sg::cpu::argmax_forward<float>(x.data(), want.data(), rows, n);
  CHECK(want[1] == 200);
  CHECK(want[3] == 0);
  for (LaneOrder order : kOrders) {
    sg::emu::LaneOrderScope scope(order);
    std::vector<int64_t> got(rows, -1);
    sg::cuda_emu::argmax_forward({rows, n, x.data(), got.data()});
    CHECK(got == want);
  }
}

TEST_CASE("cuda emu topk: bad sizes and k over the limit name the kernel") {
  std::vector<float> x(300, 1.0f), v(300);
  std::vector<int64_t> i(300);
  CHECK(sg::test::error_of([&] { sg::cuda_emu::topk_forward({1, 300, 257, 1, x.data(), v.data(), i.data()}); }) ==
        "[cuda] topk_forward: k 257 is over this kernel's limit of 256 (one pass over the row per output; a larger k wants a sort)");
  CHECK(sg::test::error_of([&] { sg::cuda_emu::topk_forward({1, 4, 5, 1, x.data(), v.data(), i.data()}); }) ==
        "[cuda] topk_forward: k 5 is more than the row's 4 values");
  CHECK(sg::test::error_of([&] { sg::cuda_emu::topk_backward({-1, 4, 2, x.data(), i.data(), v.data()}); }) ==
        "[cuda] topk_backward: sizes (rows -1, n 4, k 2) must be >= 0");
  CHECK(sg::test::error_of([&] { sg::cuda_emu::argmax_forward({2, 0, x.data(), i.data()}); }) ==
        "[cuda] argmax_forward: a row of 0 values has no maximum");
  sg::cuda_emu::topk_forward({0, 4, 2, 1, x.data(), v.data(), i.data()});   // no rows: nothing to launch
}
