// tests/train/test_train.cpp — the model-independent training machinery: AdamW and SGD against
// hand-computed updates, schedules, clipping, checkpoints (round trip, atomic write, errors naming
// the file, bit-identical resume), metrics.csv, PNG plots, the progress line.
#include <doctest/doctest.h>

#define STB_IMAGE_STATIC  // the decoder is private to this test (plot.cpp holds the writer)
#define STB_IMAGE_IMPLEMENTATION
#include <stb/stb_image.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>

#include "autograd/runtime.h"
#include "data/shards.h"
#include "models/dsa.h"
#include "models/transformer.h"
#include "ops/ops.h"
#include "tests/data/temp_dir.h"
#include "train/checkpoint.h"
#include "train/clip.h"
#include "train/metrics.h"
#include "train/optim.h"
#include "train/plot.h"
#include "train/progress.h"
#include "train/schedule.h"

using namespace sg;
using sg::data::testing::slurp;
using sg::data::testing::TempDir;
namespace fs = std::filesystem;

namespace {

// The message of the exception that f throws ("" if none).
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

Tensor param(const std::vector<float>& v, const Shape& shape) {
  Tensor t = Tensor::from_vector(v, shape);
  t.requires_grad_(true);
  return t;
}

void set_grad(Tensor& p, const std::vector<float>& g) { p.set_grad(Tensor::from_vector(g, p.shape())); }

std::vector<float> values(const Tensor& t) { return t.to_f32_vector(); }

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.dtype() == b.dtype() &&
         std::memcmp(a.raw_data(), b.raw_data(), (size_t)a.numel() * dtype_size(a.dtype())) == 0;
}

// AdamW by the textbook formula in double, one element: returns p after the update.
struct RefAdam {
  double p, m = 0, v = 0;
  int t = 0;
  double step(double g, double lr, double b1, double b2, double eps, double wd) {
    ++t;
    p *= 1 - lr * wd;
    m = b1 * m + (1 - b1) * g;
    v = b2 * v + (1 - b2) * g * g;
    const double mhat = m / (1 - std::pow(b1, t)), vhat = v / (1 - std::pow(b2, t));
    p -= lr * mhat / (std::sqrt(vhat) + eps);
    return p;
  }
};

}  // namespace

// ---- AdamW ------------------------------------------------------------------------------------

TEST_CASE("adamw: one step by hand") {
  // p = 1, g = 0.5, lr 0.1, λ 0.1: p ← 1·(1 − 0.01) = 0.99; m = 0.05, v = 0.0125;
  // m̂ = 0.05/0.1 = 0.5, v̂ = 0.0125/0.05 = 0.25; p ← 0.99 − 0.1·0.5/(0.5 + 1e-8) = 0.89.
  Tensor w = param({1.0f, -2.0f, 0.5f, 3.0f}, {2, 2}).set_param_kind(ParamKind::weight);  // decayed
  set_grad(w, {0.5f, 0.25f, -1.0f, 0.0f});
  AdamW opt({{"layers.0.ffn.w1.weight", &w}}, AdamWConfig{0.1, 0.9, 0.95, 1e-8, 0.1});
  opt.step();
  CHECK(values(w)[0] == doctest::Approx(0.89).epsilon(1e-6));
  // g = 0 leaves only the decay: 3 · 0.99.
  CHECK(values(w)[3] == doctest::Approx(2.97).epsilon(1e-6));
  // At step 1 the bias-corrected update is lr·sign(g) (up to ε), whatever |g|.
  CHECK(values(w)[1] == doctest::Approx(-2.0 * 0.99 - 0.1).epsilon(1e-6));
  CHECK(values(w)[2] == doctest::Approx(0.5 * 0.99 + 0.1).epsilon(1e-6));
  // The moments themselves.
  CHECK(values(opt.exp_avg(0))[0] == doctest::Approx(0.05).epsilon(1e-6));
  CHECK(values(opt.exp_avg_sq(0))[0] == doctest::Approx(0.0125).epsilon(1e-6));
  CHECK(opt.param_step(0) == 1);
  CHECK(opt.steps() == 1);
}

TEST_CASE("adamw: bias correction at steps 1 and 2 against the formula in double") {
  const double lr = 0.01, b1 = 0.9, b2 = 0.95, eps = 1e-8, wd = 0.1;
  Tensor w = param({0.7f, -1.3f}, {1, 2}).set_param_kind(ParamKind::weight);
  AdamW opt({{"w.weight", &w}}, AdamWConfig{lr, b1, b2, eps, wd});
  RefAdam r0{0.7}, r1{-1.3};
  const float g1[2] = {0.3f, -2.0f}, g2[2] = {-0.1f, 0.5f};
  set_grad(w, {g1[0], g1[1]});
  opt.step();
  CHECK(values(w)[0] == doctest::Approx(r0.step(g1[0], lr, b1, b2, eps, wd)).epsilon(1e-6));
  CHECK(values(w)[1] == doctest::Approx(r1.step(g1[1], lr, b1, b2, eps, wd)).epsilon(1e-6));
  set_grad(w, {g2[0], g2[1]});
  opt.step();
  // Step 2: 1 − β1² = 0.19, 1 − β2² = 0.0975. Worked out: m = 0.9·0.03 + 0.1·(−0.1) = 0.017,
  // v = 0.95·0.0045 + 0.05·0.01 = 0.004775, update = lr·(0.017/0.19)/sqrt(0.004775/0.0975).
  const double p1 = 0.7 * (1 - lr * wd) - lr;  // after step 1
  const double expect = p1 * (1 - lr * wd) - lr * (0.017 / 0.19) / (std::sqrt(0.004775 / 0.0975) + eps);
  CHECK(values(w)[0] == doctest::Approx(expect).epsilon(1e-6));
  CHECK(values(w)[0] == doctest::Approx(r0.step(g2[0], lr, b1, b2, eps, wd)).epsilon(1e-6));
  CHECK(values(w)[1] == doctest::Approx(r1.step(g2[1], lr, b1, b2, eps, wd)).epsilon(1e-6));
}

