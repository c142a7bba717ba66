// tests/train/test_tool_train.cpp — training with the calculator (seekgrad issue 13): the SFT mask equals the tool
// loop's sampled mask on the same completion and packs into targets that never name an inserted token; the
// tool_format reward by value; evaluate_problems_with_tools' counts on a scripted model with tools on and off;
// GRPO with tools — the rollout mask is 1 exactly on sampled completion tokens, and one gradient step raises the
// log-probability of a rewarded tool-using completion. The tool-using policy is a tiny model overfitted for a few
// SftStage steps on two tool traces (so it writes calls when sampled).
#include <doctest/doctest.h>

#include <cmath>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

#include "data/chat.h"
#include "data/tokenizer.h"
#include "data/tool_problems.h"
#include "autograd/node.h"
#include "models/logprobs.h"
#include "models/transformer.h"
#include "tests/data/temp_dir.h"
#include "tests/test_util.h"
#include "train/grpo.h"
#include "train/optim.h"
#include "train/rewards.h"
#include "train/schedule.h"
#include "train/sft.h"
#include "train/tool_eval.h"
#include "train/tool_generate.h"
#include "train/tool_train.h"
#include "train/trainer.h"

using namespace sg;

namespace {

const data::Tokenizer& tokenizer() {
  static const data::Tokenizer tok = [] {
    std::string corpus;
    for (int i = 0; i < 40; i++) {
      const data::ReasoningProblem p = data::make_large_number_problem(std::to_string(100 + 7 * i) + " * " + std::to_string(300 + i));
      corpus += data::render_prompt(p, "") + data::render_completion(p.think, std::to_string(p.answer));
    }
    data::BpeTrainOptions bo;
    bo.vocab_size = 320;
    return data::Tokenizer::train(corpus, bo);
  }();
  return tok;
}

std::vector<int64_t> ids(const std::string& text, bool special = true) {
  const std::vector<int32_t> v = tokenizer().encode(text, special);
  return {v.begin(), v.end()};
}
int64_t id(const char* token) { return tokenizer().token_id(token); }

// Writes script[k] at its k-th sample (one logit far above the rest), whatever it reads.
struct Scripted {
  std::vector<int64_t> script;
  size_t k = 0;
  std::vector<float> operator()(const std::vector<int64_t>&) {
    std::vector<float> logits((size_t)tokenizer().vocab_size(), 0.0f);
    logits[(size_t)(k < script.size() ? script[k] : id("<|endoftext|>"))] = 10.0f;
    k++;
    return logits;
  }
};

// A tiny policy overfitted on two tool traces by SftStage (tool SFT as the chapter runs it, in miniature).
Transformer tool_policy(double* first_loss = nullptr, double* final_loss = nullptr) {
  Rng rng(5);
  Transformer m(test::tiny_post_training_args(tokenizer().vocab_size(), 160, 8), rng);
  const std::vector<data::ReasoningProblem> ps = {data::make_large_number_problem("123 * 456"),
                                                  data::make_large_number_problem("321 * 654")};
  SftConfig sc;
  sc.batch_size = 2;
  sc.seq_len = 64;
  sc.mtp_lambda = 0;
  SftStage stage(m, tokenizer(), sc, ReasoningConfig{}, make_tool_sft_examples(tokenizer(), ps, "S"), {}, {}, 1);
  data::testing::TempDir dir("tool_sft");
  TrainerConfig tc;
  tc.steps = 60;
  tc.eval_every = 0;
  tc.checkpoint_every = 0;
  tc.out_dir = dir.file("sft");
  tc.progress = false;
  std::ostringstream log;
  Trainer t(m, stage, tc, LrSchedule::constant(2e-2), Rng(2), log);
  TrainerResult r = t.run();
  if (first_loss) *first_loss = r.first_loss;
  if (final_loss) *final_loss = r.final_loss;
  return m;
}

}  // namespace

