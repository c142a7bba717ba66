// train/sft.h — SFT, the cold start of DeepSeek-R1 (models/README.md §10; R1 §2.3.1): supervised fine-tuning on
// worked solutions written in the chat template (data/chat.h), with the loss on the ASSISTANT tokens only.
//
// Data. n_problems distinct TRAIN-split problems (data/reasoning.h), each rendered by render_sft_example and encoded
// by encode_sft: prompt ids (loss_mask 0) then the completion "<think>\n…\n</think>\n133<|endoftext|>" (loss_mask 1).
//
// Packing. A micro-batch is B rows of T tokens; each row holds whole examples back to back, as many as fit, the
// rest of the row padded with <|endoftext|>. Every position carries a segment id (its example's index in the row;
// each padding position its own), and attention is kept inside each example: query i sees key j iff j ≤ i and
// seg[j] = seg[i] (LossOptions::segment_ids, ops/attention.h). RoPE scores depend only on i − j, so an example
// packed at offset 57 gets exactly the attention it would get alone at offset 0 — no position reset is needed.
//
//   targets[p] = ids[j+1]   where position p holds token j of an example and token j+1 is a completion token
//              = −100       otherwise (prompt positions, an example's last token, padding)
//   loss       = cross entropy, mean over the non-ignored targets (+ λ/D Σ L^k_MTP + α·L_bal as in pretraining;
//                MTP targets that would cross into the next example are ignored as well)
//
// Order: the examples are shuffled once per epoch by Rng(seed, epoch); the stage's position (epoch, next example)
// is its checkpoint state, so a resumed run draws exactly the batches of an uninterrupted one.
//
// Logged: terms main / mtp / balance; step metrics examples (per step) and target_tokens (assistant tokens per
// step); eval val_loss (assistant tokens of fixed val-split examples) and val_accuracy (greedy answers on
// eval_problems val-split problems, train/reasoning_eval.h).
//
// What this is not: multi-turn or tool-call SFT, or reading GSM8K-style files (train/problems.h reads problem
// files; an SFT example needs a worked solution, which those files lack).
#pragma once
#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "autograd/rng.h"
#include "data/chat.h"
#include "data/tokenizer.h"
#include "models/transformer.h"
#include "train/config_yaml.h"
#include "train/post_stage.h"
#include "train/trainer.h"

namespace sg {

// One packed micro-batch.
struct PackedBatch {
  Tensor tokens;        // [B,T] i64
  Tensor targets;       // [B,T] i64, −100 where no loss is taken
  Tensor segment_ids;   // [B,T] i64: the example's index within its row; padding positions get their own ids
  int64_t examples = 0;       // examples packed
  int64_t target_tokens = 0;  // non-ignored targets
  int64_t pad_tokens = 0;
};

// Packs examples[order[next]], examples[order[next+1]], ... into B rows of T tokens (whole examples only, in
// order; a row is closed when the next example does not fit) and advances `next` past the examples used. When
// `next` reaches the end it wraps to 0 only if `wrap` (otherwise the remaining rows stay padding). An example
// longer than T throws "[sft] example K has N tokens, more than seq_len T". pad_id: the <|endoftext|> id.
PackedBatch pack_sft_rows(const std::vector<data::SftTokens>& examples, const std::vector<size_t>& order, size_t& next,
                          int64_t B, int64_t T, int64_t pad_id, bool wrap = true);

// The SFT examples of a config: n_problems train-split problems of reasoning.level, encoded.
// system: the system turn (data::kReasoningSystemPrompt by default).
std::vector<data::SftTokens> make_sft_examples(const data::Tokenizer& tok, const std::vector<data::ReasoningProblem>& problems,
                                               const std::string& system = data::kReasoningSystemPrompt);
// The SFT problems of a config: n train-split problems of reasoning.level with reasoning.solution's worked solutions.
std::vector<data::ReasoningProblem> sft_problems(const ReasoningConfig& rc, data::Split split, int64_t n);

class SftStage : public Stage {
 public:
  // eval_problems: val-split problems for val_accuracy (greedy); val_examples: encoded val-split examples for val_loss.
  SftStage(Transformer& model, const data::Tokenizer& tok, const SftConfig& cfg, const ReasoningConfig& reasoning,
           std::vector<data::SftTokens> train_examples, std::vector<data::SftTokens> val_examples,
           std::vector<data::ReasoningProblem> eval_problems, uint64_t seed);

  std::string name() const override { return "sft"; }
  std::vector<std::string> loss_terms() const override { return {"main", "mtp", "balance"}; }
  int64_t tokens_per_batch() const override { return cfg_.batch_size * cfg_.seq_len; }
  void make_batch(int64_t step) override;
  BatchLoss batch_loss(int64_t step) override;
  std::vector<std::string> step_metrics() const override { return {"examples", "target_tokens"}; }
  std::vector<double> step_metric_values() override;
  std::vector<std::string> eval_metrics() const override { return {"val_loss", "val_accuracy"}; }
  std::vector<double> evaluate(int64_t step) override;
  void save_state(TrainerState& state) const override;
  void load_state(const TrainerState& state) override;

  void update_biases();  // the aux-loss-free gate-bias step, as in pretraining (after_optimizer_step hook)
  const PackedBatch& batch() const { return batch_; }

 private:
  void shuffle_epoch();

  Transformer& model_;
  const data::Tokenizer& tok_;
  SftConfig cfg_;
  ReasoningConfig reasoning_;
  std::vector<data::SftTokens> train_, val_;
  std::vector<data::ReasoningProblem> eval_problems_;
  uint64_t seed_;
  int64_t pad_id_ = 0;
  std::vector<size_t> order_;
  int64_t epoch_ = 0;
  size_t next_ = 0;
  PackedBatch batch_;
  std::vector<std::vector<int64_t>> step_loads_;
  int64_t loads_step_ = -1, step_examples_ = 0, step_targets_ = 0;
};

struct SftResult {
  int64_t start_step = 0, steps_done = 0;
  double first_loss = NAN, final_loss = NAN, final_val_loss = NAN, final_val_accuracy = NAN;
  double tokens_per_s = 0, wall_s = 0;
  int64_t n_examples = 0;
  double mean_example_tokens = 0, mean_target_tokens = 0;  // per example
  std::string model_dir;  // out_dir/model (config.json, model.safetensors, tokenizer.bpe)
};

// SFT from the model in `init_model_dir` (the pretrained model) with the tokenizer at `tokenizer_path`; trains
// with the Trainer in cfg.sft.out_dir (resumable), then exports out_dir/model and out_dir/loss.png.
SftResult run_sft(const PretrainConfig& cfg, const std::string& init_model_dir, const std::string& tokenizer_path,
                  std::ostream& log, bool progress = true);


}  // namespace sg
