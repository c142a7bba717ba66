// tests/cuda/test_index_emu.cpp — the CUDA index kernels (cuda/kernels/index.cuh), run in the CPU emulation in both
// lane orders, against the CPU kernels (ops/cpu/index.h) on random inputs with repeated indices, int64 and int32.
// Every comparison is bit for bit: the copies move the same floats, and the scatters add each output element's
// contributions in increasing source position, the CPU's order (its plain loop and its threaded path agree).
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "autograd/rng.h"
#include "cuda/emu/emu.h"
#include "cuda/index.h"
#include "ops/cpu/index.h"
#include "ops/cpu/runtime.h"
#include "tests/test_util.h"

using sg::emu::LaneOrder;

namespace {

constexpr LaneOrder kOrders[] = {LaneOrder::forward, LaneOrder::reverse};
// Outputs above this take the scatters' columns version (kIndexOneWave in cuda/kernels/index.cuh).
constexpr int64_t kOneWave = int64_t(1) << 18;

std::vector<float> random_values(int64_t n, uint64_t seed) {
  sg::Rng rng(seed);
  std::vector<float> v((size_t)n);
  for (float& x : v) x = (float)rng.uniform(-2.0, 2.0);
  return v;
}

// n indices in [0, range); with `hot` > 0, every other index is one of the first `hot` values, so repeats are sure.
template <class I> std::vector<I> random_indices(int64_t n, int64_t range, uint64_t seed, int64_t hot = 0) {
  sg::Rng rng(seed);
  std::vector<I> v((size_t)n);
  for (int64_t i = 0; i < n; i++) v[i] = (I)rng.randint((uint64_t)(hot > 0 && i % 2 ? hot : range));
  return v;
}

struct NaiveScope {
  bool saved = sg::naive_kernels();
  explicit NaiveScope(bool on) { sg::set_naive_kernels(on); }
  ~NaiveScope() { sg::set_naive_kernels(saved); }
};

int64_t numel(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  return n;
}

template <class Args> void set_shapes(Args& a, const std::vector<int64_t>& shape, const std::vector<int64_t>& index_shape, int dim) {
  a.ndim = (int32_t)shape.size();
  a.dim = dim;
  for (size_t d = 0; d < shape.size(); d++) {
    if constexpr (requires { a.x_shape; }) a.x_shape[d] = shape[d];
    else a.out_shape[d] = shape[d];
    a.index_shape[d] = index_shape[d];
  }
}

// index_select and index_add on (outer, n, inner) with k indices; `kernel` is the index_add path expected.
template <class I> void check_index_select_add(int64_t outer, int64_t n, int64_t k, int64_t inner, const char* kernel, uint64_t seed) {
  CAPTURE(outer);
  CAPTURE(n);
  CAPTURE(k);
  CAPTURE(inner);
  CAPTURE(sizeof(I));
  const std::vector<float> x = random_values(outer * n * inner, seed);
  const std::vector<float> src = random_values(outer * k * inner, seed + 1);
  const std::vector<I> index = random_indices<I>(k, n, seed + 2, std::min<int64_t>(3, n));
  std::vector<float> sel_want(outer * k * inner), add_want = x, add_threaded = x;
  {
    NaiveScope naive(true);
    sg::cpu::index_select_forward<float, I>(x.data(), index.data(), sel_want.data(), outer, n, k, inner);
    sg::cpu::index_add_forward<float, I>(add_want.data(), index.data(), src.data(), outer, n, k, inner);
  }
  {
    NaiveScope naive(false);
    sg::cpu::index_add_forward<float, I>(add_threaded.data(), index.data(), src.data(), outer, n, k, inner);
  }
  REQUIRE(add_threaded == add_want);
  for (LaneOrder order : kOrders) {
    CAPTURE(sg::emu::lane_order_name(order));
    sg::emu::LaneOrderScope scope(order);
    std::vector<float> sel(sel_want.size(), NAN), add = x;
    sg::cuda_emu::index_select_forward(sg::IndexSelectArgs<float, I>{outer, n, k, inner, x.data(), index.data(), sel.data()});
    CHECK(sel == sel_want);
    sg::cuda_emu::index_add_forward(sg::IndexAddArgs<float, I>{outer, n, k, inner, add.data(), index.data(), src.data()});
    CHECK(sg::emu::last_launch().kernel == kernel);
    CHECK(add == add_want);
  }
}

// gather from x_shape and scatter_add into x_shape, both with index_shape along dim; `kernel` is the scatter path.
template <class I> void check_gather_scatter(const std::vector<int64_t>& shape, const std::vector<int64_t>& index_shape, int dim,
                                             const char* kernel, uint64_t seed) {
  CAPTURE(dim);
  CAPTURE(shape.size());
  CAPTURE(index_shape[dim]);
  CAPTURE(sizeof(I));
  const std::vector<float> x = random_values(numel(shape), seed);
  const std::vector<float> src = random_values(numel(index_shape), seed + 1);
  const std::vector<I> index = random_indices<I>(numel(index_shape), shape[dim], seed + 2, std::min<int64_t>(2, shape[dim]));
  std::vector<float> gather_want(src.size()), scatter_want = x, scatter_threaded = x;
  {
    NaiveScope naive(true);
    sg::cpu::gather_forward<float, I>(x.data(), shape, index.data(), index_shape, dim, gather_want.data());
    sg::cpu::scatter_add_forward<float, I>(scatter_want.data(), shape, index.data(), index_shape, dim, src.data());
  }
  {
    NaiveScope naive(false);
    sg::cpu::scatter_add_forward<float, I>(scatter_threaded.data(), shape, index.data(), index_shape, dim, src.data());
  }
  REQUIRE(scatter_threaded == scatter_want);
  for (LaneOrder order : kOrders) {
    CAPTURE(sg::emu::lane_order_name(order));
    sg::emu::LaneOrderScope scope(order);
    std::vector<float> gathered(src.size(), NAN), scattered = x;
    sg::GatherArgs<float, I> g{};
    set_shapes(g, shape, index_shape, dim);
    g.x = x.data();
    g.index = index.data();
    g.out = gathered.data();
    sg::cuda_emu::gather_forward(g);
    CHECK(gathered == gather_want);
    sg::ScatterAddArgs<float, I> s{};
    set_shapes(s, shape, index_shape, dim);
    s.out = scattered.data();
    s.index = index.data();
    s.src = src.data();
    sg::cuda_emu::scatter_add_forward(s);
    CHECK(sg::emu::last_launch().kernel == kernel);
    CHECK(scattered == scatter_want);
  }
}

}  // namespace

