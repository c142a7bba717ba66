// train/grpo.h — the GRPO stage (models/README.md §10, §10.1; DeepSeekMath §4.1, DeepSeek-R1 §2.2): reinforcement
// learning with rule-based rewards on the Trainer (train/trainer.h). Nothing is simulated: every completion is
// sampled from the policy, every reward is computed from the text it wrote.
//
// One ROLLOUT (make_batch of every step s with s % μ == 0, μ = inner_iterations):
//   1. P problems drawn from the train split (Rng(seed, rollout index): the same prompts on every run)
//   2. G completions per prompt, sampled together through the KV cache (generate_batch, models/generate.h) at
//      temperature / top-p, each stopping at <|endoftext|> or after max_new_tokens
//   3. rewards r = w_acc · accuracy + w_fmt · format (train/rewards.h) of the decoded text
//   4. advantages A = (r − mean_group r) / (std_group r + eps)       (group_advantages: all-equal group → 0)
//   5. rows [prompt | completion | padding] → tokens [N, L]; mask [N, L−1] is 1 where position t predicts a
//      completion token (the sampled ones, <|endoftext|> included)
//   6. old_logp = log π_θ(o_t) NOW, before any update (π_old), and ref_logp = log π_ref(o_t) under the frozen
//      reference model (the stage's initial weights), both without a tape
// Each optimizer step on that rollout (μ of them):
//   logp = log π_θ(o_t) on the tape;  loss = grpo_loss(logp, old_logp, ref_logp, mask, A, {ε, β, norm})
//   (clipped surrogate − β · KL with the unbiased estimator π_ref/π_θ − log(π_ref/π_θ) − 1; per-sequence 1/|o_i|
//   normalisation as DeepSeekMath, or per-token).  With μ = 1, ρ = π_θ/π_old = 1 exactly and the clip never acts.
//
// Logged per step (metrics.csv): terms policy and kl (the normalised KL of the loss); step metrics reward,
// accuracy, format (means over the rollout's N completions), kl_mean (token mean of D), response_length (mean
// completion tokens), clip_fraction, ratio_mean, entropy (mean policy entropy on the completion tokens),
// zero_std_groups (share of groups whose rewards are all equal: no gradient from them), rollout_tokens_per_s;
// eval val_accuracy (greedy, eval_problems val-split problems).
//
// Tool use (seekgrad issue 13), GrpoToolOptions::enabled: step 2 samples with generate_batch_with_tools
// (train/tool_generate.h), the calculator answering every call; step 3 adds tool_format_weight · tool_format
// (train/rewards.h: a well-formed call the calculator could run); step 5's mask is 1 only on SAMPLED completion
// tokens — the inserted <tool_result> … </tool_result> are constants of the environment, not actions, so they get
// no policy gradient and no KL term (their log-probs are still computed, and ignored). Logged in addition:
// tool_format and tool_use (share of completions with a call); val_accuracy is then measured with the tool
// (train/tool_eval.h). Off (the default), the stage is exactly what it was.
//
// R1-Zero is this stage with grpo.init: pretrain — GRPO straight from the base model; the format reward is what
// teaches it the template.
//
// Resume: a checkpoint taken between two inner iterations holds the rollout (tokens, mask, old/ref log-probs,
// advantages and its logged means) in its state, so the resumed run continues on the same samples.
//
// What this is not: PPO with a value model, DAPO's dynamic sampling, a reward model, or asynchronous rollouts.
#pragma once
#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "data/reasoning.h"
#include "data/tokenizer.h"
#include "data/tool.h"
#include "models/transformer.h"
#include "train/config_yaml.h"
#include "train/grpo_loss.h"
#include "train/rewards.h"
#include "train/trainer.h"

