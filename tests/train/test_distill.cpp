// tests/train/test_distill.cpp — the distillation stage (train/distill.h) on tiny models:
//   * the `distill:` section: the student's overrides applied to the teacher's ModelArgs (n_mtp_modules 0, vocab
//     kept), bad keys and values named;
//   * select_correct_traces on hand-made completions: kept iff accuracy reward 1 AND it stopped at <|endoftext|>;
//     the kept example's ids and loss mask;
//   * a student equal to its teacher (same args, same seed) has KD loss 0 on the teacher's own rows;
//   * α = 0 (student-alone, distill-traces): the stage's loss is the model's own CE (Transformer::loss main_loss);
//   * rows stay full when the student has fewer examples than a batch holds (the epochs repeat);
//   * a few KD steps lower the KL to the teacher and raise the agreement;
//   * stop + resume == straight, bit for bit;
//   * distill-kd with kd_weight 0 is student-alone, bit for bit;
//   * generation_parameters leaves out the MTP modules;
//   * configs/tiny_distill.yaml is configs/tiny.yaml plus a distill section with a smaller student on SFT's budget.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <sstream>

#include "data/chat.h"
#include "data/reasoning.h"
#include "tests/data/temp_dir.h"
#include "tests/test_util.h"
#include "train/distill.h"
#include "train/metrics.h"
#include "train/schedule.h"
#include "train/sft.h"

using namespace sg;
using sg::test::contains;
using sg::test::error_of;

namespace {

data::Tokenizer small_tokenizer() {
  std::string corpus = "Think.\n";
  for (int i = 0; i < 30; i++) corpus += "What is " + std::to_string(i) + " + " + std::to_string(2 * i) + "?\n<think>\n" +
                                         std::to_string(i) + " + " + std::to_string(2 * i) + " = " + std::to_string(3 * i) +
                                         "\n</think>\n" + std::to_string(3 * i) + "<|endoftext|>";
  data::BpeTrainOptions bo;
  bo.vocab_size = 320;
  return data::Tokenizer::train(corpus, bo);
}

std::vector<int64_t> ids(const data::Tokenizer& tok, const std::string& s) {
  std::vector<int32_t> v = tok.encode(s);
  return std::vector<int64_t>(v.begin(), v.end());
}

ReasoningConfig small_reasoning() {
  ReasoningConfig rc;
  rc.system = "Think.";
  rc.max_new_tokens = 8;
  return rc;
}

DistillConfig small_distill() {
  DistillConfig dc;
  dc.batch_size = 2;
  dc.seq_len = 96;
  dc.temperature = 2.0;
  dc.kd_weight = 0.5;
  dc.balance_alpha = 1e-4;
  return dc;
}

std::vector<data::SftTokens> worked(const data::Tokenizer& tok, const ReasoningConfig& rc, int n) {
  return make_sft_examples(tok, sft_problems(rc, data::Split::train, n), rc.system_prompt());
}

ModelArgs teacher_args(const data::Tokenizer& tok) {
  ModelArgs a = test::tiny_post_training_args(tok.vocab_size(), 96, 8);
  a.n_mtp_modules = 0;
  return a;
}

}  // namespace

