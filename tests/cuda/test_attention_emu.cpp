// tests/cuda/test_attention_emu.cpp — the CUDA fused attention kernels (cuda/kernels/attention.cuh), forward and
// backward, run in the CPU emulation in both lane orders, against the CPU kernels (ops/cpu/attention.h): v1_naive
// (float64 sums, std::exp) and v2_flash (f32 blocks through the GEMM), on random inputs.
//
// Tolerance. The kernels sum in f32 in their own order (an online softmax over tiles of 16..64 keys, products
// summed along the head dim, tile by tile over the keys), so they cannot give the CPU's bits. Each f32 sum of n
// terms is off by ~sqrt(n)·6e-8 of its magnitude; with n ≤ 256 head dims and ≤ 130 keys, and exp within ~2 ulp,
// that is a few 1e-7 of the tensor's scale. The check is |x − ref| ≤ 1e-5 · (|ref| + max|ref|), a relative 1e-5
// where an entry is of the tensor's size and 1e-5 of that size where it is near 0 (o, dq, dk, dv are sums of
// both signs; a per-entry relative bound would fail on the cancellations, not on the kernel). Measured: the
// worst case here is printed by the first test (~3e-7 of the scale against v1).
// Between the two lane orders the outputs are the same bits (each output has one owner thread, no atomics).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "autograd/rng.h"
#include "cuda/attention.h"
#include "cuda/emu/emu.h"
#include "ops/cpu/attention.h"
#include "tests/cuda/emu_test_util.h"

using sg::emu::LaneOrder;

using sg::test::emu::random_values;

