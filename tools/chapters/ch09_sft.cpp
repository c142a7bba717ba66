// tools/chapters/ch09_sft.cpp — Chapter 9: what SFT changes. Read ch09_sft.md beside this file.
//
// DeepSeek-R1's cold start (R1 §2.3.1) at toy scale: a small base model that has read worked arithmetic as plain
// text, then supervised fine-tuning on worked solutions written in the chat template, with the loss on the
// assistant's tokens only (train/sft.h, models/README.md §10.2). Printed, all measured by this run:
//   1. the base model: a short PRETRAIN (reasoning_base.h) on stories + worked arithmetic
//   2. the base model in the plain-text format it was pretrained on
//   3. one packed SFT row: which positions carry a target, the segment ids
//   4. packed loss == the examples' losses computed alone (segment ids keep attention inside each example)
//   5. held-out TEST-split problems, greedy, before SFT: format rate and accuracy
//   6. SFT: SftStage on the Trainer
//   7. the same problems after SFT, and completions before and after
//
//   build/bin/ch09_sft [--pretrain-steps 700] [--sft-steps 150] [--problems 64] [--solution columns] [--out runs/ch09]
// Every run starts over (OUT/data, the prepared token shards, is reused; everything else in OUT is removed).
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <numeric>
#include <optional>
#include <string>
#include <vector>

#include "autograd/node.h"
#include "data/chat.h"
#include "data/reasoning.h"
#include "models/generate.h"
#include "tools/chapters/chapter_check.h"
#include "tools/chapters/reasoning_base.h"
#include "train/metrics.h"
#include "train/reasoning_eval.h"
#include "train/schedule.h"
#include "train/sft.h"
#include "train/trainer.h"

using namespace sg;

