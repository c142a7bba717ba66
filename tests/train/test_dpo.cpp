// tests/train/test_dpo.cpp — the DPO stage (train/dpo.h):
//   * select_preference_pairs on hand-made groups: chosen = first correct, rejected = first wrong, all-correct and
//     all-wrong prompts counted and skipped;
//   * read_preference_pairs: {"prompt","chosen","rejected"} lines and HH-RLHF whole dialogues (prompt = the shared
//     prefix through the last "\n\nAssistant:"), <|endoftext|> appended, too-long pairs skipped, bad lines named
//     with FILE:LINE;
//   * DpoStage: the batch layout (chosen rows first, same prompt), step 1's loss is log 2 (π_θ = π_ref bit for bit),
//     training on fixed pairs raises the reward accuracy and margin, and stop + resume == straight, bit for bit.
#include <doctest/doctest.h>

#include <cmath>
#include <fstream>
#include <sstream>

#include "data/chat.h"
#include "tests/data/temp_dir.h"
#include "tests/test_util.h"
#include "train/dpo.h"
#include "train/metrics.h"
#include "train/schedule.h"

using namespace sg;
using sg::test::contains;
using sg::test::error_of;

namespace {

data::Tokenizer small_tokenizer() {
  std::string corpus = std::string(data::kReasoningSystemPrompt) + "\n";
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

// Pairs whose completions differ in the answer: "<think>…</think>\n3" (chosen) vs "…\n4" (rejected).
std::vector<PreferencePair> hand_pairs(const data::Tokenizer& tok, int n) {
  const int64_t eot = *tok.find_token("<|endoftext|>");
  std::vector<PreferencePair> pairs;
  for (int i = 0; i < n; i++) {
    PreferencePair p;
    p.prompt = ids(tok, data::render_prompt("What is " + std::to_string(i) + " + " + std::to_string(2 * i) + "?"));
    p.chosen = ids(tok, "<think>\nok\n</think>\n" + std::to_string(3 * i));
    p.rejected = ids(tok, "<think>\nok\n</think>\n" + std::to_string(3 * i + 1));
    p.chosen.push_back(eot);
    p.rejected.push_back(eot);
    p.problem = i;
    pairs.push_back(p);
  }
  return pairs;
}

void spit(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary);
  f << text;
}

}  // namespace

TEST_CASE("dpo: select_preference_pairs — chosen = the first highest reward, rejected = the first lowest, flat groups none") {
  const std::vector<std::vector<int64_t>> prompts = {{1}, {2}, {3}, {4}};
  std::vector<std::vector<int64_t>> comps;
  for (int64_t i = 0; i < 12; i++) comps.push_back({100 + i});
  auto r = [](double acc, double fmt) {
    RewardTerms t;
    t.accuracy = acc;
    t.format = fmt;
    t.total = acc + 0.1 * fmt;
    return t;
  };
  // G = 3. prompt 0: wrong+tidy, right+untidy, right+tidy -> chosen 102 (1.1), rejected 100 (0.1)
  //        prompt 1: all right and tidy (flat)     prompt 2: all wrong, one tidy -> chosen 107, rejected 106 (first of the 0s)
  //        prompt 3: right, wrong, wrong (untidy)  -> chosen 109, rejected 110
  const std::vector<RewardTerms> rw = {r(0, 1), r(1, 0), r(1, 1), r(1, 1), r(1, 1), r(1, 1),
                                       r(0, 0), r(0, 1), r(0, 0), r(1, 0), r(0, 0), r(0, 0)};
  PairSamplingStats st;
  std::vector<PreferencePair> pairs = select_preference_pairs(prompts, comps, rw, 3, {10, 11, 12, 13}, &st);
  REQUIRE(pairs.size() == 3);
  CHECK(pairs[0].prompt == std::vector<int64_t>{1});
  CHECK(pairs[0].chosen == std::vector<int64_t>{102});
  CHECK(pairs[0].rejected == std::vector<int64_t>{100});
  CHECK(pairs[0].problem == 10);
  CHECK(pairs[1].prompt == std::vector<int64_t>{3});
  CHECK(pairs[1].chosen == std::vector<int64_t>{107});
  CHECK(pairs[1].rejected == std::vector<int64_t>{106});
  CHECK(pairs[2].chosen == std::vector<int64_t>{109});
  CHECK(pairs[2].rejected == std::vector<int64_t>{110});
  CHECK(st.prompts == 4);
  CHECK(st.completions == 12);
  CHECK(st.pairs == 3);
  CHECK(st.flat_groups == 1);
  CHECK(st.correct_over_wrong == 2);  // prompts 0 and 3; prompt 2's pair is tidy-wrong over untidy-wrong
  CHECK(st.sampled_accuracy == doctest::Approx(6.0 / 12));
  CHECK(st.sampled_format == doctest::Approx(6.0 / 12));
  CHECK(contains(error_of([&] { select_preference_pairs(prompts, comps, rw, 4, {10, 11, 12, 13}); }), "[dpo] select_preference_pairs"));
}

