// tests/train/test_grpo.cpp — the GRPO stage (train/grpo.h): rows and mask by value, a real rollout on a tiny
// model (its rewards recomputed from the text it wrote, its advantages from its rewards, π_old = π_θ at μ = 1),
// and a gradient step that moves probability toward the completions with positive advantage.
#include <doctest/doctest.h>

#include <cmath>
#include <numeric>

#include "data/chat.h"
#include "data/reasoning.h"
#include "data/tokenizer.h"
#include "models/logprobs.h"
#include "models/transformer.h"
#include "ops/ops.h"
#include "tests/test_util.h"
#include "train/grpo.h"
#include "train/metrics.h"
#include "train/optim.h"
#include "tests/data/temp_dir.h"

#include <sstream>
#include "train/rewards.h"

using namespace sg;

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


std::vector<double> values(const Tensor& t) { return t.to_f64_vector(); }

}  // namespace

TEST_CASE("grpo: pack_rollout_rows — [prompt | completion | pad], mask 1 exactly where a completion token is predicted") {
  Tensor tokens, mask;
  pack_rollout_rows({{5, 6, 7}, {8, 9}}, {{1, 2}, {3, 4, 0}}, 0, tokens, mask);
  CHECK(tokens.shape() == Shape{2, 5});
  CHECK(values(tokens) == std::vector<double>{5, 6, 7, 1, 2, 8, 9, 3, 4, 0});
  // row 0: positions 2, 3 predict tokens 3, 4 (the completion); row 1: positions 1, 2, 3
  CHECK(values(mask) == std::vector<double>{0, 0, 1, 1, 0, 1, 1, 1});
  CHECK_THROWS_WITH(pack_rollout_rows({{1}}, {{1}, {2}}, 0, tokens, mask), doctest::Contains("[grpo] pack_rollout_rows: 1 prompts and 2 completions"));
}

TEST_CASE("grpo: a real rollout — sampled, rewarded from its text, group advantages, π_old = π_θ") {
  data::Tokenizer tok = small_tokenizer();
  Rng rng(5);
  Transformer policy(test::tiny_post_training_args(tok.vocab_size(), 160, 8), rng);
  Rng rng2(5);
  Transformer reference(test::tiny_post_training_args(tok.vocab_size(), 160, 8), rng2);
  GrpoConfig gc;
  gc.prompts_per_step = 2;
  gc.group_size = 4;
  gc.temperature = 1.0;
  ReasoningConfig rc;
  rc.max_new_tokens = 12;
  std::vector<data::ReasoningProblem> pool = data::reasoning_split(data::Split::train, 1, 10, 1);
  GrpoStage stage(policy, reference, tok, gc, rc, pool, {}, 9);
  Rollout r = stage.sample_rollout(0);
  REQUIRE(r.completions.size() == 8);
  for (size_t i = 0; i < 8; i++) {
    const data::ReasoningProblem& p = pool[(size_t)r.problem[i]];
    RewardTerms t = compute_rewards(r.completions[i], p, {gc.accuracy_weight, gc.format_weight});
    CHECK(r.reward[i] == t.total);
    CHECK(r.length[i] >= 1);
    CHECK(r.length[i] <= rc.max_new_tokens);
    CHECK(r.problem[i] == r.problem[i - i % 4]);  // G completions of one prompt
  }
  // the same rollout index draws the same samples (seeded), another index others
  Rollout again = stage.sample_rollout(0);
  CHECK(again.completions == r.completions);
  // advantages: per group, mean 0; all-equal group → exactly 0
  std::vector<double> a = values(r.advantages);
  for (int g = 0; g < 2; g++) {
    double m = 0;
    for (int i = 0; i < 4; i++) m += a[(size_t)(g * 4 + i)] / 4;
    CHECK(std::fabs(m) < 1e-5);
  }
  // mask counts the completion tokens, and π_old = π_θ (the same weights): the ratio is 1 on every token
  std::vector<double> m = values(r.mask);
  CHECK(std::accumulate(m.begin(), m.end(), 0.0) == (double)std::accumulate(r.length.begin(), r.length.end(), int64_t{0}));
  stage.make_batch(0);
  BatchLoss bl = stage.batch_loss(0);
  std::vector<double> sm = stage.step_metric_values();
  CHECK(sm[6] == doctest::Approx(1.0).epsilon(1e-6));  // ratio_mean
  CHECK(sm[5] == 0.0);                                 // clip_fraction
  CHECK(sm[3] == doctest::Approx(0.0).epsilon(1e-6));  // kl_mean: reference = initial policy
  CHECK(std::isfinite(bl.total.item()));
}

