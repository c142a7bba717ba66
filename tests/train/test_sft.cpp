// tests/train/test_sft.cpp — SFT (train/sft.h): packing by value on hand-made examples, the loss only on the
// assistant's tokens, packed == separate (attention kept inside each example), the stage's resume.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <sstream>

#include "data/chat.h"
#include "data/reasoning.h"
#include "data/tokenizer.h"
#include "models/transformer.h"
#include "ops/ops.h"
#include "tests/test_util.h"
#include "train/sft.h"

using namespace sg;

namespace {

data::SftTokens example(std::vector<int32_t> ids, size_t prompt) {
  data::SftTokens e;
  e.ids = std::move(ids);
  e.prompt_tokens = prompt;
  for (size_t i = 0; i < e.ids.size(); i++) e.loss_mask.push_back(i >= prompt ? 1 : 0);
  return e;
}

std::vector<int64_t> row(const Tensor& t, int64_t b) {
  std::vector<int64_t> v;
  const int64_t T = t.shape()[1];
  const std::vector<double> all = t.to_f64_vector();
  const double* p = all.data();
  for (int64_t i = 0; i < T; i++) v.push_back((int64_t)p[b * T + i]);
  return v;
}


}  // namespace

TEST_CASE("sft: pack_sft_rows places whole examples, targets only on assistant tokens, one segment per example") {
  // prompt tokens in the 10s, completion tokens in the 20s; pad = 99
  std::vector<data::SftTokens> ex = {example({10, 11, 21, 22}, 2), example({12, 23, 24}, 1), example({13, 14, 15, 25, 26}, 3)};
  std::vector<size_t> order = {0, 1, 2};
  size_t next = 0;
  PackedBatch b = pack_sft_rows(ex, order, next, 2, 8, 99, /*wrap=*/false);
  CHECK(next == 3);
  CHECK(b.examples == 3);
  // row 0: ex0 (4) + ex1 (3) = 7 tokens, 1 pad; row 1: ex2 (5) + 3 pads
  CHECK(row(b.tokens, 0) == std::vector<int64_t>{10, 11, 21, 22, 12, 23, 24, 99});
  CHECK(row(b.tokens, 1) == std::vector<int64_t>{13, 14, 15, 25, 26, 99, 99, 99});
  // target at p = next token when it is a completion token of the same example
  CHECK(row(b.targets, 0) == std::vector<int64_t>{-100, 21, 22, -100, 23, 24, -100, -100});
  CHECK(row(b.targets, 1) == std::vector<int64_t>{-100, -100, 25, 26, -100, -100, -100, -100});
  CHECK(row(b.segment_ids, 0) == std::vector<int64_t>{0, 0, 0, 0, 1, 1, 1, 2});
  CHECK(row(b.segment_ids, 1) == std::vector<int64_t>{0, 0, 0, 0, 0, 1, 2, 3});
  CHECK(b.target_tokens == 6);  // = completion tokens (2 + 2 + 2)
  CHECK(b.pad_tokens == 4);

  // wrap: the order starts again; an example longer than T is a named error
  next = 2;
  PackedBatch w = pack_sft_rows(ex, order, next, 1, 8, 99, true);
  CHECK(row(w.tokens, 0) == std::vector<int64_t>{13, 14, 15, 25, 26, 99, 99, 99});  // ex0 (4) no longer fits after ex2 (5)
  CHECK(next == 0);
  std::vector<data::SftTokens> big = {example({1, 2, 3, 4, 5, 6, 7, 8, 9}, 2)};
  next = 0;
  CHECK_THROWS_WITH(pack_sft_rows(big, {0}, next, 1, 8, 99), doctest::Contains("[sft] example 0 has 9 tokens, more than seq_len 8"));
}

TEST_CASE("sft: the real template — targets are exactly the completion's tokens, the prompt is never a target") {
  const std::string corpus = "What is 37 + 48?\n37 + 48 = 85\nThe answer is 85.\n<|endoftext|>Once upon a time.\n";
  data::BpeTrainOptions bo;
  bo.vocab_size = 300;
  data::Tokenizer tok = data::Tokenizer::train(corpus, bo);
  data::ReasoningProblem p = data::make_reasoning_problem("37 + 48");
  std::vector<data::SftTokens> ex = make_sft_examples(tok, {p});
  const data::SftTokens& e = ex[0];
  size_t next = 0;
  const int64_t T = (int64_t)e.ids.size() + 3;
  PackedBatch b = pack_sft_rows(ex, {0}, next, 1, T, *tok.find_token("<|endoftext|>"), false);
  std::vector<int64_t> tg = row(b.targets, 0);
  std::vector<int32_t> targets;
  for (int64_t t : tg)
    if (t != -100) targets.push_back((int32_t)t);
  std::vector<int32_t> completion(e.ids.begin() + (long)e.prompt_tokens, e.ids.end());
  CHECK(targets == completion);
  CHECK(tok.decode(targets) == data::render_completion(p.think, "85"));
}

TEST_CASE("sft: a packed row's loss equals the examples' losses computed alone (attention kept inside each example)") {
  Rng rng(3);
  Transformer model(test::tiny_post_training_args(40, 32, 4), rng);
  std::vector<data::SftTokens> ex = {example({1, 2, 3, 30, 31, 32}, 3), example({4, 5, 33, 34, 35, 36, 37}, 2)};
  size_t next = 0;
  PackedBatch packed = pack_sft_rows(ex, {0, 1}, next, 1, 16, 0, false);
  LossOptions lo;
  lo.segment_ids = packed.segment_ids;
  const double packed_loss = model.loss(packed.tokens, packed.targets, lo).main_loss.item();
  // each alone, token-weighted
  double sum = 0;
  int64_t n = 0;
  for (size_t k = 0; k < ex.size(); k++) {
    size_t nx = 0;
    PackedBatch one = pack_sft_rows(ex, {k}, nx, 1, (int64_t)ex[k].ids.size(), 0, false);
    sum += model.loss(one.tokens, one.targets, 0.0, 0.0).main_loss.item() * (double)one.target_tokens;
    n += one.target_tokens;
  }
  CHECK(packed.target_tokens == n);
  CHECK(packed_loss == doctest::Approx(sum / (double)n).epsilon(1e-5));
  // without the segment ids the second example would see the first: the loss differs
  const double leaky = model.loss(packed.tokens, packed.targets, 0.0, 0.0).main_loss.item();
  CHECK(std::fabs(leaky - packed_loss) > 1e-6);
}
