// tests/train/test_distill_loss.cpp — logit distillation's math by value (train/distill_loss.h):
//   * equal student and teacher logits: loss exactly 0, gradient 0 (to 1e-15: Σ p rounds), agreement 1;
//   * a 2-class case worked out here: T = 2, z_t = (2 ln 3, 0) so p = (3/4, 1/4), z_s = 0 so q = (1/2, 1/2):
//     loss = T² (3/4 ln(3/2) + 1/4 ln(1/2));
//   * the gradient equals T (softmax(z_s/T) − softmax(z_t/T)) / M on selected rows and 0 on the others (to 1e-12);
//   * the mask: unselected rows change nothing, whatever they hold;
//   * float64 gradcheck w.r.t. the student's logits at T = 0.5, 1 and 3, and through a tiny Transformer (MLA, dense)
//     w.r.t. layers.0.attn.wkv_a.weight;
//   * bad shapes, temperature and masks are named.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "autograd/gradcheck.h"
#include "autograd/node.h"
#include "models/transformer.h"
#include "ops/ops.h"
#include "tests/test_util.h"
#include "train/distill_loss.h"

using namespace sg;
using sg::test::contains;
using sg::test::error_of;

namespace {

Tensor mat(const std::vector<double>& v, int64_t rows, int64_t cols) { return Tensor::from_vector(v, {rows, cols}); }

std::vector<double> softmax_row(const std::vector<double>& z, double T) {
  double m = z[0];
  for (double x : z) m = std::max(m, x);
  std::vector<double> p;
  double s = 0;
  for (double x : z) p.push_back(std::exp((x - m) / T)), s += p.back();
  for (double& x : p) x /= s;
  return p;
}

}  // namespace

TEST_CASE("kd_loss: a student equal to its teacher has loss exactly 0, gradient 0 and agreement 1") {
  Rng rng(5);
  for (double T : {0.5, 1.0, 4.0}) {
    Tensor zs = Tensor::rand({6, 11}, rng, -4, 4, DType::f64);
    const Tensor zt = zs.detach();
    zs.requires_grad_();
    KDLossOutput o = kd_loss(zs, zt, T);
    CHECK(o.loss.item() == 0.0);
    CHECK(o.kl == 0.0);
    CHECK(o.agreement == 1.0);
    CHECK(o.positions == 6);
    o.loss.backward();  // T (q − p) / M with q = p: zero up to the rounding of Σ_v p_v = 1
    for (double g : zs.grad().to_f64_vector()) CHECK(std::abs(g) < 1e-15);
  }
}

TEST_CASE("kd_loss: the 2-class case by hand — p = (3/4, 1/4), q = (1/2, 1/2), T = 2") {
  const double T = 2.0;
  Tensor zs = mat({0.0, 0.0}, 1, 2);
  zs.requires_grad_();
  const Tensor zt = mat({2 * std::log(3.0), 0.0}, 1, 2);  // z_t / T = (ln 3, 0): p = (3/4, 1/4)
  KDLossOutput o = kd_loss(zs, zt, T);
  const double kl = 0.75 * std::log(0.75 / 0.5) + 0.25 * std::log(0.25 / 0.5);  // = 0.1308...
  CHECK(o.kl == doctest::Approx(kl).epsilon(1e-13));
  CHECK(o.loss.item() == doctest::Approx(T * T * kl).epsilon(1e-13));
  CHECK(o.agreement == 1.0);  // the student's argmax is the first of a tie: class 0, the teacher's
  o.loss.backward();
  // ∂L/∂z_s = T (q − p) / M = 2 · ((1/2 − 3/4), (1/2 − 1/4)) = (−1/2, +1/2)
  const std::vector<double> g = zs.grad().to_f64_vector();
  CHECK(g[0] == doctest::Approx(-0.5).epsilon(1e-13));
  CHECK(g[1] == doctest::Approx(0.5).epsilon(1e-13));
}

TEST_CASE("kd_loss: the gradient is T (softmax(z_s/T) − softmax(z_t/T)) / M on the selected rows and 0 elsewhere") {
  Rng rng(11);
  const int64_t N = 7, V = 9;
  for (double T : {0.7, 1.0, 2.5}) {
    Tensor zs = Tensor::rand({N, V}, rng, -3, 3, DType::f64);
    Tensor zt = Tensor::rand({N, V}, rng, -3, 3, DType::f64);
    zs.requires_grad_();
    const std::vector<double> keep = {1, 0, 1, 1, 0, 0, 1};  // M = 4
    KDLossOutput o = kd_loss(zs, zt, T, Tensor::from_vector(keep, {N}));
    CHECK(o.positions == 4);
    o.loss.backward();
    const std::vector<double> s = zs.detach().to_f64_vector(), t = zt.to_f64_vector(), g = zs.grad().to_f64_vector();
    double kl = 0;
    for (int64_t i = 0; i < N; i++) {
      const std::vector<double> q = softmax_row({s.begin() + i * V, s.begin() + (i + 1) * V}, T);
      const std::vector<double> p = softmax_row({t.begin() + i * V, t.begin() + (i + 1) * V}, T);
      for (int64_t v = 0; v < V; v++) {
        const double want = keep[(size_t)i] ? T * (q[(size_t)v] - p[(size_t)v]) / 4.0 : 0.0;
        CHECK(g[(size_t)(i * V + v)] == doctest::Approx(want).epsilon(1e-12).scale(1e-12));
        if (keep[(size_t)i]) kl += p[(size_t)v] * (std::log(p[(size_t)v]) - std::log(q[(size_t)v])) / 4.0;
      }
    }
    CHECK(o.kl == doctest::Approx(kl).epsilon(1e-12));
    CHECK(o.loss.item() == doctest::Approx(T * T * kl).epsilon(1e-12));
  }
}

