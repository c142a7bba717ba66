// train/dpo.h — the DPO stage (Rafailov et al. 2023; models/README.md §10.3): preference optimisation against a
// frozen reference, on the Trainer (train/trainer.h), with the loss of train/dpo_loss.h.
//
// The pairs. By default they come from the starting model's OWN samples, ranked by the verifiable reward:
//   1. n = sample_prompts distinct train-split problems (a shuffled order of the pool, Rng(seed))
//   2. group_size completions each, sampled together through the KV cache (generate_batch) at `temperature`
//   3. the reward of each, GRPO's: r = accuracy_weight · accuracy + format_weight · format (train/rewards.h)
//   4. a prompt whose rewards are not all equal gives ONE pair: chosen = its highest-reward completion, rejected =
//      its lowest (the first in sample order among ties). With the default weights (1, 0.1) a correct answer always
//      outranks a wrong one, so chosen = correct and rejected = wrong whenever the group has both; in a group with
//      no correct answer the format decides (a tidy wrong answer over an untidy one). Flat groups give no pair.
// Or they are read from a JSON-lines file (dpo.pairs_file; read_preference_pairs): {"prompt", "chosen",
// "rejected"} with completions, or HH-RLHF's {"chosen", "rejected"} whole dialogues that differ only in the last
// "\n\nAssistant:" turn (the common prefix up to it is the prompt).
//
// One step: pairs_per_step pairs (an epoch-shuffled order, Rng(seed, epoch)) packed as 2B rows
// [prompt | completion | pad] — rows 0..B−1 the chosen, B..2B−1 the rejected (pack_rollout_rows, train/grpo.h);
// the mask selects each completion's tokens; sequence log-probs under π_θ (on the tape) and π_ref (no tape,
// the same packed rows) → dpo_loss with β.
//
// Logged per step (metrics.csv): term dpo; step metrics reward_accuracy, reward_margin, chosen_reward,
// rejected_reward, chosen_logp, rejected_logp (dpo_loss's means over the batch); eval val_accuracy (greedy,
// eval_problems val-split problems). OUT/pairs.jsonl holds every pair's text (prompt, chosen, rejected).
//
// Resume: the stage's position (epoch, next pair) is its checkpoint state; the pairs are rebuilt on resume from
// the same starting model and seeds, which gives the same pairs (sampling is deterministic on any thread count).
//
// What this is not: online/iterative DPO (the pairs are built once, from π_ref = the starting model, as in the
// paper), IPO, or a reward model.
#pragma once
#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "data/reasoning.h"
#include "data/tokenizer.h"
#include "models/transformer.h"
#include "train/config_yaml.h"
#include "train/dpo_loss.h"
#include "train/rewards.h"
#include "train/trainer.h"

