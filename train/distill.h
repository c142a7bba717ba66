// train/distill.h — distillation (models/README.md §10.4): a trained teacher (the pipeline's GRPO model) into a
// smaller student (fewer layers, a smaller dim: distill.student overrides the teacher's ModelArgs, the tokenizer
// stays), two ways, against the same student trained without a teacher on the same budget.
//
//   distill-kd      logit distillation (Hinton et al. 2015) on the worked solutions SFT trains on: the teacher's
//                   forward on the SAME packed rows, without a tape, gives its logits z_t at every assistant
//                   position, and the student minimises
//                       L = α · T² · KL(softmax(z_t/T) ‖ softmax(z_s/T)) + (1 − α) · CE(z_s, next token)
//                   over the positions with a target (train/distill_loss.h; α = kd_weight, T = temperature)
//   distill-traces  DeepSeek-R1's way (R1 §2.4): SFT of the student on reasoning traces SAMPLED from the teacher
//                   and filtered by the reward (rejection sampling, R1 §2.3.3): trace_prompts train-split
//                   problems × trace_samples completions at trace_temperature (generate_batch); a completion is
//                   kept iff its accuracy reward is 1 and it ended with <|endoftext|> (it stopped by itself)
//   student-alone   the baseline: SFT of the student on the worked solutions, hard labels only (α = 0)
//
// The same budget: each student starts from the SAME initial weights (Rng(train.seed + 40)), trains `steps`
// optimizer steps of batch_size packed rows × seq_len tokens (pack_sft_rows, train/sft.h: whole examples, attention
// within each via segment ids), with the same schedule. Rows are always full: the examples are drawn from an
// endless sequence of epochs (each one shuffled by Rng(seed, epoch)), so a student with few examples (few kept
// traces) repeats them rather than padding. Targets: the assistant's tokens only, as in SFT. One loss function
// for the three (a student forward → logits → CE (+ KD)), so they differ only in their data and α.
// A MoE student adds the sequence-wise balance loss (balance_alpha) and the aux-loss-free bias step (bias_gamma),
// as SFT does; a student has no MTP modules (n_mtp_modules = 0): only the next-token head is trained.
//
// Logged per student (OUT/<name>/metrics.csv): terms kd (distill-kd only: T²·KL), ce, balance; step metrics
// examples, target_tokens, and for distill-kd kl (at T) and agreement (share of positions where the student's
// argmax is the teacher's); eval val_ce (CE on val-split worked solutions), val_kl (KL(teacher ‖ student) at
// T = 1 on the same positions: how close each student's distribution is to the teacher's) and val_accuracy
// (greedy, eval_problems val-split problems). OUT/traces.jsonl holds the kept traces, OUT/loss.png the curves.
//
// Resume: each student is its own Trainer run in OUT/<name> (resumable; the stage's position is in the
// checkpoint); the traces are re-sampled on resume from the same teacher and seeds, which gives the same traces.
//
// What this is not: reverse-KL or on-policy distillation (the student's own samples scored by the teacher), or
// R1's 800k-sample recipe (here the traces are a few hundred at most, and the teacher's accuracy bounds them).
#pragma once
#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "data/chat.h"
#include "data/reasoning.h"
#include "data/tokenizer.h"
#include "models/transformer.h"
#include "train/config_yaml.h"
#include "train/distill_loss.h"
#include "train/sft.h"
#include "train/trainer.h"

namespace sg {

enum class StudentKind { kd, traces, alone };
// "distill-kd", "distill-traces", "student-alone": the stage's name, its directory and its pipeline row.
const char* student_name(StudentKind kind);

struct TraceStats {
  int64_t prompts = 0, samples = 0;  // sampled: prompts × samples completions
  int64_t correct = 0;               // accuracy reward 1
  int64_t kept = 0;                  // correct and stopped at <|endoftext|>: the traces student's examples
  double sampled_accuracy = 0, sampled_format = 0;  // means over all samples
  double kept_mean_tokens = 0;       // completion tokens per kept trace
  double seconds = 0, tokens_per_s = 0;  // sampling (new tokens / s)
};

// The filter alone (R1's rejection sampling). prompts[i], completions[i] (token ids), problems[i]: completion i
// is kept iff accuracy_reward(decoded completion, problems[i]) = 1 and it ends with eot. A kept one becomes an
// SFT example: prompt ids (loss_mask 0) then completion ids (loss_mask 1). *stats gets the counts (not the
// timings). Throws "[distill] ..." on mismatched sizes.
std::vector<data::SftTokens> select_correct_traces(const data::Tokenizer& tok, const std::vector<std::vector<int64_t>>& prompts,
                                                   const std::vector<std::vector<int64_t>>& completions,
                                                   const std::vector<data::ReasoningProblem>& problems, int64_t eot,
                                                   TraceStats* stats = nullptr);

// n_prompts distinct problems of `pool` (the first of a seeded shuffle), `samples` completions each from the
// teacher at `temperature` (one generate_batch call), then select_correct_traces. *problems_out (if given)
// receives each kept trace's problem.
std::vector<data::SftTokens> sample_teacher_traces(Transformer& teacher, const data::Tokenizer& tok,
                                                   const std::vector<data::ReasoningProblem>& pool, int64_t n_prompts,
                                                   int64_t samples, double temperature, int64_t max_new_tokens,
                                                   const std::string& system, uint64_t seed, TraceStats* stats = nullptr,
                                                   std::vector<data::ReasoningProblem>* problems_out = nullptr);

// "512 prompts x 4 samples at T = 0.7 (accuracy 31.2%, format 96.0%) -> 590 correct, 588 kept (20.1 tokens each); 3.2 s (5100 tokens/s)"
std::string describe_traces(const TraceStats& s, double temperature);

// Parameters that run when generating: every parameter but the MTP modules' ("mtp.*").
int64_t generation_parameters(Transformer& model);
// New tokens per second of greedy generate_batch on `prompts` with exactly `new_tokens` tokens per row (no stop
// token, so every model does the same work), the best of `repeats` runs.
double generation_tokens_per_s(Transformer& model, const std::vector<std::vector<int64_t>>& prompts, int64_t new_tokens,
                               int repeats = 2);

class DistillStage : public Stage {
 public:
  // student is trained; teacher (frozen, its parameters not in the Trainer's model) gives the KD targets (kind kd)
  // and every student's val_kl; it may be null for traces / alone (val_kl is then NaN). train: the student's
  // examples (worked solutions, or kept traces); val: val-split worked solutions (val_ce, val_kl);
  // eval_problems: val-split problems (val_accuracy).
  DistillStage(Transformer& student, const Transformer* teacher, const data::Tokenizer& tok, const DistillConfig& cfg,
               const ReasoningConfig& reasoning, StudentKind kind, std::vector<data::SftTokens> train,
               std::vector<data::SftTokens> val, std::vector<data::ReasoningProblem> eval_problems, uint64_t seed);