TEST_CASE("adamw: weight decay by the parameter's kind, not its name") {
  // Names chosen to mislead a substring rule: the kind alone decides.
  Tensor wq = param({1, 1, 1, 1}, {2, 2}).set_param_kind(ParamKind::weight);
  Tensor proj = param({1, 1, 1, 1}, {2, 2}).set_param_kind(ParamKind::weight);  // named *norm*, still a matrix
  Tensor embed = param({1, 1, 1, 1}, {2, 2}).set_param_kind(ParamKind::embedding);
  Tensor norm = param({1, 1}, {2}).set_param_kind(ParamKind::norm);
  Tensor bias = param({1, 1}, {2}).set_param_kind(ParamKind::bias);
  Tensor loose = param({1, 1, 1, 1}, {2, 2});  // registered by no module: kind none, not decayed
  NamedParameters ps = {{"layers.0.attn.wq.weight", &wq},     {"layers.0.kv_norm_proj.weight", &proj},
                        {"tok.weight", &embed},               {"layers.0.attn_norm.weight", &norm},
                        {"layers.0.k_norm.bias", &bias},      {"loose", &loose}};
  AdamW opt(ps, AdamWConfig{0.1, 0.9, 0.95, 1e-8, 0.5});
  CHECK(opt.decays("layers.0.attn.wq.weight"));
  CHECK(opt.decays("layers.0.kv_norm_proj.weight"));
  CHECK_FALSE(opt.decays("tok.weight"));
  CHECK_FALSE(opt.decays("layers.0.attn_norm.weight"));
  CHECK_FALSE(opt.decays("layers.0.k_norm.bias"));
  CHECK_FALSE(opt.decays("loose"));
  // Zero gradients: Adam's own update is 0/(0 + ε) = 0, so only the decay moves a parameter.
  for (auto& [n, p] : ps) p->set_grad(Tensor::zeros(p->shape()));
  opt.step();
  for (Tensor* t : {&wq, &proj})
    for (float v : values(*t)) CHECK(v == doctest::Approx(1 - 0.1 * 0.5).epsilon(1e-7));
  for (Tensor* t : {&embed, &norm, &bias, &loose})
    for (float v : values(*t)) CHECK(v == 1.0f);

  // A custom predicate: decay everything.
  Tensor n2 = param({2, 2}, {2});
  n2.set_grad(Tensor::zeros({2}));
  AdamW all({{"final_norm.weight", &n2}}, AdamWConfig{0.1, 0.9, 0.95, 1e-8, 0.5},
            [](const std::string&, const Tensor&) { return true; });
  all.step();
  CHECK(values(n2)[0] == doctest::Approx(2 * 0.95).epsilon(1e-7));

  // A buffer is refused: only its own rule changes it (the gate bias: Gate::update_bias).
  Tensor buf = Tensor::zeros({4}).set_param_kind(ParamKind::buffer);
  CHECK(error_of([&] { AdamW({{"layers.1.ffn.gate.bias", &buf}}, AdamWConfig{}); }) ==
        "[adamw] 'layers.1.ffn.gate.bias' is a buffer (Module::buffers), not a parameter; pass named_parameters()");
}

TEST_CASE("adamw: parameters without a gradient or with requires_grad false are left alone") {
  Tensor a = param({1, 2}, {2});
  Tensor b = param({3, 4}, {2});  // no gradient this step
  Tensor c = Tensor::from_vector(std::vector<float>{5, 6}, {2});  // frozen
  c.set_grad(Tensor::ones({2}));
  AdamW opt({{"a", &a}, {"b", &b}, {"c", &c}}, AdamWConfig{0.1});
  set_grad(a, {1, 1});
  opt.step();
  CHECK(values(a)[0] != 1.0f);
  CHECK(values(b) == std::vector<float>{3, 4});
  CHECK(values(c) == std::vector<float>{5, 6});
  CHECK(opt.param_step(0) == 1);
  CHECK(opt.param_step(1) == 0);  // its bias correction will start at t = 1 when it gets a gradient
  CHECK_FALSE(opt.exp_avg(2).defined());
  // The state lists the stepped and the waiting parameter, not the frozen one.
  std::vector<std::string> names;
  for (const StTensor& t : opt.state_tensors()) names.push_back(t.name);
  CHECK(names == std::vector<std::string>{"step", "exp_avg.a", "exp_avg_sq.a", "step.a", "exp_avg.b",
                                          "exp_avg_sq.b", "step.b"});
}

TEST_CASE("adamw: errors name the parameter") {
  Tensor a = param({1, 2}, {2});
  Tensor i = Tensor::from_vector(std::vector<int64_t>{1, 2}, {2});
  CHECK(error_of([&] { AdamW({{"a", &a}, {"a", &a}}, AdamWConfig{}); }).find("'a' appears twice") !=
        std::string::npos);
  CHECK(error_of([&] { AdamW({{"tok", &i}}, AdamWConfig{}); }).find("'tok'") != std::string::npos);
  AdamW opt({{"a", &a}}, AdamWConfig{});
  a.set_grad(Tensor::ones({3}));
  CHECK(error_of([&] { opt.step(); }).find("gradient of 'a' has shape (3)") != std::string::npos);
}

TEST_CASE("adamw: the threaded update equals the one-thread update bit for bit") {
  // 200k elements: parallel_for splits them over the pool (grain 16k); one thread must agree.
  Rng rng(8);
  Tensor g = Tensor::randn({400, 500}, rng);
  Tensor init = Tensor::randn({400, 500}, rng);
  Tensor a = init.clone_data().requires_grad_(true), b = init.clone_data().requires_grad_(true);
  a.set_param_kind(ParamKind::weight);
  b.set_param_kind(ParamKind::weight);
  AdamW oa({{"w.weight", &a}}, AdamWConfig{1e-2}), ob({{"w.weight", &b}}, AdamWConfig{1e-2});
  const int threads = num_threads();
  for (int s = 0; s < 3; ++s) {
    a.set_grad(g.clone_data());
    b.set_grad(g.clone_data());
    set_num_threads(1);
    oa.step();
    set_num_threads(threads);
    ob.step();
  }
  CHECK(same_bits(a, b));
  CHECK(same_bits(oa.exp_avg_sq(0), ob.exp_avg_sq(0)));
}

