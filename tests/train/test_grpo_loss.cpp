// tests/train/test_grpo_loss.cpp — GRPO's math by value (train/grpo_loss.h, models/logprobs.h):
//   * group advantages: population std, exact zeros for an all-equal group, [P,G] per row;
//   * ρ = 1 and ref == current: loss = −(normalised) A, KL 0, gradient −A_i/(N|o_i|) per completion token;
//   * the clip active for A > 0 and A < 0 (value, clip fraction, gradient exactly 0 there) and inactive beside;
//   * the KL estimator's value and d/dlogp = 1 − exp(ref − logp) at hand-picked numbers;
//   * sequence vs token normalisation on completions of length 1 and 3 (numbers worked out in the comments);
//   * masked positions (even −inf / huge values) change nothing; all-equal rewards ⇒ zero gradient;
//   * float64 gradcheck of the loss w.r.t. logp (both normalisations, clip active on some tokens);
//   * token_logprobs / token_entropy on a tiny Transformer against log-sum-exp written out from the logits;
//   * float64 gradcheck of the GRPO loss through a tiny Transformer w.r.t. layers.0.attn.wkv_a.weight (MLA).
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "autograd/gradcheck.h"
#include "autograd/node.h"
#include "models/logprobs.h"
#include "models/transformer.h"
#include "ops/ops.h"
#include "tests/test_util.h"
#include "train/grpo_loss.h"

using namespace sg;
using sg::test::error_of;
using sg::test::max_abs_diff;

namespace {

Tensor f64(const std::vector<double>& v, const Shape& shape) { return Tensor::from_vector(v, shape); }

Tensor leaf(const std::vector<double>& v, const Shape& shape) {
  Tensor t = Tensor::from_vector(v, shape);
  t.requires_grad_();
  return t;
}

// The gradient of the output's loss w.r.t. logp (a fresh leaf each call).
std::vector<double> loss_grad(const std::vector<double>& logp_v, const Shape& shape, const Tensor& old_logp,
                              const Tensor& ref_logp, const Tensor& mask, const Tensor& adv, const GRPOLossConfig& c,
                              GRPOLossOutput* out = nullptr) {
  Tensor logp = leaf(logp_v, shape);
  GRPOLossOutput o = grpo_loss(logp, old_logp, ref_logp, mask, adv, c);
  o.loss.backward();
  if (out) *out = o;
  return logp.grad().to_f64_vector();
}

ModelArgs tiny_dense_args() {  // MLA + dense SwiGLU only: no routing, so finite differences are smooth
  ModelArgs a;
  a.vocab_size = 16;
  a.dim = 8;
  a.inter_dim = 16;
  a.n_layers = 2;
  a.n_dense_layers = 2;
  a.n_heads = 2;
  a.q_lora_rank = 0;
  a.kv_lora_rank = 8;
  a.qk_nope_head_dim = 4;
  a.qk_rope_head_dim = 4;
  a.v_head_dim = 4;
  a.max_seq_len = 32;
  a.original_seq_len = 32;
  a.rope_factor = 1;
  return a;
}

}  // namespace

TEST_CASE("group_advantages: population std, all-equal groups give exactly 0, [P,G] row by row") {
  const double eps = 1e-4;
  // [1,2,3,4]: mean 2.5, population variance (2.25+0.25+0.25+2.25)/4 = 1.25, std = 1.118033988749895.
  std::vector<double> a = group_advantages(f64({1, 2, 3, 4}, {4}), eps).to_f64_vector();
  const double s = std::sqrt(1.25);
  const std::vector<double> want = {-1.5 / (s + eps), -0.5 / (s + eps), 0.5 / (s + eps), 1.5 / (s + eps)};
  for (int i = 0; i < 4; i++) CHECK(a[i] == doctest::Approx(want[i]).epsilon(1e-14));
  // 0.1 three times: the mean rounds (0.1+0.1+0.1)/3 != 0.1 in binary, yet the advantages are exact zeros.
  for (double v : group_advantages(f64({0.1, 0.1, 0.1}, {3})).to_f64_vector()) CHECK(v == 0.0);
  // Two prompts: [1,0,0,1] (mean 0.5, std 0.5) and an all-equal group.
  Tensor r = f64({1, 0, 0, 1, 0.3, 0.3, 0.3, 0.3}, {2, 4});
  Tensor adv = group_advantages(r, eps);
  CHECK(adv.shape() == Shape{2, 4});
  std::vector<double> v = adv.to_f64_vector();
  const double u = 0.5 / (0.5 + eps);
  for (int i = 0; i < 4; i++) CHECK(v[i] == doctest::Approx(i == 0 || i == 3 ? u : -u).epsilon(1e-14));
  for (int i = 4; i < 8; i++) CHECK(v[i] == 0.0);
  CHECK(group_advantages(Tensor::from_vector(std::vector<float>{0, 1}, {2})).dtype() == DType::f32);
  CHECK(error_of([] { group_advantages(Tensor::zeros({2, 2, 2})); }).find("[group_advantages]") == 0);
}

