// tools/chapters/ch13_tool_use.cpp — Chapter 13: teaching a small model to call a calculator — SFT on tool traces,
// then GRPO with the calculator in the loop. Read ch13_tool_use.md beside this file.
//
// The task: large-number problems (data/tool_problems.h: a × b with 3–5-digit operands, a ± b with 6-digit ones),
// which a 2-layer model cannot work out in its head but can answer by copying the operands into a call and the
// calculator's result into its answer. Printed, all measured by this run:
//   1. the base: a short PRETRAIN of its own (reasoning_base.h; stories + worked level-1 arithmetic), in OUT
//   2. one tool-trace SFT example with its loss mask: 0 on the prompt and on the inserted <tool_result> … </tool_result>
//   3. tool SFT: SftStage on those examples (train/tool_train.h), CE on the tokens the model writes
//   4. GRPO with tools (train/grpo.h GrpoToolOptions): rollouts sampled with the calculator answering, the mask 1 on
//      sampled tokens only, reward = accuracy + 0.1·format + 0.1·tool_format; OUT/tool_grpo.png
//   5. the table: held-out (test-split) large-number accuracy with the tool and without it (the calculator disabled
//      at inference), the share of answers that used a call, the well-formed call rate, after each stage
//
//   build/bin/ch13_tool_use [--pretrain-steps 300] [--sft-steps 200] [--grpo-steps 16] [--test 48] [--out runs/ch13]
// Every run starts over (OUT/data, the prepared token shards, is reused; everything else in OUT is removed).
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "data/chat.h"
#include "data/tool_problems.h"
#include "tools/chapters/chapter_check.h"
#include "tools/chapters/reasoning_base.h"
#include "train/grpo.h"
#include "train/metrics.h"
#include "train/plot.h"
#include "train/post_stage.h"
#include "train/schedule.h"
#include "train/sft.h"
#include "train/tool_eval.h"
#include "train/tool_train.h"
#include "train/trainer.h"

using namespace sg;

