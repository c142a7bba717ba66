// tools/chapters/reasoning_base.h — the base model the post-training chapters (ch09_sft, ch10_dpo, ch11_grpo) start from,
// and the small helpers they share.
//
// One YAML (base_config) describes the whole run: a 2-layer DeepSeek-V3-shaped model (MLA with q-LoRA, 1 dense +
// 1 DeepSeekMoE layer, sigmoid gate with the aux-loss-free bias, 1 MTP module — ch08's model), pretrained on
// generated stories mixed with worked level-1 arithmetic (train split only, plain text, worked digit by digit
// (data::SolutionStyle::columns): "What is 37 + 48?⏎7 + 8 = 15⏎3 + 4 + 1 = 8⏎37 + 48 = 85⏎The answer is 85."),
// then the `reasoning:`, `sft:`, `grpo:` and `dpo:` sections the later stages read. The SFT examples use the same column
// solutions, and every prompt (SFT examples, GRPO rollouts, evaluations) the same short system turn, kSystem.
// pretrain_base() runs that PRETRAIN stage into OUT (the prepared data in OUT/data is reused by the next run; the
// checkpoint and metrics are not: every run re-measures what it prints) and loads the exported model back.
//
// Each chapter calls it with its own OUT, so no chapter depends on another having run (CTest runs them in any
// order, in parallel).
//
// What this is not: the pipeline (`seekgrad pipeline`, configs/tiny.yaml does the same at a larger size).
#pragma once
#include <cstdint>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "data/chat.h"
#include "data/reasoning.h"
#include "data/tokenizer.h"
#include "models/transformer.h"
#include "train/config_yaml.h"
#include "train/pretrain.h"
#include "train/reasoning_eval.h"