TEST_CASE("adamw: minimises a quadratic") {
  // loss = Σ (p − target)², from p = 0; with wd = 0 AdamW must walk p to target.
  Rng rng(3);
  Tensor p = Tensor::zeros({4, 3}).requires_grad_(true);
  Tensor target = Tensor::randn({4, 3}, rng);
  AdamW opt({{"p", &p}}, AdamWConfig{0.05, 0.9, 0.95, 1e-8, 0.0});
  double first = 0, last = 0;
  for (int s = 0; s < 400; ++s) {
    p.zero_grad();
    Tensor loss = sum(square(p - target));
    if (s == 0) first = loss.item();
    last = loss.item();
    loss.backward();
    opt.step(s < 300 ? 0.05 : 0.005);
  }
  CHECK(first > 1.0);
  CHECK(last < 1e-4);
  auto pv = values(p), tv = values(target);
  for (size_t i = 0; i < pv.size(); ++i) CHECK(pv[i] == doctest::Approx(tv[i]).epsilon(0.02));
}

// ---- SGD --------------------------------------------------------------------------------------

TEST_CASE("sgd: momentum by hand") {
  // g = 1 each step, lr 0.1, μ 0.9: b = 1, 1.9, 2.71; p = 1 − 0.1·(1 + 1.9 + 2.71) = 0.439.
  Tensor p = param({1.0f}, {1});
  SGD opt({{"p", &p}}, SGDConfig{0.1, 0.9});
  const double expect[3] = {0.9, 0.71, 0.439};
  for (int s = 0; s < 3; ++s) {
    set_grad(p, {1.0f});
    opt.step();
    CHECK(values(p)[0] == doctest::Approx(expect[s]).epsilon(1e-6));
  }
  CHECK(values(opt.momentum_buffer(0))[0] == doctest::Approx(2.71).epsilon(1e-6));

  // Nesterov and coupled L2 decay, one step: d = g + λp = 1 + 0.1·2 = 1.2; b = 1.2;
  // p ← 2 − 0.1·(1.2 + 0.9·1.2) = 1.772.
  Tensor q = param({2.0f}, {1});
  SGD nes({{"q", &q}}, SGDConfig{0.1, 0.9, 0.1, true});
  set_grad(q, {1.0f});
  nes.step();
  CHECK(values(q)[0] == doctest::Approx(1.772).epsilon(1e-6));

  // No momentum: plain gradient descent, no buffer.
  Tensor r = param({1.0f}, {1});
  SGD plain({{"r", &r}}, SGDConfig{0.5, 0.0});
  set_grad(r, {0.5f});
  plain.step();
  CHECK(values(r)[0] == 0.75f);
  CHECK_FALSE(plain.momentum_buffer(0).defined());
}

// ---- schedule ---------------------------------------------------------------------------------

TEST_CASE("schedule: warmup then cosine to min_lr") {
  auto s = LrSchedule::warmup_cosine(1e-3, 1e-4, 10, 110);
  CHECK(s.lr_at(0) == doctest::Approx(1e-4));  // 1e-3 · 1/10
  CHECK(s.lr_at(4) == doctest::Approx(5e-4));
  CHECK(s.lr_at(9) == doctest::Approx(1e-3));  // end of warmup
  CHECK(s.lr_at(10) == doctest::Approx(1e-3));  // cosine starts at max_lr
  CHECK(s.lr_at(60) == doctest::Approx(1e-4 + 0.5 * 9e-4));  // half way: cos(π/2) = 0
  CHECK(s.lr_at(35) == doctest::Approx(1e-4 + 0.5 * (1 + std::cos(M_PI * 0.25)) * 9e-4));
  CHECK(s.lr_at(110) == doctest::Approx(1e-4));
  CHECK(s.lr_at(1000) == doctest::Approx(1e-4));
  for (int64_t t = 10; t < 110; ++t) CHECK(s.lr_at(t + 1) <= s.lr_at(t));  // monotone decay

  auto c = LrSchedule::constant(3e-4, 4);
  CHECK(c.lr_at(0) == doctest::Approx(0.75e-4));
  CHECK(c.lr_at(3) == doctest::Approx(3e-4));
  CHECK(c.lr_at(100000) == doctest::Approx(3e-4));
  CHECK(LrSchedule::constant(1e-3).lr_at(0) == 1e-3);
  CHECK(error_of([] { LrSchedule::warmup_cosine(1e-3, 1e-2, 0, 10); }).find("[schedule]") == 0);
}

// ---- clipping ---------------------------------------------------------------------------------

TEST_CASE("clip: global norm computed and scaled exactly") {
  Tensor a = param({0, 0}, {2}), b = param({0}, {1}), none = param({7}, {1});
  set_grad(a, {3, 4});
  set_grad(b, {12});
  NamedParameters ps = {{"a", &a}, {"b", &b}, {"none", &none}};
  CHECK(grad_norm(ps) == 13.0);  // sqrt(9 + 16 + 144), parameters without a gradient count as 0
  // Below the limit: untouched.
  CHECK(clip_grad_norm(ps, 20.0) == 13.0);
  CHECK(values(a.grad()) == std::vector<float>{3, 4});
  // Above: every gradient times c = 6.5 / (13 + 1e-6).
  CHECK(clip_grad_norm(ps, 6.5) == 13.0);
  const float c = (float)(6.5 / (13.0 + 1e-6));
  CHECK(values(a.grad()) == std::vector<float>{3 * c, 4 * c});
  CHECK(values(b.grad()) == std::vector<float>{12 * c});
  CHECK(grad_norm(ps) == doctest::Approx(6.5).epsilon(1e-6));
  // A NaN gradient: the norm says so and nothing is scaled.
  set_grad(b, {NAN});
  CHECK(std::isnan(clip_grad_norm(ps, 1.0)));
  CHECK(values(a.grad()) == std::vector<float>{3 * c, 4 * c});
  zero_grad(ps);
  CHECK_FALSE(a.grad().defined());
  CHECK_FALSE(b.grad().defined());
}

TEST_CASE("clip: grad_norm is the same number on any thread count") {
  // Gradients of mixed sizes (a few 64K-element chunks and many small ones), the way a model's are.
  Rng rng(21);
  std::vector<Tensor> ps;
  for (int64_t n : {300000, 7, 65536, 1, 131073, 64, 64, 4096}) {
    ps.push_back(Tensor::zeros({n}).requires_grad_(true));
    ps.back().set_grad(Tensor::randn({n}, rng, 0.01));
  }
  NamedParameters named;
  for (size_t i = 0; i < ps.size(); ++i) named.push_back({"p" + std::to_string(i), &ps[i]});
  long double ref = 0;
  for (const Tensor& p : ps)
    for (float g : values(p.grad())) ref += (long double)g * g;
  const int saved = num_threads();
  set_num_threads(1);
  const double one = grad_norm(named);
  CHECK(std::abs(one - std::sqrt((double)ref)) / std::sqrt((double)ref) < 1e-13);
  for (int t : {2, 3, 4}) {
    set_num_threads(t);
    const double many = grad_norm(named);
    CHECK_MESSAGE(std::memcmp(&one, &many, sizeof(double)) == 0, t << " threads: " << many << " vs " << one);
  }
  set_num_threads(saved);
}