TEST_CASE("cuda emu index: index_select and index_add equal the CPU kernels bit for bit, repeated indices, both lane orders") {
  for (int pass = 0; pass < 2; pass++) {
    auto run = [&](auto tag, int64_t outer, int64_t n, int64_t k, int64_t inner, const char* kernel) {
      check_index_select_add<decltype(tag)>(outer, n, k, inner, kernel, 100 + pass * 10 + (uint64_t)(outer * n + k + inner));
    };
    auto each_index_type = [&](int64_t outer, int64_t n, int64_t k, int64_t inner, const char* kernel) {
      if (pass == 0) run(int64_t{}, outer, n, k, inner, kernel);
      else run(int32_t{}, outer, n, k, inner, kernel);
    };
    each_index_type(3, 7, 40, 5, "index_add_forward/elements");    // 105 outputs, ~6 adds each
    each_index_type(2, 13, 301, 37, "index_add_forward/elements");  // 962 outputs: 4 blocks, the last partial
    each_index_type(1, 1, 9, 1, "index_add_forward/elements");      // every index is 0
    // > kIndexOneWave outputs: one thread per column, 2·2 columns walking 40 indices each
    each_index_type(2, 70001, 40, 2, "index_add_forward/columns");
  }
}

TEST_CASE("cuda emu index: the scatters add in increasing source position, in both versions") {
  // 1 + 1e8 − 1e8 is 0 in that order; any other order gives 1 (or 1e8 − 1e8 + 1 = 1).
  const std::vector<float> src = {1.0f, 1e8f, -1e8f};
  const std::vector<int64_t> index = {0, 0, 0};
  for (LaneOrder order : kOrders) {
    sg::emu::LaneOrderScope scope(order);
    std::vector<float> small(1, 0.0f), large(kOneWave + 1, 0.0f);
    sg::cuda_emu::index_add_forward(sg::IndexAddArgs<float, int64_t>{1, 1, 3, 1, small.data(), index.data(), src.data()});
    CHECK(sg::emu::last_launch().kernel == std::string("index_add_forward/elements"));
    CHECK(small[0] == 0.0f);
    sg::cuda_emu::index_add_forward(sg::IndexAddArgs<float, int64_t>{1, (int64_t)large.size(), 3, 1, large.data(), index.data(), src.data()});
    CHECK(sg::emu::last_launch().kernel == std::string("index_add_forward/columns"));
    CHECK(large[0] == 0.0f);
  }
}