TEST_CASE("dpo: read_preference_pairs — prompt/chosen/rejected lines, HH-RLHF dialogues, skipped and bad lines") {
  data::Tokenizer tok = small_tokenizer();
  data::testing::TempDir dir("dpo_pairs");
  const int64_t eot = *tok.find_token("<|endoftext|>");
  const std::string path = dir.file("pairs.jsonl");
  std::string long_answer(400, 'x');
  spit(path,
       "{\"prompt\": \"What is 1 + 2?\", \"chosen\": \" 3\", \"rejected\": \" 4\"}\n"
       "\n"
       "{\"chosen\": \"\\n\\nHuman: hi\\n\\nAssistant: hello\\n\\nHuman: sum?\\n\\nAssistant: 3\", "
       "\"rejected\": \"\\n\\nHuman: hi\\n\\nAssistant: hello\\n\\nHuman: sum?\\n\\nAssistant: no idea\"}\n"
       "{\"prompt\": \"What?\", \"chosen\": \"" + long_answer + "\", \"rejected\": \"y\"}\n");
  int64_t skipped = -1;
  std::vector<PreferencePair> pairs = read_preference_pairs(path, tok, 100, &skipped);
  REQUIRE(pairs.size() == 2);
  CHECK(skipped == 1);
  auto text = [&](const std::vector<int64_t>& v) { return tok.decode(std::vector<int32_t>(v.begin(), v.end())); };
  CHECK(text(pairs[0].prompt) == "What is 1 + 2?");
  CHECK(text(pairs[0].chosen) == " 3<|endoftext|>");
  CHECK(text(pairs[0].rejected) == " 4<|endoftext|>");
  CHECK(pairs[0].chosen.back() == eot);
  CHECK(pairs[0].problem == -1);
  // HH: the prompt runs through the LAST "\n\nAssistant:", the completions are the final turns
  CHECK(text(pairs[1].prompt) == "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: sum?\n\nAssistant:");
  CHECK(text(pairs[1].chosen) == " 3<|endoftext|>");
  CHECK(text(pairs[1].rejected) == " no idea<|endoftext|>");

  spit(path, "{\"prompt\": \"a\", \"chosen\": \"b\", \"rejected\": \"c\"}\nnot json\n");
  CHECK(contains(error_of([&] { read_preference_pairs(path, tok, 100); }), "[dpo] " + path + ":2: not a JSON object"));
  spit(path, "{\"prompt\": \"a\", \"chosen\": \"b\"}\n");
  CHECK(contains(error_of([&] { read_preference_pairs(path, tok, 100); }), path + ":1: no string \"rejected\""));
  spit(path, "{\"prompt\": \"a\", \"chosen\": \"b\", \"rejected\": \"b\"}\n");
  CHECK(contains(error_of([&] { read_preference_pairs(path, tok, 100); }), "chosen and rejected are the same text"));
  spit(path, "{\"chosen\": \"abc\", \"rejected\": \"xyz\"}\n");
  CHECK(contains(error_of([&] { read_preference_pairs(path, tok, 100); }), "share no prompt"));
  CHECK(contains(error_of([&] { read_preference_pairs(dir.file("none.jsonl"), tok, 100); }), "none.jsonl: no such file"));
}