TEST_CASE("tool_train: the SFT mask is the tool loop's sampled mask, and packed targets never name an inserted token") {
  const data::ReasoningProblem p = data::make_large_number_problem("123 * 456");
  const data::ChatExample ex = data::render_sft_example(p, "");
  const data::SftTokens t = data::encode_tool_sft(tokenizer(), ex);
  const std::vector<int64_t> prompt(t.ids.begin(), t.ids.begin() + (long)t.prompt_tokens);
  // The scripted model writes the completion's tokens whose mask is 1; the loop inserts the rest.
  Scripted m;
  for (size_t j = t.prompt_tokens; j < t.ids.size(); j++)
    if (t.loss_mask[j]) m.script.push_back(t.ids[j]);
  const ToolCompletion c = generate_with_tools(std::ref(m), tokenizer(), prompt, 100, SamplingConfig{}, 0, id("<|endoftext|>"),
                                               data::ToolLimits{}, true);
  CHECK(c.tokens == std::vector<int64_t>(t.ids.begin() + (long)t.prompt_tokens, t.ids.end()));
  CHECK(c.sampled == std::vector<uint8_t>(t.loss_mask.begin() + (long)t.prompt_tokens, t.loss_mask.end()));
  REQUIRE(c.calls.size() == 1);
  CHECK(c.calls[0].result.text == "56088");
  // Packed: the targets are exactly the ids with mask 1 (every one but the first completion token has a predecessor).
  std::vector<size_t> order{0};
  size_t next = 0;
  PackedBatch b = pack_sft_rows({t}, order, next, 1, 64, id("<|endoftext|>"));
  const std::vector<double> tg = b.targets.to_f64_vector();
  std::vector<int64_t> want, got;
  for (size_t j = 1; j < t.ids.size(); j++)
    if (t.loss_mask[j]) want.push_back(t.ids[j]);
  for (double v : tg)
    if (v != -100) got.push_back((int64_t)v);
  CHECK(got == want);
  for (int64_t v : got) CHECK(v != id("<tool_result>"));
  CHECK(b.target_tokens == (int64_t)want.size());
}

TEST_CASE("tool_train: the tool_format reward, by value") {
  const data::ReasoningProblem p = data::make_large_number_problem("6 * 7");
  const std::string good = "<think>\n6 * 7 = <tool_call>6*7</tool_call><tool_result>42</tool_result>\n</think>\n42<|endoftext|>";
  CHECK(tool_format_reward(good, p) == 1.0);
  CHECK(tool_format_reward("<think>\n6 * 7 = 42\n</think>\n42", p) == 0.0);  // no call
  CHECK(tool_format_reward("<think>\n<tool_call>6*</tool_call><tool_result>error: unexpected end of call at byte 2</tool_result>\n</think>\n1", p) == 0.0);
  CHECK(tool_format_reward("<think>\n<tool_call>6*7</tool_call>\n</think>\n42", p) == 0.0);  // no result: not well formed
  CHECK(tool_format_reward("<tool_call>6*7</tool_call><tool_result>42</tool_result><think>\na\n</think>\n42", p) == 0.0);  // outside think
  const RewardTerms rt = compute_rewards(good, p, RewardWeights{1.0, 0.1, 0.1});
  CHECK(rt.accuracy == 1.0);
  CHECK(rt.format == 1.0);
  CHECK(rt.tool_format == 1.0);
  CHECK(rt.total == 1.0 + 0.1 + 0.1);
  CHECK(compute_rewards(good, p).total == 1.0 + 0.1);  // default weights: no tool term
  REQUIRE(tool_reward_functions().size() == 3);
  CHECK(std::string(tool_reward_functions()[2].name) == "tool_format");
}