TEST_CASE("grpo_loss: rho = 1 and ref == current give loss = -(normalised) A, zero KL, gradient -A/(N|o_i|)") {
  // N = 3 completions, L = 4; |o| = 3, 4, 2 (row 0's first and row 2's first two positions are prompt).
  const Shape sh{3, 4};
  const std::vector<double> lp = {-1.0, -2.0, -0.5, -3.0, -0.1, -0.2, -0.3, -0.4, -2.5, -1.5, -0.7, -0.9};
  Tensor mask = f64({0, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1}, sh);
  Tensor adv = f64({1.0, -0.5, 2.0}, {3});
  GRPOLossConfig c;  // ε = 0.2, β = 0.04, sequence
  GRPOLossOutput o;
  std::vector<double> g = loss_grad(lp, sh, f64(lp, sh), f64(lp, sh), mask, adv, c, &o);
  // sequence: J = (1/3)(1 − 0.5 + 2) = 2.5/3.
  CHECK(o.loss.item() == doctest::Approx(-2.5 / 3).epsilon(1e-14));
  CHECK(o.kl.item() == 0.0);
  CHECK(o.kl_mean == 0.0);
  CHECK(o.ratio_mean == 1.0);
  CHECK(o.clip_fraction == 0.0);
  CHECK(o.tokens == 9);
  // d loss / d logp = −A_i / (N |o_i|): row 0 −1/9, row 1 +0.5/12, row 2 −2/6; 0 on the prompt positions.
  const std::vector<double> want = {0, -1.0 / 9, -1.0 / 9, -1.0 / 9, 0.5 / 12, 0.5 / 12, 0.5 / 12, 0.5 / 12,
                                    0, 0, -1.0 / 3, -1.0 / 3};
  for (int k = 0; k < 12; k++) CHECK(g[k] == doctest::Approx(want[k]).epsilon(1e-14));
  // token: J = (3·1 + 4·(−0.5) + 2·2) / 9 = 5/9; gradient −A_i / 9.
  c.norm = GRPONorm::token;
  g = loss_grad(lp, sh, f64(lp, sh), f64(lp, sh), mask, adv, c, &o);
  CHECK(o.loss.item() == doctest::Approx(-5.0 / 9).epsilon(1e-14));
  const std::vector<double> adv_v = {1.0, -0.5, 2.0};
  std::vector<double> mv = mask.to_f64_vector();
  for (int k = 0; k < 12; k++) CHECK(g[k] == doctest::Approx(-mv[k] * adv_v[k / 4] / 9).epsilon(1e-14));
}

