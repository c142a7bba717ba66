// tools/chapters/ch12_distill.cpp — Chapter 12: distillation — a trained teacher into a smaller student, by the
// teacher's logits and by its reward-filtered samples (DeepSeek-R1 §2.4), against the same student alone. Read
// ch12_distill.md beside this file.
//
// Printed, all measured by this run:
//   1. the teacher: a short PRETRAIN + SFT of its own (reasoning_base.h), in OUT; its held-out greedy accuracy
//   2. the student: the teacher's ModelArgs with fewer layers and a smaller dim; parameters and greedy tokens/s of
//      each (the same prompts, the same number of tokens)
//   3. the KD loss on one packed batch (train/distill_loss.h): 0 for the teacher against itself, the fresh
//      student's value, and its gradient against T·(q − p)/M written out
//   4. run_distill (train/distill.h): the teacher's traces filtered by the accuracy reward, then three students
//      from the same initial weights on the same budget — distill-kd, distill-traces, student-alone — with their
//      curves every few steps; OUT/distill/loss.png; every kept trace re-scored from OUT/distill/traces.jsonl
//   5. the table: held-out greedy accuracy, format and length, val CE and KL(teacher ‖ student), of the teacher and
//      the three students
//
//   build/bin/ch12_distill [--steps 200] [--temperature 2] [--kd-weight 0.5] [--seed 21] [--out runs/ch12]
// Every run starts over (OUT/data, the prepared token shards, is reused; everything else in OUT is removed).
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "autograd/node.h"
#include "data/reasoning.h"
#include "models/json.h"
#include "ops/ops.h"
#include "tools/chapters/chapter_check.h"
#include "tools/chapters/reasoning_base.h"
#include "train/distill.h"
#include "train/distill_loss.h"
#include "train/metrics.h"
#include "train/plot.h"
#include "train/reasoning_eval.h"
#include "train/rewards.h"
#include "train/sft.h"

using namespace sg;
namespace fs = std::filesystem;