// ---- checkpoints ------------------------------------------------------------------------------

namespace {

// A tiny DeepSeek-V3-shaped Transformer: layer 0 dense, layer 1 MoE with a gate bias, one MTP module
// (also MoE, so it has a gate bias too).
ModelArgs tiny_v3_args() {
  ModelArgs a;
  a.vocab_size = 32;
  a.dim = 16;
  a.inter_dim = 32;
  a.moe_inter_dim = 8;
  a.n_layers = 2;
  a.n_dense_layers = 1;
  a.n_heads = 2;
  a.n_routed_experts = 4;
  a.n_shared_experts = 1;
  a.n_activated_experts = 2;
  a.score_func = "sigmoid";
  a.gate_bias = true;
  a.q_lora_rank = 8;
  a.kv_lora_rank = 8;
  a.qk_nope_head_dim = 8;
  a.qk_rope_head_dim = 4;
  a.v_head_dim = 8;
  a.max_seq_len = 16;
  a.original_seq_len = 16;
  a.n_mtp_modules = 1;
  return a;
}

struct TinySetup {
  Tensor w, norm;
  NamedParameters params() { return {{"model.layers.0.mlp.up_proj.weight", &w}, {"model.norm.weight", &norm}}; }
  explicit TinySetup(uint64_t seed) {
    Rng rng(seed);
    w = Tensor::randn({3, 4}, rng).requires_grad_(true);
    norm = Tensor::rand({4}, rng).requires_grad_(true);
  }
  void fake_step(AdamW& opt, Rng& rng) {
    w.set_grad(Tensor::randn({3, 4}, rng));
    norm.set_grad(Tensor::randn({4}, rng));
    opt.step();
  }
};

std::vector<std::string> make_shards(const TempDir& tmp) {
  std::vector<int32_t> tokens(3000);
  Rng rng(11);
  for (auto& t : tokens) t = (int32_t)rng.randint(100);
  return data::write_shards(tmp.file("shards"), tokens, 100, 1000);
}

}  // namespace

TEST_CASE("checkpoint: round trip of parameters, moments, RNG and loader state") {
  TempDir tmp("ckpt_roundtrip");
  TinySetup a(1);
  AdamW opt_a(a.params(), AdamWConfig{1e-2});
  Rng rng(42);
  for (int i = 0; i < 3; ++i) a.fake_step(opt_a, rng);
  data::TokenLoader loader(make_shards(tmp), data::LoaderConfig{2, 16, 7});
  for (int i = 0; i < 3; ++i) loader.next_batch();

  TrainerState st;
  st.step = 3;
  st.tokens_seen = 3 * 2 * 16;
  st.rng = rng.state();
  st.rng[3] = 0xFFFFFFFFFFFFFFFFull;  // beyond int64 and beyond a double's 53 bits
  st.loader = loader.state();
  st.config_name = "tiny";
  st.extra.set("best_val_loss", 2.5);
  st.extra.set("note", "hello");
  const std::string dir = tmp.file("ckpt/step_3");
  save_checkpoint(dir, a.params(), &opt_a, st);
  CHECK(fs::exists(dir + "/model.safetensors"));
  CHECK(fs::exists(dir + "/optimizer.safetensors"));
  CHECK(fs::exists(dir + "/trainer_state.json"));
  CHECK_FALSE(fs::exists(dir + ".tmp"));
  CHECK(checkpoint_exists(dir));
  // The model file uses the caller's names.
  SafeTensorsFile model = read_safetensors(dir + "/model.safetensors");
  CHECK(model.contains("model.layers.0.mlp.up_proj.weight"));
  CHECK(model.contains("model.norm.weight"));

  TinySetup b(2);  // other initial values: the load must overwrite them
  AdamW opt_b(b.params(), AdamWConfig{1e-2});
  TrainerState got;
  load_checkpoint(dir, b.params(), &opt_b, got);
  CHECK(same_bits(a.w, b.w));
  CHECK(same_bits(a.norm, b.norm));
  for (size_t i = 0; i < 2; ++i) {
    CHECK(same_bits(opt_a.exp_avg(i), opt_b.exp_avg(i)));
    CHECK(same_bits(opt_a.exp_avg_sq(i), opt_b.exp_avg_sq(i)));
    CHECK(opt_b.param_step(i) == 3);
  }
  CHECK(opt_b.steps() == 3);
  CHECK(got.step == 3);
  CHECK(got.tokens_seen == 96);
  CHECK(got.rng == st.rng);
  REQUIRE(got.loader.has_value());
  CHECK(*got.loader == loader.state());
  CHECK(got.config_name == "tiny");
  CHECK(got.optimizer == "adamw");
  CHECK(got.extra.at("best_val_loss").get_double() == 2.5);
  CHECK(got.extra.at("note").get_string() == "hello");

  // The restored loader continues with the same batches.
  data::TokenLoader loader2(loader.shard_paths(), data::LoaderConfig{2, 16, 7});
  loader2.restore(*got.loader);
  CHECK(loader2.next_batch() == loader.next_batch());

  // Saving again over an existing checkpoint replaces it (a trailing '/' names the same directory).
  st.step = 4;
  save_checkpoint(dir + "/", a.params(), &opt_a, st);
  CHECK_FALSE(fs::exists(dir + "/.tmp"));
  load_checkpoint(dir, b.params(), &opt_b, got);
  CHECK(got.step == 4);
  CHECK_FALSE(fs::exists(dir + ".old"));
}