TEST_CASE("distill: the config section — student overrides on the teacher's args, errors named") {
  const std::string base =
      "model: {dim: 32, n_layers: 2, n_dense_layers: 1, inter_dim: 64, n_heads: 2, q_lora_rank: 0, kv_lora_rank: 16,\n"
      "        qk_nope_head_dim: 8, qk_rope_head_dim: 8, v_head_dim: 8, n_routed_experts: 4, n_activated_experts: 2,\n"
      "        moe_inter_dim: 32, n_mtp_modules: 1, max_seq_len: 96, original_seq_len: 96}\n"
      "train: {seq_len: 64, data: {vocab_size: 400}}\n";
  PretrainConfig cfg = parse_pretrain_config(base + "distill: {student: {n_layers: 1, dim: 16, inter_dim: 32}, seq_len: 64, steps: 30, temperature: 3,"
                                                    " kd_weight: 0.8, trace_prompts: 20, trace_samples: 2}\n", "d.yaml");
  REQUIRE(cfg.distill.enabled);
  CHECK(cfg.distill.steps == 30);
  CHECK(cfg.distill.temperature == 3.0);
  CHECK(cfg.distill.kd_weight == 0.8);
  CHECK(cfg.distill.trace_samples == 2);
  ModelArgs teacher = cfg.model;
  teacher.vocab_size = 400;
  const ModelArgs s = distill_student_args(teacher, cfg.distill, cfg.source);
  CHECK(s.n_layers == 1);
  CHECK(s.dim == 16);
  CHECK(s.inter_dim == 32);
  CHECK(s.n_mtp_modules == 0);
  CHECK(s.vocab_size == 400);
  CHECK(s.kv_lora_rank == 16);  // not overridden: the teacher's
  CHECK_FALSE(parse_pretrain_config(base, "d.yaml").distill.enabled);
  CHECK(contains(error_of([&] { parse_pretrain_config(base + "distill: {student: {dimm: 16}, seq_len: 64}\n", "d.yaml"); }),
                 "key 'distill.student.dimm' is not a known key"));
  CHECK(contains(error_of([&] { parse_pretrain_config(base + "distill: {student: {dim: -3}, seq_len: 64}\n", "d.yaml"); }),
                 "distill.student.dim must be a positive integer"));
  CHECK(contains(error_of([&] { parse_pretrain_config(base + "distill: {student: {vocab_size: 300}, seq_len: 64}\n", "d.yaml"); }),
                 "keeps the teacher's vocabulary"));
  CHECK(contains(error_of([&] { parse_pretrain_config(base + "distill: {student: {n_mtp_modules: 1}, seq_len: 64}\n", "d.yaml"); }),
                 "no MTP modules"));
  CHECK(contains(error_of([&] { parse_pretrain_config(base + "distill: {kd_weight: 1.5, seq_len: 64}\n", "d.yaml"); }),
                 "distill.kd_weight must be a number in [0, 1]"));
  CHECK(contains(error_of([&] { parse_pretrain_config(base + "distill: {seq_len: 200}\n", "d.yaml"); }), "distill.seq_len (200)"));
  CHECK(contains(error_of([&] { parse_pretrain_config(base + "distill: {student: [1, 2], seq_len: 64}\n", "d.yaml"); }), "must be a map"));
}

TEST_CASE("distill: select_correct_traces keeps a completion iff its answer is right AND it stopped by itself") {
  data::Tokenizer tok = small_tokenizer();
  const int64_t eot = *tok.find_token("<|endoftext|>");
  const data::ReasoningProblem p = data::make_reasoning_problem("4 + 8");  // 12
  const std::vector<int64_t> prompt = ids(tok, data::render_prompt(p, "Think."));
  auto with_eot = [&](const std::string& s) {
    std::vector<int64_t> v = ids(tok, s);
    v.push_back(eot);
    return v;
  };
  const std::vector<std::vector<int64_t>> completions = {
      with_eot("<think>\n4 + 8 = 12\n</think>\n12"),  // right, stopped: kept
      with_eot("<think>\n4 + 8 = 13\n</think>\n13"),  // wrong
      ids(tok, "<think>\n4 + 8 = 12\n</think>\n12"),  // right but ran out of budget: not kept
      with_eot("12"),                                  // no think block: accuracy needs the answer after </think>
      with_eot("<think>\nhm\n</think>\n 12 "),         // right (whitespace around the integer is allowed), stopped: kept
  };
  const std::vector<std::vector<int64_t>> prompts(completions.size(), prompt);
  const std::vector<data::ReasoningProblem> problems(completions.size(), p);
  TraceStats st;
  std::vector<data::SftTokens> kept = select_correct_traces(tok, prompts, completions, problems, eot, &st);
  REQUIRE(kept.size() == 2);
  CHECK(st.samples == 5);
  CHECK(st.correct == 3);
  CHECK(st.kept == 2);
  CHECK(st.sampled_accuracy == doctest::Approx(3.0 / 5));
  const data::SftTokens& k = kept[0];
  CHECK(k.prompt_tokens == prompt.size());
  CHECK(k.ids.size() == prompt.size() + completions[0].size());
  CHECK(k.ids.back() == eot);
  for (size_t i = 0; i < k.ids.size(); i++) CHECK(k.loss_mask[i] == (i >= prompt.size() ? 1 : 0));
  auto completion_text = [&](const data::SftTokens& e) {
    return tok.decode(std::vector<int32_t>(e.ids.begin() + (std::ptrdiff_t)e.prompt_tokens, e.ids.end()));
  };
  CHECK(completion_text(kept[0]) == "<think>\n4 + 8 = 12\n</think>\n12<|endoftext|>");  // completions 0 and 4, in order
  CHECK(completion_text(kept[1]) == "<think>\nhm\n</think>\n 12 <|endoftext|>");
  CHECK(contains(error_of([&] { select_correct_traces(tok, prompts, completions, {p}, eot); }), "[distill] select_correct_traces"));
}