TEST_CASE("tool_eval: counts on a scripted model, tools on and off") {
  // Problem 0: a right call, the answer copied; 1: a malformed call (calculator error), a wrong answer; 2: no call.
  const std::vector<data::ReasoningProblem> ps = {data::make_large_number_problem("6 * 7"), data::make_large_number_problem("8 * 9"),
                                                  data::make_large_number_problem("2 * 5")};
  const std::vector<std::string> written = {
      "<think>\n<tool_call>6*7</tool_call>", "\n</think>\n42<|endoftext|>",
      "<think>\n<tool_call>8*</tool_call>", "\n</think>\n71<|endoftext|>",
      "<think>\n2 * 5 = 11\n</think>\n11<|endoftext|>", ""};
  LogitsSourceFactory factory = [&](const std::vector<int64_t>& prompt, int64_t) -> NextLogitsFn {
    const std::string text = tokenizer().decode(std::vector<int32_t>(prompt.begin(), prompt.end()));
    const size_t k = text.find("6 * 7") != std::string::npos ? 0 : text.find("8 * 9") != std::string::npos ? 1 : 2;
    auto m = std::make_shared<Scripted>();
    m->script = ids(written[2 * k]);
    const std::vector<int64_t> tail = ids(written[2 * k + 1]);
    m->script.insert(m->script.end(), tail.begin(), tail.end());
    return [m](const std::vector<int64_t>& fed) { return (*m)(fed); };
  };
  ToolEvalOptions on;
  on.system = "";
  on.max_new_tokens = 80;
  const ToolEvalResult r = evaluate_problems_with_tools(factory, tokenizer(), ps, on);
  REQUIRE(r.rows.size() == 3);
  CHECK(r.rows[0].completion == "<think>\n<tool_call>6*7</tool_call><tool_result>42</tool_result>\n</think>\n42<|endoftext|>");
  CHECK(r.accuracy == doctest::Approx(1.0 / 3));
  CHECK(r.tool_use_rate == doctest::Approx(2.0 / 3));
  CHECK(r.well_formed_call_rate == 1.0);  // both calls have their result right after them
  CHECK(r.right_call_rate == 0.5);
  CHECK(r.calls == 2);
  CHECK(r.calculator_errors == 1);
  CHECK(r.inserted_tokens == (int64_t)(2 + ids("42", false).size() + 2 + ids("error: unexpected end of call at byte 2", false).size()));
  CHECK(r.format_rate == 1.0);
  CHECK(r.rows[1].right_call == false);
  CHECK(r.rows[2].n_tool_calls == 0);

  ToolEvalOptions off = on;
  off.tools_enabled = false;
  const ToolEvalResult o = evaluate_problems_with_tools(factory, tokenizer(), ps, off);
  CHECK(o.rows[0].completion == "<think>\n<tool_call>6*7</tool_call>\n</think>\n42<|endoftext|>");
  CHECK(o.calls == 0);
  CHECK(o.inserted_tokens == 0);
  CHECK(o.tool_use_rate == doctest::Approx(2.0 / 3));   // the attempts are still counted
  CHECK(o.well_formed_call_rate == 0.0);                // a call without its result is not well formed
  CHECK(std::isnan(o.right_call_rate));
  CHECK(o.format_rate == doctest::Approx(1.0 / 3));
  CHECK(o.accuracy == doctest::Approx(1.0 / 3));        // the script writes 42 regardless
  CHECK_THROWS_WITH(evaluate_problems_with_tools(factory, tokenizer(), {}, on), doctest::Contains("[tool_eval] no problems"));
}

TEST_CASE("tool_train: pack_rollout_rows with sampled flags — inserted tokens get mask 0") {
  Tensor tokens, mask;
  const std::vector<std::vector<uint8_t>> sampled = {{1, 0, 0, 1}, {1, 1}};
  pack_rollout_rows({{5, 6}, {7}}, {{1, 2, 3, 4}, {8, 9}}, 0, tokens, mask, &sampled);
  CHECK(tokens.to_f64_vector() == std::vector<double>{5, 6, 1, 2, 3, 4, 7, 8, 9, 0, 0, 0});
  // row 0: positions 1..4 predict completion tokens 0..3 (flags 1 0 0 1); row 1: positions 0, 1
  CHECK(mask.to_f64_vector() == std::vector<double>{0, 1, 0, 0, 1, 1, 1, 0, 0, 0});
  const std::vector<std::vector<uint8_t>> short_flags = {{1}, {1, 1}};
  CHECK_THROWS_WITH(pack_rollout_rows({{5, 6}, {7}}, {{1, 2, 3, 4}, {8, 9}}, 0, tokens, mask, &short_flags),
                    doctest::Contains("row 0 has 4 completion tokens but 1 sampled flags"));
}

