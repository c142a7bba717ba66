// tools/chapters/ch11_grpo.cpp — Chapter 11: R1's reinforcement learning — reward, accuracy and response length
// over the steps of GRPO. Read ch11_grpo.md beside this file.
//
// GRPO (DeepSeekMath §4.1, DeepSeek-R1 §2.2; models/README.md §10.1, §10.2) on the Trainer, assembled here piece
// by piece so every part of the loop is visible: the SFT model as the policy AND as the frozen reference, a pool
// of train-split problems, a GrpoStage (rollouts of P prompts x G sampled completions, rule-based rewards, group
// advantages, the clipped surrogate − β·KL loss) and a Trainer (AdamW, clipping, metrics.csv). Printed, all
// measured by this run:
//   1. the start: a short PRETRAIN + SFT of its own (reasoning_base.h, run_sft), in OUT, so this chapter never
//      depends on ch09 having run
//   2. one rollout: the G completions of one prompt with their rewards and advantages
//   3. the gradient path from that rollout's GRPO loss to layers.0.attn.wkv_a.weight (autograd/trace_path.h)
//   4. GRPO: reward, accuracy, format and response length every few steps; OUT/reward.png, OUT/length.png
//   5. after: the same prompt's completions again, greedy accuracy on held-out val-split problems
//   6. μ = 2: two optimizer steps on one rollout; the second one has ρ ≠ 1, and the clip acts
//
//   build/bin/ch11_grpo [--steps 60] [--seed 21] [--sft-steps 40] [--solution columns] [--out runs/ch11]
// Every run starts over (OUT/data, the prepared token shards, is reused; everything else in OUT is removed).
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "autograd/trace_path.h"
#include "data/reasoning.h"
#include "tools/chapters/chapter_check.h"
#include "tools/chapters/reasoning_base.h"
#include "train/grpo.h"
#include "train/metrics.h"
#include "train/plot.h"
#include "train/reasoning_eval.h"
#include "train/schedule.h"
#include "train/sft.h"
#include "train/trainer.h"

using namespace sg;

