// train/pretrain.h — the PRETRAIN stage of the pipeline (DESIGN.md §5): data → tokenizer → shards →
// a DeepSeek Transformer (MLA + DeepSeekMoE + MTP) trained from scratch → plots, samples, export.
//
//   DATA_PREP   generate the story corpus (data::generate_story_corpus) or read a text file; train the
//               byte-level BPE to train.data.vocab_size; encode; split 95/5 train/val at a story
//               boundary; write zstd token shards to out_dir/data/{train,val} and the tokenizer to
//               out_dir/data/tokenizer.txt. Reused as they are when they already exist.
//   MODEL       Transformer(model args with vocab_size = the tokenizer's vocabulary), seeded Rng.
//   LOOP        per optimizer step: grad_accum micro-batches from the TokenLoader, each
//                 loss = L_main + (λ/D) Σ_k L^k + α·L_bal       (DEEPSEEK.md §6, §7)
//                 (loss / grad_accum).backward()
//               clip_grad_norm → AdamW(lr = warmup + cosine) → update_gate_biases(γ)  (aux-loss-free)
//               → one metrics.csv row → the progress line; every eval_every steps the mean validation
//               loss over eval_batches batches (no tape); every checkpoint_every steps (and at the
//               end) an atomic checkpoint of parameters + AdamW moments + loader + RNG.
//   RESUME      if out_dir/checkpoint exists, everything is restored from it and the run continues
//               bit-identically (same losses, same parameters as a run that never stopped).
//   END         out_dir/loss.png (train + val loss, the ln(V) chance line), samples decoded to text
//               (greedy and temperature 0.8), the model exported with save_model_dir(out_dir/model),
//               and a summary (final train/val loss vs ln V, tokens/s, wall time).
//
// Files under out_dir: data/, checkpoint/, metrics.csv, loss.png, lr.png, expert_load.png, model/.
// What this is not: SFT/GRPO/distillation (later stages) or multi-process training (train/parallel/).
#pragma once
#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "train/config_yaml.h"

namespace sg {

struct PretrainOptions {
  int64_t stop_after_step = 0;  // > 0: stop (after checkpointing) once this step is done, as if killed
  bool progress = true;         // the progress line on stdout
  bool samples = true;          // generate text samples at the end (needs train.sample_tokens > 0)
  bool export_model = true;     // save_model_dir(out_dir/model) and the plots at the end
};

struct PretrainResult {
  int64_t start_step = 0;       // 0 for a fresh run, the checkpoint's step after a resume
  int64_t steps_done = 0;       // step reached at the end of this call
  int64_t vocab_size = 0;       // the tokenizer's (= the model's)
  int64_t n_parameters = 0;
  int64_t train_tokens = 0, val_tokens = 0;
  double ln_vocab = 0;          // ln V: the loss of a uniform guess
  double first_loss = 0;        // total loss of this call's first step
  double final_loss = 0;        // total loss of the last step
  double final_main_loss = 0;   // main cross entropy of the last step
  double final_val_loss = 0;    // NaN if never evaluated
  double tokens_per_s = 0;      // training tokens per second of this call
  double wall_s = 0;            // this call, data prep included
  std::vector<std::string> samples;
  std::string out_dir;
};

PretrainResult pretrain(const PretrainConfig& config, std::ostream& log, const PretrainOptions& options = {});

}  // namespace sg
