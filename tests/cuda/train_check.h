// tests/cuda/train_check.h — pretraining with train.device: cuda against the same run on the CPU, in whatever CUDA
// mode the caller set (test_train_device_emu.cpp: the emulation; test_train_device_gpu.cpp: a real GPU). A micro
// DeepSeek-V3 shaped model trains 4 steps on both; the losses, gradient norms, expert loads, validation losses and
// the checkpointed parameters must agree (the runs execute different kernels: ~1e-6 relative per step, carried along
// by training; bounded by 1e-4 relative, the measured worst printed). (doctest must be included first.)
#pragma once
#include <algorithm>
#include <cmath>
#include <sstream>
#include <string>

#include "autograd/device.h"
#include "models/safetensors.h"
#include "tests/data/temp_dir.h"
#include "train/config_yaml.h"
#include "train/metrics.h"
#include "train/pretrain.h"

namespace sg::test::train {

using namespace sg;
using sg::data::testing::TempDir;

// A micro DeepSeek-V3 shaped model (MLA with q-LoRA, 1 dense + 1 MoE layer with a biased sigmoid gate, 1 MTP
// module) on a few generated stories: small enough that four emulated steps take seconds.
inline std::string micro_yaml(const std::string& out_dir, const std::string& device) {
  return "model:\n"
         "  vocab_size: 300\n  dim: 16\n  n_layers: 2\n  n_dense_layers: 1\n  inter_dim: 32\n  n_heads: 2\n"
         "  q_lora_rank: 8\n  kv_lora_rank: 8\n  qk_nope_head_dim: 8\n  qk_rope_head_dim: 4\n  v_head_dim: 8\n"
         "  n_routed_experts: 4\n  n_shared_experts: 1\n  n_activated_experts: 2\n  moe_inter_dim: 16\n"
         "  score_func: sigmoid\n  gate_bias: true\n  n_mtp_modules: 1\n"
         "  max_batch_size: 2\n  max_seq_len: 16\n  original_seq_len: 16\n"
         "train:\n"
         "  seed: 3\n  batch_size: 2\n  seq_len: 16\n  steps: 4\n  lr: 1.0e-2\n  min_lr: 1.0e-3\n  warmup_steps: 1\n"
         "  eval_every: 2\n  eval_batches: 1\n  checkpoint_every: 100\n  threads: 1\n  sample_tokens: 0\n"
         "  bias_gamma: 1.0e-2\n  device: " + device + "\n"
         "  out_dir: " + out_dir + "\n"
         "  data: {source: generated, n_stories: 60, vocab_size: 300}\n";
}

inline PretrainOptions quiet() {
  PretrainOptions o;
  o.progress = false;
  o.export_model = false;
  o.samples = false;
  return o;
}

inline double rel(double got, double want) { return std::abs(got - want) / std::max(std::abs(want), 1e-30); }

inline void check_training_matches_cpu() {
  TempDir dir("train_cuda");
  std::ostringstream log_cpu, log_cuda;
  PretrainResult rc = pretrain(parse_pretrain_config(micro_yaml(dir.file("cpu"), "cpu"), "micro.yaml"), log_cpu, quiet());
  PretrainResult rg = pretrain(parse_pretrain_config(micro_yaml(dir.file("cuda"), "cuda"), "micro.yaml"), log_cuda, quiet());
  CHECK(log_cuda.str().find(cuda_emulation() ? "device cuda (emulated on the CPU" : "device cuda: ") != std::string::npos);
  CHECK(log_cpu.str().find("device cpu") != std::string::npos);
  REQUIRE(rg.steps_done == 4);
  MetricsTable mc = read_metrics_csv(dir.file("cpu/metrics.csv")), mg = read_metrics_csv(dir.file("cuda/metrics.csv"));
  REQUIRE(mc.rows.size() == 4);
  REQUIRE(mg.rows.size() == 4);
  double worst = 0;
  for (const char* col : {"loss", "main_loss", "mtp_loss", "grad_norm"}) {
    CAPTURE(col);
    for (size_t i = 0; i < 4; i++) {
      CAPTURE(i);
      const double r = rel(mg.column(col)[i], mc.column(col)[i]);
      CHECK(r <= 1e-4);
      worst = std::max(worst, r);
    }
  }
  for (size_t i : {1u, 3u}) worst = std::max(worst, rel(mg.column("val_loss")[i], mc.column("val_loss")[i]));
  CHECK(worst <= 1e-4);
  // The routing: the max expert load of every step (a count) is the same.
  CHECK(mg.column("max_load") == mc.column("max_load"));
  MESSAGE("4 steps on " << std::string(cuda_emulation() ? "emulated CUDA" : "the GPU") << " vs the CPU: worst relative difference of loss / main / mtp / grad_norm / val_loss "
          << worst);

  // The device run's checkpoint: the parameters (and the gate-bias buffer) near the CPU run's, read on the host.
  SafeTensorsFile a = read_safetensors(dir.file("cpu/checkpoint/model.safetensors"));
  SafeTensorsFile b = read_safetensors(dir.file("cuda/checkpoint/model.safetensors"));
  REQUIRE(a.tensors.size() == b.tensors.size());
  double worst_param = 0;
  for (const StTensor& t : a.tensors) {
    const StTensor* u = b.find(t.name);
    REQUIRE(u);
    std::vector<float> x = to_f32(t), y = to_f32(*u);
    REQUIRE(x.size() == y.size());
    double scale = 1e-30;
    for (float v : x) scale = std::max(scale, (double)std::abs(v));
    for (size_t i = 0; i < x.size(); i++) worst_param = std::max(worst_param, std::abs((double)x[i] - y[i]) / scale);
  }
  CHECK(worst_param <= 1e-4);
  MESSAGE("checkpointed parameters, worst |cuda - cpu| / max|cpu| per tensor: " << worst_param);
}

}  // namespace sg::test::train