TEST_CASE("dpo: the stage's batch (chosen rows, then rejected), step 1 at log 2, and training on fixed pairs") {
  data::Tokenizer tok = small_tokenizer();
  data::testing::TempDir dir("dpo_train");
  std::ostringstream log;
  Rng r1(7), r2(7);
  Transformer policy(test::tiny_post_training_args(tok.vocab_size(), 160, 8), r1);
  const Transformer reference(test::tiny_post_training_args(tok.vocab_size(), 160, 8), r2);
  DpoConfig dc;
  dc.pairs_per_step = 4;
  dc.beta = 0.5;
  ReasoningConfig rc;
  std::vector<PreferencePair> pairs = hand_pairs(tok, 4);
  DpoStage stage(policy, reference, tok, dc, rc, pairs, {}, 1);
  stage.make_batch(0);
  const Tensor& t = stage.tokens();
  REQUIRE(t.shape()[0] == 8);
  // Row b and row 4+b hold the same pair's prompt; the mask covers exactly the completion's tokens.
  const std::vector<double> tv = t.to_f64_vector(), mv = stage.mask().to_f64_vector();
  const int64_t L = t.shape()[1];
  double chosen_tokens = 0, rejected_tokens = 0;
  for (int64_t b = 0; b < 4; b++)
    for (int64_t j = 0; j < L - 1; j++) chosen_tokens += mv[(size_t)(b * (L - 1) + j)], rejected_tokens += mv[(size_t)((4 + b) * (L - 1) + j)];
  double want_c = 0, want_r = 0;
  for (const PreferencePair& p : pairs) want_c += (double)p.chosen.size(), want_r += (double)p.rejected.size();
  CHECK(chosen_tokens == want_c);
  CHECK(rejected_tokens == want_r);
  BatchLoss bl = stage.batch_loss(0);
  CHECK(bl.terms[0] == doctest::Approx(std::log(2.0)).epsilon(1e-6));
  CHECK(stage.last().reward_accuracy == 0.0);

  TrainerConfig tc;
  tc.steps = 12;
  tc.eval_every = 0;
  tc.checkpoint_every = 0;
  tc.out_dir = dir.file("run");
  tc.progress = false;
  DpoStage train_stage(policy, reference, tok, dc, rc, pairs, {}, 1);
  Trainer trainer(policy, train_stage, tc, LrSchedule::constant(3e-3), Rng(2), log);
  TrainerResult res = trainer.run();
  MetricsTable m = read_metrics_csv(trainer.metrics_path());
  const std::vector<double> loss = m.column("dpo_loss"), acc = m.column("reward_accuracy"), margin = m.column("reward_margin");
  MESSAGE("dpo loss " << loss.front() << " -> " << loss.back() << ", reward accuracy " << acc.back() << ", margin " << margin.back());
  CHECK(loss.front() == doctest::Approx(std::log(2.0)).epsilon(1e-6));
  CHECK(loss.back() < loss.front() - 0.1);
  CHECK(acc.back() == 1.0);
  CHECK(margin.back() > 0.2);
  CHECK(m.column("chosen_logp").back() - m.column("rejected_logp").back() >
        m.column("chosen_logp").front() - m.column("rejected_logp").front());
  CHECK(res.steps_done == 12);
}