TEST_CASE("distill: a student equal to its teacher has KD loss 0; with α = 0 the loss is the model's own CE") {
  data::Tokenizer tok = small_tokenizer();
  const ReasoningConfig rc = small_reasoning();
  DistillConfig dc = small_distill();
  Rng r1(3), r2(3);
  Transformer teacher(teacher_args(tok), r1), student(teacher_args(tok), r2);  // the same weights
  const std::vector<data::SftTokens> ex = worked(tok, rc, 6);
  DistillStage kd(student, &teacher, tok, dc, rc, StudentKind::kd, ex, {}, {}, 1);
  CHECK(kd.loss_terms() == std::vector<std::string>{"kd", "ce", "balance"});
  kd.make_batch(0);
  BatchLoss bl = kd.batch_loss(0);
  CHECK(bl.terms[0] < 1e-12);
  CHECK(kd.last_kd().agreement == 1.0);
  CHECK(kd.last_kd().positions == kd.batch().target_tokens);
  // total = α·KD + (1 − α)·CE + balance
  CHECK(bl.total.item() == doctest::Approx(0.5 * bl.terms[0] + 0.5 * bl.terms[1] + bl.terms[2]).epsilon(1e-6));

  DistillStage alone(student, &teacher, tok, dc, rc, StudentKind::alone, ex, {}, {}, 1);
  CHECK(alone.loss_terms() == std::vector<std::string>{"ce", "balance"});
  CHECK(alone.kd_weight() == 0.0);
  alone.make_batch(0);
  BatchLoss al = alone.batch_loss(0);
  LossOptions lo;
  lo.balance_alpha = dc.balance_alpha;
  lo.segment_ids = alone.batch().segment_ids;
  LossOutput ref = student.loss(alone.batch().tokens, alone.batch().targets, lo);
  CHECK(al.terms[0] == ref.main_loss.item());
  CHECK(al.total.item() == doctest::Approx(ref.loss.item()).epsilon(1e-7));
}

TEST_CASE("distill: rows stay full with fewer examples than a batch holds (the epochs repeat, each reshuffled)") {
  data::Tokenizer tok = small_tokenizer();
  const ReasoningConfig rc = small_reasoning();
  DistillConfig dc = small_distill();
  Rng r(3);
  Transformer student(teacher_args(tok), r);
  const std::vector<data::SftTokens> ex = worked(tok, rc, 2);
  DistillStage st(student, nullptr, tok, dc, rc, StudentKind::traces, ex, {}, {}, 4);
  const int64_t per_row = dc.seq_len / (int64_t)std::max(ex[0].ids.size(), ex[1].ids.size());
  REQUIRE(per_row >= 1);
  for (int64_t step = 0; step < 3; step++) {
    st.make_batch(step);
    CHECK(st.batch().examples >= per_row * dc.batch_size);
  }
  CHECK(contains(error_of([&] { DistillStage bad(student, nullptr, tok, dc, rc, StudentKind::kd, ex, {}, {}, 4); }), "needs a teacher"));
  CHECK(contains(error_of([&] { DistillStage bad(student, nullptr, tok, dc, rc, StudentKind::traces, {}, {}, {}, 4); }), "no training examples"));
}

