// tests/cuda/model_check.h — a whole Transformer on Device::CUDA against the same model on the CPU, in whatever CUDA
// mode the caller set (tests/cuda/test_dispatch_model_emu.cpp: the emulation; test_dispatch_gpu.cpp: a real GPU):
// two copies of one tiny DeepSeek-V3 shaped model (the same seed), one moved to CUDA (every parameter, buffer and
// the rope table), must give the same loss and parameter gradients within `tol` of each tensor's max |want|, and one
// clip + AdamW step must move their weights alike. (doctest must be included first.)
#pragma once
#include <chrono>
#include <cmath>
#include <string>
#include <vector>

#include "autograd/device.h"
#include "models/transformer.h"
#include "ops/ops.h"
#include "train/clip.h"
#include "train/optim.h"

namespace sg::test::model {

using namespace sg;

inline ModelArgs tiny_args(bool moe) {
  ModelArgs a;
  a.vocab_size = 32;
  a.dim = 16;
  a.inter_dim = 32;
  a.moe_inter_dim = 16;
  a.n_layers = moe ? 2 : 1;
  a.n_dense_layers = 1;
  a.n_heads = 2;
  a.n_routed_experts = 4;
  a.n_shared_experts = 1;
  a.n_activated_experts = 2;
  a.score_func = "sigmoid";
  a.gate_bias = moe;
  a.q_lora_rank = moe ? 8 : 0;
  a.kv_lora_rank = 8;
  a.qk_nope_head_dim = 8;
  a.qk_rope_head_dim = 4;
  a.v_head_dim = 8;
  a.max_seq_len = 8;
  a.original_seq_len = 8;
  a.max_batch_size = 2;
  a.n_mtp_modules = moe ? 1 : 0;
  a.validate("tiny_args");
  return a;
}

inline double max_abs(const std::vector<double>& v) {
  double m = 0;
  for (double x : v) m = std::max(m, std::abs(x));
  return m;
}

// |got - want| <= tol · max|want| elementwise; returns the worst error relative to max|want|.
inline double check_scaled(const Tensor& got, const Tensor& want, double tol, const std::string& what) {
  INFO(what);
  REQUIRE(got.defined());
  REQUIRE(want.defined());
  REQUIRE(got.shape() == want.shape());
  const std::vector<double> g = got.to_f64_vector(), w = want.to_f64_vector();
  const double scale = std::max(max_abs(w), 1e-30);
  double worst = 0;
  for (size_t i = 0; i < g.size(); i++) worst = std::max(worst, std::abs(g[i] - w[i]) / scale);
  INFO("worst |got - want| / max|want| = " << worst << " (max|want| " << scale << ")");
  CHECK(worst <= tol);
  return worst;
}

inline void check_model(bool moe, double tol = 1e-4) {
  const ModelArgs args = tiny_args(moe);
  Rng init_a(7), init_b(7);
  Transformer cpu_model(args, init_a), cuda_model(args, init_b);
  cuda_model.to(Device::CUDA);  // every parameter, buffer and the rope table
  Rng data(11);
  Tensor tokens = Tensor::randint({2, 4}, data, 0, args.vocab_size);
  Tensor targets = Tensor::randint({2, 4}, data, 0, args.vocab_size);
  targets.set_at({1, 3}, -100);  // an ignored target

  const double mtp_lambda = 0.3, balance_alpha = 1e-2;
  const auto t0 = std::chrono::steady_clock::now();
  LossOutput want = cpu_model.loss(tokens, targets, mtp_lambda, balance_alpha);
  want.loss.backward();
  const auto t1 = std::chrono::steady_clock::now();
  LossOutput got = cuda_model.loss(tokens.to(Device::CUDA), targets.to(Device::CUDA), mtp_lambda, balance_alpha);
  CHECK(got.loss.device() == Device::CUDA);
  got.loss.backward();
  const auto t2 = std::chrono::steady_clock::now();
  MESSAGE(std::string(moe ? "MoE + MTP" : "dense") << " model forward + backward: CPU "
                                                   << std::chrono::duration<double>(t1 - t0).count() << " s, CUDA ("
                                                   << std::string(cuda_emulation() ? "emulated" : "GPU") << ") "
                                                   << std::chrono::duration<double>(t2 - t1).count() << " s");
  CHECK(got.expert_loads == want.expert_loads);  // the same routing
  double worst = check_scaled(got.loss, want.loss, tol / 10, "loss");
  if (moe) {
    worst = std::max(worst, check_scaled(got.main_loss, want.main_loss, tol / 10, "main loss"));
    REQUIRE(got.mtp_losses.size() == 1);
    worst = std::max(worst, check_scaled(got.mtp_losses[0], want.mtp_losses[0], tol / 10, "mtp loss"));
    worst = std::max(worst, check_scaled(got.balance_loss, want.balance_loss, tol / 10, "balance loss"));
  }

  NamedParameters pc = cpu_model.named_parameters(), pg = cuda_model.named_parameters();
  REQUIRE(pc.size() == pg.size());
  int with_grad = 0;
  for (size_t i = 0; i < pc.size(); i++) {
    CAPTURE(pc[i].first);
    CHECK(pg[i].second->device() == Device::CUDA);
    REQUIRE(pc[i].second->grad().defined() == pg[i].second->grad().defined());
    if (!pc[i].second->grad().defined()) continue;
    with_grad++;
    CHECK(pg[i].second->grad().device() == Device::CUDA);
    worst = std::max(worst, check_scaled(pg[i].second->grad(), pc[i].second->grad(), tol, "grad of " + pc[i].first));
  }
  CHECK(with_grad > 0);

  // One training step where the parameters live: clipping (grad norm on the device) and AdamW.
  const double norm_cpu = clip_grad_norm(pc, 0.5), norm_cuda = clip_grad_norm(pg, 0.5);
  CHECK(std::abs(norm_cuda - norm_cpu) <= tol * norm_cpu);
  // eps 1e-3: AdamW's first step is lr·g/(|g| + eps), which for |g| << eps would amplify a gradient's last-bit
  // difference into ±lr (a sign); with eps 1e-3 the step is at most lr/eps = 10 times the gradient's difference.
  AdamWConfig cfg;
  cfg.weight_decay = 0.1;
  cfg.eps = 1e-3;
  AdamW opt_cpu(pc, cfg), opt_cuda(pg, cfg);
  opt_cpu.step(1e-2);
  opt_cuda.step(1e-2);
  for (size_t i = 0; i < pc.size(); i++)
    worst = std::max(worst, check_scaled(*pg[i].second, *pc[i].second, tol, "stepped " + pc[i].first));
  MESSAGE("worst relative difference over the loss, " << with_grad << " gradients and the stepped weights: " << worst);
}

}  // namespace sg::test::model
