// train/config_yaml.h — the trainer's YAML config: a `model:` section with DeepSeek's ModelArgs names
// (models/config.h) and a `train:` section with the run's hyper-parameters and its data source.
//
//   model:                       # any ModelArgs field; omitted fields keep the official defaults
//     dim: 128
//     n_layers: 4
//     ...
//   train:
//     seed: 1
//     batch_size: 8              # B rows per micro-batch
//     seq_len: 128               # T tokens per row
//     steps: 400                 # optimizer steps (the cosine schedule's length)
//     lr: 3.0e-3                 # peak learning rate; cosine decays to min_lr after warmup_steps
//     ...
//     data: {source: generated, n_stories: 4000, vocab_size: 1024}   # or source: text, text_path: F
//                                 # or dir: D — a `seekgrad prepare --out D` directory (train/data_prep.h)
//     dsa_warmup_steps: 100      # DSA models: dense warm-up steps before sparse training (train/pretrain.h)
//     indexer_loss_weight: 1.0   # DSA models: λ_I of the indexer KL
//   reasoning: {level: 1, eval_problems: 200, ...}   # the task of the post-training stages (ReasoningConfig)
//   sft: {steps: 200, ...}       # optional: the SFT stage (SftConfig); its absence = no SFT in the pipeline
//   grpo: {steps: 100, ...}      # optional: the GRPO stage (GrpoConfig)
//
// Every key must be known and every value well-formed; errors name the file and the dotted key:
//   [config] configs/x.yaml: key 'model.dimm' is not a known key
//   [config] configs/x.yaml: train.lr must be a positive number, got 'abc'
// and the model section is checked by ModelArgs::validate(file).
//
// The model's vocab_size is NOT taken from the model section when training from text: the BPE
// tokenizer is trained to train.data.vocab_size and the model gets the tokenizer's real vocabulary
// (train/pretrain.h). Relative paths (out_dir, text_path) are relative to the working directory.
//
// What this is not: a general YAML schema library; one hand-written reader per section.
#pragma once
#include <cstdint>
#include <string>

#include "models/config.h"

