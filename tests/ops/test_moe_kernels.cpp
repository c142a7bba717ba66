// tests/ops/test_moe_kernels.cpp — the CPU MoE primitives (ops/cpu/moe.h) on a hand-made routing of 3 tokens to
// 4 experts (one with no tokens): the plan's layout written out by hand (the layout of models/moe.cpp
// dispatch_experts), with and without a capacity, and permute → grouped GEMM → unpermute against the naive
// formula out[t] = x0[t] + Σ_k w[t, k] · W_{idx[t, k]} x[t]. Every value is a small integer or a power-of-two
// fraction, so all products and sums are exact and the check is equality.
#include <doctest/doctest.h>

#include <vector>

#include "ops/cpu/moe.h"
#include "tests/test_util.h"

using V = std::vector<int64_t>;

namespace {

constexpr int64_t kTokens = 3, kTopk = 2, kExperts = 4, kIn = 3, kOut = 2;
// token 0 → experts 2, 0; token 1 → 2, 3; token 2 → 0, 2. Expert 1 gets nothing.
const V kIndices = {2, 0, 2, 3, 0, 2};

struct Plan {
  V offset = V(kExperts + 1), token_sorted = V(kTokens * kTopk, -9), slot_sorted = V(kTokens * kTopk, -9),
    slot_pos = V(kTokens * kTopk);
  int64_t dropped = 0;
};

Plan plan(int64_t capacity) {
  Plan p;
  p.dropped = sg::cpu::moe_dispatch_plan(kIndices.data(), kTokens, kTopk, kExperts, capacity, p.offset.data(),
                                         p.token_sorted.data(), p.slot_sorted.data(), p.slot_pos.data());
  return p;
}

}  // namespace

TEST_CASE("moe kernels: the dispatch plan sorts slots by expert, tokens in order, and drops the latest over capacity") {
  Plan all = plan(-1);
  CHECK(all.dropped == 0);
  CHECK(all.offset == V{0, 2, 2, 5, 6});             // expert 0: 2 rows, 1: none, 2: 3, 3: 1
  CHECK(all.token_sorted == V{0, 2, 0, 1, 2, 1});     // within an expert, token order
  CHECK(all.slot_sorted == V{1, 4, 0, 2, 5, 3});      // slot a = t·K + k
  CHECK(all.slot_pos == V{2, 0, 3, 5, 1, 4});         // the inverse
  Plan cap = plan(2);                                 // expert 2 keeps tokens 0 and 1, drops token 2's slot 5
  CHECK(cap.dropped == 1);
  CHECK(cap.offset == V{0, 2, 2, 4, 5});
  CHECK(V(cap.token_sorted.begin(), cap.token_sorted.begin() + 5) == V{0, 2, 0, 1, 1});
  CHECK(cap.slot_pos == V{2, 0, 3, 4, 1, -1});
  const V bad = {0, 4};
  V o(5), ts(2), ss(2), sp(2);
  CHECK(sg::test::error_of([&] { sg::cpu::moe_dispatch_plan(bad.data(), 1, 2, 4, -1, o.data(), ts.data(), ss.data(), sp.data()); }) ==
        "[moe_dispatch_plan] expert 4 of slot 1 (token 0) is outside [0, 4)");
}

TEST_CASE("moe kernels: permute, grouped GEMM and unpermute give the naive formula, exactly") {
  const std::vector<float> x = {1, -2, 3,   4, 0, -1,   -3, 2, 2};   // [3 tokens, in 3]
  std::vector<float> w(kExperts * kOut * kIn);                       // W_e [out 2, in 3]: small distinct integers
  for (int64_t i = 0; i < (int64_t)w.size(); i++) w[i] = (float)((i * 7) % 11 - 5);
  const std::vector<float> gate = {0.5f, 0.25f, 0.75f, 0.125f, 1.0f, -0.5f};   // [3 tokens, K 2]
  const std::vector<float> base = {10, 20, 30, 40, 50, 60};                     // out holds this before the sum
  for (int64_t capacity : {int64_t(-1), int64_t(2)}) {
    CAPTURE(capacity);
    Plan p = plan(capacity);
    const int64_t rows = p.offset[kExperts];
    std::vector<float> x_sorted(rows * kIn), y(rows * kOut), out = base;
    sg::cpu::moe_permute_forward(x.data(), p.token_sorted.data(), x_sorted.data(), rows, kIn);
    for (int64_t r = 0; r < rows; r++)
      for (int64_t c = 0; c < kIn; c++) CHECK(x_sorted[r * kIn + c] == x[p.token_sorted[r] * kIn + c]);
    sg::cpu::moe_grouped_gemm_forward(x_sorted.data(), w.data(), p.offset.data(), y.data(), kExperts, kIn, kOut);
    sg::cpu::moe_unpermute_forward(y.data(), p.slot_pos.data(), gate.data(), out.data(), kTokens, kTopk, kOut);
    // naive: out[t, o] = base[t, o] + Σ_k kept(t, k) · gate[t, k] · Σ_i W_{idx[t,k]}[o, i] x[t, i]
    for (int64_t t = 0; t < kTokens; t++)
      for (int64_t o = 0; o < kOut; o++) {
        double want = base[t * kOut + o];
        for (int64_t k = 0; k < kTopk; k++) {
          if (capacity == 2 && t == 2 && k == 1) continue;   // the dropped slot
          const int64_t e = kIndices[t * kTopk + k];
          double dot = 0;
          for (int64_t i = 0; i < kIn; i++) dot += (double)w[(e * kOut + o) * kIn + i] * x[t * kIn + i];
          want += gate[t * kTopk + k] * dot;
        }
        CHECK(out[t * kOut + o] == want);
      }
  }
  // one value by hand: token 1 (x = 4, 0, −1) → experts 2 (gate 0.75) and 3 (0.125); W_2 row 0 = w[12..14] =
  // {2, −2, 5}, W_3 row 0 = w[18..20] = {0, −4, 3}; out holds base[1, 0] = 30 first:
  // 30 + 0.75·(8 + 0 − 5) + 0.125·(0 + 0 − 3) = 31.875
  Plan p = plan(-1);
  std::vector<float> x_sorted(6 * kIn), y(6 * kOut), out = base;
  sg::cpu::moe_permute_forward(x.data(), p.token_sorted.data(), x_sorted.data(), 6, kIn);
  sg::cpu::moe_grouped_gemm_forward(x_sorted.data(), w.data(), p.offset.data(), y.data(), kExperts, kIn, kOut);
  sg::cpu::moe_unpermute_forward(y.data(), p.slot_pos.data(), gate.data(), out.data(), kTokens, kTopk, kOut);
  CHECK(w[12] == 2.0f);
  CHECK(w[18] == 0.0f);
  CHECK(out[1 * kOut + 0] == 31.875f);
}