TEST_CASE("grpo_loss: the clip for A > 0 and A < 0 — value, clip fraction, and gradient exactly 0 where active") {
  // ε = 0.2, β = 0, old = 0, one token each; ρ = 1.5, 0.5, 1.5, 0.5 and A = +1, −1, −1, +1:
  //   row 0: A > 0, ρ > 1.2  -> clipped: surr = 1.2·1 = 1.2, gradient 0
  //   row 1: A < 0, ρ < 0.8  -> clipped: surr = 0.8·(−1) = −0.8, gradient 0
  //   row 2: A < 0, ρ = 1.5  -> min(−1.5, −1.2) = −1.5 unclipped, d surr/d logp = ρA = −1.5
  //   row 3: A > 0, ρ = 0.5  -> min(0.5, 0.8) = 0.5 unclipped, d surr/d logp = 0.5
  // J = (1.2 − 0.8 − 1.5 + 0.5)/4 = −0.15, loss = 0.15; d loss/d logp = −(1/4)(0, 0, −1.5, 0.5).
  const Shape sh{4, 1};
  const std::vector<double> lp = {std::log(1.5), std::log(0.5), std::log(1.5), std::log(0.5)};
  Tensor zeros = Tensor::zeros(sh, DType::f64);
  GRPOLossConfig c;
  c.kl_beta = 0;
  GRPOLossOutput o;
  std::vector<double> g = loss_grad(lp, sh, zeros, f64(lp, sh), Tensor::ones(sh, DType::f64), f64({1, -1, -1, 1}, {4}), c, &o);
  CHECK(o.loss.item() == doctest::Approx(0.15).epsilon(1e-14));
  CHECK(o.policy_loss.item() == doctest::Approx(0.15).epsilon(1e-14));
  CHECK(o.clip_fraction == 0.5);
  CHECK(o.ratio_mean == doctest::Approx(1.0).epsilon(1e-14));
  CHECK(g[0] == 0.0);
  CHECK(g[1] == 0.0);
  CHECK(g[2] == doctest::Approx(0.375).epsilon(1e-14));
  CHECK(g[3] == doctest::Approx(-0.125).epsilon(1e-14));
  // A wider clip (ε = 0.6) releases rows 0 and 1: gradient −ρA/4 everywhere.
  c.clip_eps = 0.6;
  g = loss_grad(lp, sh, zeros, f64(lp, sh), Tensor::ones(sh, DType::f64), f64({1, -1, -1, 1}, {4}), c, &o);
  CHECK(o.clip_fraction == 0.0);
  CHECK(o.loss.item() == doctest::Approx(-(1.5 - 0.5 - 1.5 + 0.5) / 4).epsilon(1e-14));
  CHECK(g[0] == doctest::Approx(-1.5 / 4).epsilon(1e-14));
  CHECK(g[1] == doctest::Approx(0.5 / 4).epsilon(1e-14));
}

TEST_CASE("grpo_loss: the KL estimator D = e^d − d − 1 (d = ref − logp) and dD/dlogp = 1 − e^d by value") {
  // A = 0 (no surrogate), β = 0.5, one completion of 2 tokens; logp = (−1.2, −0.4), ref = (−0.7, −0.7):
  //   d = (0.5, −0.3);  D = (e^0.5 − 1.5, e^−0.3 − 0.7) = (0.1487212707001282, 0.0408182206817179)
  //   kl = mean D = 0.0947697456909230;  loss = β·kl
  //   dD/dlogp = 1 − e^d = (−0.6487212707001282, 0.2591817793182821);  d loss/d logp = (β/2)·that
  const Shape sh{1, 2};
  const std::vector<double> lp = {-1.2, -0.4};
  GRPOLossConfig c;
  c.kl_beta = 0.5;
  GRPOLossOutput o;
  std::vector<double> g = loss_grad(lp, sh, f64(lp, sh), f64({-0.7, -0.7}, sh), Tensor::ones(sh, DType::f64),
                                    f64({0}, {1}), c, &o);
  CHECK(o.kl.item() == doctest::Approx(0.0947697456909230).epsilon(1e-13));
  CHECK(o.kl_mean == doctest::Approx(0.0947697456909230).epsilon(1e-13));
  CHECK(o.loss.item() == doctest::Approx(0.5 * 0.0947697456909230).epsilon(1e-13));
  CHECK(g[0] == doctest::Approx(0.25 * -0.6487212707001282).epsilon(1e-13));
  CHECK(g[1] == doctest::Approx(0.25 * 0.2591817793182821).epsilon(1e-13));
  // D ≥ 0 and D = 0 only at ref == logp.
  c.kl_beta = 1;
  CHECK(grpo_loss(f64({-3, 2}, sh), f64({-3, 2}, sh), f64({-3, 2}, sh), Tensor::ones(sh), f64({0}, {1}), c).kl.item() == 0.0);
}

