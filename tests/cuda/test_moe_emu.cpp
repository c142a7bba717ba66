// tests/cuda/test_moe_emu.cpp — the CUDA MoE primitives (cuda/kernels/moe.cuh), run in the CPU emulation in both
// lane orders, against the CPU references (ops/cpu/moe.h) on random inputs and a random routing with an expert
// that gets no token, with and without a capacity that drops assignments.
//   permute, unpermute: bit for bit (a copy; the same rounded products added in the same k order).
//   grouped GEMM: bit for bit against the plain-loop GEMM (SEEKGRAD_NAIVE: the same dot-product order), and
//                 against the blocked SIMD GEMM within 2·in_dim·2⁻²⁴·Σ|x_i w_i| (each is within in_dim·u of
//                 the exact sum, u = 2⁻²⁴ the unit roundoff).
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "autograd/rng.h"
#include "cuda/emu/emu.h"
#include "cuda/moe.h"
#include "ops/cpu/gemm.h"
#include "ops/cpu/index.h"
#include "ops/cpu/moe.h"
#include "ops/cpu/runtime.h"
#include "tests/test_util.h"

using sg::emu::LaneOrder;

namespace {

constexpr LaneOrder kOrders[] = {LaneOrder::forward, LaneOrder::reverse};

std::vector<float> random_values(int64_t n, uint64_t seed) {
  sg::Rng rng(seed);
  std::vector<float> v((size_t)n);
  for (float& x : v) x = (float)rng.uniform(-1.0, 1.0);
  return v;
}

struct NaiveScope {
  bool saved = sg::naive_kernels();
  explicit NaiveScope(bool on) { sg::set_naive_kernels(on); }
  ~NaiveScope() { sg::set_naive_kernels(saved); }
};

// Checks the grouped GEMM on x [offset[E], in_dim], w [E, out_dim, in_dim] in both lane orders.
void check_grouped_gemm(const std::vector<int64_t>& offset, int64_t in_dim, int64_t out_dim, uint64_t seed) {
  const int64_t E = (int64_t)offset.size() - 1, rows = offset[E];
  CAPTURE(rows);
  CAPTURE(in_dim);
  CAPTURE(out_dim);
  const std::vector<float> x = random_values(rows * in_dim, seed), w = random_values(E * out_dim * in_dim, seed + 1);
  std::vector<float> want(rows * out_dim), fast(rows * out_dim);
  {
    NaiveScope naive(true);
    sg::cpu::moe_grouped_gemm_forward(x.data(), w.data(), offset.data(), want.data(), E, in_dim, out_dim);
  }
  {
    NaiveScope naive(false);
    sg::cpu::moe_grouped_gemm_forward(x.data(), w.data(), offset.data(), fast.data(), E, in_dim, out_dim);
  }
  for (LaneOrder order : kOrders) {
    CAPTURE(sg::emu::lane_order_name(order));
    sg::emu::LaneOrderScope scope(order);
    std::vector<float> y(rows * out_dim, NAN);
    sg::cuda_emu::moe_grouped_gemm_forward({E, rows, in_dim, out_dim, offset.data(), x.data(), w.data(), y.data()});
    CHECK(y == want);
    int64_t e = 0, bad = 0;
    for (int64_t r = 0; r < rows; r++) {
      while (offset[e + 1] <= r) e++;
      for (int64_t o = 0; o < out_dim; o++) {
        double abs_sum = 0;
        for (int64_t i = 0; i < in_dim; i++) abs_sum += std::abs((double)x[r * in_dim + i] * w[(e * out_dim + o) * in_dim + i]);
        if (std::abs((double)y[r * out_dim + o] - fast[r * out_dim + o]) > 2.0 * in_dim * std::ldexp(1.0, -24) * abs_sum) bad++;
      }
    }
    CHECK(bad == 0);
  }
}

}  // namespace

