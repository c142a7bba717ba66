// train/trainer.h — the one training loop every stage runs on (pretraining today; SFT, DPO, GRPO and
// distillation plug into the same loop).
//
// A stage supplies only what is its own: how to draw a micro-batch and the loss of that batch as named
// terms ("main", "mtp", "balance", "indexer_kl", later "kl", "pg", ...), plus its evaluation. The Trainer
// owns everything else — the optimizer (AdamW), the learning-rate schedule, gradient clipping, gradient
// accumulation, the run's RNG, metrics.csv, the progress line, evaluation points, atomic checkpoints and
// bit-identical resume. One optimizer step reads top to bottom in Trainer::train_step():
//
//   zero_grad
//   for micro in 0 .. grad_accum−1:   stage.make_batch;  L = stage.batch_loss;  (L.total / grad_accum).backward()
//   hooks.after_backward               gradients complete (where a data-parallel all-reduce goes)
//   clip_grad_norm(grad_clip)          → grad_norm (a non-finite loss or norm stops the run, naming the step)
//   optimizer.step(schedule.lr_at(step))
//   hooks.after_optimizer_step         bias balancing, EMA, ... (they see this step's StepInfo)
//   one metrics.csv row: step, lr, loss, <term>_loss ..., grad_norm, tokens_per_s, <stage step metrics>, <eval metrics>
//   every eval_every steps (and at the end): stage.evaluate → hooks.at_eval
//   every checkpoint_every steps (and at the end): hooks.at_checkpoint → stage.save_state → save_checkpoint
//
// Resume: if out_dir/checkpoint exists, the parameters, buffers, optimizer moments, the RNG and the stage's
// state (its data position) are restored and metrics.csv is cut back to the checkpoint's step; the run then
// continues exactly as if it had never stopped (tests/train/test_pretrain.cpp checks bit-identity). Without a
// checkpoint, a run directory that already holds logged steps or a checkpoint/ that is not complete is refused,
// never started over. A non-finite loss or gradient norm stops the run WITHOUT saving (the last good checkpoint
// stays; a rerun resumes from it).
//
// What this is not: a callback framework. Hooks are plain lists of std::function called at four fixed
// points; there is no other way to change the loop.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "autograd/rng.h"
#include "models/module.h"
#include "train/metrics.h"
#include "train/optim.h"
#include "train/schedule.h"
#include "train/trainer_state.h"