namespace {

// The token's text for the row picture: special tokens as their tags, '\n' as ⏎.
std::string token_text(const data::Tokenizer& tok, int64_t id) { return chapter::one_line(tok.decode({(int32_t)id})); }

std::vector<int64_t> row_of(const Tensor& t, int64_t b) {
  const int64_t T = t.shape()[1];
  std::vector<double> all = t.to_f64_vector();
  return std::vector<int64_t>(all.begin() + b * T, all.begin() + (b + 1) * T);
}

// Step 3. One packed row, and the check of its targets against the examples it holds, recomputed here from the
// examples alone: position o+j of example k (at offset o) has target ids[j+1] iff token j+1 is a completion
// token, else −100. Returns {positions whose target is a prompt token, targets, completion tokens in the row,
// positions whose target differs from that rule}.
struct RowAudit {
  int64_t prompt_targets = 0, targets = 0, completion_tokens = 0, mismatches = 0, examples = 0;
};
RowAudit show_packed_row(const data::Tokenizer& tok, const std::vector<data::SftTokens>& examples, int64_t T, int64_t pad_id) {
  std::vector<size_t> order(examples.size());
  std::iota(order.begin(), order.end(), size_t{0});
  size_t next = 0;
  PackedBatch b = pack_sft_rows(examples, order, next, 1, T, pad_id, false);
  std::vector<int64_t> tokens = row_of(b.tokens, 0), targets = row_of(b.targets, 0), seg = row_of(b.segment_ids, 0);

  RowAudit a;
  a.examples = b.examples;
  a.targets = b.target_tokens;
  int64_t offset = 0;
  for (int64_t k = 0; k < b.examples; k++) {
    const data::SftTokens& e = examples[(size_t)k];
    const int64_t n = (int64_t)e.ids.size(), P = (int64_t)e.prompt_tokens;
    a.completion_tokens += n - P;
    for (int64_t j = 0; j < n; j++) {
      const int64_t want = (j + 1 < n && j + 1 >= P) ? e.ids[(size_t)(j + 1)] : -100;
      const int64_t got = targets[(size_t)(offset + j)];
      if (got != want) a.mismatches++;
      if (got != -100 && j + 1 < P) a.prompt_targets++;  // a target that is a prompt token: must never happen
    }
    offset += n;
  }

  std::printf("  one row of T = %lld positions holds %lld whole examples and %lld padding positions\n", (long long)T,
              (long long)b.examples, (long long)b.pad_tokens);
  std::printf("  mark: - no target (a prompt token, or an example's last token), T target (the next token is the\n"
              "        assistant's), . padding;  seg: the segment id of each position, mod 10\n");
  for (int64_t row0 = 0; row0 < T; row0 += 64) {
    std::printf("  %3lld  mark ", (long long)row0);
    for (int64_t p = row0; p < std::min(T, row0 + 64); p++)
      std::putchar(seg[(size_t)p] >= b.examples ? '.' : targets[(size_t)p] != -100 ? 'T' : '-');
    std::printf("\n       seg  ");
    for (int64_t p = row0; p < std::min(T, row0 + 64); p++) std::putchar((char)('0' + seg[(size_t)p] % 10));
    std::printf("\n");
  }
  std::printf("\n  example 0, token by token (target = the id the loss asks for at that position):\n");
  const data::SftTokens& e0 = examples[0];
  for (int64_t j = (int64_t)e0.prompt_tokens - 3; j < (int64_t)e0.ids.size(); j++) {
    const int64_t t = targets[(size_t)j];
    std::printf("    pos %3lld  seg %lld  token %-16s target %s\n", (long long)j, (long long)seg[(size_t)j],
                ("'" + token_text(tok, tokens[(size_t)j]) + "'").c_str(),
                t == -100 ? "-100 (ignored)" : ("'" + token_text(tok, t) + "'").c_str());
  }
  std::printf("  (positions 0..%lld are the prompt: system turn, question, <|assistant|>; all -100)\n",
              (long long)e0.prompt_tokens - 4);
  return a;
}

// Step 2. The base model in the format it was pretrained on: "What is 37 + 48?⏎" continued greedily (48 tokens).
// Counts the completions that reach a line "The answer is N." (the pretraining text's last line) and those whose
// N is the right answer.
struct PlainTextProbe {
  int64_t n = 0, answer_lines = 0, correct = 0;
};
PlainTextProbe plain_text_probe(Transformer& model, const data::Tokenizer& tok, const std::vector<data::ReasoningProblem>& problems,
                                int64_t eot) {
  std::vector<std::vector<int64_t>> prompts;
  for (const data::ReasoningProblem& p : problems) {
    std::vector<int32_t> ids = tok.encode(p.question + "\n");
    prompts.emplace_back(ids.begin(), ids.end());
  }
  std::vector<std::vector<int64_t>> outs = generate_batch(model, prompts, 48, SamplingConfig{}, std::vector<uint64_t>(prompts.size(), 0), eot);
  PlainTextProbe r;
  const std::string tag = "The answer is ";
  for (size_t i = 0; i < problems.size(); i++) {
    const std::string text = tok.decode(std::vector<int32_t>(outs[i].begin(), outs[i].end()));
    r.n++;
    const size_t a = text.find(tag);
    if (a != std::string::npos) {
      const size_t b = a + tag.size();
      const size_t e = text.find_first_of(".\n", b);
      const std::optional<int64_t> v = data::parse_integer_answer(text.substr(b, e == std::string::npos ? std::string::npos : e - b));
      r.answer_lines += v.has_value();
      r.correct += v.has_value() && *v == problems[i].answer;
    }
    if (i < 2) std::printf("  %-18s -> %s\n", problems[i].question.c_str(), chapter::one_line(text).c_str());
  }
  return r;
}

// Step 4. The first SFT batch's loss packed (B rows, segment ids) vs every example alone (one row each, no
// padding), token-weighted. Also the same rows WITHOUT segment ids, where later examples see earlier ones.
struct PackedVsAlone {
  double packed = 0, alone = 0, leaky = 0;
  int64_t examples = 0, targets = 0;
};
PackedVsAlone packed_vs_alone(const Transformer& model, const std::vector<data::SftTokens>& examples, int64_t B, int64_t T,
                              int64_t pad_id) {
  NoGradGuard no_grad;
  std::vector<size_t> order(examples.size());
  std::iota(order.begin(), order.end(), size_t{0});
  size_t next = 0;
  PackedBatch b = pack_sft_rows(examples, order, next, B, T, pad_id, false);
  LossOptions lo;
  lo.segment_ids = b.segment_ids;
  PackedVsAlone r;
  r.examples = b.examples;
  r.targets = b.target_tokens;
  r.packed = model.loss(b.tokens, b.targets, lo).main_loss.item();
  r.leaky = model.loss(b.tokens, b.targets, LossOptions{}).main_loss.item();
  double sum = 0;
  int64_t n = 0;
  for (int64_t k = 0; k < b.examples; k++) {
    size_t nk = 0;
    const std::vector<size_t> just_k = {(size_t)k};
    PackedBatch one = pack_sft_rows(examples, just_k, nk, 1, (int64_t)examples[(size_t)k].ids.size(), pad_id, false);
    sum += model.loss(one.tokens, one.targets, LossOptions{}).main_loss.item() * (double)one.target_tokens;
    n += one.target_tokens;
  }
  r.alone = sum / (double)n;
  return r;
}

void print_eval(const char* when, const ProblemEvalResult& r) {
  std::printf("  %-7s format %5.1f%%   accuracy %5.1f%% ± %.1f   mean length %5.1f tokens   (%lld problems, %.1f s)", when,
              100 * r.format_rate, 100 * r.accuracy, 100 * r.stderr_accuracy, r.mean_length, (long long)r.n_problems, r.seconds);
  for (const char* op : {" + ", " - ", " * "}) {
    int n = 0, c = 0;
    for (const ProblemResult& p : r.problems)
      if (p.expression.find(op) != std::string::npos) n++, c += (int)p.n_correct;
    std::printf("  [%s] %d/%d", op, c, n);
  }
  std::printf("\n");
}

// Step 6. SFT: the stage (packing, loss on the assistant's tokens) on the Trainer (AdamW, schedule, clipping).
TrainerResult run_sft_stage(Transformer& model, const data::Tokenizer& tok, const PretrainConfig& cfg,
                            std::vector<data::SftTokens> train, std::vector<data::SftTokens> val) {
  const SftConfig& sc = cfg.sft;
  TrainerConfig tc;
  tc.steps = sc.steps;
  tc.grad_clip = sc.grad_clip;
  tc.adamw.lr = sc.lr;
  tc.adamw.weight_decay = sc.weight_decay;
  tc.eval_every = 0;  // evaluate at the end only: the val loss on assistant tokens
  tc.checkpoint_every = 0;
  tc.out_dir = sc.out_dir;
  tc.run_name = "ch09-sft";
  tc.progress = false;
  SftStage stage(model, tok, sc, cfg.reasoning, std::move(train), std::move(val), /*eval_problems=*/{}, cfg.train.seed + 11);
  Trainer trainer(model, stage, tc, LrSchedule::warmup_cosine(sc.lr, sc.min_lr, sc.warmup_steps, sc.steps),
                  Rng(cfg.train.seed + 12), std::cout);
  trainer.hooks.after_optimizer_step.push_back([&](const StepInfo&) { stage.update_biases(); });
  return trainer.run();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Chapter 9: what SFT changes"};
  chapter::BaseSizes z;
  int n_problems = 64;
  std::string out = "runs/ch09";
  app.add_option("--pretrain-steps", z.pretrain_steps, "steps of the base model's pretraining")->check(CLI::PositiveNumber);
  app.add_option("--sft-steps", z.sft_steps, "SFT steps")->check(CLI::PositiveNumber);
  app.add_option("--problems", n_problems, "held-out test-split problems measured before and after")->check(CLI::PositiveNumber);
  app.add_option("--solution", z.solution, "worked solutions: columns (digit by digit) or steps (one line per op)")
      ->check(CLI::IsMember({"columns", "steps"}));
  app.add_option("--out", out, "output directory");
  CLI11_PARSE(app, argc, argv);
  chapter::start_over(out);
  PretrainConfig cfg = chapter::base_config(out, z);
  const ReasoningConfig& rc = cfg.reasoning;

  std::cout << "Chapter 9 — what SFT changes\n\n== 1. the base model: " << z.pretrain_steps
            << " pretraining steps on stories + worked arithmetic ==\n";
  chapter::BaseModel base = chapter::pretrain_base(cfg, std::cout);
  data::Tokenizer& tok = base.tok;
  Transformer& model = base.model;
  const int64_t pad_id = *tok.find_token("<|endoftext|>");
  // The held-out problems: TEST split, never trained on (no SFT example, no pretraining text is a test problem).
  std::vector<data::ReasoningProblem> test = data::reasoning_split(data::Split::test, rc.seed, n_problems, (int)rc.level);

  std::cout << "\n== 2. the base model in its own format: '<question>⏎' continued greedily ==\n";
  PlainTextProbe probe = plain_text_probe(model, tok, test, pad_id);
  std::printf("  %lld of %lld test problems reached a line 'The answer is N.'; %lld with the right N\n",
              (long long)probe.answer_lines, (long long)probe.n, (long long)probe.correct);

  // The SFT data: worked solutions of TRAIN-split problems in the chat template; val-split ones for the val loss.
  // sft_problems writes them in reasoning.solution's style (columns); every prompt has the same system turn.
  const std::string system = rc.system_prompt();
  std::vector<data::ReasoningProblem> train_problems = sft_problems(rc, data::Split::train, cfg.sft.n_problems);
  std::vector<data::SftTokens> train_examples = make_sft_examples(tok, train_problems, system);
  std::vector<data::SftTokens> val_examples = make_sft_examples(tok, sft_problems(rc, data::Split::val, 32), system);

  std::cout << "\n== 3. one packed SFT row ==\n";
  RowAudit audit = show_packed_row(tok, train_examples, cfg.sft.seq_len, pad_id);

  std::cout << "\n== 4. packed loss vs each example alone (the base model, the first SFT batch) ==\n";
  PackedVsAlone pva = packed_vs_alone(model, train_examples, cfg.sft.batch_size, cfg.sft.seq_len, pad_id);
  std::printf("  %lld examples in %lld rows, %lld target tokens\n", (long long)pva.examples, (long long)cfg.sft.batch_size,
              (long long)pva.targets);
  std::printf("  packed, with segment ids     %.6f\n  each example alone           %.6f\n"
              "  packed, no segment ids       %.6f   (later examples attend to earlier ones)\n",
              pva.packed, pva.alone, pva.leaky);

  std::cout << "\n== 5. before SFT: greedy completions of " << test.size() << " held-out test problems ==\n";
  ProblemEvalResult before = chapter::greedy_eval(model, tok, test, rc.max_new_tokens, system);
  print_eval("before", before);

  std::cout << "\n== 6. SFT: " << cfg.sft.steps << " steps x " << cfg.sft.batch_size << " rows x " << cfg.sft.seq_len
            << " tokens, loss on the assistant's tokens ==\n";
  TrainerResult sft = run_sft_stage(model, tok, cfg, train_examples, val_examples);
  MetricsTable m = read_metrics_csv(cfg.sft.out_dir + "/metrics.csv");
  std::vector<double> step = m.column("step"), main_loss = m.column("main_loss"), val_loss = m.column("val_loss");
  for (size_t i = 0; i < step.size(); i++)
    if (i == 0 || (i + 1) % 25 == 0 || i + 1 == step.size())
      std::printf("  step %4.0f   CE on assistant tokens %.4f\n", step[i], main_loss[i]);
  std::printf("  val CE (assistant tokens of 32 val-split examples) %.4f; %.1f s, %.0f tokens/s\n", val_loss.back(),
              sft.train_seconds, sft.tokens_per_s);
  plot_loss_curves(cfg.sft.out_dir + "/metrics.csv", out + "/sft_loss.png", "SFT: CE on the assistant's tokens", NAN, "");

  std::cout << "\n== 7. after SFT: the same " << test.size() << " problems ==\n";
  ProblemEvalResult after = chapter::greedy_eval(model, tok, test, rc.max_new_tokens, system);
  print_eval("before", before);
  print_eval("after", after);
  // Problems before and after: the first two, and the first one SFT got right (when it is not one of those).
  std::vector<size_t> show = {0, 1};
  for (size_t i = 2; i < after.problems.size(); i++)
    if (after.problems[i].n_correct > 0) { show.push_back(i); break; }
  for (size_t i : show)
    std::printf("\n  %s = %lld\n    before: %s\n    after:  %s   (%s)\n", after.problems[i].expression.c_str(),
                (long long)after.problems[i].answer, chapter::one_line(before.problems[i].completions[0]).c_str(),
                chapter::one_line(after.problems[i].completions[0]).c_str(), after.problems[i].n_correct ? "correct" : "wrong");
  std::printf("\n");

  chapter::Checks checks;
  checks.that("no prompt token is ever a target (row audit)", audit.prompt_targets == 0);
  checks.that("every target in the row follows the rule (row audit)", audit.mismatches == 0);
  checks.that("target tokens == completion tokens in the row", audit.targets == audit.completion_tokens);
  checks.at_most("|packed - alone| / alone (segment ids)", std::abs(pva.packed - pva.alone) / pva.alone, 1e-4);
  checks.at_least("|no segment ids - alone| / alone (the mask matters)", std::abs(pva.leaky - pva.alone) / pva.alone, 1e-3);
  checks.at_most("format rate before SFT", before.format_rate, 0.05);
  checks.at_least("format rate after SFT", after.format_rate, 0.8);
  checks.at_least("format rate after - before", after.format_rate - before.format_rate, 0.5);
  checks.at_least("accuracy after - accuracy before", after.accuracy - before.accuracy, 0.0);
  return checks.exit_code();
}
