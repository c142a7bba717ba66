// tools/chapters/ch08_pretrain.cpp — Chapter 8: pretraining a DeepSeek model from scratch. Read
// ch08_pretrain.md beside this file.
//
// One complete PRETRAIN stage (train/pretrain.h) on a model small enough for a minute on 2 cores:
// generated stories → byte-level BPE (vocab 512) → token shards → a 2-layer DeepSeek-V3-shaped model
// (MLA with q-LoRA, 1 dense + 1 DeepSeekMoE layer with sigmoid gate and aux-loss-free bias, 1 MTP module)
// → AdamW with warmup + cosine. Printed: the loss against the ln(V) chance line at a few steps, the
// validation loss, the MTP loss next to the main loss, how balanced the experts are, and text sampled
// before and after. PNGs: runs/ch08/{loss.png, lr.png, expert_load.png}; metrics: runs/ch08/metrics.csv.
//
//   build/bin/ch08_pretrain [--steps 300] [--out runs/ch08] [--resume]
// Each run starts over (its earlier checkpoint and metrics.csv in --out are removed; the data is reused);
// --resume continues a killed run from runs/ch08/checkpoint instead.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <string>

#include "data/tokenizer.h"
#include "train/config_yaml.h"
#include "train/metrics.h"
#include "tools/chapters/chapter_check.h"
#include "train/pretrain.h"

using namespace sg;

int main(int argc, char** argv) {
  CLI::App app{"Chapter 8: pretraining a DeepSeek model from scratch"};
  int steps = 300;
  std::string out = "runs/ch08";
  app.add_option("--steps", steps, "optimizer steps")->check(CLI::PositiveNumber);
  bool resume = false;
  app.add_option("--out", out, "output directory");
  app.add_flag("--resume", resume, "continue from OUT/checkpoint (a run that was killed) instead of starting over");
  CLI11_PARSE(app, argc, argv);
  // A fresh run by default, so every run (and CTest) measures what it prints: the checkpoint and
  // metrics.csv of an earlier run of this chapter in OUT are removed; the prepared data in OUT/data is reused.
  if (!resume) {
    std::filesystem::remove_all(std::filesystem::path(out) / "checkpoint");
    std::filesystem::remove(std::filesystem::path(out) / "metrics.csv");
  }

  const std::string yaml =
      "model:\n"
      "  dim: 64\n  n_layers: 2\n  n_dense_layers: 1\n  inter_dim: 192\n  n_heads: 4\n"
      "  q_lora_rank: 32\n  kv_lora_rank: 32\n  qk_nope_head_dim: 16\n  qk_rope_head_dim: 16\n  v_head_dim: 16\n"
      "  n_routed_experts: 8\n  n_shared_experts: 1\n  n_activated_experts: 2\n  moe_inter_dim: 64\n"
      "  score_func: sigmoid\n  gate_bias: true\n  n_mtp_modules: 1\n"
      "  max_batch_size: 8\n  max_seq_len: 96\n  original_seq_len: 96\n"
      "train:\n"
      "  seed: 8\n  batch_size: 8\n  seq_len: 64\n  steps: " + std::to_string(steps) + "\n"
      "  lr: 4.0e-3\n  min_lr: 4.0e-4\n  warmup_steps: " + std::to_string(std::min(10, steps / 10)) + "\n"
      "  eval_every: 25\n  eval_batches: 4\n  checkpoint_every: 50\n  threads: 2\n  sample_tokens: 40\n"
      "  out_dir: " + out + "\n"
      "  data: {source: generated, n_stories: 1500, vocab_size: 512}\n";
  PretrainConfig cfg = parse_pretrain_config(yaml, "ch08_pretrain.yaml");

  std::cout << "Chapter 8 — pretraining from scratch\n\n";
  PretrainOptions opt;
  opt.progress = false;
  PretrainResult r = pretrain(cfg, std::cout, opt);

  MetricsTable m = read_metrics_csv(out + "/metrics.csv");
  auto step = m.column("step"), main = m.column("main_loss"), mtp = m.column("mtp_loss"), val = m.column("val_loss"),
       load = m.column("max_over_mean_load");
  std::printf("\n  %6s %10s %10s %10s %14s   (ln V = %.3f; a uniform guess)\n", "step", "main CE", "MTP CE", "val CE",
              "max/mean load", r.ln_vocab);
  for (size_t i = 0; i < step.size(); i++) {
    bool show = i == 0 || i + 1 == step.size() || std::isfinite(val[i]);
    if (show)
      std::printf("  %6.0f %10.4f %10.4f %10.4f %14.2f\n", step[i], main[i], mtp[i], val[i], load[i]);
  }
  std::printf("\n  the model: %lld parameters; %lld training tokens seen of %lld in the split\n",
              (long long)r.n_parameters, (long long)(r.steps_done * 8 * 64), (long long)r.train_tokens);
  std::printf("  loss fell from %.3f (≈ ln V) to %.3f; perplexity %.1f of %lld possible next tokens\n",
              main.front(), main.back(), std::exp(main.back()), (long long)r.vocab_size);
  std::printf("  MTP CE %.3f vs main CE %.3f: the MTP module sees Emb(t_{i+1}) AND the trunk's h_i, so its\n"
              "  target t_{i+2} is one step ahead of its newest input, like the main head's\n", mtp.back(), main.back());
  std::printf("  plots: %s/loss.png (with the ln(V) line), %s/lr.png, %s/expert_load.png\n\n", out.c_str(), out.c_str(),
              out.c_str());

  // The numbers ch08_pretrain.md promises (the default 300 steps; measured 1.48 / 1.40 / 1.12 / 1.15).
  chapter::Checks checks;
  double last_val = NAN;
  for (double v : val)
    if (std::isfinite(v)) last_val = v;
  checks.in_range("first main CE - ln V (a uniform guess)", main.front() - r.ln_vocab, -0.25, 0.75);
  if (steps == 300) {
    checks.at_most("final main CE after 300 steps", main.back(), 2.0);
    checks.at_most("final val CE after 300 steps", last_val, 1.9);
    checks.at_most("final MTP CE - final main CE (MTP ends below)", mtp.back() - main.back(), 0.0);
  }
  checks.at_most("|val CE - main CE| at the end (no memorising)", std::abs(last_val - main.back()), 0.5);
  checks.at_most("max/mean expert load over the last 100 steps", *std::max_element(load.end() - std::min<size_t>(100, load.size()), load.end()), 1.6);
  checks.that("metrics.csv has one row per step", (int64_t)step.size() == r.steps_done);
  return checks.exit_code();
}
