// tests/models/test_fp8_model.cpp — FP8 in a whole model (models/fp8_model.h, ModelArgs::fp8):
//   * exactly the linears DeepSeek quantizes get FP8 (attention projections, experts, dense MLPs), not the
//     embedding, head, gate or norms;
//   * fp8: true logits stay within a few percent of the f32 model with the same weights;
//   * a short FP8 training run stays finite, learns, and ends within a stated margin of the same run in f32;
//   * an FP8-stored model (codes + block scales) runs on its codes and dequantizes exactly.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "autograd/node.h"
#include "autograd/rng.h"
#include "models/fp8_model.h"
#include "models/transformer.h"
#include "ops/ops.h"
#include "tests/test_util.h"

using namespace sg;

namespace {

ModelArgs fp8_tiny_args(bool fp8) {
  ModelArgs a;
  a.vocab_size = 32;
  a.dim = 32;
  a.inter_dim = 64;
  a.moe_inter_dim = 16;
  a.n_layers = 2;
  a.n_dense_layers = 1;
  a.n_heads = 2;
  a.n_routed_experts = 4;
  a.n_shared_experts = 1;
  a.n_activated_experts = 2;
  a.q_lora_rank = 16;
  a.kv_lora_rank = 16;
  a.qk_nope_head_dim = 8;
  a.qk_rope_head_dim = 4;
  a.v_head_dim = 8;
  a.max_seq_len = 32;
  a.original_seq_len = 32;
  a.fp8 = fp8;
  return a;
}

double rel_error(const Tensor& a, const Tensor& b) {
  std::vector<double> x = a.to_f64_vector(), y = b.to_f64_vector();
  double num = 0, den = 0;
  for (size_t i = 0; i < x.size(); i++) num += (x[i] - y[i]) * (x[i] - y[i]), den += y[i] * y[i];
  return std::sqrt(num / den);
}

// Sequences that count upward mod V from a random start: learnable in a few dozen steps.
void counting_batch(Rng& rng, int64_t B, int64_t T, int64_t V, Tensor& tokens, Tensor& targets) {
  std::vector<int64_t> x, y;
  for (int64_t b = 0; b < B; b++) {
    int64_t s = (int64_t)(rng.uniform() * V);
    for (int64_t t = 0; t < T; t++) x.push_back((s + t) % V), y.push_back((s + t + 1) % V);
  }
  tokens = Tensor::from_vector(x, {B, T});
  targets = Tensor::from_vector(y, {B, T});
}

// Plain SGD for `steps` steps; returns the losses.
std::vector<double> train(Transformer& m, int steps, double lr) {
  Rng data(7);
  std::vector<double> losses;
  NamedParameters params = m.named_parameters();
  for (int s = 0; s < steps; s++) {
    Tensor tokens, targets;
    counting_batch(data, 4, 12, m.args.vocab_size, tokens, targets);
    for (auto& [n, p] : params) p->zero_grad();
    Tensor loss = m.loss(tokens, targets, 0.0, 0.0).loss;
    loss.backward();
    losses.push_back(loss.item());
    NoGradGuard g;
    for (auto& [n, p] : params) {
      if (!p->grad().defined()) continue;
      float* w = p->data<float>();
      std::vector<float> gv = p->grad().to_f32_vector();
      for (size_t i = 0; i < gv.size(); i++) w[i] -= (float)lr * gv[i];
    }
  }
  return losses;
}

}  // namespace

TEST_CASE("fp8 model: the FP8 linears are the ones DeepSeek quantizes") {
  Rng rng(1);
  Transformer m(fp8_tiny_args(true), rng);
  auto lin = fp8_linears(m);
  // layer 0: wq_a wq_b wkv_a wkv_b wo + dense w1 w2 w3 = 8; layer 1: 5 + 4 experts·3 + shared·3 = 20
  CHECK(lin.size() == 28);
  CHECK(lin.front().first == "layers.0.attn.wq_a");
  CHECK(lin.back().first == "layers.1.ffn.shared_experts.w3");
  for (auto& [name, l] : lin) CHECK_MESSAGE(l->fp8, name);
  CHECK(!m.head.fp8);
  for (auto& [name, l] : lin) CHECK(name.find("gate") == std::string::npos);  // the MoE gate is not an FP8 linear
}

TEST_CASE("fp8 model: fp8 logits are close to the f32 model's; FP8 training learns like f32") {
  Rng r1(2), r2(2);
  Transformer f32(fp8_tiny_args(false), r1), f8(fp8_tiny_args(true), r2);
  Rng data(3);
  Tensor tokens, targets;
  counting_batch(data, 2, 12, 32, tokens, targets);
  {
    NoGradGuard g;
    const double e = rel_error(f8.forward(tokens), f32.forward(tokens));
    MESSAGE("fp8 vs f32 logits, same weights: relative error " << e);
    // each quantized GEMM adds ~3.6% RMS relative error (E4M3: 2^-4/sqrt(3) per operand, averaged); a few of
    // them in series through 2 blocks give several percent at the logits
    CHECK(e > 1e-5);
    CHECK(e < 0.15);
  }
  const int steps = 40;
  std::vector<double> l32 = train(f32, steps, 0.5), l8 = train(f8, steps, 0.5);
  double tail32 = 0, tail8 = 0;
  for (int s = steps - 5; s < steps; s++) tail32 += l32[s] / 5, tail8 += l8[s] / 5;
  MESSAGE("SGD " << steps << " steps: f32 loss " << l32[0] << " -> " << tail32 << ", fp8 " << l8[0] << " -> " << tail8
                 << " (gap " << tail8 - tail32 << ")");
  for (double l : l8) REQUIRE(std::isfinite(l));
  CHECK(tail8 < l8[0] - 1.0);           // it learns
  CHECK(std::abs(tail8 - tail32) < 0.1);  // within 0.1 nats of the f32 run
}

TEST_CASE("fp8 model: FP8-stored weights run on their codes and dequantize exactly") {
  Rng rng(4);
  Transformer m(fp8_tiny_args(false), rng);
  Rng data(5);
  Tensor tokens, targets;
  counting_batch(data, 2, 8, 32, tokens, targets);
  NoGradGuard g;
  Tensor ref = m.forward(tokens);
  CHECK(quantize_fp8_linears(m) == 28);
  CHECK(count_fp8_weights(m) == 28);
  Linear& wq_a = m.layers[0]->attn->wq_a;
  CHECK(wq_a.weight.dtype() == DType::f8e4m3);
  CHECK(wq_a.scale.shape() == Shape{1, 1});
  Tensor stored = m.forward(tokens);
  const double e = rel_error(stored, ref);
  MESSAGE("FP8-stored weights (act_quant + fp8_gemm) vs f32: relative logit error " << e);
  CHECK(e < 0.15);
  CHECK(e > 1e-5);
  Tensor dense = wq_a.dense_weight();
  CHECK(dequantize_fp8_linears(m) == 28);
  CHECK(test::max_abs_diff(wq_a.weight, dense) == 0.0);
  CHECK(count_fp8_weights(m) == 0);
}