namespace sg {

struct PreferencePair {
  std::vector<int64_t> prompt, chosen, rejected;  // token ids; the completions end with <|endoftext|> when it was written
  int64_t problem = -1;                           // index into the pool it was sampled from; −1 when read from a file
};

struct PairSamplingStats {
  int64_t prompts = 0, completions = 0, pairs = 0;
  int64_t flat_groups = 0;                 // prompts whose rewards were all equal: no pair
  int64_t correct_over_wrong = 0;          // pairs with a correct chosen and a wrong rejected
  double sampled_accuracy = 0, sampled_format = 0, sampled_reward = 0;  // means over all completions sampled
  double seconds = 0, tokens_per_s = 0;    // sampling (new tokens / s)
};

// Step 4 alone: P prompts (ids), their completions grouped [P·G] (prompt p's are p·G .. p·G+G−1) with each one's
// reward terms → one pair per prompt whose totals differ (chosen = first highest, rejected = first lowest),
// problem = problems[p]; *stats gets the counts and means. Throws "[dpo] ..." on mismatched sizes.
std::vector<PreferencePair> select_preference_pairs(const std::vector<std::vector<int64_t>>& prompts,
                                                    const std::vector<std::vector<int64_t>>& completions,
                                                    const std::vector<RewardTerms>& rewards, int64_t group_size,
                                                    const std::vector<int64_t>& problems, PairSamplingStats* stats = nullptr);

// Steps 1–4 above with `model` (π_ref). pool: train-split problems; system: the prompts' system turn.
std::vector<PreferencePair> sample_preference_pairs(Transformer& model, const data::Tokenizer& tok,
                                                    const std::vector<data::ReasoningProblem>& pool, int64_t n_prompts,
                                                    int64_t group_size, double temperature, int64_t max_new_tokens,
                                                    const std::string& system, const RewardWeights& weights, uint64_t seed,
                                                    PairSamplingStats* stats = nullptr);

// "240 prompts x 8 completions at T = 1.0 (accuracy 3.1%, format 47.0%) -> 180 pairs, 20 of them correct over wrong; ..."
std::string describe_pair_sampling(const PairSamplingStats& s, int64_t group_size, double temperature);

// A JSON-lines (optionally zstd) file of pairs, encoded with `tok`; <|endoftext|> is appended to each completion.
// Pairs whose prompt + longer completion exceed max_tokens are skipped (counted in *skipped). Throws
// "[dpo] FILE:LINE: ..." on a line that is not such an object, chosen == rejected, or no shared prompt.
std::vector<PreferencePair> read_preference_pairs(const std::string& path, const data::Tokenizer& tok, int64_t max_tokens,
                                                  int64_t* skipped = nullptr);

// Writes {"prompt", "chosen", "rejected", "problem"} per pair, decoded (tmp + rename).
void write_preference_pairs_jsonl(const std::vector<PreferencePair>& pairs, const data::Tokenizer& tok, const std::string& path);

class DpoStage : public Stage {
 public:
  // policy is trained; reference is frozen (its parameters must not be in the Trainer's model).
  DpoStage(Transformer& policy, const Transformer& reference, const data::Tokenizer& tok, const DpoConfig& cfg,
           const ReasoningConfig& reasoning, std::vector<PreferencePair> pairs,
           std::vector<data::ReasoningProblem> eval_problems, uint64_t seed);

  std::string name() const override { return "dpo"; }
  std::vector<std::string> loss_terms() const override { return {"dpo"}; }
  int64_t tokens_per_batch() const override { return tokens_.defined() ? tokens_.numel() : 0; }
  void make_batch(int64_t step) override;
  BatchLoss batch_loss(int64_t step) override;
  std::vector<std::string> step_metrics() const override {
    return {"reward_accuracy", "reward_margin", "chosen_reward", "rejected_reward", "chosen_logp", "rejected_logp"};
  }
  std::vector<double> step_metric_values() override;
  std::vector<std::string> eval_metrics() const override { return {"val_accuracy"}; }
  std::vector<double> evaluate(int64_t step) override;
  void save_state(TrainerState& state) const override;
  void load_state(const TrainerState& state) override;

  const DPOLossOutput& last() const { return last_; }
  const std::vector<PreferencePair>& pairs() const { return pairs_; }
  // The batch make_batch drew: [2B, L] tokens, [2B, L−1] mask (chosen rows first).
  const Tensor& tokens() const { return tokens_; }
  const Tensor& mask() const { return mask_; }

 private:
  void shuffle_epoch();

  Transformer& policy_;
  const Transformer& reference_;
  const data::Tokenizer& tok_;
  DpoConfig cfg_;
  ReasoningConfig reasoning_;
  std::vector<PreferencePair> pairs_;
  std::vector<data::ReasoningProblem> eval_problems_;
  uint64_t seed_;
  int64_t eot_ = -1;
  std::vector<size_t> order_;
  int64_t epoch_ = 0;
  size_t next_ = 0;
  Tensor tokens_, mask_, ref_chosen_, ref_rejected_;
  DPOLossOutput last_;
};

struct DpoResult {
  PairSamplingStats sampling;    // zeros when the pairs came from a file
  int64_t n_pairs = 0;
  int64_t start_step = 0, steps_done = 0;
  double first_loss = NAN, final_loss = NAN;
  double final_reward_accuracy = NAN, final_reward_margin = NAN;  // of the last step's batch
  double final_val_accuracy = NAN;
  double tokens_per_s = 0, wall_s = 0;
  std::string model_dir;
};

// DPO from the model in `init_model_dir` (π_θ's start and π_ref) in cfg.dpo.out_dir (resumable); exports
// out_dir/model and writes out_dir/pairs.jsonl, loss.png and rewards.png.
DpoResult run_dpo(const PretrainConfig& cfg, const std::string& init_model_dir, const std::string& tokenizer_path,
                  std::ostream& log, bool progress = true);

}  // namespace sg