TEST_CASE("cuda emu moe: permute, grouped GEMM and unpermute equal the CPU references on a random routing, both lane orders") {
  const int64_t N = 37, K = 3, E = 7, in_dim = 29, out_dim = 19;
  // K distinct experts per token, never expert 4 (an expert with zero tokens)
  sg::Rng rng(21);
  std::vector<int64_t> indices(N * K);
  for (int64_t t = 0; t < N; t++)
    for (int64_t k = 0; k < K; k++) {
      int64_t e;
      bool repeat;
      do {
        e = (int64_t)rng.randint(E);
        repeat = e == 4;
        for (int64_t j = 0; j < k; j++) repeat = repeat || indices[t * K + j] == e;
      } while (repeat);
      indices[t * K + k] = e;
    }
  const std::vector<float> x = random_values(N * in_dim, 22), w = random_values(E * out_dim * in_dim, 23);
  const std::vector<float> gate = random_values(N * K, 24), base = random_values(N * out_dim, 25);
  for (int64_t capacity : {int64_t(-1), int64_t(12)}) {
    CAPTURE(capacity);
    std::vector<int64_t> offset(E + 1), token_sorted(N * K), slot_sorted(N * K), slot_pos(N * K);
    const int64_t dropped = sg::cpu::moe_dispatch_plan(indices.data(), N, K, E, capacity, offset.data(), token_sorted.data(),
                                                       slot_sorted.data(), slot_pos.data());
    const int64_t rows = offset[E];
    CHECK(offset[5] == offset[4]);   // expert 4: no rows
    CHECK((capacity < 0 ? dropped == 0 : dropped > 0));
    // the CPU pipeline
    std::vector<float> xs_want(rows * in_dim), y_want(rows * out_dim), out_want = base;
    sg::cpu::moe_permute_forward(x.data(), token_sorted.data(), xs_want.data(), rows, in_dim);
    {
      NaiveScope naive(true);
      sg::cpu::moe_grouped_gemm_forward(xs_want.data(), w.data(), offset.data(), y_want.data(), E, in_dim, out_dim);
    }
    sg::cpu::moe_unpermute_forward(y_want.data(), slot_pos.data(), gate.data(), out_want.data(), N, K, out_dim);
    // dispatch_experts' composition (models/moe.cpp): rows × their gate weight, one index_add in row order (by
    // expert). The same rounded terms summed in another order: each sum of K = 3 terms onto the base is within
    // K·u·Σ|terms| of the exact one, so the two within 2·K·u·Σ|terms|.
    std::vector<float> o(rows * out_dim), out_model = base;
    std::vector<double> abs_terms(N * out_dim);
    for (int64_t i = 0; i < N * out_dim; i++) abs_terms[i] = std::abs(base[i]);
    for (int64_t p = 0; p < rows; p++)
      for (int64_t c = 0; c < out_dim; c++) {
        o[p * out_dim + c] = y_want[p * out_dim + c] * gate[slot_sorted[p]];
        abs_terms[token_sorted[p] * out_dim + c] += std::abs(o[p * out_dim + c]);
      }
    sg::cpu::index_add_forward<float, int64_t>(out_model.data(), token_sorted.data(), o.data(), 1, N, rows, out_dim);
    int64_t far = 0, differ = 0;
    for (int64_t i = 0; i < N * out_dim; i++) {
      far += std::abs((double)out_model[i] - out_want[i]) > 2 * K * std::ldexp(1.0, -24) * abs_terms[i];
      differ += out_model[i] != out_want[i];
    }
    CHECK(far == 0);
    MESSAGE("unpermute vs dispatch_experts' index_add order: " << differ << " of " << N * out_dim << " sums differ in the last bits");
    for (LaneOrder order : kOrders) {
      CAPTURE(sg::emu::lane_order_name(order));
      sg::emu::LaneOrderScope scope(order);
      std::vector<float> xs(rows * in_dim, NAN), y(rows * out_dim, NAN), out = base;
      sg::cuda_emu::moe_permute_forward({rows, in_dim, x.data(), token_sorted.data(), xs.data()});
      CHECK(xs == xs_want);
      sg::cuda_emu::moe_grouped_gemm_forward({E, rows, in_dim, out_dim, offset.data(), xs.data(), w.data(), y.data()});
      CHECK(y == y_want);
      sg::cuda_emu::moe_unpermute_forward({N, K, out_dim, y.data(), slot_pos.data(), gate.data(), out.data()});
      CHECK(out == out_want);
    }
  }
}

TEST_CASE("cuda emu moe: the grouped GEMM's tiles stop at every expert boundary") {
  // segments of 0, 16 (one full tile), 1, 33 (two full tiles + 1), 0 and 17 rows; in_dim 40 = 2 chunks of 16 + 8;
  // out_dim 35 = 3 column tiles, the last with 3 columns
  check_grouped_gemm({0, 0, 16, 17, 50, 50, 67}, 40, 35, 31);
  check_grouped_gemm({0, 5}, 3, 1, 32);   // one expert, everything smaller than a tile
  check_grouped_gemm({0, 0, 0, 4}, 16, 16, 33);
}

TEST_CASE("cuda emu moe: empty inputs launch nothing; bad sizes name the kernel") {
  const std::vector<int64_t> offset = {0, 0, 0};
  std::vector<float> y(4, 3.0f);
  sg::cuda_emu::moe_grouped_gemm_forward({2, 0, 4, 4, offset.data(), nullptr, nullptr, y.data()});   // no rows
  CHECK(y == std::vector<float>(4, 3.0f));
  CHECK(sg::test::error_of([&] { sg::cuda_emu::moe_permute_forward({-1, 4, nullptr, nullptr, nullptr}); }) ==
        "[cuda] moe_permute_forward: sizes (rows -1, dim 4) must be >= 0");
  CHECK(sg::test::error_of([&] { sg::cuda_emu::moe_unpermute_forward({3, -2, 4, nullptr, nullptr, nullptr, nullptr}); }) ==
        "[cuda] moe_unpermute_forward: sizes (n_tokens 3, topk -2, dim 4) must be >= 0");
  CHECK(sg::test::error_of([&] { sg::cuda_emu::moe_grouped_gemm_forward({2, 5, 4, 16 * 65536, offset.data(), nullptr, nullptr, nullptr}); }) ==
        "[cuda] moe_grouped_gemm_forward: out_dim 1048576 is over this kernel's limit of 1048560 (grid y counts its 16-column tiles)");
}