namespace {

double mean_of(const std::vector<double>& v, size_t from, size_t to) {
  double s = 0;
  for (size_t i = from; i < to; i++) s += v[i];
  return s / (double)(to - from);
}

// Step 2. One group of a rollout: its G completions, rewards and advantages. Returns the group shown.
int64_t show_group(const Rollout& r, const std::vector<data::ReasoningProblem>& pool) {
  const int64_t G = r.group_size;
  const std::vector<double> A = r.advantages.to_f64_vector();
  int64_t show = 0;  // the first group whose rewards are not all equal (it has a gradient), else group 0
  for (int64_t p = 0; p < r.prompts; p++)
    if (std::any_of(r.reward.begin() + p * G, r.reward.begin() + (p + 1) * G, [&](double x) { return x != r.reward[(size_t)(p * G)]; })) {
      show = p;
      break;
    }
  const data::ReasoningProblem& q = pool[(size_t)r.problem[(size_t)(show * G)]];
  std::printf("  prompt %lld of %lld: %s  (answer %lld)\n", (long long)show, (long long)r.prompts, q.question.c_str(), (long long)q.answer);
  std::printf("    %-3s %6s %4s %4s %8s  %s\n", "i", "reward", "acc", "fmt", "A_i", "completion (sampled at T = 1)");
  for (int64_t g = 0; g < G; g++) {
    const size_t i = (size_t)(show * G + g);
    std::printf("    %-3lld %6.2f %4.0f %4.0f %+8.3f  %s\n", (long long)g, r.reward[i], r.accuracy[i], r.format[i], A[i],
                chapter::one_line(r.completions[i]).c_str());
  }
  return show;
}

// Step 2's checks over EVERY group of the rollout: Σ_i A_i per group, and A of the all-equal groups.
struct AdvantageAudit {
  double max_abs_group_sum = 0, max_abs_equal_group_a = 0;
  int64_t equal_groups = 0;
};
AdvantageAudit audit_advantages(const Rollout& r) {
  AdvantageAudit a;
  const std::vector<double> A = r.advantages.to_f64_vector();
  for (int64_t p = 0; p < r.prompts; p++) {
    double sum = 0, max_a = 0;
    bool equal = true;
    for (int64_t g = 0; g < r.group_size; g++) {
      const size_t i = (size_t)(p * r.group_size + g);
      sum += A[i];
      max_a = std::max(max_a, std::abs(A[i]));
      equal = equal && r.reward[i] == r.reward[(size_t)(p * r.group_size)];
    }
    a.max_abs_group_sum = std::max(a.max_abs_group_sum, std::abs(sum));
    if (equal) a.equal_groups++, a.max_abs_equal_group_a = std::max(a.max_abs_equal_group_a, max_a);
  }
  return a;
}

// Step 3. The loss of the stage's current rollout on the tape, and the path of its gradient to one parameter.
GradientPath trace_to(Transformer& policy, GrpoStage& stage, const std::string& name) {
  NamedParameters params = policy.named_parameters();
  Tensor* param = nullptr;
  for (auto& [n, t] : params)
    if (n == name) param = t;
  for (auto& [n, t] : params) t->zero_grad();
  BatchLoss bl = stage.batch_loss(0);
  std::printf("  GRPO loss %.3g = policy %.3g + β·KL %.3g  (μ = 1: ρ = 1, so the policy term is −mean A = 0 in value, not\n"
              "  in gradient; KL = 0 because π_θ = π_ref before the first update)\n", bl.total.item(), bl.terms[0], bl.terms[1]);
  GradientPath path = gradient_path(bl.total, *param, params);
  for (auto& [n, t] : params) t->zero_grad();  // the Trainer's first step starts from zero gradients anyway
  return path;
}

TrainerConfig grpo_trainer_config(const GrpoConfig& gc, const std::string& out_dir, int64_t steps) {
  TrainerConfig tc;
  tc.steps = steps;
  tc.grad_clip = gc.grad_clip;
  tc.adamw.lr = gc.lr;
  tc.adamw.weight_decay = gc.weight_decay;
  tc.eval_every = 0;
  tc.checkpoint_every = 0;
  tc.out_dir = out_dir;
  tc.run_name = "ch11-grpo";
  tc.progress = false;
  return tc;
}

void print_completions(const char* when, const Rollout& r, int64_t group) {
  int64_t correct = 0;
  for (int64_t g = 0; g < r.group_size; g++) correct += r.accuracy[(size_t)(group * r.group_size + g)] > 0;
  std::printf("  %s (%lld/%lld correct):\n", when, (long long)correct, (long long)r.group_size);
  for (int64_t g = 0; g < r.group_size; g++) {
    const size_t i = (size_t)(group * r.group_size + g);
    std::printf("    r %.2f  %s\n", r.reward[i], chapter::one_line(r.completions[i]).c_str());
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Chapter 11: GRPO — reward, accuracy and response length over steps"};
  chapter::BaseSizes z;
  // The base model of ch09 with fewer pretraining steps (time), a SHORT cold start (40 SFT steps: the format is not
  // yet reliable when sampled, so the group rewards differ and GRPO has something to learn), 60 GRPO steps.
  z.pretrain_steps = 500;
  z.sft_steps = 40;
  z.grpo_steps = 60;
  z.grpo_lr = 1e-3;
  int64_t seed = 21;
  int n_val = 64, window = 10;
  std::string out = "runs/ch11";
  app.add_option("--steps", z.grpo_steps, "GRPO steps (one rollout each, μ = 1)")->check(CLI::PositiveNumber);
  app.add_option("--seed", seed, "the GRPO stage's seed (which prompts, which samples)");
  app.add_option("--pretrain-steps", z.pretrain_steps, "steps of the base model's pretraining")->check(CLI::PositiveNumber);
  app.add_option("--sft-steps", z.sft_steps, "SFT steps")->check(CLI::PositiveNumber);
  app.add_option("--prompts", z.grpo_prompts, "P: prompts per rollout")->check(CLI::PositiveNumber);
  app.add_option("--group", z.grpo_group, "G: completions per prompt")->check(CLI::Range(2, 64));
  app.add_option("--lr", z.grpo_lr, "GRPO learning rate (constant)");
  app.add_option("--temperature", z.grpo_temperature, "sampling temperature of the rollouts");
  app.add_option("--window", window, "steps averaged at the start and at the end")->check(CLI::PositiveNumber);
  app.add_option("--solution", z.solution, "worked solutions: columns (digit by digit) or steps (one line per op)")
      ->check(CLI::IsMember({"columns", "steps"}));
  app.add_option("--out", out, "output directory");
  CLI11_PARSE(app, argc, argv);
  window = std::max(1, std::min<int>(window, (int)z.grpo_steps / 2));
  chapter::start_over(out);
  PretrainConfig cfg = chapter::base_config(out, z);
  const ReasoningConfig& rc = cfg.reasoning;
  const GrpoConfig& gc = cfg.grpo;

  std::cout << "Chapter 11 — GRPO: reward, accuracy and response length over steps\n\n== 1. the start: "
            << z.pretrain_steps << " pretraining steps, then " << z.sft_steps << " SFT steps ==\n";
  chapter::BaseModel base = chapter::pretrain_base(cfg, std::cout);
  SftResult sft = run_sft(cfg, base.model_dir, base.tokenizer_path, std::cout, /*progress=*/false);
  std::printf("sft: CE on assistant tokens %.3f -> %.3f in %.1f s\n", sft.first_loss, sft.final_loss, sft.wall_s);

  // The policy π_θ (trained) and the reference π_ref (frozen): both start as the SFT model.
  data::Tokenizer& tok = base.tok;
  Transformer policy = load_model_dir(sft.model_dir);
  const Transformer reference = load_model_dir(sft.model_dir);
  // Prompts come from TRAIN-split problems; the held-out measurement uses VAL-split ones (never trained on).
  std::vector<data::ReasoningProblem> pool = data::reasoning_split(data::Split::train, rc.seed + 1, 4000, (int)rc.level);
  std::vector<data::ReasoningProblem> val = data::reasoning_split(data::Split::val, rc.seed, n_val, (int)rc.level);
  ProblemEvalResult val_before = chapter::greedy_eval(policy, tok, val, rc.max_new_tokens, rc.system_prompt());

  GrpoStage stage(policy, reference, tok, gc, rc, pool, /*eval_problems=*/{}, (uint64_t)seed);
  std::printf("\n== 2. one rollout: %lld prompts x %lld completions, rewards r = 1·accuracy + 0.1·format ==\n",
              (long long)gc.prompts_per_step, (long long)gc.group_size);
  stage.make_batch(0);  // rollout 0; the Trainer's first step finds it already drawn and trains on it
  const Rollout first = stage.rollout();
  const int64_t group = show_group(first, pool);
  AdvantageAudit adv = audit_advantages(first);
  std::printf("  A_i = (r_i − mean r) / (std r + 1e-4) per group; %lld of %lld groups have all-equal rewards (A = 0: no gradient)\n",
              (long long)adv.equal_groups, (long long)first.prompts);

  std::cout << "\n== 3. the gradient path from this rollout's GRPO loss to layers.0.attn.wkv_a.weight ==\n";
  GradientPath path = trace_to(policy, stage, "layers.0.attn.wkv_a.weight");
  std::cout << format_gradient_path(path);

  std::printf("\n== 4. GRPO: %lld steps, μ = 1, lr %g, ε %g, β %g, %s normalisation ==\n", (long long)gc.steps, gc.lr,
              gc.clip_eps, gc.kl_beta, gc.norm.c_str());
  const std::string grpo_dir = out + "/grpo";
  Trainer trainer(policy, stage, grpo_trainer_config(gc, grpo_dir, gc.steps), LrSchedule::constant(gc.lr), Rng((uint64_t)seed + 1),
                  std::cout);
  TrainerResult tr = trainer.run();
  MetricsTable m = read_metrics_csv(trainer.metrics_path());
  std::vector<double> step = m.column("step"), reward = m.column("reward"), acc = m.column("accuracy"), fmt = m.column("format"),
                      len = m.column("response_length"), kl = m.column("kl_mean"), zero = m.column("zero_std_groups"),
                      ratio = m.column("ratio_mean"), clip = m.column("clip_fraction");
  std::printf("  %5s %8s %9s %7s %8s %9s %10s\n", "step", "reward", "accuracy", "format", "length", "KL", "A=0 groups");
  for (size_t i = 0; i < step.size(); i++)
    if (i == 0 || (i + 1) % 5 == 0)
      std::printf("  %5.0f %8.3f %9.3f %7.3f %8.1f %9.4f %10.2f\n", step[i], reward[i], acc[i], fmt[i], len[i], kl[i], zero[i]);
  const size_t S = step.size();
  const double r_first = mean_of(reward, 0, (size_t)window), r_last = mean_of(reward, S - (size_t)window, S);
  const double f_first = mean_of(fmt, 0, (size_t)window), f_last = mean_of(fmt, S - (size_t)window, S);
  const double a_first = mean_of(acc, 0, (size_t)window), a_last = mean_of(acc, S - (size_t)window, S);
  const double l_first = mean_of(len, 0, (size_t)window), l_last = mean_of(len, S - (size_t)window, S);
  std::printf("  means over the first / last %d steps: reward %.4f -> %.4f, accuracy %.4f -> %.4f, format %.3f -> %.3f,\n"
              "  length %.1f -> %.1f tokens;  %.1f s of training (%.2f s per step)\n", window, r_first, r_last, a_first, a_last,
              f_first, f_last, l_first, l_last, tr.train_seconds, tr.train_seconds / (double)S);
  write_line_plot_png(out + "/reward.png",
                      {{"reward", step, reward, colors::blue}, {"accuracy", step, acc, colors::green}, {"format", step, fmt, colors::orange}},
                      "GRPO rollouts: mean reward, accuracy, format");
  write_line_plot_png(out + "/length.png", {{"response length", step, len, colors::blue}}, "GRPO: mean completion length (tokens)");
  std::printf("  plots: %s/reward.png, %s/length.png; every column: %s\n", out.c_str(), out.c_str(), trainer.metrics_path().c_str());

  std::cout << "\n== 5. after GRPO ==\n";
  const Rollout again = stage.sample_rollout(0);  // the same prompts and seeds as rollout 0, the trained policy
  print_completions("before GRPO", first, group);
  print_completions("after GRPO ", again, group);
  ProblemEvalResult val_after = chapter::greedy_eval(policy, tok, val, rc.max_new_tokens, rc.system_prompt());
  std::printf("  held-out greedy (%d val-split problems): accuracy %.1f%% -> %.1f%%, format %.1f%% -> %.1f%%, length %.1f -> %.1f\n",
              n_val, 100 * val_before.accuracy, 100 * val_after.accuracy, 100 * val_before.format_rate, 100 * val_after.format_rate,
              val_before.mean_length, val_after.mean_length);
  save_model_dir(policy, grpo_dir + "/model");

  std::cout << "\n== 6. μ = 2: two optimizer steps on ONE rollout (π_old fixed between them) ==\n";
  GrpoConfig gc2 = gc;
  gc2.inner_iterations = 2;
  GrpoStage stage2(policy, reference, tok, gc2, rc, pool, {}, (uint64_t)seed + 100);
  Trainer trainer2(policy, stage2, grpo_trainer_config(gc2, out + "/grpo_mu2", 2), LrSchedule::constant(gc.lr),
                   Rng((uint64_t)seed + 101), std::cout);
  trainer2.run();
  MetricsTable m2 = read_metrics_csv(trainer2.metrics_path());
  std::vector<double> clip2 = m2.column("clip_fraction"), ratio2 = m2.column("ratio_mean");
  std::printf("  step 1: ratio mean %.6f, clip fraction %.4f   (ρ = π_θ/π_old = 1: nothing has moved yet)\n", ratio2[0], clip2[0]);
  std::printf("  step 2: ratio mean %.6f, clip fraction %.4f   (after one update ρ ≠ 1; clipped tokens get no gradient)\n\n",
              ratio2[1], clip2[1]);

  chapter::Checks checks;
  checks.at_most("max |Σ_i A_i| over the groups of rollout 0", adv.max_abs_group_sum, 1e-5);
  checks.that("all-equal groups get A = 0 exactly", adv.max_abs_equal_group_a == 0.0);
  checks.that("the traced path ends at layers.0.attn.wkv_a", !path.steps.empty() && path.steps.back().scope == "layers.0.attn.wkv_a" &&
                                                                  path.param_name == "layers.0.attn.wkv_a.weight");
  checks.that("its gradient norm is finite and non-zero", std::isfinite(path.param_grad_norm) && path.param_grad_norm > 0);
  checks.at_least("mean reward, last window - first window", r_last - r_first, 0.02);
  checks.at_least("mean format, last window - first window", f_last - f_first, 0.2);
  checks.at_least("val greedy format after GRPO", val_after.format_rate, 0.9);
  checks.at_least("val greedy format after - before", val_after.format_rate - val_before.format_rate, 0.15);
  checks.at_least("val greedy accuracy after - before", val_after.accuracy - val_before.accuracy, -0.05);
  checks.that("μ = 1: ρ = 1 and nothing clipped at every step",
              std::all_of(clip.begin(), clip.end(), [](double c) { return c == 0; }) &&
                  std::all_of(ratio.begin(), ratio.end(), [](double r) { return std::abs(r - 1) < 1e-6; }));
  checks.at_least("μ = 2: clip fraction of the second step", clip2[1], 1e-9);
  return checks.exit_code();
}