TEST_CASE("checkpoint: buffers (the MoE gate bias) are saved and loaded, and never reach the optimizer") {
  Rng rng(3);
  Transformer m(tiny_v3_args(), rng);
  NamedParameters params = m.named_parameters(), buffers = m.named_buffers(),
                  both = m.named_parameters_and_buffers();
  for (auto& [name, t] : params) CHECK_MESSAGE(name.find("gate.bias") == std::string::npos, name);
  REQUIRE(buffers.size() == 2);
  CHECK(buffers[0].first == "layers.1.ffn.gate.bias");
  CHECK(buffers[0].second == &m.layers[1]->moe->gate.bias);
  CHECK(buffers[1].first == "mtp.0.ffn.gate.bias");
  // The file order of the days when the bias was listed as a parameter: right after its gate's weight.
  REQUIRE(both.size() == params.size() + 2);
  auto index_of = [&](const std::string& name) {
    for (size_t i = 0; i < both.size(); ++i)
      if (both[i].first == name) return (int64_t)i;
    return (int64_t)-1;
  };
  CHECK(index_of("layers.1.ffn.gate.bias") == index_of("layers.1.ffn.gate.weight") + 1);
  CHECK(index_of("mtp.0.ffn.gate.bias") == index_of("mtp.0.ffn.gate.weight") + 1);
  AdamW opt(params, AdamWConfig{1e-2});
  for (auto& [name, t] : opt.params()) CHECK_MESSAGE(name.find("gate.bias") == std::string::npos, name);

  // Round trip through a checkpoint of the model: the biases come back.
  TempDir tmp("ckpt_buffers");
  m.layers[1]->moe->gate.bias.set_at({2}, 0.25);
  m.mtp[0]->block.moe->gate.bias.set_at({0}, -0.5);
  TrainerState st;
  st.step = 1;
  save_checkpoint(tmp.file("ckpt"), m, &opt, st);
  SafeTensorsFile file = read_safetensors(tmp.file("ckpt") + "/model.safetensors");
  CHECK(file.tensors.size() == both.size());
  CHECK(file.contains("layers.1.ffn.gate.bias"));
  Rng rng2(4);
  Transformer back(tiny_v3_args(), rng2);
  AdamW opt2(back.named_parameters(), AdamWConfig{1e-2});
  TrainerState got;
  load_checkpoint(tmp.file("ckpt"), back, &opt2, got);
  CHECK(back.layers[1]->moe->gate.bias.at({2}) == 0.25);
  CHECK(back.mtp[0]->block.moe->gate.bias.at({0}) == -0.5);
  CHECK(same_bits(back.embed.weight, m.embed.weight));

  // A checkpoint of the parameters alone is not a checkpoint of this model: the error names the buffer.
  save_checkpoint(tmp.file("params_only"), params, &opt, st);
  CHECK(error_of([&] { load_checkpoint(tmp.file("params_only"), back, &opt2, got); })
            .find("no tensor 'layers.1.ffn.gate.bias'") != std::string::npos);
}

TEST_CASE("adamw: a tiny Transformer's decay set is exactly its Linear and gate matrices") {
  Rng rng(5);
  Transformer m(tiny_v3_args(), rng);
  AdamW opt(m.named_parameters(), AdamWConfig{});
  // The expected set, written out from the architecture (models/transformer.h): MLA projections,
  // SwiGLU matrices (dense FFN, routed and shared experts), the MoE gate, the head, MTP's eh_proj.
  std::set<std::string> expect = {"head.weight", "mtp.0.eh_proj.weight"};
  for (const std::string L : {"layers.0.", "layers.1.", "mtp.0."})
    for (const char* w : {"wq_a", "wq_b", "wkv_a", "wkv_b", "wo"}) expect.insert(L + "attn." + w + ".weight");
  for (const char* w : {"w1", "w2", "w3"}) expect.insert(std::string("layers.0.ffn.") + w + ".weight");
  for (const std::string L : {"layers.1.", "mtp.0."}) {
    expect.insert(L + "ffn.gate.weight");
    for (const char* w : {"w1", "w2", "w3"}) {
      for (int e = 0; e < 4; ++e) expect.insert(L + "ffn.experts." + std::to_string(e) + "." + w + ".weight");
      expect.insert(L + "ffn.shared_experts." + w + ".weight");
    }
  }
  std::set<std::string> decayed, kept;
  for (size_t i = 0; i < opt.params().size(); ++i) (opt.decays(i) ? decayed : kept).insert(opt.params()[i].first);
  CHECK(decayed == expect);
  // Not decayed: the embedding and every norm scale (kinds embedding and norm); the gate biases are
  // buffers and not in the list at all.
  CHECK(kept == std::set<std::string>{"embed.weight", "norm.weight", "layers.0.attn_norm.weight",
                                      "layers.0.ffn_norm.weight", "layers.0.attn.q_norm.weight",
                                      "layers.0.attn.kv_norm.weight", "layers.1.attn_norm.weight",
                                      "layers.1.ffn_norm.weight", "layers.1.attn.q_norm.weight",
                                      "layers.1.attn.kv_norm.weight", "mtp.0.enorm.weight", "mtp.0.hnorm.weight",
                                      "mtp.0.attn_norm.weight", "mtp.0.ffn_norm.weight", "mtp.0.attn.q_norm.weight",
                                      "mtp.0.attn.kv_norm.weight", "mtp.0.shared_head.norm.weight"});
  CHECK(m.embed.weight.param_kind() == ParamKind::embedding);
  for (auto& [name, t] : m.named_buffers()) CHECK_MESSAGE(t->param_kind() == ParamKind::buffer, name);
  // DSA's LayerNorm (the indexer's k_norm): a norm scale and a bias, neither decayed.
  LayerNorm ln(4);
  NamedParameters lp = ln.named_parameters("k_norm");
  REQUIRE(lp.size() == 2);
  CHECK(lp[0].second->param_kind() == ParamKind::norm);
  CHECK(lp[1].second->param_kind() == ParamKind::bias);
  CHECK_FALSE(decay_weights_only(lp[1].first, *lp[1].second));
}