namespace {

double mean_of(const std::vector<double>& v, size_t from, size_t to) {
  double s = 0;
  for (size_t i = from; i < to; i++) s += v[i];
  return s / (double)(to - from);
}

// Every kept trace of OUT/distill/traces.jsonl scored again from its text and its expression: how many are correct
// and end with <|endoftext|>, of how many.
struct TraceRecheck {
  int64_t lines = 0, correct_and_stopped = 0;
  std::string first;  // the first kept trace, on one line
};
TraceRecheck recheck_traces(const std::string& path) {
  TraceRecheck r;
  std::ifstream f(path, std::ios::binary);
  const std::string eot = "<|endoftext|>";
  for (std::string line; std::getline(f, line);) {
    if (line.empty()) continue;
    const Json j = Json::parse(line, path);
    const std::string completion = j.at("completion").get_string();
    const data::ReasoningProblem p = data::make_reasoning_problem(j.at("expression").get_string());
    const bool stopped = completion.size() >= eot.size() && completion.compare(completion.size() - eot.size(), eot.size(), eot) == 0;
    r.correct_and_stopped += stopped && accuracy_reward(completion, p) == 1.0 && p.answer == j.at("answer").get_int();
    if (r.lines == 0) r.first = j.at("expression").get_string() + "  ->  " + chapter::one_line(completion);
    r.lines++;
  }
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Chapter 12: distillation — a teacher into a smaller student by its logits and by its filtered samples"};
  chapter::BaseSizes z;
  z.pretrain_steps = 500;
  z.sft_steps = 80;
  int64_t seed = 21, steps = 200, trace_prompts = 256, trace_samples = 2;
  double temperature = 2.0, kd_weight = 0.5, trace_temperature = 0.6, lr = 5e-3;
  int n_val = 64, window = 10;
  std::string out = "runs/ch12";
  app.add_option("--steps", steps, "optimizer steps of each student")->check(CLI::PositiveNumber);
  app.add_option("--temperature", temperature, "T of the KD student's softened distributions")->check(CLI::PositiveNumber);
  app.add_option("--kd-weight", kd_weight, "α: loss = α·T²·KL + (1 − α)·CE")->check(CLI::Range(0.0, 1.0));
  app.add_option("--lr", lr, "the students' peak learning rate")->check(CLI::PositiveNumber);
  app.add_option("--trace-prompts", trace_prompts, "train-split prompts the teacher samples traces for")->check(CLI::PositiveNumber);
  app.add_option("--trace-samples", trace_samples, "teacher samples per prompt")->check(CLI::PositiveNumber);
  app.add_option("--trace-temperature", trace_temperature, "the teacher's sampling temperature")->check(CLI::PositiveNumber);
  app.add_option("--seed", seed, "the students' seed (their initial weights, their data order, the traces)");
  app.add_option("--pretrain-steps", z.pretrain_steps, "steps of the teacher's pretraining")->check(CLI::PositiveNumber);
  app.add_option("--sft-steps", z.sft_steps, "steps of the teacher's SFT")->check(CLI::PositiveNumber);
  app.add_option("--out", out, "output directory");
  CLI11_PARSE(app, argc, argv);
  chapter::start_over(out);
  fs::remove_all(fs::path(out) / "distill");
  const PretrainConfig teacher_cfg = chapter::base_config(out, z);  // the teacher: the base config's seed
  PretrainConfig cfg = teacher_cfg;                                   // the students: --seed and a distill section
  cfg.train.seed = (uint64_t)seed;
  const ReasoningConfig& rc = cfg.reasoning;
  DistillConfig& dc = cfg.distill;
  dc.enabled = true;
  dc.student = {{"n_layers", "1"}, {"dim", "32"}, {"inter_dim", "96"}, {"n_heads", "2"}, {"q_lora_rank", "16"}, {"kv_lora_rank", "16"}};
  dc.n_problems = 3000;
  dc.steps = steps;
  dc.batch_size = 4;
  dc.seq_len = 256;
  dc.lr = lr;
  dc.min_lr = lr / 10;
  dc.warmup_steps = 5;
  dc.temperature = temperature;
  dc.kd_weight = kd_weight;
  dc.trace_prompts = trace_prompts;
  dc.trace_samples = trace_samples;
  dc.trace_temperature = trace_temperature;
  dc.eval_every = 0;
  dc.eval_problems = n_val;
  dc.checkpoint_every = 0;
  dc.out_dir = out + "/distill";
  window = std::max(1, std::min<int>(window, (int)steps / 3));

  std::cout << "Chapter 12 — distillation: a teacher into a smaller student, by its logits and by its filtered samples\n\n"
            << "== 1. the teacher: " << z.pretrain_steps << " pretraining steps, then " << z.sft_steps << " SFT steps ==\n";
  chapter::BaseModel base = chapter::pretrain_base(teacher_cfg, std::cout);
  SftResult sft = run_sft(teacher_cfg, base.model_dir, base.tokenizer_path, std::cout, /*progress=*/false);
  std::printf("sft: CE on assistant tokens %.3f -> %.3f in %.1f s\n", sft.first_loss, sft.final_loss, sft.wall_s);
  data::Tokenizer& tok = base.tok;
  Transformer teacher = load_model_dir(sft.model_dir);
  const std::vector<data::ReasoningProblem> val = data::reasoning_split(data::Split::val, rc.seed, n_val, (int)rc.level);
  const ProblemEvalResult teacher_eval = chapter::greedy_eval(teacher, tok, val, rc.max_new_tokens, rc.system_prompt());
  std::printf("teacher: %d held-out VAL problems, greedy: accuracy %.1f%%, format %.1f%%, mean length %.1f tokens\n", n_val,
              100 * teacher_eval.accuracy, 100 * teacher_eval.format_rate, teacher_eval.mean_length);

  std::printf("\n== 2. the student: the teacher's ModelArgs with");
  for (const auto& [k, v] : dc.student) std::printf(" %s %s", k.c_str(), v.c_str());
  std::printf(" (no MTP) ==\n");
  const ModelArgs sargs = distill_student_args(teacher.args, dc, cfg.source);
  Rng init(cfg.train.seed + 40);  // run_distill's initial weights (every student's)
  Transformer probe(sargs, init);
  const int64_t teacher_params = generation_parameters(teacher), student_params = generation_parameters(probe);
  std::printf("  teacher %lld parameters (%lld layers, dim %lld, %lld routed experts), student %lld (%lld layer, dim %lld, dense): "
              "%.1fx fewer (MTP modules not counted: they do not run when generating)\n",
              (long long)teacher_params, (long long)teacher.args.n_layers, (long long)teacher.args.dim,
              (long long)teacher.args.n_routed_experts, (long long)student_params, (long long)sargs.n_layers, (long long)sargs.dim,
              (double)teacher_params / (double)student_params);

  std::printf("\n== 3. the KD loss on one packed batch of worked solutions (T = %g) ==\n", temperature);
  const std::vector<data::SftTokens> worked = make_sft_examples(tok, sft_problems(rc, data::Split::train, 64), rc.system_prompt());
  double self_kd = NAN, fresh_kd = NAN, fresh_kl = NAN, grad_err = NAN, grad_max = 0;
  int64_t kd_positions = 0;
  {
    DistillStage stage(probe, &teacher, tok, dc, rc, StudentKind::kd, worked, {}, {}, 1);
    stage.make_batch(0);
    const PackedBatch& b = stage.batch();
    const Tensor& zt = stage.teacher_logits();  // [B·T, V], no tape
    std::vector<float> m;
    for (int64_t t : b.targets.to_i64_vector()) m.push_back(t != -100 ? 1.0f : 0.0f);
    const Tensor mask = Tensor::from_vector(m, {(int64_t)m.size()});
    self_kd = kd_loss(zt, zt, temperature, mask).loss.item();
    Tensor zs;
    {
      NoGradGuard no_grad;
      const Tensor z = probe.forward(b.tokens, 0, nullptr, b.segment_ids);
      zs = reshape(z, {z.size(0) * z.size(1), z.size(2)});
    }
    zs.requires_grad_();
    KDLossOutput o = kd_loss(zs, zt, temperature, mask);
    fresh_kd = o.loss.item();
    fresh_kl = o.kl;
    kd_positions = o.positions;
    o.loss.backward();
    // ∂L/∂z_s = T (softmax(z_s/T) − softmax(z_t/T)) / M on the selected rows, 0 elsewhere
    NoGradGuard no_grad;
    const std::vector<double> q = softmax(mul(zs.detach(), 1.0 / temperature), -1).to_f64_vector();
    const std::vector<double> p = softmax(mul(zt, 1.0 / temperature), -1).to_f64_vector();
    const std::vector<double> g = zs.grad().to_f64_vector();
    const int64_t V = zs.size(1);
    grad_err = 0;
    for (size_t i = 0; i < g.size(); i++) {
      const double want = m[i / (size_t)V] ? temperature * (q[i] - p[i]) / (double)o.positions : 0.0;
      grad_err = std::max(grad_err, std::abs(g[i] - want));
      grad_max = std::max(grad_max, std::abs(want));
    }
    std::printf("  %lld rows x %lld tokens, %lld examples; M = %lld positions with a target (the assistant's tokens)\n",
                (long long)b.tokens.size(0), (long long)b.tokens.size(1), (long long)b.examples, (long long)kd_positions);
    std::printf("  the teacher against itself: L_KD = %.3g;  the fresh student: L_KD = T²·KL = %.4f (KL %.4f nats)\n", self_kd,
                fresh_kd, fresh_kl);
    std::printf("  autograd's ∂L/∂z_s vs T·(q − p)/M written out: max |diff| %.2e (largest entry %.2e)\n", grad_err, grad_max);
  }

  std::printf("\n== 4. run_distill: traces from the teacher, then three students from the same weights, %lld steps x %lld rows x %lld "
              "tokens each ==\n", (long long)dc.steps, (long long)dc.batch_size, (long long)dc.seq_len);
  DistillResult dr = run_distill(cfg, sft.model_dir, base.tokenizer_path, std::cout, /*progress=*/false);
  const TraceRecheck rt = recheck_traces(dc.out_dir + "/traces.jsonl");
  std::printf("  %s/traces.jsonl: %lld kept traces, %lld of them correct and stopped when scored again%s%s\n", dc.out_dir.c_str(),
              (long long)rt.lines, (long long)rt.correct_and_stopped, rt.lines ? "; the first: " : "", rt.first.c_str());
  auto metrics = [&](const char* name) { return read_metrics_csv(dc.out_dir + "/" + name + "/metrics.csv"); };
  const StudentResult* by_name[3] = {nullptr, nullptr, nullptr};
  for (const StudentResult& s : dr.students) {
    if (s.name == "student-alone") by_name[0] = &s;
    if (s.name == "distill-kd") by_name[1] = &s;
    if (s.name == "distill-traces") by_name[2] = &s;
  }
  const MetricsTable kd_m = metrics("distill-kd"), alone_m = metrics("student-alone");
  const std::vector<double> step = kd_m.column("step"), kd_ce = kd_m.column("ce_loss"), kd_kl = kd_m.column("kl"),
                            kd_agree = kd_m.column("agreement"), alone_ce = alone_m.column("ce_loss");
  std::vector<double> tr_ce;
  if (by_name[2] && by_name[2]->trained) tr_ce = metrics("distill-traces").column("ce_loss");
  std::printf("  %5s %12s %12s %10s %12s %14s\n", "step", "alone CE", "kd CE", "kd KL", "kd agree", "traces CE");
  for (size_t i = 0; i < step.size(); i++)
    if (i == 0 || (i + 1) % 20 == 0)
      std::printf("  %5.0f %12.4f %12.4f %10.4f %12.3f %14.4f\n", step[i], alone_ce[i], kd_ce[i], kd_kl[i], kd_agree[i],
                  tr_ce.empty() ? NAN : tr_ce[i]);
  const size_t S = step.size(), W = (size_t)window;
  const double kl_first = mean_of(kd_kl, 0, W), kl_last = mean_of(kd_kl, S - W, S);
  std::printf("  distill-kd's KL at T, mean of the first / last %d steps: %.4f -> %.4f; agreement %.3f -> %.3f\n", window, kl_first,
              kl_last, mean_of(kd_agree, 0, W), mean_of(kd_agree, S - W, S));
  std::printf("  plot: %s/loss.png\n", dc.out_dir.c_str());

  std::printf("\n== 5. %d held-out VAL-split problems, greedy; val CE and KL(teacher || student) on their worked solutions ==\n", n_val);
  std::printf("  %-15s %10s %8s %8s %8s %9s %12s %9s %12s %9s %10s\n", "model", "parameters", "acc", "format", "length", "val CE",
              "val KL(t||s)", "examples", "asst tokens", "train s", "tokens/s");
  std::printf("  %-15s %10lld %7.1f%% %7.1f%% %8.1f %9s %12s %9s %12s %9.1f %10.0f\n", "teacher (SFT)", (long long)teacher_params,
              100 * teacher_eval.accuracy, 100 * teacher_eval.format_rate, teacher_eval.mean_length, "-", "-", "-", "-",
              base.pretrain.wall_s + sft.wall_s, dr.teacher_tokens_per_s);
  ProblemEvalResult evals[3];
  for (int k = 0; k < 3; k++) {
    const StudentResult* s = by_name[k];
    if (!s || !s->trained) {
      std::printf("  %-15s not trained: no kept trace\n", k == 2 ? "distill-traces" : "?");
      continue;
    }
    Transformer m = load_model_dir(s->model_dir);
    evals[k] = chapter::greedy_eval(m, tok, val, rc.max_new_tokens, rc.system_prompt());
    std::printf("  %-15s %10lld %7.1f%% %7.1f%% %8.1f %9.4f %12.4f %9lld %12lld %9.1f %10.0f\n", s->name.c_str(), (long long)dr.student_parameters,
                100 * evals[k].accuracy, 100 * evals[k].format_rate, evals[k].mean_length, s->final_val_ce, s->final_val_kl,
                (long long)s->examples, (long long)s->target_tokens, s->train_seconds, dr.student_tokens_per_s);
  }
  std::printf("  the student generates %.1fx as many tokens/s as the teacher (greedy, the same prompts, %lld tokens each);\n"
              "  train s: the teacher's pretraining + SFT, each student's steps; run_distill took %.1f s in all\n\n",
              dr.student_tokens_per_s / dr.teacher_tokens_per_s, (long long)rc.max_new_tokens, dr.wall_s);

  chapter::Checks checks;
  const StudentResult& alone = *by_name[0];
  const StudentResult& kd = *by_name[1];
  checks.that("the teacher against itself: L_KD = 0 exactly", self_kd == 0.0);
  checks.at_least("the fresh student's L_KD", fresh_kd, 0.01);
  checks.at_most("autograd gradient vs T(q - p)/M, max |diff| / max", grad_err / grad_max, 1e-4);
  checks.that("every kept trace is correct and stopped (re-scored)", rt.lines == dr.traces.kept && rt.correct_and_stopped == rt.lines);
  checks.that("kept traces <= correct samples <= samples", dr.traces.kept <= dr.traces.correct && dr.traces.correct <= dr.traces.samples);
  checks.at_most("distill-kd KL, last window / first window", kl_last / kl_first, 0.5);
  checks.at_most("val KL(teacher||student): distill-kd - student-alone", kd.final_val_kl - alone.final_val_kl, -0.02);
  checks.that("the same budget: every trained student ran the same steps", kd.steps_done == dc.steps && alone.steps_done == dc.steps &&
                                                                                (!by_name[2]->trained || by_name[2]->steps_done == dc.steps));
  checks.at_most("student / teacher parameters", (double)dr.student_parameters / (double)dr.teacher_parameters, 0.35);
  checks.at_least("student / teacher generation tokens/s", dr.student_tokens_per_s / dr.teacher_tokens_per_s, 1.5);
  checks.that("every number is finite", std::isfinite(kd.final_val_kl) && std::isfinite(alone.final_val_kl) &&
                                            std::isfinite(evals[0].accuracy) && std::isfinite(evals[1].accuracy));
  return checks.exit_code();
}