TEST_CASE("grpo: one gradient step raises the log-probability of positive-advantage completions") {
  data::Tokenizer tok = small_tokenizer();
  Rng rng(11);
  Transformer policy(test::tiny_post_training_args(tok.vocab_size(), 160, 8), rng);
  Rng rng2(11);
  Transformer reference(test::tiny_post_training_args(tok.vocab_size(), 160, 8), rng2);
  GrpoConfig gc;
  gc.prompts_per_step = 1;
  gc.group_size = 4;
  gc.kl_beta = 0.0;
  gc.format_weight = 0.0;
  gc.accuracy_weight = 1.0;
  ReasoningConfig rc;
  rc.max_new_tokens = 8;
  std::vector<data::ReasoningProblem> pool = data::reasoning_split(data::Split::train, 1, 4, 1);
  GrpoStage stage(policy, reference, tok, gc, rc, pool, {}, 3);
  stage.make_batch(0);
  Rollout r = stage.rollout();
  // A random model never answers right: the group is flat, no gradient. Give it hand-made advantages instead.
  Tensor adv = Tensor::from_vector(std::vector<float>{1.5f, -0.5f, -0.5f, -0.5f}, {4});
  GRPOLossConfig lc;
  lc.kl_beta = 0;
  Tensor logp = token_logprobs(policy, r.tokens);
  GRPOLossOutput lo = grpo_loss(logp, r.old_logp, r.ref_logp, r.mask, adv, lc);
  lo.loss.backward();
  SGDConfig sgd;
  sgd.momentum = 0;
  SGD opt(policy.named_parameters(), sgd);
  opt.step(0.5);
  NoGradGuard ng;
  std::vector<double> before = values(r.old_logp), after = values(token_logprobs(policy, r.tokens)), mask = values(r.mask);
  const int64_t L1 = r.mask.shape()[1];
  auto seq_logp = [&](const std::vector<double>& lp, int64_t i) {
    double s = 0;
    for (int64_t t = 0; t < L1; t++) s += lp[(size_t)(i * L1 + t)] * mask[(size_t)(i * L1 + t)];
    return s;
  };
  CHECK(seq_logp(after, 0) > seq_logp(before, 0));  // A = +1.5: more likely now
}

// Resume in the middle of a rollout's μ inner iterations: the checkpoint holds the rollout (tokens, mask, π_old and
// π_ref log-probs, advantages), so the resumed run continues on the same samples and ends bit-identical to a run
// that never stopped. Weight decay moves the policy away from π_ref, so the KL term (and with it the loss) is
// non-trivial after the first step even though a random model earns no reward.
TEST_CASE("grpo: stop between two inner iterations + resume == straight, bit for bit") {
  data::Tokenizer tok = small_tokenizer();
  data::testing::TempDir dir("grpo_resume");
  std::ostringstream log;
  GrpoConfig gc;
  gc.prompts_per_step = 2;
  gc.group_size = 2;
  gc.inner_iterations = 2;
  gc.kl_beta = 0.5;
  ReasoningConfig rc;
  rc.max_new_tokens = 6;
  std::vector<data::ReasoningProblem> pool = data::reasoning_split(data::Split::train, 1, 6, 1);
  auto run = [&](const std::string& out, int64_t stop_after, std::vector<double>* params) {
    Rng r1(4), r2(4);
    Transformer policy(test::tiny_post_training_args(tok.vocab_size(), 160, 8), r1);
    Transformer reference(test::tiny_post_training_args(tok.vocab_size(), 160, 8), r2);
    GrpoStage stage(policy, reference, tok, gc, rc, pool, {}, 5);
    TrainerConfig tc;
    tc.steps = 4;
    tc.adamw.weight_decay = 0.5;
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
  CHECK(run(dir.file("b"), 1, nullptr).steps_done == 1);  // stopped after the first of the rollout's 2 steps
  TrainerResult b = run(dir.file("b"), 0, &resumed);
  CHECK(b.start_step == 1);
  CHECK(b.steps_done == 4);
  CHECK(a.final_loss == b.final_loss);
  CHECK(straight == resumed);
  MetricsTable ma = read_metrics_csv(dir.file("a/metrics.csv")), mb = read_metrics_csv(dir.file("b/metrics.csv"));
  CHECK(ma.column("loss") == mb.column("loss"));
  CHECK(ma.column("kl_mean") == mb.column("kl_mean"));
  CHECK(ma.column("response_length") == mb.column("response_length"));
  CHECK(ma.column("kl_mean")[3] > 0);  // the KL is really exercised
}