namespace sg {

struct DataConfig {
  std::string dir;                   // non-empty: train on this `seekgrad prepare` output (the keys below unused)
  std::string source = "generated";  // "generated" (data::generate_story_corpus) or "text"
  std::string text_path;             // source: text — a UTF-8 file, zstd-compressed or not
  int64_t n_stories = 4000;          // source: generated
  int64_t vocab_size = 1024;         // BPE target vocabulary (256 bytes + merges + special tokens)
  int64_t max_text_bytes = 0;        // source: text — use only the first N bytes (0 = all)
  // Worked arithmetic solutions mixed into the pretraining text (train split only, data/reasoning.h), so the base
  // model has seen arithmetic before SFT: "What is 37 + 48 * 2?\n48 * 2 = 96\n37 + 96 = 133\nThe answer is 133."
  int64_t arithmetic_problems = 0;   // 0 = none
  int64_t arithmetic_level = 1;      // 1..3
  std::string arithmetic_solution = "steps";  // "steps" | "columns" (data/reasoning.h SolutionStyle)
};

struct TrainConfig {
  uint64_t seed = 1;
  int64_t batch_size = 8, seq_len = 128, steps = 400;
  double lr = 3e-3, min_lr = 3e-4;
  int64_t warmup_steps = 20;
  double weight_decay = 0.1, grad_clip = 1.0;
  std::string moments = "f32";       // AdamW m, v storage: 'f32' or 'bf16' (DeepSeek-V3 §3.3)
  int64_t grad_accum = 1;            // micro-batches per optimizer step
  double mtp_lambda = 0.3;           // λ of L_MTP (models/README.md §7)
  double balance_alpha = 1e-4;       // α of the sequence-wise balance loss (§6)
  double bias_gamma = 1e-3;          // γ of the aux-loss-free gate-bias update (§6)
  // DSA (V3.2) models only (model.index_topk > 0): the indexer's two training stages (models/README.md §9).
  int64_t dsa_warmup_steps = 0;      // steps of dense warm-up first: main model frozen, only the indexer trains
  double indexer_loss_weight = 1.0;  // λ_I of the indexer KL in both stages (it reaches only attn.indexer.*)
  int64_t eval_every = 100, eval_batches = 4;
  int64_t checkpoint_every = 100;
  std::string out_dir = "runs/pretrain";
  int64_t threads = 0;               // 0: not set (the default, or --threads / SEEKGRAD_THREADS, which win anyway)
  std::string device = "cpu";        // where the model trains: 'cpu' or 'cuda' (a GPU, or SEEKGRAD_CUDA_EMU=1)
  int64_t sample_tokens = 48;        // new tokens per sample printed at the end (0 = no samples)
  DataConfig data;
};

// The reasoning task every post-training stage shares (data/reasoning.h, data/chat.h) and how the pipeline
// measures it: accuracy on held-out TEST-split problems (never trained on), sampled at eval_temperature.
struct ReasoningConfig {
  int64_t level = 1;                 // problem level 1..3
  int64_t eval_problems = 200;       // test-split problems in the pipeline's accuracy table
  int64_t eval_samples = 4;          // completions per problem (accuracy = mean over all; pass@k with k = this)
  double eval_temperature = 0.6;     // 0 = greedy
  int64_t max_new_tokens = 40;       // completion budget (eval and GRPO rollouts)
  uint64_t seed = 7;                 // which problems (reasoning_split's seed) and the eval's sampling seed
  std::string solution = "steps";    // the worked solution's style: "steps" | "columns" (data/reasoning.h)
  std::string system;                // the system turn of every prompt; empty = data::kReasoningSystemPrompt
  // The system turn actually used.
  std::string system_prompt() const;
};

// SFT (train/sft.h): the cold start on worked solutions, loss on assistant tokens only, packed rows.
struct SftConfig {
  bool enabled = false;              // the config has an `sft:` section
  int64_t n_problems = 4000;         // distinct train-split problems (the examples)
  int64_t steps = 200, batch_size = 8, seq_len = 128, grad_accum = 1;
  double lr = 1e-3, min_lr = 1e-4;
  int64_t warmup_steps = 10;
  double weight_decay = 0.0, grad_clip = 1.0;
  double mtp_lambda = 0.3, balance_alpha = 1e-4, bias_gamma = 1e-3;
  int64_t eval_every = 50, eval_problems = 64;   // val-split problems, greedy, during training
  int64_t checkpoint_every = 100;
  std::string out_dir;               // default: train.out_dir + "/sft"
  std::string data;                  // optional: more examples with worked solutions from a file (GSM8K JSON lines,
                                     // train/problems.h), added to the generated ones; ones longer than seq_len skipped
};

// GRPO (train/grpo.h): the RL stage. init "sft" starts from the SFT model (R1); "pretrain" from the base (R1-Zero).
struct GrpoConfig {
  bool enabled = false;              // the config has a `grpo:` section
  std::string init = "sft";          // "sft" | "pretrain"
  int64_t steps = 100;               // optimizer steps (= rollouts × inner_iterations)
  int64_t prompts_per_step = 8, group_size = 8;  // P prompts × G completions per rollout
  int64_t inner_iterations = 1;      // μ: optimizer steps on each rollout (π_old fixed meanwhile)
  double clip_eps = 0.2, kl_beta = 0.04;
  std::string norm = "sequence";     // "sequence" (DeepSeekMath 1/|o_i|) | "token"
  double temperature = 1.0, top_p = 1.0;
  double accuracy_weight = 1.0, format_weight = 0.1;
  double lr = 3e-4, min_lr = 3e-5;
  int64_t warmup_steps = 0;
  double weight_decay = 0.0, grad_clip = 1.0;
  int64_t eval_every = 25, eval_problems = 64;   // val-split problems, greedy, during training
  int64_t checkpoint_every = 50;
  std::string out_dir;               // default: train.out_dir + "/grpo"
};

struct PretrainConfig {
  std::string name;    // the file's stem ("tiny"), written into checkpoints
  std::string source;  // the file it came from (for messages)
  ModelArgs model;
  TrainConfig train;
  ReasoningConfig reasoning;
  SftConfig sft;
  GrpoConfig grpo;
};

// Parses YAML text; `source` names it in errors.
PretrainConfig parse_pretrain_config(const std::string& yaml_text, const std::string& source);
// Reads and parses a file; "[config] <path>: cannot open" if it cannot be read.
PretrainConfig load_pretrain_config(const std::string& path);

}  // namespace sg