TEST_CASE("distill: KD steps lower the KL to the teacher; stop + resume == straight, bit for bit") {
  data::Tokenizer tok = small_tokenizer();
  data::testing::TempDir dir("distill_train");
  std::ostringstream log;
  const ReasoningConfig rc = small_reasoning();
  DistillConfig dc = small_distill();
  dc.kd_weight = 1.0;  // the teacher's distribution only
  dc.temperature = 1.0;
  Rng rt(7);
  Transformer teacher(teacher_args(tok), rt);
  ModelArgs sa = teacher_args(tok);
  sa.n_layers = 1;
  sa.dim = 8;
  sa.inter_dim = 16;
  const std::vector<data::SftTokens> ex = worked(tok, rc, 5);
  const std::vector<data::SftTokens> val = make_sft_examples(tok, sft_problems(rc, data::Split::val, 2), rc.system_prompt());
  auto run = [&](const std::string& out, int64_t steps, int64_t stop_after, std::vector<double>* params) {
    Rng rs(5);
    Transformer student(sa, rs);
    DistillStage stage(student, &teacher, tok, dc, rc, StudentKind::kd, ex, val, {}, 9);
    TrainerConfig tc;
    tc.steps = steps;
    tc.eval_every = 0;
    tc.checkpoint_every = 0;
    tc.out_dir = out;
    tc.progress = false;
    tc.stop_after_step = stop_after;
    Trainer t(student, stage, tc, LrSchedule::constant(1e-2), Rng(3), log);
    t.hooks.after_optimizer_step.push_back([&](const StepInfo&) { stage.update_biases(); });
    TrainerResult res = t.run();
    if (params)
      for (auto& [name, p] : student.named_parameters_and_buffers())
        for (double v : p->to_f64_vector()) params->push_back(v);
    return res;
  };
  TrainerResult tr = run(dir.file("learn"), 15, 0, nullptr);
  MetricsTable m = read_metrics_csv(dir.file("learn/metrics.csv"));
  const std::vector<double> kl = m.column("kl"), agree = m.column("agreement"), val_kl = m.column("val_kl");
  auto mean3 = [](const std::vector<double>& v, size_t from) { return (v[from] + v[from + 1] + v[from + 2]) / 3; };
  MESSAGE("kl " << kl.front() << " -> " << kl.back() << ", agreement " << agree.front() << " -> " << agree.back()
                << ", val_kl " << val_kl.back());
  CHECK(mean3(kl, kl.size() - 3) < 0.7 * mean3(kl, 0));
  CHECK(mean3(agree, agree.size() - 3) > mean3(agree, 0));
  CHECK(std::isfinite(val_kl.back()));
  CHECK(tr.final_eval.size() == 3);
  CHECK(std::isnan(tr.final_eval[2]));  // no eval problems given: no val_accuracy

  std::vector<double> straight, resumed;
  TrainerResult a = run(dir.file("a"), 4, 0, &straight);
  CHECK(run(dir.file("b"), 4, 2, nullptr).steps_done == 2);
  TrainerResult b = run(dir.file("b"), 4, 0, &resumed);
  CHECK(b.start_step == 2);
  CHECK(a.final_loss == b.final_loss);
  CHECK(straight == resumed);
  CHECK(read_metrics_csv(dir.file("a/metrics.csv")).column("kd_loss") == read_metrics_csv(dir.file("b/metrics.csv")).column("kd_loss"));
}