namespace {

struct StageRow {
  std::string stage;
  ToolEvalResult on, off;
};

StageRow measure(const std::string& stage, Transformer& model, const data::Tokenizer& tok,
                 const std::vector<data::ReasoningProblem>& test, int64_t max_new, const std::string& system) {
  ToolEvalOptions o;
  o.system = system;
  o.max_new_tokens = max_new;
  StageRow r{stage, {}, {}};
  r.on = evaluate_problems_with_tools(model, tok, test, o);
  o.tools_enabled = false;
  r.off = evaluate_problems_with_tools(model, tok, test, o);
  return r;
}

std::string pct(double v) {
  char b[32];
  if (std::isnan(v)) return "   -";
  std::snprintf(b, sizeof b, "%5.1f%%", 100 * v);
  return b;
}

void print_table(const std::vector<StageRow>& rows) {
  std::printf("  %-12s %12s %12s %10s %11s %11s %8s %8s\n", "stage", "acc w/ tool", "acc no tool", "tool use", "well-formed",
              "right call", "calls", "errors");
  for (const StageRow& r : rows)
    std::printf("  %-12s %12s %12s %10s %11s %11s %8lld %8lld\n", r.stage.c_str(), pct(r.on.accuracy).c_str(), pct(r.off.accuracy).c_str(),
                pct(r.on.tool_use_rate).c_str(), pct(r.on.well_formed_call_rate).c_str(), pct(r.on.right_call_rate).c_str(),
                (long long)r.on.calls, (long long)r.on.calculator_errors);
}

// Step 2: the example's tokens, the masked ones in [brackets].
void show_mask(const data::Tokenizer& tok, const data::SftTokens& t) {
  std::string line;
  bool open = false;
  for (size_t j = t.prompt_tokens; j < t.ids.size(); j++) {
    const bool masked = t.loss_mask[j] == 0;
    if (masked && !open) line += "[", open = true;
    if (!masked && open) line += "]", open = false;
    line += chapter::one_line(tok.decode({t.ids[j]}));
    if (!masked || j + 1 == t.ids.size() || t.loss_mask[j + 1]) continue;
    line += "·";
  }
  if (open) line += "]";
  int64_t ones = 0;
  for (uint8_t m : t.loss_mask) ones += m;
  std::printf("  %zu prompt tokens (mask 0), then the completion; [..] = mask 0 (inserted by the calculator):\n    %s\n"
              "  %lld of %zu tokens carry a loss\n", t.prompt_tokens, line.c_str(), (long long)ones, t.ids.size());
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Chapter 13: tool use — SFT on calculator traces, then GRPO with the calculator in the loop"};
  chapter::BaseSizes z;
  z.pretrain_steps = 200;
  z.sft_steps = 300;
  z.sft_batch = 2;
  z.sft_lr = 5e-3;
  z.grpo_steps = 12;
  z.grpo_prompts = 4;
  z.grpo_group = 4;
  z.grpo_lr = 5e-4;
  int64_t n_sft = 3000, n_test = 48, max_new = 64, seed = 13;
  std::string out = "runs/ch13";
  app.add_option("--pretrain-steps", z.pretrain_steps, "steps of the base model's pretraining")->check(CLI::PositiveNumber);
  app.add_option("--sft-steps", z.sft_steps, "tool SFT steps")->check(CLI::PositiveNumber);
  app.add_option("--sft-problems", n_sft, "tool traces (train-split problems) for SFT")->check(CLI::PositiveNumber);
  app.add_option("--grpo-steps", z.grpo_steps, "GRPO steps (one rollout each)")->check(CLI::PositiveNumber);
  app.add_option("--prompts", z.grpo_prompts, "P: prompts per rollout")->check(CLI::PositiveNumber);
  app.add_option("--group", z.grpo_group, "G: completions per prompt")->check(CLI::Range(2, 64));
  app.add_option("--test", n_test, "held-out test-split problems in the table")->check(CLI::PositiveNumber);
  app.add_option("--seed", seed, "the stages' seed");
  app.add_option("--out", out, "output directory");
  CLI11_PARSE(app, argc, argv);
  chapter::start_over(out);
  for (const char* name : {"tool_sft", "tool_grpo", "tool_grpo.png"}) std::filesystem::remove_all(std::filesystem::path(out) / name);
  PretrainConfig cfg = chapter::base_config(out, z);
  ReasoningConfig rc = cfg.reasoning;
  rc.max_new_tokens = max_new;
  const std::string system = rc.system_prompt();

  std::cout << "Chapter 13 — tool use: SFT on calculator traces, then GRPO with the calculator in the loop\n\n== 1. the base: "
            << z.pretrain_steps << " pretraining steps ==\n";
  chapter::BaseModel base = chapter::pretrain_base(cfg, std::cout);
  data::Tokenizer& tok = base.tok;
  Transformer& model = base.model;
  const std::vector<data::ReasoningProblem> test = data::large_number_split(data::Split::test, rc.seed, (int)n_test);
  std::vector<StageRow> rows;
  rows.push_back(measure("base", model, tok, test, max_new, system));

  std::cout << "\n== 2. a tool-trace SFT example and its loss mask ==\n";
  const std::vector<data::ReasoningProblem> train = data::large_number_split(data::Split::train, rc.seed, (int)n_sft);
  std::vector<data::SftTokens> examples = make_tool_sft_examples(tok, train, system);
  std::printf("  %s  ->  %s\n", train[0].question.c_str(),
              chapter::one_line(data::render_completion(train[0].think, std::to_string(train[0].answer))).c_str());
  show_mask(tok, examples[0]);

  std::printf("\n== 3. tool SFT: %lld steps x %lld rows x %lld tokens on %lld traces, lr %g ==\n", (long long)z.sft_steps,
              (long long)z.sft_batch, (long long)z.sft_seq_len, (long long)n_sft, z.sft_lr);
  SftConfig sc = cfg.sft;
  SftStage sft(model, tok, sc, rc, std::move(examples), {}, {}, (uint64_t)seed);
  TrainerConfig stc = post_trainer_config(sc, 1, out + "/tool_sft", "ch13-tool-sft", /*progress=*/false);
  Trainer sft_trainer(model, sft, stc, post_schedule(sc), Rng((uint64_t)seed + 1), std::cout);
  sft_trainer.hooks.after_optimizer_step.push_back([&](const StepInfo&) { sft.update_biases(); });
  const TrainerResult sr = sft_trainer.run();
  std::printf("  CE on the tokens the model writes: %.3f -> %.3f in %.1f s\n", sr.first_loss, sr.final_loss, sr.train_seconds);
  save_model_dir(model, out + "/tool_sft/model");
  rows.push_back(measure("tool SFT", model, tok, test, max_new, system));
  const ToolEvalRow& ex = rows.back().on.rows[0];
  std::printf("  %s  (answer %lld)\n    tool on:  %s\n    tool off: %s\n", test[0].question.c_str(), (long long)test[0].answer,
              chapter::one_line(ex.completion).c_str(), chapter::one_line(rows.back().off.rows[0].completion).c_str());

  std::printf("\n== 4. GRPO with the calculator: %lld steps, %lld prompts x %lld completions, reward = accuracy + 0.1 format + 0.1 tool_format ==\n",
              (long long)z.grpo_steps, (long long)z.grpo_prompts, (long long)z.grpo_group);
  const Transformer reference = load_model_dir(out + "/tool_sft/model");
  GrpoConfig gc = cfg.grpo;
  GrpoToolOptions tools;
  tools.enabled = true;
  tools.tool_format_weight = 0.1;
  GrpoStage grpo(model, reference, tok, gc, rc, data::large_number_split(data::Split::train, rc.seed + 1, 2000), {}, (uint64_t)seed + 2, tools);
  TrainerConfig gtc = post_trainer_config(gc, 1, out + "/tool_grpo", "ch13-tool-grpo", /*progress=*/false);
  gtc.eval_every = 0;
  Trainer grpo_trainer(model, grpo, gtc, LrSchedule::constant(gc.lr), Rng((uint64_t)seed + 3), std::cout);
  const TrainerResult gr = grpo_trainer.run();
  MetricsTable m = read_metrics_csv(grpo_trainer.metrics_path());
  const std::vector<double> step = m.column("step"), reward = m.column("reward"), acc = m.column("accuracy"),
                            use = m.column("tool_use"), tfmt = m.column("tool_format");
  std::printf("  %5s %8s %9s %9s %12s\n", "step", "reward", "accuracy", "tool use", "tool_format");
  for (size_t i = 0; i < step.size(); i++)
    if (i == 0 || (i + 1) % 4 == 0) std::printf("  %5.0f %8.3f %9.3f %9.3f %12.3f\n", step[i], reward[i], acc[i], use[i], tfmt[i]);
  std::printf("  %.1f s of GRPO (%.2f s per step, rollouts decoded row by row through the tool loop)\n", gr.train_seconds,
              gr.train_seconds / (double)std::max<size_t>(1, step.size()));
  write_line_plot_png(out + "/tool_grpo.png",
                      {{"reward", step, reward, colors::blue}, {"accuracy", step, acc, colors::green},
                       {"tool use", step, use, colors::orange}},
                      "GRPO with the calculator: reward, accuracy, share of completions with a call");
  std::printf("  plot: %s/tool_grpo.png; every column: %s\n", out.c_str(), grpo_trainer.metrics_path().c_str());
  rows.push_back(measure("tool GRPO", model, tok, test, max_new, system));

  std::printf("\n== 5. held-out large-number problems (%lld test-split, greedy, %lld new tokens) ==\n", (long long)n_test,
              (long long)max_new);
  print_table(rows);
  std::cout << "  (acc no tool: the same model with the calculator disabled at inference — it must write the result itself;\n"
               "   tool use / well-formed / right call / calls / errors: with the tool)\n\n";

  const StageRow &b = rows[0], &s = rows[1], &g = rows[2];
  chapter::Checks checks;
  // What the default run demonstrates: the format of tool use is learned (calls, well formed, the loop's results
  // read back). What it does NOT yet: accuracy — this 2-layer model does not learn to copy the operands into the
  // call in 300 SFT steps (nor in 900), so every call computes the wrong thing (right call 0 %); see the .md.
  checks.at_most("base: share of answers using a call", b.on.tool_use_rate, 0.05);
  checks.at_least("tool SFT: share of answers using a call", s.on.tool_use_rate, 0.9);
  checks.at_least("tool SFT: well-formed call rate", s.on.well_formed_call_rate, 0.9);
  checks.at_most("tool SFT: calculator errors per call", (double)s.on.calculator_errors / (double)std::max<int64_t>(1, s.on.calls), 0.1);
  checks.at_most("tool SFT: well-formed answers with the tool off", s.off.format_rate, 0.1);
  checks.at_least("tool GRPO: share of answers using a call", g.on.tool_use_rate, 0.9);
  checks.at_least("tool GRPO: well-formed call rate", g.on.well_formed_call_rate, 0.7);
  checks.that("GRPO rewards finite at every step", std::all_of(reward.begin(), reward.end(), [](double r) { return std::isfinite(r); }));
  return checks.exit_code();
}