TEST_CASE("grpo_loss: sequence vs token normalisation on completions of length 1 and 3") {
  // β = 0, ε = 10 (never clips), old = 0, A = (+1, −1); row 0 has 1 completion token, row 1 has 3:
  //   ρ row 0 = (2), row 1 = (0.5, 1, 2)  ->  ρA: (2), (−0.5, −1, −2)
  //   sequence: J = (1/2)(2/1 + (−3.5)/3) = 5/12, loss = −5/12; grad −ρA/(2|o_i|): (−1), (1/12, 1/6, 1/3)
  //   token:    J = (2 − 3.5)/4 = −3/8,   loss = 3/8;   grad −ρA/4:         (−1/2), (1/8, 1/4, 1/2)
  const Shape sh{2, 3};
  const std::vector<double> lp = {std::log(2.0), -7.0, 4.0, std::log(0.5), 0.0, std::log(2.0)};
  Tensor mask = f64({1, 0, 0, 1, 1, 1}, sh), adv = f64({1, -1}, {2}), zeros = Tensor::zeros(sh, DType::f64);
  GRPOLossConfig c;
  c.kl_beta = 0;
  c.clip_eps = 10;
  GRPOLossOutput o;
  std::vector<double> g = loss_grad(lp, sh, zeros, f64(lp, sh), mask, adv, c, &o);
  CHECK(o.loss.item() == doctest::Approx(-5.0 / 12).epsilon(1e-14));
  std::vector<double> want = {-1, 0, 0, 1.0 / 12, 1.0 / 6, 1.0 / 3};
  for (int k = 0; k < 6; k++) CHECK(g[k] == doctest::Approx(want[k]).epsilon(1e-14));
  c.norm = GRPONorm::token;
  g = loss_grad(lp, sh, zeros, f64(lp, sh), mask, adv, c, &o);
  CHECK(o.loss.item() == doctest::Approx(3.0 / 8).epsilon(1e-14));
  want = {-0.5, 0, 0, 0.125, 0.25, 0.5};
  for (int k = 0; k < 6; k++) CHECK(g[k] == doctest::Approx(want[k]).epsilon(1e-14));
  CHECK(o.ratio_mean == doctest::Approx((2 + 0.5 + 1 + 2) / 4.0).epsilon(1e-14));
  CHECK(parse_grpo_norm("token") == GRPONorm::token);
  CHECK(to_string(GRPONorm::sequence) == "sequence");
  CHECK(error_of([] { parse_grpo_norm("tokens"); }).find("[grpo_loss]") == 0);
}

TEST_CASE("grpo_loss: masked positions contribute nothing, whatever they hold; shape errors name the tensor") {
  Rng rng(7);
  const Shape sh{3, 5};
  Tensor mask = f64({0, 0, 1, 1, 1, 0, 1, 1, 1, 1, 0, 0, 0, 1, 0}, sh);
  std::vector<double> lp = Tensor::rand(sh, rng, -3, -0.1, DType::f64).to_f64_vector();
  std::vector<double> old_v = lp, ref_v = lp;
  for (size_t k = 0; k < lp.size(); k++) {
    old_v[k] += rng.uniform(-0.4, 0.4);
    ref_v[k] += rng.uniform(-0.4, 0.4);
  }
  Tensor adv = f64({0.7, -1.3, 0.4}, {3});
  for (GRPONorm norm : {GRPONorm::sequence, GRPONorm::token}) {
    GRPOLossConfig c;
    c.norm = norm;
    c.kl_beta = 0.1;
    GRPOLossOutput a, b;
    std::vector<double> ga = loss_grad(lp, sh, f64(old_v, sh), f64(ref_v, sh), mask, adv, c, &a);
    std::vector<double> lp2 = lp, old2 = old_v, ref2 = ref_v;
    const std::vector<double> m = mask.to_f64_vector();
    for (size_t k = 0; k < lp.size(); k++)
      if (m[k] == 0) {  // padding with values that would overflow or be NaN if they were used
        lp2[k] = -std::numeric_limits<double>::infinity();
        old2[k] = 80.0;
        ref2[k] = 1e30;
      }
    std::vector<double> gb = loss_grad(lp2, sh, f64(old2, sh), f64(ref2, sh), mask, adv, c, &b);
    CHECK(a.loss.item() == b.loss.item());
    CHECK(a.kl_mean == b.kl_mean);
    CHECK(a.ratio_mean == b.ratio_mean);
    CHECK(a.clip_fraction == b.clip_fraction);
    for (size_t k = 0; k < lp.size(); k++) {
      CHECK(ga[k] == gb[k]);
      if (m[k] == 0) CHECK(gb[k] == 0.0);
    }
  }
  Tensor ones = Tensor::ones(sh, DType::f64);
  CHECK(error_of([&] { grpo_loss(ones, ones, Tensor::ones({3, 4}, DType::f64), ones, adv, {}); }).find("ref_logp") !=
        std::string::npos);
  CHECK(error_of([&] { grpo_loss(ones, ones, ones, ones, f64({1, 2}, {2}), {}); }).find("[grpo_loss] advantages") == 0);
  CHECK(error_of([&] { grpo_loss(ones, ones, ones, mask, adv, {}); }) == "");
  Tensor empty_row = f64({1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1}, sh);
  CHECK(error_of([&] { grpo_loss(ones, ones, ones, empty_row, adv, {}); }).find("completion 1 has no tokens") !=
        std::string::npos);
}