namespace {

struct Case {
  const char* name;
  int64_t B, H, Hkv, S, T, D, Dv;
  bool causal;
  int64_t start_pos;
  bool packed;        // causal packed sequences: first_key from segments of each batch row
  bool cache_layout;  // q stored [B, S, H, D], k and v [B, Tmax, Hkv, D] with Tmax > T (a KV cache, read in place)
};

// max over entries of |x − ref| / (|ref| + max|ref|): ≤ 1e-5 passes (see the top of the file).
double scaled_err(const std::vector<float>& x, const std::vector<float>& ref) {
  double scale = 0, worst = 0;
  for (float r : ref) scale = std::max(scale, (double)std::abs(r));
  for (size_t i = 0; i < x.size(); i++) {
    if (x[i] == ref[i]) continue;  // also lse = −∞ on both sides
    const double d = std::abs((double)x[i] - ref[i]);
    if (!(d <= 1e30)) return INFINITY;  // NaN, or a value never written
    worst = std::max(worst, d / (std::abs((double)ref[i]) + scale + 1e-30));
  }
  return worst;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  // (empty: no memcmp, whose pointers must not be null even for 0 bytes — UBSan)
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

constexpr double kTol = 1e-5;

struct Problem {
  sg::AttentionArgs a;
  std::vector<float> q, k, v, do_;
  std::vector<int64_t> first_key;
};

Problem make_problem(const Case& c, uint64_t seed) {
  Problem p;
  sg::AttentionArgs& a = p.a;
  a.B = c.B, a.H = c.H, a.Hkv = c.Hkv, a.S = c.S, a.T = c.T, a.D = c.D, a.Dv = c.Dv;
  a.scale = 1.0 / std::sqrt((double)std::max<int64_t>(c.D, 1));
  a.causal = c.causal;
  a.start_pos = c.causal ? c.start_pos : 0;
  const int64_t Tmax = c.cache_layout ? c.T + 3 : c.T;
  if (c.cache_layout) {
    a.q_sb = c.S * c.H * c.D, a.q_sh = c.D, a.q_ss = c.H * c.D;
    a.k_sb = Tmax * c.Hkv * c.D, a.k_sh = c.D, a.k_ss = c.Hkv * c.D;
    a.v_sb = Tmax * c.Hkv * c.Dv, a.v_sh = c.Dv, a.v_ss = c.Hkv * c.Dv;
  } else {
    a.q_sb = c.H * c.S * c.D, a.q_sh = c.S * c.D, a.q_ss = c.D;
    a.k_sb = c.Hkv * c.T * c.D, a.k_sh = c.T * c.D, a.k_ss = c.D;
    a.v_sb = c.Hkv * c.T * c.Dv, a.v_sh = c.T * c.Dv, a.v_ss = c.Dv;
  }
  // q in [−2, 2]: scores of a few units, so the running max moves and the rescaling α is exercised
  p.q = random_values((size_t)(c.B * c.S * c.H * c.D), seed, -2.0f, 2.0f);
  p.k = random_values((size_t)(c.B * Tmax * c.Hkv * c.D), seed + 1, -1.0f, 1.0f);
  p.v = random_values((size_t)(c.B * Tmax * c.Hkv * c.Dv), seed + 2, -1.0f, 1.0f);
  p.do_ = random_values((size_t)(c.B * c.H * c.S * c.Dv), seed + 3, -1.0f, 1.0f);
  if (c.cache_layout)  // the cache rows past T are never read: NaN there reaches the output if a kernel reads one
    for (int64_t b = 0; b < c.B; b++)
      for (int64_t t = c.T; t < Tmax; t++) {
        std::fill_n(p.k.begin() + b * a.k_sb + t * a.k_ss, c.Hkv * c.D, NAN);
        std::fill_n(p.v.begin() + b * a.v_sb + t * a.v_ss, c.Hkv * c.Dv, NAN);
      }
  if (c.packed) {  // segments start at these positions, shifted per batch row; first_key = the row's segment start
    p.first_key.resize((size_t)(c.B * c.S));
    for (int64_t b = 0; b < c.B; b++) {
      const int64_t starts[] = {0, 17 + 5 * b, 40 + 5 * b, 41 + 5 * b, 66};
      for (int64_t s = 0; s < c.S; s++) {
        int64_t f = 0;
        for (int64_t st : starts)
          if (st <= a.start_pos + s) f = st;
        p.first_key[b * c.S + s] = f;
      }
    }
    a.first_key = p.first_key.data();
  }
  return p;
}

struct Grads {
  std::vector<float> dq, dk, dv;
};

// Forward and backward of every case: the two CPU versions, then the emulated kernels in both orders.
void check_case(const Case& c, uint64_t seed, double* worst = nullptr) {
  const std::string name = c.name;
  CAPTURE(name);
  Problem p = make_problem(c, seed);
  const sg::AttentionArgs& a = p.a;
  const size_t n_o = (size_t)(c.B * c.H * c.S * c.Dv), n_lse = (size_t)(c.B * c.H * c.S);
  const size_t n_dq = (size_t)(c.B * c.H * c.S * c.D), n_dk = (size_t)(c.B * c.Hkv * c.T * c.D),
               n_dv = (size_t)(c.B * c.Hkv * c.T * c.Dv);

  std::vector<float> o1(n_o), lse1(n_lse), o2(n_o), lse2(n_lse);
  sg::cpu::attention_forward_v1_naive<float>(a, p.q.data(), p.k.data(), p.v.data(), o1.data(), lse1.data());
  sg::cpu::attention_forward_v2_flash<float>(a, p.q.data(), p.k.data(), p.v.data(), o2.data(), lse2.data());
  // the backward of every version starts from v1's o and lse, so it is checked on its own
  Grads g1{std::vector<float>(n_dq), std::vector<float>(n_dk), std::vector<float>(n_dv)}, g2 = g1;
  sg::cpu::attention_backward_v1_naive<float>(a, p.q.data(), p.k.data(), p.v.data(), o1.data(), lse1.data(), p.do_.data(),
                                              g1.dq.data(), g1.dk.data(), g1.dv.data());
  sg::cpu::attention_backward_v2_flash<float>(a, p.q.data(), p.k.data(), p.v.data(), o1.data(), lse1.data(), p.do_.data(),
                                              g2.dq.data(), g2.dk.data(), g2.dv.data());

  std::vector<float> o_first, lse_first;
  Grads g_first;
  for (LaneOrder order : {LaneOrder::forward, LaneOrder::reverse}) {
    const std::string order_name = sg::emu::lane_order_name(order);
    CAPTURE(order_name);
    sg::emu::LaneOrderScope scope(order);
    std::vector<float> o(n_o, NAN), lse(n_lse, NAN);  // NaN: an entry never written fails the check
    sg::cuda_emu::attention_forward(a, p.q.data(), p.k.data(), p.v.data(), o.data(), lse.data());
    Grads g{std::vector<float>(n_dq, NAN), std::vector<float>(n_dk, NAN), std::vector<float>(n_dv, NAN)};
    sg::cuda_emu::attention_backward(a, p.q.data(), p.k.data(), p.v.data(), o1.data(), lse1.data(), p.do_.data(),
                                     g.dq.data(), g.dk.data(), g.dv.data());

    const double errs[] = {scaled_err(o, o1),       scaled_err(lse, lse1),   scaled_err(g.dq, g1.dq),
                           scaled_err(g.dk, g1.dk), scaled_err(g.dv, g1.dv), scaled_err(o, o2),
                           scaled_err(lse, lse2),   scaled_err(g.dq, g2.dq), scaled_err(g.dk, g2.dk),
                           scaled_err(g.dv, g2.dv)};
    const char* what[] = {"o vs v1", "lse vs v1", "dq vs v1", "dk vs v1", "dv vs v1",
                          "o vs v2", "lse vs v2", "dq vs v2", "dk vs v2", "dv vs v2"};
    for (int i = 0; i < 10; i++) {
      const std::string quantity = what[i];
      CAPTURE(quantity);
      CHECK(errs[i] <= kTol);
      if (worst && i < 5) *worst = std::max(*worst, errs[i]);
    }
    if (order == LaneOrder::forward) {
      o_first = o, lse_first = lse, g_first = g;
    } else {
      CHECK(same_bits(o, o_first));
      CHECK(same_bits(lse, lse_first));
      CHECK(same_bits(g.dq, g_first.dq));
      CHECK(same_bits(g.dk, g_first.dk));
      CHECK(same_bits(g.dv, g_first.dv));
    }
  }
}

// name, B, H, Hkv, S, T, D, Dv, causal, start_pos, packed, cache_layout
// Tiles (cuda/kernels/attention.cuh) at these head dims: D ≤ 32 forward 64×64, dK/dV 32 rows × 64 keys, dQ 64 × 32;
// D ≤ 64 64×32, 32×32, 32×32. So S, T of 70..130 give several ragged tiles of each kernel.
const Case kCases[] = {
    {"MHA causal, ragged tiles", 2, 2, 2, 100, 100, 16, 16, true, 0, false, false},
    {"GQA 4 q heads over 2 kv heads, causal, KV-cache layout", 1, 4, 2, 77, 77, 24, 24, true, 0, false, true},
    {"MQA 3 over 1, non-causal, S < T, Dv != D", 2, 3, 1, 45, 70, 24, 16, false, 0, false, false},
    {"decode-like: 5 rows at the end of 90 keys, GQA, KV-cache layout", 2, 4, 2, 5, 90, 16, 16, true, 85, false, true},
    {"decode: one row over 130 keys, MQA", 1, 2, 1, 1, 130, 32, 32, true, 129, false, false},
    {"chunked prefill: 20 rows at 40 of 90 keys (keys 60.. unseen)", 1, 2, 1, 20, 90, 16, 24, true, 40, false, false},
    {"packed sequences, causal, GQA", 2, 2, 1, 80, 80, 16, 16, true, 0, true, false},
    {"head dim 64, MHA causal", 1, 2, 2, 70, 70, 64, 64, true, 0, false, false},
};

}  // namespace

TEST_CASE("cuda emu attention: forward and backward match the CPU kernels (MHA, GQA, MQA, decode, packed) in both lane orders") {
  double worst = 0;
  uint64_t seed = 100;
  for (const Case& c : kCases) check_case(c, seed += 10, &worst);
  std::printf("cuda emu attention: worst scaled error vs v1_naive %.2e (bound %.0e)\n", worst, kTol);
}

TEST_CASE("cuda emu attention: the larger head-dim classes (D 96 / Dv 80; MLA's D 192 / Dv 128)") {
  check_case({"D 96, Dv 80, causal", 1, 2, 1, 40, 40, 96, 80, true, 0, false, false}, 7);
  check_case({"D 192, Dv 128 (MLA), causal, GQA", 1, 2, 1, 20, 20, 192, 128, true, 0, false, true}, 8);
}

TEST_CASE("cuda emu attention: no keys (non-causal, T = 0) gives o = 0, lse = -inf, dq = 0") {
  check_case({"no keys", 1, 2, 1, 3, 0, 16, 16, false, 0, false, false}, 9);
}

TEST_CASE("cuda emu attention: bad arguments name the kernel") {
  sg::AttentionArgs a;
  a.B = 1, a.H = 3, a.Hkv = 2, a.S = 4, a.T = 4, a.D = 16, a.Dv = 16;
  std::vector<float> buf(1024);
  auto forward = [&] { sg::cuda_emu::attention_forward(a, buf.data(), buf.data(), buf.data(), buf.data(), buf.data()); };
  auto backward = [&] {
    sg::cuda_emu::attention_backward(a, buf.data(), buf.data(), buf.data(), buf.data(), buf.data(), buf.data(), buf.data(),
                                     buf.data(), buf.data());
  };
  CHECK_THROWS_WITH_AS(forward(), doctest::Contains("[cuda] attention_forward: the query heads cannot be split"), std::runtime_error);
  a.Hkv = 3, a.D = 300;
  CHECK_THROWS_WITH_AS(backward(), doctest::Contains("[cuda] attention_backward: head dims over the kernels' limit of 256"),
                       std::runtime_error);
  a.D = 16, a.S = -1;
  CHECK_THROWS_WITH_AS(forward(), doctest::Contains("[cuda] attention_forward: a negative size"), std::runtime_error);
}