TEST_CASE("distill: generation_parameters leaves out the MTP modules; generation_tokens_per_s measures a fixed workload") {
  data::Tokenizer tok = small_tokenizer();
  ModelArgs a = teacher_args(tok);
  Rng r1(1), r2(1);
  Transformer plain(a, r1);
  a.n_mtp_modules = 1;
  Transformer with_mtp(a, r2);
  CHECK(generation_parameters(with_mtp) == generation_parameters(plain));
  CHECK(with_mtp.num_parameters() > plain.num_parameters());
  const std::vector<std::vector<int64_t>> prompts = {ids(tok, "What is 1 + 2?"), ids(tok, "What is 3 + 4?")};
  CHECK(generation_tokens_per_s(plain, prompts, 4, 1) > 0);
}

TEST_CASE("distill: configs/tiny_distill.yaml is tiny.yaml plus DISTILL — a smaller student on SFT's budget") {
  namespace fs = std::filesystem;
  const fs::path dir = fs::path(SEEKGRAD_SOURCE_DIR) / "configs";
  const PretrainConfig tiny = load_pretrain_config((dir / "tiny.yaml").string());
  const PretrainConfig d = load_pretrain_config((dir / "tiny_distill.yaml").string());
  REQUIRE(d.distill.enabled);
  CHECK(!tiny.distill.enabled);
  CHECK(d.model == tiny.model);
  CHECK(d.train.out_dir == tiny.train.out_dir);  // the pretraining, SFT and GRPO of tiny.yaml are reused
  CHECK(d.sft.steps == tiny.sft.steps);
  CHECK(d.grpo.steps == tiny.grpo.steps);
  CHECK(d.distill.steps * d.distill.batch_size * d.distill.seq_len == tiny.sft.steps * tiny.sft.batch_size * tiny.sft.seq_len);
  ModelArgs teacher = d.model;
  teacher.vocab_size = d.train.data.vocab_size;
  const ModelArgs s = distill_student_args(teacher, d.distill, d.source);
  CHECK(s.n_layers < teacher.n_layers);
  CHECK(s.dim < teacher.dim);
  Rng r1(1), r2(1);
  Transformer t(teacher, r1), st(s, r2);
  CHECK(generation_parameters(st) * 3 < generation_parameters(t));
}

TEST_CASE("distill: distill-kd with kd_weight 0 trains exactly as student-alone (same init, same batches, same bits)") {
  data::Tokenizer tok = small_tokenizer();
  data::testing::TempDir dir("distill_alpha0");
  std::ostringstream log;
  const ReasoningConfig rc = small_reasoning();
  DistillConfig dc = small_distill();
  dc.kd_weight = 0.0;
  Rng rt(7);
  Transformer teacher(teacher_args(tok), rt);
  ModelArgs sa = teacher_args(tok);
  sa.n_layers = 1;
  sa.dim = 8;
  const std::vector<data::SftTokens> ex = worked(tok, rc, 5);
  auto run = [&](StudentKind kind, const std::string& out) {
    Rng rs(5);
    Transformer student(sa, rs);
    DistillStage stage(student, &teacher, tok, dc, rc, kind, ex, {}, {}, 9);
    TrainerConfig tc;
    tc.steps = 3;
    tc.eval_every = 0;
    tc.checkpoint_every = 0;
    tc.out_dir = out;
    tc.progress = false;
    Trainer t(student, stage, tc, LrSchedule::constant(1e-2), Rng(3), log);
    t.run();
    std::vector<double> params;
    for (auto& [name, p] : student.named_parameters())
      for (double v : p->to_f64_vector()) params.push_back(v);
    return params;
  };
  CHECK(run(StudentKind::kd, dir.file("kd")) == run(StudentKind::alone, dir.file("alone")));
  CHECK(read_metrics_csv(dir.file("kd/metrics.csv")).column("ce_loss") == read_metrics_csv(dir.file("alone/metrics.csv")).column("ce_loss"));
}