TEST_CASE("grpo_loss: all-equal group rewards give exactly zero gradient") {
  // One group of 4 completions, every reward 0.7: A = 0 exactly. With ref == current the KL gradient
  // 1 − e^0 is exactly 0 too, so no token gets a gradient although ρ != 1.
  const Shape sh{4, 3};
  Rng rng(3);
  std::vector<double> lp = Tensor::rand(sh, rng, -2, -0.2, DType::f64).to_f64_vector(), old_v = lp;
  for (double& v : old_v) v += rng.uniform(-0.5, 0.5);
  Tensor adv = group_advantages(f64({0.7, 0.7, 0.7, 0.7}, {4}));
  for (double a : adv.to_f64_vector()) REQUIRE(a == 0.0);
  GRPOLossConfig c;
  GRPOLossOutput o;
  std::vector<double> g = loss_grad(lp, sh, f64(old_v, sh), f64(lp, sh), Tensor::ones(sh, DType::f64), adv, c, &o);
  for (double v : g) CHECK(v == 0.0);
  CHECK(o.loss.item() == 0.0);
  CHECK(o.ratio_mean != doctest::Approx(1.0));  // the ratios are not 1: the zero comes from A
}

TEST_CASE("grpo_loss: float64 gradcheck w.r.t. logp (both normalisations, clip active on some tokens)") {
  Rng rng(11);
  const Shape sh{4, 6};
  const double eps = 0.2;
  Tensor logp = Tensor::rand(sh, rng, -3, -0.1, DType::f64);
  std::vector<double> lp = logp.to_f64_vector(), old_v(lp.size()), ref_v(lp.size());
  for (size_t k = 0; k < lp.size(); k++) {
    // log ρ in ±0.5, kept 1e-3 away from the clip's edges so ±1e-6 never crosses one
    double r;
    do r = rng.uniform(-0.5, 0.5);
    while (std::abs(std::exp(r) - (1 + eps)) < 1e-3 || std::abs(std::exp(r) - (1 - eps)) < 1e-3);
    old_v[k] = lp[k] - r;
    ref_v[k] = lp[k] + rng.uniform(-0.6, 0.6);
  }
  Tensor old_logp = f64(old_v, sh), ref_logp = f64(ref_v, sh);
  Tensor mask = f64({1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1, 0, 1, 1, 1, 1, 1, 1}, sh);
  Tensor adv = group_advantages(f64({1.0, 0.0, 0.5, 0.0}, {4}));
  for (GRPONorm norm : {GRPONorm::sequence, GRPONorm::token}) {
    GRPOLossConfig c;
    c.clip_eps = eps;
    c.kl_beta = 0.3;
    c.norm = norm;
    GRPOLossOutput o = grpo_loss(logp, old_logp, ref_logp, mask, adv, c);
    CHECK(o.clip_fraction > 0.1);  // the check covers clipped and unclipped tokens
    CHECK(o.clip_fraction < 0.9);
    logp.requires_grad_();
    GradcheckResult r = gradcheck(
        [&](const std::vector<Tensor>& in) { return grpo_loss(in[0], old_logp, ref_logp, mask, adv, c).loss; }, {logp});
    CHECK_MESSAGE(r.ok, r.message);
    logp.zero_grad();
  }
}

