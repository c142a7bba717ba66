// tests/train/test_dpo_loss.cpp — DPO's math by value (train/dpo_loss.h):
//   * hand-made log-probs: the loss, the gradient w.r.t. both sequence log-probs and the logged numbers, against
//     −log σ(h) and ∓(β/N)·σ(−h) written out in the test;
//   * π_θ = π_ref: loss = log 2 exactly, reward accuracy 0, weights ∓β/(2N);
//   * sequence_logprobs: the masked sum, −inf and NaN outside the mask ignored;
//   * float64 gradcheck w.r.t. the chosen and rejected log-probs, and through a tiny Transformer (MLA) w.r.t.
//     layers.0.attn.wkv_a.weight;
//   * bad shapes and beta name the tensor.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "autograd/gradcheck.h"
#include "autograd/node.h"
#include "models/logprobs.h"
#include "models/transformer.h"
#include "ops/ops.h"
#include "tests/test_util.h"
#include "train/dpo_loss.h"

using namespace sg;
using sg::test::contains;
using sg::test::error_of;

namespace {

Tensor f64(const std::vector<double>& v) { return Tensor::from_vector(v, {(int64_t)v.size()}); }
Tensor leaf(const std::vector<double>& v) {
  Tensor t = f64(v);
  t.requires_grad_();
  return t;
}
double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

}  // namespace

TEST_CASE("dpo_loss: hand-made log-probs give −mean log σ(r_w − r_l) and gradients ∓(β/N)σ(−h)") {
  const double beta = 0.5;
  // pair 0: the policy raised the chosen by 0.5 nats over the reference; pair 1: it raised the REJECTED by 1.
  Tensor cw = leaf({-3.0, -5.0}), cl = leaf({-4.0, -2.0});
  Tensor rw = f64({-3.5, -5.0}), rl = f64({-4.0, -3.0});
  DPOLossOutput o = dpo_loss(cw, cl, rw, rl, beta);
  // r_w = β(πw − refw) = (0.25, 0), r_l = (0, 0.5), h = r_w − r_l = (0.25, −0.5)
  const double h0 = 0.25, h1 = -0.5;
  const double want = -(std::log(sigmoid(h0)) + std::log(sigmoid(h1))) / 2;
  CHECK(o.loss.item() == doctest::Approx(want).epsilon(1e-12));
  CHECK(o.reward_accuracy == 0.5);
  CHECK(o.reward_margin == doctest::Approx((h0 + h1) / 2).epsilon(1e-12));
  CHECK(o.chosen_reward == doctest::Approx(0.125).epsilon(1e-12));
  CHECK(o.rejected_reward == doctest::Approx(0.25).epsilon(1e-12));
  CHECK(o.chosen_logp == doctest::Approx(-4.0).epsilon(1e-12));
  CHECK(o.rejected_logp == doctest::Approx(-3.0).epsilon(1e-12));
  CHECK(o.pairs == 2);
  o.loss.backward();
  const std::vector<double> gw = cw.grad().to_f64_vector(), gl = cl.grad().to_f64_vector();
  CHECK(gw[0] == doctest::Approx(-beta / 2 * sigmoid(-h0)).epsilon(1e-12));
  CHECK(gw[1] == doctest::Approx(-beta / 2 * sigmoid(-h1)).epsilon(1e-12));
  CHECK(gl[0] == doctest::Approx(beta / 2 * sigmoid(-h0)).epsilon(1e-12));
  CHECK(gl[1] == doctest::Approx(beta / 2 * sigmoid(-h1)).epsilon(1e-12));
  // The wrongly ordered pair pulls harder: σ(0.5) > σ(−0.25).
  CHECK(std::abs(gw[1]) > std::abs(gw[0]));
}

TEST_CASE("dpo_loss: at the start (π_θ = π_ref) the loss is log 2 and every pair pulls with β/(2N)") {
  const double beta = 0.1;
  Tensor cw = leaf({-7.0, -2.0, -9.5}), cl = leaf({-6.0, -8.0, -1.0});
  DPOLossOutput o = dpo_loss(cw, cl, cw.detach(), cl.detach(), beta);
  CHECK(o.loss.item() == doctest::Approx(std::log(2.0)).epsilon(1e-14));
  CHECK(o.reward_accuracy == 0.0);  // strictly greater: a tie is not a win
  CHECK(o.reward_margin == 0.0);
  o.loss.backward();
  for (double g : cw.grad().to_f64_vector()) CHECK(g == doctest::Approx(-beta / 6).epsilon(1e-14));
  for (double g : cl.grad().to_f64_vector()) CHECK(g == doctest::Approx(beta / 6).epsilon(1e-14));
}

TEST_CASE("dpo_loss: a wide margin is finite and pulls almost nothing (log σ is computed stably)") {
  Tensor cw = leaf({0.0}), cl = leaf({-2000.0});
  DPOLossOutput o = dpo_loss(cw, cl, f64({0.0}), f64({0.0}), 1.0);  // h = 2000: σ(h) = 1 in doubles
  CHECK(std::isfinite(o.loss.item()));
  CHECK(o.loss.item() < 1e-300);
  Tensor bw = leaf({-2000.0}), bl = leaf({0.0});
  DPOLossOutput b = dpo_loss(bw, bl, f64({0.0}), f64({0.0}), 1.0);  // h = −2000: −log σ(h) = 2000, no overflow
  CHECK(b.loss.item() == doctest::Approx(2000.0).epsilon(1e-12));
  b.loss.backward();
  CHECK(bw.grad().to_f64_vector()[0] == doctest::Approx(-1.0).epsilon(1e-12));
}