namespace sg::chapter {

// The system turn of every prompt the chapters build: SFT examples, GRPO prompts, evaluations (= reasoning.system).
inline constexpr const char* kSystem = "Think, then answer.";

// The sizes a chapter may change; the rest of the YAML is fixed.
struct BaseSizes {
  int64_t pretrain_steps = 700, sft_steps = 150, grpo_steps = 40;
  int64_t n_stories = 200, arithmetic_problems = 20000, vocab_size = 512;
  int64_t sft_batch = 4, sft_seq_len = 256;
  double pretrain_lr = 6e-3, sft_lr = 2e-3;
  int64_t grpo_prompts = 4, grpo_group = 8;
  double grpo_lr = 5e-4, grpo_temperature = 1.0;
  int64_t dpo_steps = 40, dpo_pairs_per_step = 4, dpo_sample_prompts = 160, dpo_group = 8;
  double dpo_beta = 0.1, dpo_lr = 5e-4;
  std::string solution = "columns";  // the worked solutions' style, pretraining text and SFT: "columns" | "steps"
};

// The run's YAML.
inline PretrainConfig base_config(const std::string& out, const BaseSizes& z) {
  auto n = [](int64_t v) { return std::to_string(v); };
  const std::string yaml =
      "model:\n"
      "  dim: 64\n  n_layers: 2\n  n_dense_layers: 1\n  inter_dim: 192\n  n_heads: 4\n"
      "  q_lora_rank: 32\n  kv_lora_rank: 32\n  qk_nope_head_dim: 16\n  qk_rope_head_dim: 16\n  v_head_dim: 16\n"
      "  n_routed_experts: 8\n  n_shared_experts: 1\n  n_activated_experts: 2\n  moe_inter_dim: 64\n"
      "  score_func: sigmoid\n  gate_bias: true\n  n_mtp_modules: 1\n"
      "  max_batch_size: 64\n  max_seq_len: 256\n  original_seq_len: 256\n"
      "train:\n"
      "  seed: 9\n  batch_size: 8\n  seq_len: 64\n  steps: " + n(z.pretrain_steps) + "\n"
      "  lr: " + std::to_string(z.pretrain_lr) + "\n  min_lr: " + std::to_string(z.pretrain_lr / 10) + "\n  warmup_steps: 10\n"
      "  eval_every: 0\n  eval_batches: 4\n  checkpoint_every: 0\n  threads: 2\n  sample_tokens: 0\n"
      "  out_dir: " + out + "\n"
      "  data: {source: generated, n_stories: " + n(z.n_stories) + ", vocab_size: " + n(z.vocab_size) +
      ", arithmetic_problems: " + n(z.arithmetic_problems) + ", arithmetic_level: 1, arithmetic_solution: " + z.solution + "}\n"
      "reasoning: {level: 1, eval_problems: 64, eval_samples: 1, eval_temperature: 0, max_new_tokens: 48, seed: 7,\n"
      "            solution: " + z.solution + ", system: \"" + std::string(kSystem) + "\"}\n"
      "sft:\n"
      "  n_problems: 3000\n  steps: " + n(z.sft_steps) + "\n  batch_size: " + n(z.sft_batch) + "\n  seq_len: " + n(z.sft_seq_len) + "\n"
      "  lr: " + std::to_string(z.sft_lr) + "\n  min_lr: " + std::to_string(z.sft_lr / 10) + "\n  warmup_steps: 5\n  eval_every: 0\n  eval_problems: 16\n  checkpoint_every: 0\n"
      "  out_dir: " + out + "/sft\n"
      "grpo:\n"
      "  steps: " + n(z.grpo_steps) + "\n  prompts_per_step: " + n(z.grpo_prompts) + "\n  group_size: " + n(z.grpo_group) + "\n"
      "  inner_iterations: 1\n  clip_eps: 0.2\n  kl_beta: 0.04\n  norm: sequence\n  temperature: " + std::to_string(z.grpo_temperature) + "\n"
      "  lr: " + std::to_string(z.grpo_lr) + "\n  min_lr: " + std::to_string(z.grpo_lr) + "\n  warmup_steps: 0\n  eval_every: 0\n  eval_problems: 16\n  checkpoint_every: 0\n"
      "  out_dir: " + out + "/grpo\n"
      "dpo:\n"
      "  steps: " + n(z.dpo_steps) + "\n  pairs_per_step: " + n(z.dpo_pairs_per_step) + "\n  beta: " + std::to_string(z.dpo_beta) + "\n"
      "  sample_prompts: " + n(z.dpo_sample_prompts) + "\n  group_size: " + n(z.dpo_group) + "\n  temperature: " + std::to_string(z.grpo_temperature) + "\n"
      "  lr: " + std::to_string(z.dpo_lr) + "\n  min_lr: " + std::to_string(z.dpo_lr) + "\n  warmup_steps: 0\n  eval_every: 0\n  eval_problems: 16\n  checkpoint_every: 0\n"
      "  out_dir: " + out + "/dpo\n";
  return parse_pretrain_config(yaml, "reasoning_base.yaml");
}

// Removes what an earlier run of a chapter wrote into OUT (checkpoints, metrics, exported models, plots; by name,
// nothing else), keeping OUT/data, so every number printed is measured by this run.
inline void start_over(const std::string& out) {
  namespace fs = std::filesystem;
  for (const char* name : {"checkpoint", "metrics.csv", "model", "sft", "grpo", "grpo_mu2", "dpo", "dpo.png", "loss.png", "lr.png",
                           "expert_load.png", "sft_loss.png", "reward.png", "length.png"})
    fs::remove_all(fs::path(out) / name);
}

struct BaseModel {
  PretrainResult pretrain;
  data::Tokenizer tok;
  Transformer model;
  std::string model_dir, tokenizer_path;
};

// PRETRAIN into cfg.train.out_dir (train/pretrain.h), then the exported model and the tokenizer loaded back.
inline BaseModel pretrain_base(const PretrainConfig& cfg, std::ostream& log) {
  PretrainOptions opt;
  opt.progress = false;
  opt.samples = false;
  PretrainResult r = pretrain(cfg, log, opt);
  const std::string model_dir = cfg.train.out_dir + "/model", tok_path = cfg.train.out_dir + "/data/tokenizer.bpe";
  return BaseModel{r, data::Tokenizer::load(tok_path), load_model_dir(model_dir), model_dir, tok_path};
}

// Greedy completions of `problems` (the pipeline's measurement at temperature 0), prompted with `system`.
inline ProblemEvalResult greedy_eval(Transformer& model, const data::Tokenizer& tok,
                                     const std::vector<data::ReasoningProblem>& problems, int64_t max_new_tokens,
                                     const std::string& system) {
  ProblemEvalOptions eo;
  eo.system = system;
  eo.samples = 1;
  eo.temperature = 0;
  eo.max_new_tokens = max_new_tokens;
  return evaluate_problems(model, tok, problems, eo);
}

// A model's text on one line: newlines as ⏎, other control bytes and non-ASCII bytes (a byte-level BPE can emit
// half a UTF-8 character) as '�'. Special tokens print as their tags.
inline std::string one_line(const std::string& s) {
  std::string o;
  for (char c : s) {
    const unsigned char u = (unsigned char)c;
    o += c == '\n' ? std::string("⏎") : (u < 0x20 || u >= 0x7f) ? std::string("�") : std::string(1, c);
  }
  return o;
}

}  // namespace sg::chapter