  std::string name() const override { return student_name(kind_); }
  std::vector<std::string> loss_terms() const override;
  int64_t tokens_per_batch() const override { return cfg_.batch_size * cfg_.seq_len; }
  void make_batch(int64_t step) override;
  BatchLoss batch_loss(int64_t step) override;
  std::vector<std::string> step_metrics() const override;
  std::vector<double> step_metric_values() override;
  std::vector<std::string> eval_metrics() const override { return {"val_ce", "val_kl", "val_accuracy"}; }
  std::vector<double> evaluate(int64_t step) override;
  void save_state(TrainerState& state) const override;
  void load_state(const TrainerState& state) override;

  void update_biases();  // the aux-loss-free gate-bias step (after_optimizer_step hook), as in SFT
  double kd_weight() const { return kind_ == StudentKind::kd ? cfg_.kd_weight : 0.0; }
  const PackedBatch& batch() const { return batch_; }
  const KDLossOutput& last_kd() const { return last_kd_; }
  // The teacher's logits [B·T, V] of the current batch (kind kd; drawn without a tape in make_batch).
  const Tensor& teacher_logits() const { return teacher_logits_; }

 private:
  void append_epoch();

  Transformer& student_;
  const Transformer* teacher_;
  const data::Tokenizer& tok_;
  DistillConfig cfg_;
  ReasoningConfig reasoning_;
  StudentKind kind_;
  std::vector<data::SftTokens> train_, val_;
  std::vector<data::ReasoningProblem> eval_problems_;
  uint64_t seed_;
  int64_t pad_id_ = 0;
  std::vector<size_t> order_;  // epoch 0's shuffle, then epoch 1's, ... (appended as needed)
  int64_t epochs_ = 0;
  size_t next_ = 0;
  PackedBatch batch_;
  Tensor teacher_logits_;
  KDLossOutput last_kd_;
  std::vector<std::vector<int64_t>> step_loads_;
  int64_t loads_step_ = -1, step_examples_ = 0, step_targets_ = 0;
};

struct StudentResult {
  std::string name;              // student_name(kind)
  bool trained = false;          // false: distill-traces with no kept trace (nothing to train on)
  int64_t examples = 0;          // its training examples
  int64_t start_step = 0, steps_done = 0;
  int64_t target_tokens = 0;     // assistant tokens it trained on, all steps
  double first_loss = NAN, final_loss = NAN;
  double final_val_ce = NAN, final_val_kl = NAN, final_val_accuracy = NAN;
  double train_tokens_per_s = 0, train_seconds = 0;
  std::string model_dir;         // OUT/<name>/model
};

struct DistillResult {
  TraceStats traces;
  std::vector<StudentResult> students;  // student-alone, distill-kd, distill-traces
  int64_t teacher_parameters = 0, student_parameters = 0;  // generation_parameters
  double teacher_tokens_per_s = 0, student_tokens_per_s = 0;  // generation_tokens_per_s, same prompts and lengths
  double wall_s = 0;
  std::string out_dir;
};

// The three students from the teacher in `teacher_model_dir` (frozen) with the tokenizer at `tokenizer_path`, in
// cfg.distill.out_dir (resumable): each exported to OUT/<name>/model; OUT/traces.jsonl, OUT/loss.png.
DistillResult run_distill(const PretrainConfig& cfg, const std::string& teacher_model_dir, const std::string& tokenizer_path,
                          std::ostream& log, bool progress = true);

}  // namespace sg
