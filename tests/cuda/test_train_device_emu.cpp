// tests/cuda/test_train_device_emu.cpp — `train.device: cuda` (seekgrad train --device cuda) end to end, on emulated
// CUDA: the PRETRAIN stage (the trainer, AdamW, clipping, evaluation, the gate-bias update, checkpoints) with the
// model on the device gives the CPU run's losses and gradient norms step by step; a device run stopped and resumed
// from its checkpoint equals one that never stopped, bit for bit; the trained checkpoint loads on the CPU; a device
// that cannot run is refused before any work, with the way out in the message.
//
// Tolerance: the two runs execute different kernels (module model_check.h: ~1e-6 relative per step), and training
// carries the differences along; after 4 steps at lr 1e-2 the measured gap is printed and bounded by 1e-4 relative.
// The routing is the same on both sides (checked through the expert-load columns, which are counts).
#include <doctest/doctest.h>

#include <cmath>
#include <sstream>

#include "autograd/device.h"
#include "cuda/cuda_backend.h"
#include "models/safetensors.h"
#include "tests/data/temp_dir.h"
#include "train/config_yaml.h"
#include "train/metrics.h"
#include "train/pretrain.h"

using namespace sg;
using sg::data::testing::slurp;
using sg::data::testing::TempDir;

namespace {

// A micro DeepSeek-V3 shaped model (MLA with q-LoRA, 1 dense + 1 MoE layer with a biased sigmoid gate, 1 MTP
// module) on a few generated stories: small enough that four emulated steps take seconds.
std::string micro_yaml(const std::string& out_dir, const std::string& device) {
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

PretrainOptions quiet() {
  PretrainOptions o;
  o.progress = false;
  o.export_model = false;
  o.samples = false;
  return o;
}

double rel(double got, double want) { return std::abs(got - want) / std::max(std::abs(want), 1e-30); }

}  // namespace

TEST_CASE("train on emulated CUDA: the CPU run's losses, grad norms, expert loads and val loss, step by step") {
  CudaEmulationScope emu(true);
  TempDir dir("train_cuda");
  std::ostringstream log_cpu, log_cuda;
  PretrainResult rc = pretrain(parse_pretrain_config(micro_yaml(dir.file("cpu"), "cpu"), "micro.yaml"), log_cpu, quiet());
  PretrainResult rg = pretrain(parse_pretrain_config(micro_yaml(dir.file("cuda"), "cuda"), "micro.yaml"), log_cuda, quiet());
  CHECK(log_cuda.str().find("device cuda (emulated on the CPU") != std::string::npos);
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
  MESSAGE("4 steps on emulated CUDA vs the CPU: worst relative difference of loss / main / mtp / grad_norm / val_loss "
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

TEST_CASE("train on emulated CUDA: 2 steps + resume from the checkpoint + 2 steps == 4 steps straight, bit for bit") {
  CudaEmulationScope emu(true);
  TempDir dir("train_cuda_resume");
  std::ostringstream log;
  PretrainResult ra = pretrain(parse_pretrain_config(micro_yaml(dir.file("a"), "cuda"), "micro.yaml"), log, quiet());
  PretrainConfig split = parse_pretrain_config(micro_yaml(dir.file("b"), "cuda"), "micro.yaml");
  PretrainOptions stop = quiet();
  stop.stop_after_step = 2;
  CHECK(pretrain(split, log, stop).steps_done == 2);
  PretrainResult r2 = pretrain(split, log, quiet());  // the checkpoint's parameters and moments go back to the device
  CHECK(r2.start_step == 2);
  CHECK(r2.final_loss == ra.final_loss);  // exact
  CHECK(r2.final_val_loss == ra.final_val_loss);
  CHECK(slurp(dir.file("a/checkpoint/model.safetensors")) == slurp(dir.file("b/checkpoint/model.safetensors")));
  CHECK(slurp(dir.file("a/checkpoint/optimizer.safetensors")) == slurp(dir.file("b/checkpoint/optimizer.safetensors")));
}

TEST_CASE("train.device: a bad value names the file and the key; cuda without a GPU or the emulation says how") {
  TempDir dir("train_device_errors");
  std::string bad = micro_yaml(dir.file("x"), "tpu");
  std::string err;
  try {
    parse_pretrain_config(bad, "micro.yaml");
  } catch (const std::exception& e) {
    err = e.what();
  }
  CHECK_MESSAGE(err.find("micro.yaml") != std::string::npos, err);
  CHECK_MESSAGE(err.find("device") != std::string::npos, err);
  CHECK_MESSAGE(err.find("tpu") != std::string::npos, err);

  if (cuda::available()) {
    MESSAGE("SKIPPED the no-GPU refusal: this machine has a CUDA device");
    return;
  }
  CudaEmulationScope off(false);
  std::ostringstream log;
  err.clear();
  try {
    pretrain(parse_pretrain_config(micro_yaml(dir.file("y"), "cuda"), "micro.yaml"), log, quiet());
  } catch (const std::exception& e) {
    err = e.what();
  }
  CHECK_MESSAGE(err.find("micro.yaml: train.device: device 'cuda'") != std::string::npos, err);
  CHECK_MESSAGE(err.find("SEEKGRAD_CUDA_EMU=1") != std::string::npos, err);
  CHECK(!std::filesystem::exists(dir.file("y/data")));  // refused before any work
}