TEST_CASE("checkpoint: a failed save leaves the previous checkpoint intact") {
  TempDir tmp("ckpt_atomic");
  TinySetup a(1);
  AdamW opt(a.params(), AdamWConfig{1e-2});
  Rng rng(5);
  a.fake_step(opt, rng);
  TrainerState st;
  st.step = 1;
  const std::string dir = tmp.file("ckpt");
  save_checkpoint(dir, a.params(), &opt, st);
  const std::string model_before = slurp(dir + "/model.safetensors");
  const std::string state_before = slurp(dir + "/trainer_state.json");

  // A parameter that cannot be written (an i64 tensor) makes the save throw half way: the model
  // file of the new checkpoint is never completed.
  a.fake_step(opt, rng);
  st.step = 2;
  Tensor ids = Tensor::from_vector(std::vector<int64_t>{1, 2, 3}, {3});
  NamedParameters bad = a.params();
  bad.push_back({"token_ids", &ids});
  CHECK(error_of([&] { save_checkpoint(dir, bad, &opt, st); }).find("'token_ids'") != std::string::npos);
  CHECK(slurp(dir + "/model.safetensors") == model_before);
  CHECK(slurp(dir + "/trainer_state.json") == state_before);
  CHECK_FALSE(fs::exists(dir + ".tmp"));

  // A failure after model.safetensors was written into <dir>.tmp: the optimizer's state cannot be
  // produced (think: out of memory, disk full). Same outcome.
  struct FailingOptimizer : Optimizer {
    explicit FailingOptimizer(NamedParameters p) : Optimizer(std::move(p), "failing") {}
    const char* kind() const override { return "failing"; }
    void step(double) override {}
    std::vector<StTensor> state_tensors() const override { throw std::runtime_error("simulated: disk full"); }
    void load_state(const SafeTensorsFile&) override {}
  };
  FailingOptimizer failing(a.params());
  CHECK(error_of([&] { save_checkpoint(dir, a.params(), &failing, st); }) == "simulated: disk full");
  CHECK(slurp(dir + "/model.safetensors") == model_before);
  CHECK(slurp(dir + "/trainer_state.json") == state_before);
  CHECK_FALSE(fs::exists(dir + ".tmp"));

  // A leftover .tmp from a crashed save is cleared by the next save; a crash between the two
  // renames leaves <dir>.old, which load_checkpoint reads and the next save puts back.
  fs::create_directories(dir + ".tmp/junk");
  st.step = 3;
  save_checkpoint(dir, a.params(), &opt, st);
  CHECK_FALSE(fs::exists(dir + ".tmp"));
  fs::rename(dir, dir + ".old");
  TinySetup b(9);
  AdamW opt_b(b.params(), AdamWConfig{1e-2});
  TrainerState got;
  load_checkpoint(dir, b.params(), &opt_b, got);
  CHECK(got.step == 3);
  CHECK(same_bits(a.w, b.w));
  CHECK(checkpoint_exists(dir));

  // A directory that is not a checkpoint is never replaced.
  fs::create_directories(tmp.file("run"));
  std::ofstream(tmp.file("run/metrics.csv")) << "step,loss\n";
  CHECK(error_of([&] { save_checkpoint(tmp.file("run"), a.params(), &opt, st); })
            .find("exists and is not a checkpoint") != std::string::npos);
  CHECK(fs::exists(tmp.file("run/metrics.csv")));
}

TEST_CASE("checkpoint: load errors name the file and what is wrong") {
  TempDir tmp("ckpt_errors");
  TinySetup a(1);
  AdamW opt(a.params(), AdamWConfig{1e-2});
  TrainerState st;
  const std::string dir = tmp.file("ckpt");
  save_checkpoint(dir, a.params(), &opt, st);
  TrainerState got;

  SUBCASE("missing directory") {
    const std::string e = error_of([&] { load_checkpoint(tmp.file("nope"), a.params(), &opt, got); });
    CHECK(e.find("[checkpoint]") == 0);
    CHECK(e.find("nope: no such checkpoint directory") != std::string::npos);
  }
  SUBCASE("truncated model.safetensors") {
    fs::resize_file(dir + "/model.safetensors", fs::file_size(dir + "/model.safetensors") - 10);
    TinySetup b(2);
    const std::string before = std::string((const char*)b.w.raw_data(), 48);
    const std::string e = error_of([&] { load_checkpoint(dir, b.params(), &opt, got); });
    CHECK(e.find("[checkpoint] " + dir + "/model.safetensors") == 0);
    CHECK(e.find("[safetensors]") != std::string::npos);  // the reader's own reason follows
    CHECK(std::string((const char*)b.w.raw_data(), 48) == before);  // nothing was changed
  }
  SUBCASE("missing optimizer file") {
    fs::remove(dir + "/optimizer.safetensors");
    const std::string e = error_of([&] { load_checkpoint(dir, a.params(), &opt, got); });
    CHECK(e.find(dir + "/optimizer.safetensors: missing file") != std::string::npos);
    load_checkpoint(dir, a.params(), nullptr, got);  // without an optimizer it is not needed
  }
  SUBCASE("missing tensor and shape mismatch") {
    Tensor extra = Tensor::zeros({2}).requires_grad_(true);
    NamedParameters more = a.params();
    more.push_back({"model.layers.0.mlp.down_proj.weight", &extra});
    std::string e = error_of([&] { load_checkpoint(dir, more, nullptr, got); });
    CHECK(e.find("model.safetensors: no tensor 'model.layers.0.mlp.down_proj.weight'") != std::string::npos);
    Tensor wrong = Tensor::zeros({4, 3}).requires_grad_(true);
    NamedParameters swapped = {{"model.layers.0.mlp.up_proj.weight", &wrong}, {"model.norm.weight", &a.norm}};
    e = error_of([&] { load_checkpoint(dir, swapped, nullptr, got); });
    CHECK(e.find("tensor 'model.layers.0.mlp.up_proj.weight' has shape [3,4] but the parameter has shape (4, 3)") !=
          std::string::npos);
    // A tensor the caller did not ask for.
    NamedParameters fewer = {{"model.norm.weight", &a.norm}};
    e = error_of([&] { load_checkpoint(dir, fewer, nullptr, got); });
    CHECK(e.find("'model.layers.0.mlp.up_proj.weight' matches no parameter") != std::string::npos);
  }
  SUBCASE("optimizer kind mismatch") {
    SGD sgd(a.params(), SGDConfig{});
    const std::string e = error_of([&] { load_checkpoint(dir, a.params(), &sgd, got); });
    CHECK(e.find("written by optimizer 'adamw', loading into 'sgd'") != std::string::npos);
  }
  SUBCASE("trainer_state.json with a bad value") {
    st.extra = Json(3);
    save_checkpoint(dir, a.params(), &opt, st);  // written as given...
    const std::string e = error_of([&] { load_checkpoint(dir, a.params(), &opt, got); });
    CHECK(e.find("[checkpoint] " + dir + "/trainer_state.json") == 0);  // ...refused on load, naming the key
    CHECK(e.find("\"extra\" should be an object") != std::string::npos);
  }
  SUBCASE("broken trainer_state.json") {
    std::ofstream(dir + "/trainer_state.json") << "{\"format\": ";
    const std::string e = error_of([&] { load_checkpoint(dir, a.params(), &opt, got); });
    CHECK(e.find("[checkpoint] " + dir + "/trainer_state.json") == 0);
  }
}