TEST_CASE("kd_loss: unselected rows change nothing, whatever they hold") {
  Tensor zs = mat({1.0, -2.0, 0.5, /**/ 1e30, -1e30, 7.0}, 2, 3);
  Tensor zt = mat({0.0, 1.0, 2.0, /**/ -1e30, 1e30, 3.0}, 2, 3);
  const Tensor mask = Tensor::from_vector(std::vector<float>{1, 0}, {2});
  KDLossOutput masked = kd_loss(zs, zt, 1.5, mask);
  KDLossOutput alone = kd_loss(mat({1.0, -2.0, 0.5}, 1, 3), mat({0.0, 1.0, 2.0}, 1, 3), 1.5);
  CHECK(std::isfinite(masked.loss.item()));
  CHECK(masked.loss.item() == alone.loss.item());
  CHECK(masked.positions == 1);
}

TEST_CASE("kd_loss: float64 gradcheck w.r.t. the student's logits") {
  Rng rng(3);
  const Tensor zt = Tensor::rand({5, 6}, rng, -2, 2, DType::f64);
  const Tensor mask = Tensor::from_vector(std::vector<double>{1, 1, 0, 1, 1}, {5});
  for (double T : {0.5, 1.0, 3.0}) {
    Tensor zs = Tensor::rand({5, 6}, rng, -2, 2, DType::f64);
    zs.requires_grad_();
    GradcheckResult r = gradcheck([&](const std::vector<Tensor>& in) { return kd_loss(in[0], zt, T, mask).loss; }, {zs});
    CHECK_MESSAGE(r.ok, "T = " << T << ": " << r.message);
  }
}

TEST_CASE("kd_loss through a tiny Transformer: float64 gradcheck w.r.t. layers.0.attn.wkv_a.weight (MLA)") {
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
  Transformer student(a, rng, DType::f64), teacher(a, rng, DType::f64);
  const int64_t B = 2, S = 5;
  const Tensor tokens = Tensor::randint({B, S}, rng, 0, a.vocab_size);
  Tensor zt;
  {
    NoGradGuard no_grad;
    zt = reshape(teacher.forward(tokens), {B * S, a.vocab_size});
  }
  std::vector<double> keep((size_t)(B * S), 1.0);
  keep[0] = keep[5] = 0;  // each row's first position: a prompt token
  const Tensor mask = Tensor::from_vector(keep, {B * S});
  Tensor* w = nullptr;
  for (auto& [name, t] : student.named_parameters())
    if (name == "layers.0.attn.wkv_a.weight") w = t;
  REQUIRE(w);
  auto loss = [&](const std::vector<Tensor>&) {
    return kd_loss(reshape(student.forward(tokens), {B * S, a.vocab_size}), zt, 2.0, mask).loss;
  };
  GradcheckOptions opt;
  opt.max_elements_per_input = int64_t(1) << 40;
  GradcheckResult r = gradcheck(loss, {*w}, opt);
  CHECK_MESSAGE(r.ok, r.message);
  double gmax = 0;
  for (double g : w->grad().to_f64_vector()) gmax = std::max(gmax, std::abs(g));
  CHECK(gmax > 1e-6);
}

TEST_CASE("kd_loss: bad shapes, temperature and masks are named") {
  const Tensor a = mat({1, 2, 3, 4}, 2, 2), b = mat({1, 2, 3, 4, 5, 6}, 2, 3);
  CHECK(contains(error_of([&] { kd_loss(a, b, 1.0); }), "[kd_loss] teacher_logits"));
  CHECK(contains(error_of([&] { kd_loss(a, b, 1.0); }), "must have student_logits' shape"));
  CHECK(contains(error_of([&] { kd_loss(Tensor::from_vector(std::vector<double>{1, 2}, {2}), a, 1.0); }), "student_logits must be [N,V]"));
  CHECK(contains(error_of([&] { kd_loss(a, a, 0.0); }), "temperature must be > 0"));
  CHECK(contains(error_of([&] { kd_loss(a, a, 1.0, Tensor::from_vector(std::vector<float>{1, 1, 1}, {3})); }), "mask"));
  CHECK(contains(error_of([&] { kd_loss(a, a, 1.0, Tensor::from_vector(std::vector<float>{0, 0}, {2})); }), "selects no position"));
}