TEST_CASE("token_logprobs / token_entropy on a tiny Transformer equal log-sum-exp written out from the logits") {
  Rng rng(5);
  ModelArgs a = tiny_dense_args();
  Transformer m(a, rng);
  const int64_t B = 2, S = 6, V = a.vocab_size;
  Tensor tokens = Tensor::randint({B, S}, rng, 0, V);
  Tensor logits = m.forward(tokens);
  TokenLogprobs tl = token_logprobs_and_entropy(m, tokens);
  Tensor lp = token_logprobs(m, tokens);
  REQUIRE(lp.shape() == Shape{B, S - 1});
  REQUIRE(tl.entropy.shape() == Shape{B, S - 1});
  CHECK(lp.requires_grad());
  CHECK(!tl.entropy.requires_grad());
  CHECK(max_abs_diff(lp, tl.logp) == 0.0);
  double max_lp = 0, max_h = 0;
  for (int64_t b = 0; b < B; b++)
    for (int64_t t = 0; t + 1 < S; t++) {
      double mx = -1e300;
      for (int64_t v = 0; v < V; v++) mx = std::max(mx, logits.at({b, t, v}));
      double z = 0;
      for (int64_t v = 0; v < V; v++) z += std::exp(logits.at({b, t, v}) - mx);
      const double lse = mx + std::log(z);
      const int64_t y = (int64_t)tokens.at({b, t + 1});
      max_lp = std::max(max_lp, std::abs(lp.at({b, t}) - (logits.at({b, t, y}) - lse)));
      double h = 0;
      for (int64_t v = 0; v < V; v++) {
        const double l = logits.at({b, t, v}) - lse;
        h -= std::exp(l) * l;
      }
      max_h = std::max(max_h, std::abs(tl.entropy.at({b, t}) - h));
    }
  MESSAGE("f32 model: max |logp − direct| " << max_lp << ", max |entropy − direct| " << max_h);
  CHECK(max_lp < 1e-5);
  CHECK(max_h < 1e-5);
  // The backward of token_logprobs_from_logits, in float64 against finite differences.
  Tensor x = Tensor::randn({B, S, V}, rng, 1.0, DType::f64);
  x.requires_grad_();
  GradcheckResult r = gradcheck([&](const std::vector<Tensor>& in) { return token_logprobs_from_logits(in[0], tokens); }, {x});
  CHECK_MESSAGE(r.ok, r.message);
  CHECK(error_of([&] { token_logprobs_from_logits(x, Tensor::zeros({B, S + 1}, DType::i64)); }).find("[token_logprobs]") == 0);
}

TEST_CASE("grpo_loss through a tiny Transformer: float64 gradcheck w.r.t. layers.0.attn.wkv_a.weight (MLA)") {
  Rng rng(9);
  ModelArgs a = tiny_dense_args();
  Transformer m(a, rng, DType::f64);
  const int64_t N = 4, S = 6;
  Tensor tokens = Tensor::randint({N, S}, rng, 0, a.vocab_size);
  Tensor* w = nullptr;
  for (auto& [name, t] : m.named_parameters())
    if (name == "layers.0.attn.wkv_a.weight") w = t;
  REQUIRE(w);
  // π_old and π_ref: the current log-probs moved by fixed offsets (log ρ = −offset, away from the clip's edges).
  std::vector<double> lp0;
  {
    NoGradGuard no_grad;
    lp0 = token_logprobs(m, tokens).to_f64_vector();
  }
  const Shape sh{N, S - 1};
  std::vector<double> old_v(lp0.size()), ref_v(lp0.size());
  const double offsets[] = {-0.4, -0.1, 0.05, 0.3, 0.5};
  for (size_t k = 0; k < lp0.size(); k++) {
    old_v[k] = lp0[k] + offsets[k % 5];
    ref_v[k] = lp0[k] + offsets[(k + 2) % 5];
  }
  Tensor old_logp = f64(old_v, sh), ref_logp = f64(ref_v, sh);
  std::vector<double> mv(N * (S - 1), 1.0);
  for (int64_t i = 0; i < N; i++) mv[i * (S - 1)] = 0;  // position 0 scores a prompt token
  Tensor mask = f64(mv, sh);
  Tensor adv = group_advantages(f64({1, 0, 0.5, 0.2}, {4}));
  GRPOLossConfig c;
  c.kl_beta = 0.2;
  auto loss = [&](const std::vector<Tensor>&) {
    return grpo_loss(token_logprobs(m, tokens), old_logp, ref_logp, mask, adv, c).loss;
  };
  GRPOLossOutput o = grpo_loss(token_logprobs(m, tokens), old_logp, ref_logp, mask, adv, c);
  CHECK(o.clip_fraction > 0);
  GradcheckOptions opt;
  opt.max_elements_per_input = int64_t(1) << 40;  // every element
  GradcheckResult r = gradcheck(loss, {*w}, opt);
  CHECK_MESSAGE(r.ok, r.message);
  double gmax = 0;
  for (double g : w->grad().to_f64_vector()) gmax = std::max(gmax, std::abs(g));
  MESSAGE("wkv_a " << w->describe() << ": max |grad| " << gmax << ", max abs error " << r.max_abs_error);
  CHECK(gmax > 1e-4);  // the gradient reaches MLA's KV down-projection
}