TEST_CASE("checkpoint: resume is bit-identical") {
  // A 2-layer MLP y = W2 · silu(W1 · x) fitted to a fixed random teacher, loss = mean((y − t)²),
  // AdamW + warmup/cosine + clipping, a fresh batch from the data Rng each step.
  // 10 steps straight vs 5 steps + save + load into fresh objects + 5 steps: equal bit for bit.
  TempDir tmp("resume");
  struct Run {
    Tensor w1, w2, norm_gain;
    Rng data_rng{123};
    std::unique_ptr<AdamW> opt;
    LrSchedule sched = LrSchedule::warmup_cosine(3e-2, 3e-3, 3, 10);
    int64_t step = 0;
    NamedParameters params() { return {{"w1.weight", &w1}, {"w2.weight", &w2}, {"norm.weight", &norm_gain}}; }
    explicit Run(uint64_t init_seed) {
      Rng init(init_seed);
      w1 = Tensor::randn({16, 8}, init, 0.3).requires_grad_(true);
      w2 = Tensor::randn({1, 16}, init, 0.3).requires_grad_(true);
      norm_gain = Tensor::ones({16}).requires_grad_(true);
      opt = std::make_unique<AdamW>(params(), AdamWConfig{3e-2});
    }
    void train_step() {
      Tensor x = Tensor::randn({32, 8}, data_rng);
      Rng teacher(999);  // the same teacher every step
      Tensor wt = Tensor::randn({1, 8}, teacher);
      Tensor target = linear(x, wt);
      Tensor y = linear(silu(linear(x, w1)) * norm_gain, w2);
      Tensor loss = mean(square(y - target));
      zero_grad(params());
      loss.backward();
      clip_grad_norm(params(), 1.0);
      opt->step(sched.lr_at(step));
      ++step;
    }
  };

  Run straight(1);
  for (int i = 0; i < 10; ++i) straight.train_step();

  Run first(1);
  for (int i = 0; i < 5; ++i) first.train_step();
  TrainerState st;
  st.step = first.step;
  st.rng = first.data_rng.state();
  save_checkpoint(tmp.file("ckpt"), first.params(), first.opt.get(), st);

  Run resumed(77);  // different initial weights and RNG: everything must come from the checkpoint
  TrainerState got;
  load_checkpoint(tmp.file("ckpt"), resumed.params(), resumed.opt.get(), got);
  resumed.step = got.step;
  resumed.data_rng.set_state(got.rng);
  for (int i = 0; i < 5; ++i) resumed.train_step();

  CHECK(same_bits(straight.w1, resumed.w1));
  CHECK(same_bits(straight.w2, resumed.w2));
  CHECK(same_bits(straight.norm_gain, resumed.norm_gain));
  for (size_t i = 0; i < 3; ++i) {
    CHECK(same_bits(straight.opt->exp_avg(i), resumed.opt->exp_avg(i)));
    CHECK(same_bits(straight.opt->exp_avg_sq(i), resumed.opt->exp_avg_sq(i)));
  }
  CHECK(straight.data_rng.state() == resumed.data_rng.state());
  // And training did something (the check above is not comparing two untouched models).
  Run untouched(1);
  CHECK_FALSE(same_bits(straight.w1, untouched.w1));
}

// ---- metrics.csv ------------------------------------------------------------------------------

TEST_CASE("metrics: header once, rows appended and flushed, resume truncation") {
  TempDir tmp("metrics");
  const std::string path = tmp.file("run/metrics.csv");
  {
    MetricsLogger log(path, {"step", "loss", "lr"});
    log.log({1, 4.5, 1e-3});
    log.log({2, 4.25, 1e-3});
    // Flushed per row: visible before the logger is closed.
    CHECK(slurp(path) == "step,loss,lr\n1,4.5,0.001\n2,4.25,0.001\n");
    log.log({3, NAN, 5e-4});
    CHECK(error_of([&] { log.log({4, 1}); }).find("2 values for 3 columns") != std::string::npos);
  }
  {
    MetricsLogger log(path, {"step", "loss", "lr"});  // a resumed run appends, no second header
    log.truncate_after(2);                             // the checkpoint was at step 2
    log.log({3, 4.0, 5e-4});
    log.log({4, 0.1 + 0.2, 2.5e-4});
  }
  CHECK(slurp(path) == "step,loss,lr\n1,4.5,0.001\n2,4.25,0.001\n3,4,5e-04\n4,0.30000000000000004,0.00025\n");
  MetricsTable t = read_metrics_csv(path);
  CHECK(t.columns == std::vector<std::string>{"step", "loss", "lr"});
  CHECK(t.rows.size() == 4);
  CHECK(t.column("loss")[3] == 0.1 + 0.2);  // round-trips exactly
  CHECK(error_of([&] { t.column("acc"); }).find("no column 'acc'") != std::string::npos);
  CHECK(error_of([&] { MetricsLogger(path, {"step", "reward"}); }).find("differs from the columns") !=
        std::string::npos);
}

// ---- plots ------------------------------------------------------------------------------------

namespace {

uint32_t be32(const std::string& s, size_t at) {
  return ((uint32_t)(uint8_t)s[at] << 24) | ((uint32_t)(uint8_t)s[at + 1] << 16) | ((uint32_t)(uint8_t)s[at + 2] << 8) |
         (uint32_t)(uint8_t)s[at + 3];
}

// Rows of the image holding at least `min_run` pixels of exactly color c.
int rows_with(const Image& img, Rgb c, int min_run) {
  int rows = 0;
  for (int y = 0; y < img.height; ++y) {
    int n = 0;
    for (int x = 0; x < img.width; ++x) n += img.pixel(x, y) == c;
    rows += n >= min_run;
  }
  return rows;
}

Image decode_png(const std::string& path) {
  int w = 0, h = 0, comp = 0;
  unsigned char* px = stbi_load(path.c_str(), &w, &h, &comp, 3);
  REQUIRE(px != nullptr);
  Image img(w, h);
  std::memcpy(img.rgb.data(), px, (size_t)w * h * 3);
  stbi_image_free(px);
  return img;
}

}  // namespace

