// tools/chapters/ch10_dpo.cpp — Chapter 10: DPO — preferences without a reward model, against GRPO on the same
// budget. Read ch10_dpo.md beside this file.
//
// DPO (Rafailov et al. 2023, eq. 7; models/README.md §10.3) assembled piece by piece on the Trainer: the SFT model
// as π_θ's start AND as the frozen π_ref, preference pairs from its OWN samples ranked by the verifiable reward
// (train/dpo.h), a DpoStage and a Trainer. Then GRPO from the same SFT model with the same sampling budget (as many
// sampled completions) and the same number of optimizer steps, and the two compared on held-out problems. Printed,
// all measured by this run:
//   1. the start: a short PRETRAIN + SFT of its own (reasoning_base.h), in OUT
//   2. the pairs: S prompts x G completions sampled from the SFT model, one pair per prompt whose rewards differ;
//      one pair shown with its rewards
//   3. the DPO loss of the first batch (log 2: π_θ = π_ref) and its gradient path to layers.0.attn.wkv_a.weight
//   4. DPO: loss, implicit-reward accuracy and margin, chosen/rejected log-probs every few steps; OUT/dpo.png
//   5. GRPO on the same budget: mean rollout reward; then the table: held-out greedy accuracy and format, and the
//      mean reward of T = 1 samples, for SFT, SFT + DPO, SFT + GRPO
//
//   build/bin/ch10_dpo [--steps 40] [--beta 0.1] [--seed 21] [--out runs/ch10]
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
#include "train/dpo.h"
#include "train/grpo.h"
#include "train/metrics.h"
#include "train/plot.h"
#include "train/reasoning_eval.h"
#include "train/rewards.h"
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

std::string text_of(const data::Tokenizer& tok, const std::vector<int64_t>& ids) {
  return chapter::one_line(tok.decode(std::vector<int32_t>(ids.begin(), ids.end())));
}

TrainerConfig chapter_trainer(const std::string& out_dir, int64_t steps, double grad_clip, const char* name) {
  TrainerConfig tc;
  tc.steps = steps;
  tc.grad_clip = grad_clip;
  tc.eval_every = 0;
  tc.checkpoint_every = 0;
  tc.out_dir = out_dir;
  tc.run_name = name;
  tc.progress = false;
  return tc;
}