TEST_CASE("sequence_logprobs: the masked sum per row; −inf and NaN outside the mask are ignored") {
  const double inf = std::numeric_limits<double>::infinity(), nan = std::numeric_limits<double>::quiet_NaN();
  Tensor logp = Tensor::from_vector(std::vector<double>{-inf, -1.0, -2.0, nan, /**/ -0.5, -0.25, -inf, -inf}, {2, 4});
  Tensor mask = Tensor::from_vector(std::vector<float>{0, 1, 1, 0, /**/ 1, 1, 0, 0}, {2, 4});
  logp.requires_grad_();
  Tensor s = sequence_logprobs(logp, mask);
  REQUIRE(s.shape() == Shape{2});
  CHECK(s.to_f64_vector() == std::vector<double>{-3.0, -0.75});
  sum(s).backward();
  CHECK(logp.grad().to_f64_vector() == std::vector<double>{0, 1, 1, 0, 1, 1, 0, 0});
}

TEST_CASE("dpo_loss: float64 gradcheck w.r.t. the chosen and rejected log-probs") {
  Rng rng(3);
  Tensor cw = Tensor::rand({5}, rng, -9, -1, DType::f64), cl = Tensor::rand({5}, rng, -9, -1, DType::f64);
  Tensor rw = Tensor::rand({5}, rng, -9, -1, DType::f64), rl = Tensor::rand({5}, rng, -9, -1, DType::f64);
  cw.requires_grad_();
  cl.requires_grad_();
  GradcheckResult r = gradcheck([&](const std::vector<Tensor>& in) { return dpo_loss(in[0], in[1], rw, rl, 0.3).loss; }, {cw, cl});
  CHECK_MESSAGE(r.ok, r.message);
}

TEST_CASE("dpo_loss through a tiny Transformer: float64 gradcheck w.r.t. layers.0.attn.wkv_a.weight (MLA)") {
  Rng rng(9);
  ModelArgs a;
  a.vocab_size = 16;
  a.dim = 8;
  a.inter_dim = 16;
  a.n_layers = 2;
  a.n_dense_layers = 2;  // dense only: no routing, so finite differences are smooth
  a.n_heads = 2;
  a.q_lora_rank = 0;
  a.kv_lora_rank = 8;
  a.qk_nope_head_dim = 4;
  a.qk_rope_head_dim = 4;
  a.v_head_dim = 4;
  a.max_seq_len = 32;
  a.original_seq_len = 32;
  a.rope_factor = 1;
  Transformer m(a, rng, DType::f64);
  const int64_t N = 3, S = 6;
  // Rows 0..N−1 chosen, N..2N−1 rejected (the stage's layout): same 2-token prompt, different completions.
  Tensor tokens = Tensor::randint({2 * N, S}, rng, 0, a.vocab_size);
  std::vector<double> mv(2 * N * (S - 1), 1.0);
  for (int64_t i = 0; i < 2 * N; i++) mv[(size_t)(i * (S - 1))] = 0;  // position 0 scores a prompt token
  Tensor mask = Tensor::from_vector(mv, {2 * N, S - 1});
  Tensor* w = nullptr;
  for (auto& [name, t] : m.named_parameters())
    if (name == "layers.0.attn.wkv_a.weight") w = t;
  REQUIRE(w);
  std::vector<double> ref;
  {
    NoGradGuard no_grad;
    ref = sequence_logprobs(token_logprobs(m, tokens), mask).to_f64_vector();
    for (size_t i = 0; i < ref.size(); i++) ref[i] += 0.3 * std::sin((double)i);  // π_ref ≠ π_θ: h ≠ 0
  }
  Tensor ref_w = f64({ref.begin(), ref.begin() + N}), ref_l = f64({ref.begin() + N, ref.end()});
  auto loss = [&](const std::vector<Tensor>&) {
    Tensor seq = sequence_logprobs(token_logprobs(m, tokens), mask);
    return dpo_loss(slice(seq, 0, 0, N), slice(seq, 0, N, 2 * N), ref_w, ref_l, 0.5).loss;
  };
  GradcheckOptions opt;
  opt.max_elements_per_input = int64_t(1) << 40;
  GradcheckResult r = gradcheck(loss, {*w}, opt);
  CHECK_MESSAGE(r.ok, r.message);
  double gmax = 0;
  for (double g : w->grad().to_f64_vector()) gmax = std::max(gmax, std::abs(g));
  CHECK(gmax > 1e-4);
}

TEST_CASE("dpo_loss: bad shapes and beta are named") {
  Tensor a = f64({-1, -2}), b = f64({-1, -2, -3});
  CHECK(contains(error_of([&] { dpo_loss(a, b, a, a, 0.1); }), "[dpo_loss] rejected_logp"));
  CHECK(contains(error_of([&] { dpo_loss(a, a, a, b, 0.1); }), "ref_rejected_logp"));
  CHECK(contains(error_of([&] { dpo_loss(a, a, a, a, 0.0); }), "beta must be > 0"));
  CHECK(contains(error_of([&] { dpo_loss(f64({}), f64({}), f64({}), f64({}), 0.1); }), "N >= 1"));
  CHECK(contains(error_of([&] { sequence_logprobs(Tensor::zeros({2, 3}, DType::f64), Tensor::zeros({2, 4})); }),
                 "[dpo] sequence_logprobs: mask"));
}