TEST_CASE("cuda emu index: gather and scatter_add equal the CPU kernels bit for bit, every dim, both lane orders") {
  for (int pass = 0; pass < 2; pass++) {
    auto each_index_type = [&](const std::vector<int64_t>& shape, const std::vector<int64_t>& index_shape, int dim, const char* kernel) {
      const uint64_t seed = 300 + pass * 10 + (uint64_t)(dim + numel(index_shape));
      if (pass == 0) check_gather_scatter<int64_t>(shape, index_shape, dim, kernel, seed);
      else check_gather_scatter<int32_t>(shape, index_shape, dim, kernel, seed);
    };
    // index smaller than the data in the other dims, longer or shorter along dim
    each_index_type({4, 6, 5}, {3, 17, 2}, 1, "scatter_add_forward/elements");
    each_index_type({4, 6, 5}, {9, 6, 3}, 0, "scatter_add_forward/elements");
    each_index_type({4, 6, 5}, {4, 2, 11}, 2, "scatter_add_forward/elements");
    each_index_type({300}, {613}, 0, "scatter_add_forward/elements");   // 1-D, 3 blocks of gather
    each_index_type({2, 3, 4, 5}, {1, 3, 7, 2}, 2, "scatter_add_forward/elements");
    // > kOneWave outputs: one thread per (o, c) column of the index
    each_index_type({3, 50000, 2}, {2, 30, 2}, 1, "scatter_add_forward/columns");
  }
}

TEST_CASE("cuda emu index: empty sizes launch nothing; bad arguments name the kernel") {
  std::vector<float> x(6, 1.0f), out(6, 2.0f);
  const std::vector<int64_t> index = {0, 1};
  sg::cuda_emu::index_add_forward(sg::IndexAddArgs<float, int64_t>{2, 3, 0, 1, out.data(), index.data(), x.data()});
  CHECK(out == std::vector<float>(6, 2.0f));
  CHECK(sg::test::error_of([&] {
          sg::cuda_emu::index_select_forward(sg::IndexSelectArgs<float, int64_t>{1, 3, -2, 2, x.data(), index.data(), out.data()});
        }) == "[cuda] index_select_forward: sizes (outer 1, n 3, k -2, inner 2) must be >= 0");
  CHECK(sg::test::error_of([&] {
          sg::cuda_emu::index_add_forward(sg::IndexAddArgs<float, int32_t>{1, 0, 2, 2, out.data(), nullptr, x.data()});
        }) == "[cuda] index_add_forward: n is 0 but there are indices to use");
  sg::GatherArgs<float, int64_t> g{};
  g.ndim = 0;
  CHECK(sg::test::error_of([&] { sg::cuda_emu::gather_forward(g); }) == "[cuda] gather_forward: ndim 0 must be in [1, 8]");
  g.ndim = 2;
  g.dim = 2;
  CHECK(sg::test::error_of([&] { sg::cuda_emu::gather_forward(g); }) == "[cuda] gather_forward: dim 2 must be in [0, 2)");
  sg::ScatterAddArgs<float, int64_t> s{};
  s.ndim = 2;
  s.dim = 0;
  s.out_shape[0] = 3, s.out_shape[1] = 2;
  s.index_shape[0] = 1, s.index_shape[1] = 3;
  CHECK(sg::test::error_of([&] { sg::cuda_emu::scatter_add_forward(s); }) ==
        "[cuda] scatter_add_forward: index has size 3 in dim 1 but the data only 2");
  s.index_shape[1] = -1;
  CHECK(sg::test::error_of([&] { sg::cuda_emu::scatter_add_forward(s); }) ==
        "[cuda] scatter_add_forward: dim 1 has a negative size (2, index -1)");
}