// The mean reward (1·accuracy + 0.1·format) of `samples` completions per problem at T = 1: the quantity both
// stages optimise, measured on held-out problems.
struct SampledReward {
  double reward = 0, accuracy = 0, format = 0;
};
SampledReward sampled_reward(Transformer& model, const data::Tokenizer& tok, const std::vector<data::ReasoningProblem>& val,
                             const ReasoningConfig& rc, int64_t samples) {
  ProblemEvalOptions eo;
  eo.samples = samples;
  eo.temperature = 1.0;
  eo.max_new_tokens = rc.max_new_tokens;
  eo.seed = rc.seed + 5;
  eo.system = rc.system_prompt();
  ProblemEvalResult r = evaluate_problems(model, tok, val, eo);
  return {r.accuracy + 0.1 * r.format_rate, r.accuracy, r.format_rate};
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Chapter 10: DPO — preference pairs from the model's own samples, against GRPO on the same budget"};
  chapter::BaseSizes z;
  // ch11's start (500 pretraining steps, a 40-step cold start whose format is not yet reliable, so a group's rewards
  // differ), then 40 steps of each stage: DPO with 8 pairs (16 rows) a step, GRPO with 4 prompts x 8 completions.
  z.pretrain_steps = 500;
  z.sft_steps = 40;
  z.grpo_steps = 40;
  z.grpo_lr = 1e-3;
  z.dpo_steps = 40;
  z.dpo_pairs_per_step = 8;  // 16 rows a step: DPO's loss is noisy on fewer pairs
  z.dpo_lr = 2e-4;           // 1e-3 (GRPO's) pushes both log-probs down fast and the held-out reward falls (ch10_dpo.md)
  z.dpo_beta = 0.1;
  int64_t seed = 21;
  int n_val = 64, window = 8, val_samples = 4;
  std::string out = "runs/ch10";
  app.add_option("--steps", z.dpo_steps, "DPO steps (GRPO runs as many)")->check(CLI::PositiveNumber);
  app.add_option("--beta", z.dpo_beta, "DPO's β")->check(CLI::PositiveNumber);
  app.add_option("--lr", z.dpo_lr, "DPO learning rate (constant)")->check(CLI::PositiveNumber);
  app.add_option("--pairs", z.dpo_pairs_per_step, "DPO pairs per step")->check(CLI::PositiveNumber);
  app.add_option("--seed", seed, "the stages' seed (which prompts, which samples)");
  app.add_option("--pretrain-steps", z.pretrain_steps, "steps of the base model's pretraining")->check(CLI::PositiveNumber);
  app.add_option("--sft-steps", z.sft_steps, "SFT steps")->check(CLI::PositiveNumber);
  app.add_option("--out", out, "output directory");
  CLI11_PARSE(app, argc, argv);
  z.grpo_steps = z.dpo_steps;
  // The same budget: GRPO samples steps x P x G completions; DPO samples as many, up front, from π_ref.
  z.dpo_sample_prompts = z.grpo_steps * z.grpo_prompts;
  z.dpo_group = z.grpo_group;
  window = std::max(1, std::min<int>(window, (int)z.dpo_steps / 2));
  chapter::start_over(out);
  PretrainConfig cfg = chapter::base_config(out, z);
  const ReasoningConfig& rc = cfg.reasoning;
  const DpoConfig& dc = cfg.dpo;
  const GrpoConfig& gc = cfg.grpo;

  std::cout << "Chapter 10 — DPO: preference pairs from the model's own samples, against GRPO on the same budget\n\n== 1. the start: "
            << z.pretrain_steps << " pretraining steps, then " << z.sft_steps << " SFT steps ==\n";
  chapter::BaseModel base = chapter::pretrain_base(cfg, std::cout);
  SftResult sft = run_sft(cfg, base.model_dir, base.tokenizer_path, std::cout, /*progress=*/false);
  std::printf("sft: CE on assistant tokens %.3f -> %.3f in %.1f s\n", sft.first_loss, sft.final_loss, sft.wall_s);
  data::Tokenizer& tok = base.tok;
  Transformer policy = load_model_dir(sft.model_dir);
  Transformer reference = load_model_dir(sft.model_dir);
  std::vector<data::ReasoningProblem> pool = data::reasoning_split(data::Split::train, rc.seed + 1, 4000, (int)rc.level);
  std::vector<data::ReasoningProblem> val = data::reasoning_split(data::Split::val, rc.seed, n_val, (int)rc.level);
  ProblemEvalResult greedy_sft = chapter::greedy_eval(policy, tok, val, rc.max_new_tokens, rc.system_prompt());
  SampledReward sampled_sft = sampled_reward(policy, tok, val, rc, val_samples);

  std::printf("\n== 2. the pairs: %lld prompts x %lld completions of the SFT model at T = %g, ranked by r = 1·accuracy + 0.1·format ==\n",
              (long long)dc.sample_prompts, (long long)dc.group_size, dc.temperature);
  PairSamplingStats ps;
  std::vector<PreferencePair> pairs =
      sample_preference_pairs(reference, tok, pool, dc.sample_prompts, dc.group_size, dc.temperature, rc.max_new_tokens,
                              rc.system_prompt(), {dc.accuracy_weight, dc.format_weight}, (uint64_t)seed, &ps);
  std::printf("  %s\n", describe_pair_sampling(ps, dc.group_size, dc.temperature).c_str());
  if (pairs.empty()) {
    std::printf("  no pair: every prompt's completions had equal rewards\n");
    return 1;
  }
  write_preference_pairs_jsonl(pairs, tok, out + "/pairs.jsonl");
  {
    const PreferencePair& p = pairs[0];
    const data::ReasoningProblem& q = pool[(size_t)p.problem];
    const RewardTerms rw = compute_rewards(tok.decode(std::vector<int32_t>(p.chosen.begin(), p.chosen.end())), q);
    const RewardTerms rl = compute_rewards(tok.decode(std::vector<int32_t>(p.rejected.begin(), p.rejected.end())), q);
    std::printf("  pair 0: %s  (answer %lld)\n    chosen   r %.2f  %s\n    rejected r %.2f  %s\n  every pair: %s/pairs.jsonl\n",
                q.question.c_str(), (long long)q.answer, rw.total, text_of(tok, p.chosen).c_str(), rl.total,
                text_of(tok, p.rejected).c_str(), out.c_str());
  }

  std::printf("\n== 3. the first batch's DPO loss (%lld pairs, β = %g) and its gradient path to layers.0.attn.wkv_a.weight ==\n",
              (long long)dc.pairs_per_step, dc.beta);
  DpoStage probe(policy, reference, tok, dc, rc, pairs, {}, (uint64_t)seed + 1);
  probe.make_batch(0);
  NamedParameters params = policy.named_parameters();
  Tensor* wkv_a = nullptr;
  for (auto& [n, t] : params)
    if (n == "layers.0.attn.wkv_a.weight") wkv_a = t;
  for (auto& [n, t] : params) t->zero_grad();
  BatchLoss first = probe.batch_loss(0);
  std::printf("  loss %.6f (log 2 = %.6f: π_θ = π_ref, every pair's h = r_w − r_l = 0, and each pulls with β/(2N))\n",
              first.total.item(), std::log(2.0));
  GradientPath path = gradient_path(first.total, *wkv_a, params);
  for (auto& [n, t] : params) t->zero_grad();
  std::cout << format_gradient_path(path);

  std::printf("\n== 4. DPO: %lld steps x %lld pairs, constant lr %g ==\n", (long long)dc.steps, (long long)dc.pairs_per_step, dc.lr);
  DpoStage dpo_stage(policy, reference, tok, dc, rc, pairs, {}, (uint64_t)seed + 1);
  Trainer dpo_trainer(policy, dpo_stage, chapter_trainer(out + "/dpo", dc.steps, dc.grad_clip, "ch10-dpo"), LrSchedule::constant(dc.lr),
                      Rng((uint64_t)seed + 2), std::cout);
  TrainerResult dtr = dpo_trainer.run();
  MetricsTable dm = read_metrics_csv(dpo_trainer.metrics_path());
  const std::vector<double> step = dm.column("step"), loss = dm.column("dpo_loss"), racc = dm.column("reward_accuracy"),
                            margin = dm.column("reward_margin"), lpw = dm.column("chosen_logp"), lpl = dm.column("rejected_logp");
  std::printf("  %5s %9s %10s %9s %12s %13s\n", "step", "loss", "reward acc", "margin", "log π(y_w)", "log π(y_l)");
  for (size_t i = 0; i < step.size(); i++)
    if (i == 0 || (i + 1) % 5 == 0)
      std::printf("  %5.0f %9.4f %10.3f %+9.3f %12.2f %13.2f\n", step[i], loss[i], racc[i], margin[i], lpw[i], lpl[i]);
  const size_t S = step.size(), W = (size_t)window;
  const double loss_first = mean_of(loss, 0, W), loss_last = mean_of(loss, S - W, S);
  const double acc_first = mean_of(racc, 0, W), acc_last = mean_of(racc, S - W, S);
  const double margin_last = mean_of(margin, S - W, S);
  const double lpw_first = mean_of(lpw, 0, W), lpw_last = mean_of(lpw, S - W, S), lpl_first = mean_of(lpl, 0, W),
               lpl_last = mean_of(lpl, S - W, S);
  std::printf("  means over the first / last %d steps: loss %.4f -> %.4f, reward accuracy %.3f -> %.3f, margin -> %+.3f;\n"
              "  log π(y_w) %.2f -> %.2f and log π(y_l) %.2f -> %.2f (the batches differ: compare the gap); %.1f s of training\n",
              window, loss_first, loss_last, acc_first, acc_last, margin_last, lpw_first, lpw_last, lpl_first, lpl_last,
              dtr.train_seconds);
  write_line_plot_png(out + "/dpo.png",
                      {{"loss", step, loss, colors::blue}, {"reward accuracy", step, racc, colors::green},
                       {"reward margin", step, margin, colors::orange}},
                      "DPO: loss, implicit-reward accuracy and margin per step");
  ProblemEvalResult greedy_dpo = chapter::greedy_eval(policy, tok, val, rc.max_new_tokens, rc.system_prompt());
  SampledReward sampled_dpo = sampled_reward(policy, tok, val, rc, val_samples);

  std::printf("\n== 5. GRPO from the same SFT model on the same budget: %lld steps x %lld prompts x %lld completions ==\n",
              (long long)gc.steps, (long long)gc.prompts_per_step, (long long)gc.group_size);
  Transformer grpo_policy = load_model_dir(sft.model_dir);
  GrpoStage grpo_stage(grpo_policy, reference, tok, gc, rc, pool, {}, (uint64_t)seed + 3);
  Trainer grpo_trainer(grpo_policy, grpo_stage, chapter_trainer(out + "/grpo", gc.steps, gc.grad_clip, "ch10-grpo"),
                       LrSchedule::constant(gc.lr), Rng((uint64_t)seed + 4), std::cout);
  TrainerResult gtr = grpo_trainer.run();
  MetricsTable gm = read_metrics_csv(grpo_trainer.metrics_path());
  const std::vector<double> greward = gm.column("reward");
  const int64_t grpo_samples = gc.steps * gc.prompts_per_step * gc.group_size;
  std::printf("  rollout reward, first / last %d steps: %.4f -> %.4f; %.1f s of training\n", window, mean_of(greward, 0, W),
              mean_of(greward, greward.size() - W, greward.size()), gtr.train_seconds);
  ProblemEvalResult greedy_grpo = chapter::greedy_eval(grpo_policy, tok, val, rc.max_new_tokens, rc.system_prompt());
  SampledReward sampled_grpo = sampled_reward(grpo_policy, tok, val, rc, val_samples);

  std::printf("\n  %d held-out VAL-split problems; greedy, and %d samples each at T = 1 (reward = accuracy + 0.1·format)\n", n_val,
              val_samples);
  std::printf("  %-11s %10s %9s %9s %11s %11s %15s %9s\n", "model", "greedy acc", "format", "length", "T=1 reward", "T=1 acc",
              "sampled (train)", "steps");
  auto row = [&](const char* name, const ProblemEvalResult& g, const SampledReward& s, int64_t samples, int64_t steps) {
    std::printf("  %-11s %9.1f%% %8.1f%% %9.1f %11.3f %10.1f%% %15lld %9lld\n", name, 100 * g.accuracy, 100 * g.format_rate,
                g.mean_length, s.reward, 100 * s.accuracy, (long long)samples, (long long)steps);
  };
  row("SFT", greedy_sft, sampled_sft, 0, 0);
  row("SFT + DPO", greedy_dpo, sampled_dpo, ps.completions, dc.steps);
  row("SFT + GRPO", greedy_grpo, sampled_grpo, grpo_samples, gc.steps);
  std::printf("  plots: %s/dpo.png; every column: %s, %s\n\n", out.c_str(), dpo_trainer.metrics_path().c_str(),
              grpo_trainer.metrics_path().c_str());

  chapter::Checks checks;
  checks.that("the same sampling budget: DPO's completions = GRPO's", ps.completions == grpo_samples);
  checks.at_least("pairs from the SFT model's samples", (double)pairs.size(), 20);
  checks.near("first-batch DPO loss (π_θ = π_ref)", first.total.item(), std::log(2.0), 1e-5);
  checks.that("the traced path ends at layers.0.attn.wkv_a", !path.steps.empty() && path.steps.back().scope == "layers.0.attn.wkv_a" &&
                                                                  path.param_name == "layers.0.attn.wkv_a.weight");
  checks.that("its gradient norm is finite and non-zero", std::isfinite(path.param_grad_norm) && path.param_grad_norm > 0);
  checks.at_most("DPO loss, last window - first window", loss_last - loss_first, -0.05);
  checks.at_least("DPO reward accuracy, last window", acc_last, 0.8);
  checks.at_least("DPO reward margin, last window", margin_last, 0.1);
  checks.at_least("log π(y_w) − log π(y_l) gap, last − first window", (lpw_last - lpl_last) - (lpw_first - lpl_first), 0.5);
  checks.at_least("held-out T=1 reward after GRPO - SFT", sampled_grpo.reward - sampled_sft.reward, 0.02);
  checks.at_least("held-out T=1 reward: GRPO - DPO (same budget)", sampled_grpo.reward - sampled_dpo.reward, 0.0);
  checks.that("every number is finite", std::isfinite(greedy_dpo.accuracy) && std::isfinite(greedy_grpo.accuracy) &&
                                            std::isfinite(sampled_dpo.reward) && std::isfinite(sampled_grpo.reward));
  return checks.exit_code();
}
