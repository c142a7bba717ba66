// train/post_stage.h — what the post-training stages (SFT, GRPO) share around their Trainer, written once:
// the directory they train in, the model and tokenizer they start from (checked against each other), the Trainer
// settings read off their config section, and the tokenizer copied next to the model they export.
#pragma once
#include <string>

#include "data/tokenizer.h"
#include "models/transformer.h"
#include "train/config_yaml.h"
#include "train/schedule.h"
#include "train/trainer.h"

namespace sg {

struct PostStageStart {
  std::string out_dir;  // the section's out_dir, or train.out_dir/<stage>; created
  data::Tokenizer tok;
  Transformer model;    // loaded from init_model_dir, moved to train.device
};

// Creates the stage's directory, sets the thread count (train.threads), loads the tokenizer and the model (moved to
// train.device) and
// throws "[<stage>] DIR: the model's vocab_size V differs from the tokenizer's W (FILE)" when they do not fit.
PostStageStart start_post_stage(const PretrainConfig& cfg, const std::string& stage, const std::string& section_out_dir,
                                const std::string& init_model_dir, const std::string& tokenizer_path);

// The Trainer settings of a post-training section (SftConfig, GrpoConfig: steps, lr, weight_decay, grad_clip,
// eval_every, checkpoint_every) and its warmup + cosine schedule (lr → min_lr).
template <class Section>
TrainerConfig post_trainer_config(const Section& c, int64_t grad_accum, const std::string& out_dir, const std::string& run_name,
                                  bool progress) {
  TrainerConfig t;
  t.steps = c.steps;
  t.grad_accum = grad_accum;
  t.grad_clip = c.grad_clip;
  t.adamw.lr = c.lr;
  t.adamw.weight_decay = c.weight_decay;
  t.eval_every = c.eval_every;
  t.checkpoint_every = c.checkpoint_every;
  t.out_dir = out_dir;
  t.run_name = run_name;
  t.progress = progress;
  return t;
}
template <class Section>
LrSchedule post_schedule(const Section& c) {
  return LrSchedule::warmup_cosine(c.lr, c.min_lr, c.warmup_steps, c.steps);
}

// Copies `tokenizer_path` next to a model (DIR/tokenizer.bpe, via a .tmp and a rename), so `seekgrad eval/generate
// --model DIR` find it.
void copy_tokenizer_into(const std::string& tokenizer_path, const std::string& model_dir);

}  // namespace sg