TEST_CASE("dpo: stop + resume == straight, bit for bit (the stage's epoch and position are in the checkpoint)") {
  data::Tokenizer tok = small_tokenizer();
  data::testing::TempDir dir("dpo_resume");
  std::ostringstream log;
  DpoConfig dc;
  dc.pairs_per_step = 2;  // 3 pairs: the second step already wraps into epoch 1
  dc.beta = 0.3;
  ReasoningConfig rc;
  const std::vector<PreferencePair> pairs = hand_pairs(tok, 3);
  auto run = [&](const std::string& out, int64_t stop_after, std::vector<double>* params) {
    Rng r1(4), r2(4);
    Transformer policy(test::tiny_post_training_args(tok.vocab_size(), 160, 8), r1);
    Transformer reference(test::tiny_post_training_args(tok.vocab_size(), 160, 8), r2);
    DpoStage stage(policy, reference, tok, dc, rc, pairs, {}, 5);
    TrainerConfig tc;
    tc.steps = 4;
    tc.eval_every = 0;
    tc.checkpoint_every = 0;
    tc.out_dir = out;
    tc.progress = false;
    tc.stop_after_step = stop_after;
    Trainer t(policy, stage, tc, LrSchedule::constant(1e-2), Rng(3), log);
    TrainerResult res = t.run();
    if (params)
      for (auto& [name, p] : policy.named_parameters())
        for (double v : p->to_f64_vector()) params->push_back(v);
    return res;
  };
  std::vector<double> straight, resumed;
  TrainerResult a = run(dir.file("a"), 0, &straight);
  CHECK(run(dir.file("b"), 2, nullptr).steps_done == 2);
  TrainerResult b = run(dir.file("b"), 0, &resumed);
  CHECK(b.start_step == 2);
  CHECK(a.final_loss == b.final_loss);
  CHECK(straight == resumed);
  CHECK(read_metrics_csv(dir.file("a/metrics.csv")).column("dpo_loss") == read_metrics_csv(dir.file("b/metrics.csv")).column("dpo_loss"));
}

TEST_CASE("dpo: sample_preference_pairs on a real model — G samples per prompt, pairs only where rewards differ, seeded") {
  data::Tokenizer tok = small_tokenizer();
  Rng r1(5);
  Transformer model(test::tiny_post_training_args(tok.vocab_size(), 160, 8), r1);
  std::vector<data::ReasoningProblem> pool = data::reasoning_split(data::Split::train, 1, 10, 1);
  PairSamplingStats st;
  // A random model rarely writes a tidy or correct completion, so most groups are flat: what is checked is the
  // bookkeeping (every prompt is a pair or a flat group) and the seeding, whatever the rewards turn out to be.
  std::vector<PreferencePair> a =
      sample_preference_pairs(model, tok, pool, 6, 4, 1.0, 10, data::kReasoningSystemPrompt, {1.0, 0.1}, 3, &st);
  CHECK(st.prompts == 6);
  CHECK(st.completions == 24);
  CHECK(st.pairs + st.flat_groups == 6);
  CHECK(st.pairs == (int64_t)a.size());
  for (const PreferencePair& p : a) {
    CHECK(p.problem >= 0);
    CHECK(p.chosen != p.rejected);
  }
  std::vector<PreferencePair> b = sample_preference_pairs(model, tok, pool, 6, 4, 1.0, 10, data::kReasoningSystemPrompt, {1.0, 0.1}, 3);
  REQUIRE(a.size() == b.size());
  for (size_t i = 0; i < a.size(); i++) CHECK(a[i].chosen == b[i].chosen);
  // More prompts than problems: capped at the pool, each problem once.
  PairSamplingStats all;
  sample_preference_pairs(model, tok, pool, 50, 2, 1.0, 4, data::kReasoningSystemPrompt, {1.0, 0.1}, 3, &all);
  CHECK(all.prompts == 10);
  CHECK(contains(error_of([&] { sample_preference_pairs(model, tok, pool, 2, 1, 1.0, 4, "", {}, 3); }), "group_size must be >= 2"));
}
