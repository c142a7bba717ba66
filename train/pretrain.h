// train/pretrain.h — the PRETRAIN stage of the pipeline: data → tokenizer → shards → a DeepSeek
// Transformer (MLA + DeepSeekMoE + MTP) trained from scratch → plots, samples, export.
//
//   DATA_PREP   train/data_prep.h, the same code as `seekgrad prepare`: train.data.dir when given (a
//               prepared directory), else out_dir/data made from train.data (the generated story corpus
//               seeded by train.seed, or a text file; BPE to train.data.vocab_size trained on the train
//               part; 5 % held out at a document boundary) and reused while its options are unchanged.
//   MODEL       Transformer(model args with vocab_size = the tokenizer's vocabulary), seeded Rng.
//   LOOP        the Trainer (train/trainer.h) with a PretrainStage: per micro-batch
//                 loss = L_main + (λ/D) Σ_k L^k + α·L_bal       (models/README.md §6, §7)
//               named terms main, mtp, balance (metrics.csv columns main_loss, mtp_loss, balance_loss);
//               after each optimizer step (hook) the aux-loss-free gate-bias update with the load of ALL
//               the step's micro-batches; eval = evaluate_lm (train/evaluate.h) on the val shards.
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

#include "data/shards.h"
#include "models/transformer.h"
#include "train/config_yaml.h"
#include "train/data_prep.h"
#include "train/trainer.h"

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

// PRETRAIN as a Trainer stage (train/trainer.h): next-token batches from the train shards (TokenLoader seeded
// by train.seed + 1); loss terms main, mtp, balance; step metrics max_load, max_over_mean_load (of the whole
// step's load); eval val_loss = evaluate_lm over eval_batches validation batches (a fixed seed: the same
// batches every time). update_biases() is the after_optimizer_step hook: DeepSeek-V3's aux-loss-free bias
// update once per optimizer step, from the load summed over ALL of its micro-batches.
//
// A DSA model (model.index_topk > 0) is trained the way DeepSeek-V3.2 trains it (models/README.md §14):
//   steps [0, train.dsa_warmup_steps)   dense warm-up: attention dense, the main model FROZEN (only the indexer
//                                       gets a gradient: loss = λ_I · indexer_kl, the KL between the indexer's
//                                       distribution and the main attention's, summed over heads, L1-normalised)
//   the remaining steps                 sparse: top-k selection active; loss = L_main + λ/D Σ L^k + α·L_bal
//                                       + λ_I · indexer_kl on the selected set (indexer input detached, so the
//                                       model learns from the LM loss only and the indexer from its KL only)
// with the term indexer_kl, the step metrics dsa_stage (0 = warm-up, 1 = sparse) and indexer_recall (the
// indexer's recall of the dense attention's top-k keys, measured on every training batch), and the eval metric
// val_indexer_recall. λ_I = train.indexer_loss_weight. No bias updates during the warm-up (the model is frozen).
class PretrainStage : public Stage {
 public:
  PretrainStage(Transformer& model, const TrainConfig& tc, const PreparedData& data);

  std::string name() const override { return "pretrain"; }
  std::vector<std::string> loss_terms() const override;       // main, mtp, balance (+ indexer_kl for DSA)
  int64_t tokens_per_batch() const override;
  std::vector<std::string> step_metrics() const override;     // max_load, max_over_mean_load (+ dsa_stage, indexer_recall)
  std::vector<std::string> eval_metrics() const override;     // val_loss (+ val_indexer_recall)
  void make_batch(int64_t step) override;
  BatchLoss batch_loss(int64_t step) override;
  std::vector<double> step_metric_values() override;
  std::vector<double> evaluate(int64_t step) override;
  void save_state(TrainerState& state) const override;
  void load_state(const TrainerState& state) override;

  void update_biases();
  // DSA models: the indexer stage of a 0-based step (dense_warmup for the first train.dsa_warmup_steps).
  DSAStage dsa_stage(int64_t step) const;
  bool has_dsa() const;
  // Tokens per expert per MoE block summed over the micro-batches of the step in progress (or just done).
  const std::vector<std::vector<int64_t>>& step_loads() const { return step_loads_; }
  // The same for the last completed step, kept for the expert_load.png of the end of the run.
  const std::vector<std::vector<int64_t>>& last_step_loads() const { return last_step_loads_; }
  const Tensor& tokens() const { return tokens_; }  // the current micro-batch [B,T]
  const Tensor& targets() const { return targets_; }

 private:
  Transformer& model_;
  const TrainConfig& tc_;
  const PreparedData& data_;
  data::TokenLoader loader_;
  Tensor tokens_, targets_;
  std::vector<std::vector<int64_t>> step_loads_, last_step_loads_;
  int64_t loads_step_ = -1;
  double step_recall_ = 0;  // DSA: Σ over the step's micro-batches of the indexer recall
  int64_t step_micro_ = 0;
};

PretrainResult pretrain(const PretrainConfig& config, std::ostream& log, const PretrainOptions& options = {});

// The pieces of pretrain() that other commands (`seekgrad trace`, train/trace.h) build a run from, so they prepare
// and initialise exactly as training does:
// DATA_PREP — train.data.dir when given (a `seekgrad prepare` output), else out_dir/data, reused when its
// prepare.json says it was made with the same options, (re)made otherwise. `log` gets what was done.
PreparedData prepare_or_open(const TrainConfig& tc, std::ostream& log);
// MODEL — config.model with vocab_size = the tokenizer's vocabulary, validated and checked against the memory
// available (check_model_fits_memory, models/config.h; errors name config.source).
ModelArgs pretrain_model_args(const PretrainConfig& config, const PreparedData& data);

}  // namespace sg