TEST_CASE("tool_train: GRPO with tools — mask on sampled tokens only, and a step raises a rewarded tool completion") {
  double first = 0, last = 0;
  Transformer policy = tool_policy(&first, &last);
  CHECK(last < 0.5 * first);  // the tool SFT learned the traces
  Rng rr(5);
  Transformer reference(test::tiny_post_training_args(tokenizer().vocab_size(), 160, 8), rr);
  GrpoConfig gc;
  gc.prompts_per_step = 2;
  gc.group_size = 4;
  gc.temperature = 1.0;
  gc.kl_beta = 0;
  ReasoningConfig rc;
  rc.max_new_tokens = 40;
  rc.system = "S";  // the system turn the traces were trained with
  const std::vector<data::ReasoningProblem> pool = {data::make_large_number_problem("123 * 456"),
                                                    data::make_large_number_problem("321 * 654")};
  GrpoToolOptions tools;
  tools.enabled = true;
  GrpoStage stage(policy, reference, tokenizer(), gc, rc, pool, {}, 4, tools);
  CHECK(stage.step_metrics().back() == "tool_use");
  stage.make_batch(0);
  const Rollout r = stage.rollout();
  REQUIRE(r.sampled.size() == 8);
  const int64_t L1 = r.mask.shape()[1];
  const std::vector<double> mask = r.mask.to_f64_vector(), tokens = r.tokens.to_f64_vector();
  int64_t inserted = 0, with_call = -1;
  for (int64_t i = 0; i < 8; i++) {
    const int64_t C = (int64_t)r.sampled[(size_t)i].size();
    CHECK(C == r.length[(size_t)i]);
    const int64_t prompt_len = (int64_t)ids(data::render_prompt(pool[(size_t)r.problem[(size_t)i]], rc.system_prompt())).size();
    double mask_sum = 0;
    for (int64_t t = 0; t < L1; t++) mask_sum += mask[(size_t)(i * L1 + t)];
    int64_t n_sampled = 0;
    for (int64_t t = 0; t < C; t++) {
      const uint8_t s = r.sampled[(size_t)i][(size_t)t];
      CHECK(mask[(size_t)(i * L1 + prompt_len + t - 1)] == (double)s);
      n_sampled += s;
      if (!s) {
        inserted++;
        // an inserted run starts right after a sampled </tool_call>
        if (t > 0 && r.sampled[(size_t)i][(size_t)(t - 1)])
          CHECK(tokens[(size_t)(i * (L1 + 1) + prompt_len + t - 1)] == (double)id("</tool_call>"));
      }
    }
    CHECK(mask_sum == (double)n_sampled);
    if (r.tool_format[(size_t)i] == 1.0 && with_call < 0) with_call = i;
    CHECK(r.reward[(size_t)i] == doctest::Approx(compute_rewards(r.completions[(size_t)i], pool[(size_t)r.problem[(size_t)i]],
                                                                 RewardWeights{1.0, 0.1, 0.1}).total));
  }
  REQUIRE(inserted > 0);     // the overfitted policy does call the calculator
  REQUIRE(with_call >= 0);
  // One SGD step with the rewarded tool completion at A = +1.5 and the other seven at −1.5/7 (mean 0).
  std::vector<float> a(8, -1.5f / 7);
  a[(size_t)with_call] = 1.5f;
  GRPOLossConfig lc;
  lc.kl_beta = 0;
  GRPOLossOutput lo = grpo_loss(token_logprobs(policy, r.tokens), r.old_logp, r.ref_logp, r.mask,
                                Tensor::from_vector(a, {8}), lc);
  lo.loss.backward();
  SGDConfig sgd;
  sgd.momentum = 0;
  SGD opt(policy.named_parameters(), sgd);
  opt.step(0.5);
  NoGradGuard ng;
  const std::vector<double> before = r.old_logp.to_f64_vector(), after = token_logprobs(policy, r.tokens).to_f64_vector();
  double sb = 0, sa = 0;
  for (int64_t t = 0; t < L1; t++) {
    sb += before[(size_t)(with_call * L1 + t)] * mask[(size_t)(with_call * L1 + t)];
    sa += after[(size_t)(with_call * L1 + t)] * mask[(size_t)(with_call * L1 + t)];
  }
  CHECK(sa > sb);
}