namespace sg {

// One rollout: the samples and everything the loss needs about them.
struct Rollout {
  int64_t index = -1;                 // which rollout (0, 1, ...)
  int64_t prompts = 0, group_size = 0;
  Tensor tokens;                      // [N, L] i64
  Tensor mask;                        // [N, L−1] f32
  Tensor old_logp, ref_logp;          // [N, L−1] f32, constants
  Tensor advantages;                  // [N] f32
  std::vector<int64_t> problem;       // [N] index into the stage's problem pool
  std::vector<std::string> completions;  // [N] decoded text
  std::vector<double> reward, accuracy, format;  // [N]
  std::vector<double> tool_format, tool_use;     // [N], filled when the stage samples with tools
  std::vector<std::vector<uint8_t>> sampled;     // [N] tools: per completion token 1 = sampled, 0 = inserted
                                                 // (what the mask was built from; not kept in a checkpoint)
  std::vector<int64_t> length;        // [N] completion tokens
  double zero_std_groups = 0;         // share of groups with all-equal rewards
  double seconds = 0, tokens_per_s = 0;  // sampling only (new tokens / s)
};

// Rows [prompt | completion | pad] → tokens [N, L], mask [N, L−1] (1 where t+1 is a completion token). With
// `sampled` (per row, one flag per completion token: ToolCompletion::sampled), 1 only where t+1 is a completion
// token the model sampled; inserted tokens (flag 0) get 0.
void pack_rollout_rows(const std::vector<std::vector<int64_t>>& prompts, const std::vector<std::vector<int64_t>>& completions,
                       int64_t pad_id, Tensor& tokens, Tensor& mask,
                       const std::vector<std::vector<uint8_t>>* sampled = nullptr);

// GRPO with the calculator (see the top of this file).
struct GrpoToolOptions {
  bool enabled = false;             // rollouts sampled with the tool loop
  data::ToolLimits limits;          // the calculator's and the loop's limits
  double tool_format_weight = 0.1;  // the reward's tool_format weight (when enabled)
};

class GrpoStage : public Stage {
 public:
  // policy is trained; reference is frozen (its parameters must not be in the Trainer's model). pool: the
  // training problems prompts are drawn from; eval_problems: val-split problems for val_accuracy.
  GrpoStage(Transformer& policy, const Transformer& reference, const data::Tokenizer& tok, const GrpoConfig& cfg,
            const ReasoningConfig& reasoning, std::vector<data::ReasoningProblem> pool,
            std::vector<data::ReasoningProblem> eval_problems, uint64_t seed, const GrpoToolOptions& tools = {});

  std::string name() const override { return "grpo"; }
  std::vector<std::string> loss_terms() const override { return {"policy", "kl"}; }
  int64_t tokens_per_batch() const override;
  void make_batch(int64_t step) override;
  BatchLoss batch_loss(int64_t step) override;
  std::vector<std::string> step_metrics() const override;
  std::vector<double> step_metric_values() override;
  std::vector<std::string> eval_metrics() const override { return {"val_accuracy"}; }
  std::vector<double> evaluate(int64_t step) override;
  void save_state(TrainerState& state) const override;
  void load_state(const TrainerState& state) override;

  // Samples rollout number `index` with the current policy (what make_batch does every μ steps).
  Rollout sample_rollout(int64_t index);
  const Rollout& rollout() const { return rollout_; }
  const std::vector<data::ReasoningProblem>& pool() const { return pool_; }

 private:
  Transformer& policy_;
  const Transformer& reference_;
  const data::Tokenizer& tok_;
  GrpoConfig cfg_;
  ReasoningConfig reasoning_;
  std::vector<data::ReasoningProblem> pool_, eval_problems_;
  uint64_t seed_;
  GrpoToolOptions tools_;
  int64_t eot_ = -1;
  Rollout rollout_;
  GRPOLossOutput last_;               // of the step's micro-batch, for the step metrics
  double last_entropy_ = NAN;
};

struct GrpoResult {
  int64_t start_step = 0, steps_done = 0;
  double first_reward = NAN, final_reward = NAN;      // rollout means of the first / last step of this call
  double final_val_accuracy = NAN;
  double mean_rollout_tokens_per_s = 0;               // over the steps that sampled
  double tokens_per_s = 0, wall_s = 0;
  std::string model_dir;
};

// GRPO from the model in `init_model_dir` (SFT's, or the pretrained one for R1-Zero) in cfg.grpo.out_dir (resumable);
// exports out_dir/model and writes out_dir/reward.png, length.png.
GrpoResult run_grpo(const PretrainConfig& cfg, const std::string& init_model_dir, const std::string& tokenizer_path,
                    std::ostream& log, bool progress = true);

}  // namespace sg