namespace sg {

// One micro-batch's loss as a stage computes it.
struct BatchLoss {
  Tensor total;               // the scalar backward() runs on (the weighted sum of the terms that train)
  std::vector<double> terms;  // the value of each Stage::loss_terms() entry, in that order (logged, not trained)
};

// What the hooks see of the step that just ran.
struct StepInfo {
  int64_t step = 0;             // 1-based: the step that just completed (after_backward: the one in progress)
  double lr = 0;
  double loss = 0;              // mean over the micro-batches of BatchLoss::total
  std::vector<double> terms;    // means over the micro-batches, Stage::loss_terms() order
  double grad_norm = 0;         // before clipping (NaN in after_backward: not computed yet)
};

class Trainer;

// A training stage: its data, its loss, its evaluation, its part of a checkpoint.
class Stage {
 public:
  virtual ~Stage() = default;
  virtual std::string name() const = 0;                     // "pretrain": progress label and plot titles
  virtual std::vector<std::string> loss_terms() const = 0;  // {"main", "mtp", "balance"}: one <term>_loss column each
  virtual int64_t tokens_per_batch() const = 0;             // tokens in one micro-batch (for tokens/s)
  // Draws the next micro-batch (the stage keeps it until batch_loss). step: the 0-based step in progress.
  virtual void make_batch(int64_t step) = 0;
  // The loss of the batch make_batch drew, on the tape.
  virtual BatchLoss batch_loss(int64_t step) = 0;
  // Per-step measurements besides the loss terms (columns, then their values after the optimizer step).
  virtual std::vector<std::string> step_metrics() const { return {}; }
  virtual std::vector<double> step_metric_values() { return {}; }
  // Evaluation (columns, then values; the trainer logs NaN in these columns on steps without an eval).
  virtual std::vector<std::string> eval_metrics() const { return {}; }
  virtual std::vector<double> evaluate(int64_t step) { (void)step; return {}; }
  // The stage's part of a checkpoint: its loader position (state.loader) and anything else (state.extra).
  virtual void save_state(TrainerState& state) const { (void)state; }
  virtual void load_state(const TrainerState& state) { (void)state; }
};

struct TrainerHooks {
  std::vector<std::function<void(const StepInfo&)>> after_backward;        // gradients complete, before clipping
  std::vector<std::function<void(const StepInfo&)>> after_optimizer_step;  // parameters updated
  std::vector<std::function<void(const StepInfo&, const std::vector<double>& eval)>> at_eval;
  std::vector<std::function<void(TrainerState&)>> at_checkpoint;           // may add to state.extra before writing
};

struct TrainerConfig {
  int64_t steps = 100;            // optimizer steps (the schedule's length)
  int64_t grad_accum = 1;         // micro-batches per optimizer step
  double grad_clip = 1.0;         // max global L2 norm; 0 = measure only
  AdamWConfig adamw;              // lr in it is unused: the schedule gives every step's lr
  int64_t eval_every = 100;       // 0 = only at the end
  int64_t checkpoint_every = 100; // 0 = only at the end
  std::string out_dir;            // metrics.csv, checkpoint/ (and the stage's own files)
  std::string run_name;           // written into checkpoints (the config's name)
  bool progress = true;           // the progress line on stdout
  int64_t stop_after_step = 0;    // > 0: checkpoint and return once this step is done, as if killed
  // What the checkpoints belong to (train/checkpoint.h checkpoint_identity): recorded on save, compared on resume.
  CheckpointIdentity identity;
};

struct TrainerResult {
  int64_t start_step = 0;         // 0 for a fresh run, the checkpoint's step after a resume
  int64_t steps_done = 0;         // the step reached
  double first_loss = NAN;        // total loss of this call's first step
  double final_loss = NAN;        // total loss of the last step
  std::vector<double> final_terms;  // the last step's terms
  std::vector<double> final_eval;   // the last evaluation's values (NaN if none ran)
  double tokens_per_s = 0;        // training tokens per second of this call (eval and checkpoints excluded)
  double train_seconds = 0;
  bool finished = false;          // steps_done == config.steps
};

class Trainer {
 public:
  // model: its named_parameters() are trained (those that get a gradient); checkpoints hold its parameters and
  // buffers (named_parameters_and_buffers(): the MoE gate bias is a buffer).
  // rng: the run's generator (saved and restored with every checkpoint; stages may draw from rng()).
  Trainer(Module& model, Stage& stage, TrainerConfig config, LrSchedule schedule, Rng rng, std::ostream& log);

  TrainerHooks hooks;

  // Restores out_dir/checkpoint when there is one; returns the step it holds (0 if none). run() calls it.
  int64_t resume();
  // Trains from the current step to config.steps (or stop_after_step).
  TrainerResult run();
  // One optimizer step (the body of run's loop); returns what the hooks saw.
  StepInfo train_step();
  // Writes out_dir/checkpoint atomically (train/checkpoint.h).
  void save();

  const TrainerState& state() const { return state_; }
  const TrainerConfig& config() const { return config_; }
  const LrSchedule& schedule() const { return schedule_; }
  Optimizer& optimizer() { return *optimizer_; }
  Rng& rng() { return rng_; }
  std::string checkpoint_dir() const;
  std::string metrics_path() const;
  // metrics.csv's columns: step, lr, loss, <term>_loss..., grad_norm, tokens_per_s, <step metrics>, <eval metrics>.
  std::vector<std::string> metric_columns() const;

 private:
  Module& model_;
  Stage& stage_;
  TrainerConfig config_;
  LrSchedule schedule_;
  Rng rng_;
  std::ostream& log_;
  NamedParameters params_, state_tensors_;  // trained parameters; parameters + buffers (what a checkpoint holds)
  std::unique_ptr<Optimizer> optimizer_;
  TrainerState state_;
  bool resumed_ = false;
  int64_t last_saved_step_ = 0;  // the step of the checkpoint on disk (this run's last save, or the one resumed)
  void refuse_to_start_over() const;
};

// Loss curves of a finished run from its metrics.csv: one line per <term>_loss column, plus
// the eval columns that end in "loss" as points; `reference` (e.g. ln V) as a dashed line when finite.
void plot_loss_curves(const std::string& metrics_csv, const std::string& png_path, const std::string& title,
                      double reference, const std::string& reference_label);

}  // namespace sg