TEST_CASE("plot: line plot PNG with the ln(V) chance line") {
  TempDir tmp("plot");
  Series loss{"train loss", {}, {}, colors::blue};
  Series val{"val loss", {}, {}, colors::orange};
  for (int s = 0; s <= 200; ++s) {
    loss.xs.push_back(s);
    loss.ys.push_back(1.5 + 3.0 * std::exp(-s / 40.0));
    if (s % 20 == 0) val.xs.push_back(s), val.ys.push_back(1.7 + 3.0 * std::exp(-s / 40.0));
  }
  const Rgb chance_color{200, 0, 200};
  LinePlotOptions opt;
  opt.title = "pretrain loss";
  opt.y_label = "loss";
  opt.reference = ReferenceLine{std::log(256.0), "ln(V) chance", chance_color};
  opt.width = 640;
  opt.height = 400;
  const std::string path = tmp.file("plots/loss.png");
  write_line_plot_png(path, {loss, val}, opt);
  CHECK_FALSE(fs::exists(path + ".tmp"));

  const std::string png = slurp(path);
  REQUIRE(png.size() > 33);
  CHECK(png.substr(0, 8) == std::string("\x89PNG\r\n\x1a\n", 8));
  CHECK(png.substr(12, 4) == "IHDR");
  CHECK(be32(png, 16) == 640);
  CHECK(be32(png, 20) == 400);

  const Image img = decode_png(path);
  CHECK(img.width == 640);
  CHECK(img.height == 400);
  CHECK(img.rgb == render_line_plot({loss, val}, opt).rgb);  // the file holds what was drawn
  // The dashed reference line: a row with many pixels of its color (the legend sample is short).
  CHECK(rows_with(img, chance_color, 150) >= 1);
  CHECK(img.contains(colors::blue));
  CHECK(img.contains(colors::orange));
  CHECK(img.pixel(5, 5) == colors::white);

  // The reference line sits where ln(256) = 5.545 maps: above the loss curve, so its row is above
  // (a smaller y than) the curve's pixels.
  int ref_row = -1, top_blue = img.height;
  for (int y = 0; y < img.height && ref_row < 0; ++y) {
    int n = 0;
    for (int x = 0; x < img.width; ++x) n += img.pixel(x, y) == chance_color;
    if (n >= 150) ref_row = y;
  }
  for (int y = 0; y < img.height; ++y)  // column 350 is step ~99, loss ~1.75, away from any legend corner
    if (img.pixel(350, y) == colors::blue && y < top_blue) top_blue = y;
  CHECK(ref_row >= 0);
  CHECK(ref_row < top_blue);

  // Log-y, NaN points and the short form do not throw; an empty plot is still a PNG.
  loss.ys[10] = NAN;
  write_line_plot_png(tmp.file("log.png"), {loss}, "log loss", std::nullopt, true);
  CHECK(slurp(tmp.file("log.png")).substr(1, 3) == "PNG");
  write_line_plot_png(tmp.file("empty.png"), {}, "nothing");
  CHECK(slurp(tmp.file("empty.png")).substr(1, 3) == "PNG");
  CHECK(error_of([&] { write_line_plot_png(tmp.file("bad.png"), {Series{"x", {1, 2}, {1}}}, "t"); })
            .find("series 'x' has 2 x and 1 y values") != std::string::npos);
}

TEST_CASE("plot: bar chart, histogram and text") {
  TempDir tmp("bars");
  std::vector<double> load = {120, 80, 100, 95, 130, 75, 110, 90};
  BarChartOptions opt;
  opt.title = "expert load";
  opt.color = colors::green;
  opt.reference = ReferenceLine{100, "mean", colors::red};
  write_bar_chart_png(tmp.file("load.png"), load, opt);
  const Image img = decode_png(tmp.file("load.png"));
  CHECK(img.width == 800);
  CHECK(rows_with(img, colors::green, 200) > 50);  // the bars
  CHECK(rows_with(img, colors::red, 150) >= 1);    // the mean line

  CHECK(histogram({0.05, 0.15, 0.15, 0.95, 2.0, -1.0, NAN}, 10, 0.0, 1.0) ==
        std::vector<double>{2, 2, 0, 0, 0, 0, 0, 0, 0, 2});
  CHECK(bin_labels(4, 0, 1) == std::vector<std::string>{"0", "0.25", "0.5", "0.75"});

  // The font: "1" is 5 pixels wide, 6 apart; a glyph sets the pixels of its bitmap.
  Image t(20, 10);
  draw_text(t, 0, 0, "1", colors::black);
  CHECK(t.pixel(2, 0) == colors::black);  // the top of '1' (0x04: the middle column)
  CHECK(t.pixel(0, 0) == colors::white);
  CHECK(t.pixel(1, 6) == colors::black);  // the foot (0x0E)
  CHECK(text_width("ab", 1) == 11);
  CHECK(text_width("ab", 2) == 22);
}

// ---- progress line ----------------------------------------------------------------------------

TEST_CASE("progress: the line and its non-terminal output") {
  CHECK(ProgressBar::format("pretrain", 512, 2000, 41234, 3.217, 72, "lr 3e-04", 48 << 20) ==
        "pretrain [####............] 512/2000  25.6%  41.2k tok/s  loss 3.2170  lr 3e-04  mem 48.0 MiB  ETA 1m12s");
  CHECK(ProgressBar::format("", 1, 10, -1, 9.0, -1, "") == "[#...............] 1/10  10.0%  - tok/s  loss 9.0000  ETA -");
  CHECK(ProgressBar::format_duration(7325) == "2h02m");
  CHECK(ProgressBar::format_duration(42) == "42s");

  std::FILE* f = std::tmpfile();
  REQUIRE(f);
  {
    ProgressBar bar(25, "sft", 10, f);
    CHECK_FALSE(bar.is_tty());
    for (int s = 1; s <= 25; ++s) bar.update(s, s * 100, 1.0 / s);
  }
  std::rewind(f);
  std::string out;
  char buf[512];
  while (std::fgets(buf, sizeof buf, f)) out += buf;
  std::fclose(f);
  // Steps 10, 20 and the last (25): three lines, no carriage returns.
  CHECK(std::count(out.begin(), out.end(), '\n') == 3);
  CHECK(out.find('\r') == std::string::npos);
  CHECK(out.find("sft [######..........] 10/25") == 0);
  CHECK(out.find("25/25  100.0%") != std::string::npos);
  CHECK(out.find(" MiB  ETA ") != std::string::npos);
}
