// tests/models/test_generate_batch.cpp — models/generate.h generate_batch: batched KV-cache sampling.
//   * the numerics it rests on: a batched forward (prefill and one decode step through the cache) gives
//     every row the very bits of that row's batch-1 forward (MLA + MoE model, and a DSA model);
//   * greedy and sampled (temperature 1, top-p 0.9) rows == generate() row by row, exactly, for rows of three
//     prompt lengths with duplicated prompts, chunked (max_batch_size 3) and not (8);
//   * a stop token that rows produce at different steps: each row ends with it, the others go on, the
//     forward count is what the chunks need;
//   * a DSA model (index_topk > 0, prompts longer than top-k);
//   * errors name the row and the problem.
#include <doctest/doctest.h>

#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include "autograd/node.h"
#include "models/config.h"
#include "models/generate.h"
#include "models/transformer.h"
#include "ops/ops.h"
#include "tests/test_util.h"

using namespace sg;
using sg::test::error_of;

namespace {

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// The tiny model of tests/models/test_transformer.cpp: MLA with q-LoRA, one dense and one MoE layer
// (sigmoid gate with bias and two groups), YaRN rope.
ModelArgs tiny_args(int64_t max_batch_size, bool dsa = false) {
  ModelArgs a;
  a.vocab_size = 48;
  a.dim = 16;
  a.inter_dim = 32;
  a.moe_inter_dim = 8;
  a.n_layers = 2;
  a.n_dense_layers = 1;
  a.n_heads = 2;
  a.n_routed_experts = 4;
  a.n_shared_experts = 1;
  a.n_activated_experts = 2;
  a.n_expert_groups = 2;
  a.n_limited_groups = 1;
  a.score_func = "sigmoid";
  a.route_scale = 2.5;
  a.gate_bias = true;
  a.q_lora_rank = 8;
  a.kv_lora_rank = 8;
  a.qk_nope_head_dim = 8;
  a.qk_rope_head_dim = 4;
  a.v_head_dim = 8;
  a.max_seq_len = 64;
  a.original_seq_len = 16;
  a.rope_factor = 4;
  a.mscale = 0.707;
  a.max_batch_size = max_batch_size;
  if (dsa) {
    a.index_n_heads = 2;
    a.index_head_dim = 8;
    a.index_topk = 3;
  }
  return a;
}

// Three prompt lengths (3, 5, 8), duplicates among them: lengths 3 x4, 5 x3, 8 x1.
const std::vector<std::vector<int64_t>> kPrompts = {
    {1, 2, 3}, {4, 5, 6, 7, 8}, {1, 2, 3}, {9, 8, 7, 6, 5, 4, 3, 2}, {4, 5, 6, 7, 8}, {30, 31, 32}, {1, 2, 3}, {40, 41, 42, 43, 44}};
const std::vector<uint64_t> kSeeds = {11, 12, 11, 13, 14, 15, 16, 17};  // rows 0 and 2: same prompt, same seed

std::vector<std::vector<int64_t>> row_by_row(Transformer& m, const std::vector<std::vector<int64_t>>& prompts,
                                             int64_t max_new, SamplingConfig c, const std::vector<uint64_t>& seeds,
                                             int64_t stop = -1) {
  std::vector<std::vector<int64_t>> out;
  for (size_t r = 0; r < prompts.size(); r++) {
    c.seed = seeds[r];
    out.push_back(generate(m, prompts[r], max_new, c, stop));
  }
  return out;
}

// Each row of the batched tensor against the same row run alone: max |Δ| (0 = bit for bit).
double max_row_diff(const Tensor& batched, const std::vector<Tensor>& alone) {
  double worst = 0;
  for (size_t b = 0; b < alone.size(); b++) {
    std::vector<float> x = narrow(batched, 0, (int64_t)b, 1).to_f32_vector(), y = alone[b].to_f32_vector();
    REQUIRE(x.size() == y.size());
    for (size_t i = 0; i < x.size(); i++) worst = std::max(worst, (double)std::abs(x[i] - y[i]));
  }
  return worst;
}

}  // namespace

TEST_CASE("generate_batch: a batched forward gives each row the bits of its batch-1 forward (MLA and DSA)") {
  for (bool dsa : {false, true}) {
    CAPTURE(dsa);
    Rng rng(dsa ? 21 : 20);
    Transformer m(tiny_args(8, dsa), rng);
    const int64_t B = 5, S = 7;
    Tensor tokens = Tensor::randint({B, S}, rng, 0, m.args.vocab_size);
    Tensor next = Tensor::randint({B, 1}, rng, 0, m.args.vocab_size);
    NoGradGuard ng;
    auto cache = m.make_cache(B, S + 1);
    Tensor prefill = m.forward(tokens, 0, cache.get());
    Tensor step = m.forward(next, S, cache.get());
    std::vector<Tensor> prefill1, step1;
    for (int64_t b = 0; b < B; b++) {
      auto c1 = m.make_cache(1, S + 1);
      prefill1.push_back(m.forward(contiguous(narrow(tokens, 0, b, 1)), 0, c1.get()));
      step1.push_back(m.forward(contiguous(narrow(next, 0, b, 1)), S, c1.get()));
    }
    CHECK(max_row_diff(prefill, prefill1) == 0.0);
    CHECK(max_row_diff(step, step1) == 0.0);
  }
}

TEST_CASE("generate_batch: greedy and sampled rows == generate() row by row, exactly") {
  for (int64_t cap : {3, 8}) {
    CAPTURE(cap);
    Rng rng(5);
    Transformer m(tiny_args(cap), rng);
    const int64_t max_new = 12;

    SamplingConfig greedy;
    BatchGenerateStats st;
    auto got = generate_batch(m, kPrompts, max_new, greedy, kSeeds, -1, &st);
    CHECK(got == row_by_row(m, kPrompts, max_new, greedy, kSeeds));
    CHECK(st.rows == 8);
    CHECK(st.new_tokens == 8 * max_new);
    CHECK(st.prompt_tokens == 3 * 4 + 5 * 3 + 8);
    // chunks: length 3 (4 rows) is 2 chunks with cap 3, 1 with cap 8; lengths 5 and 8 one each;
    // each chunk = 1 prefill + (max_new - 1) decode forwards
    CHECK(st.forwards == (cap == 3 ? 4 : 3) * max_new);
    CHECK(st.new_tokens_per_s > 0);

    SamplingConfig sampled;
    sampled.temperature = 1.0;
    sampled.top_p = 0.9;
    sampled.seed = 999;  // not used: each row has its own seed
    auto s = generate_batch(m, kPrompts, max_new, sampled, kSeeds);
    auto ref = row_by_row(m, kPrompts, max_new, sampled, kSeeds);
    for (size_t r = 0; r < kPrompts.size(); r++) {
      CAPTURE(r);
      CHECK(s[r] == ref[r]);
    }
    CHECK(s[0] == s[2]);  // same prompt, same seed
    CHECK(s[0] != s[6]);  // same prompt, another seed (a random model at T = 1: 12 tokens agreeing is ~impossible)
    CHECK(s[0] != got[0]);
    // top-k too, and a different batch composition: a row's tokens do not depend on its neighbours
    sampled.top_k = 5;
    auto k5 = generate_batch(m, kPrompts, max_new, sampled, kSeeds);
    CHECK(k5 == row_by_row(m, kPrompts, max_new, sampled, kSeeds));
    auto alone = generate_batch(m, {kPrompts[4]}, max_new, sampled, {kSeeds[4]});
    CHECK(alone[0] == k5[4]);
  }
}

TEST_CASE("generate_batch: rows stop at different steps; the others go on") {
  Rng rng(8);
  Transformer m(tiny_args(4), rng);
  const int64_t max_new = 20;
  SamplingConfig c;
  c.temperature = 1.0;
  c.top_p = 0.9;
  auto free_run = generate_batch(m, kPrompts, max_new, c, kSeeds);
  // A stop token that the rows produce at >= 3 different steps, and that some row never produces.
  auto lengths_with = [&](int64_t t) {
    std::vector<int64_t> len;
    for (const auto& row : free_run) {
      auto it = std::find(row.begin(), row.end(), t);
      len.push_back(it == row.end() ? max_new : (int64_t)(it - row.begin()) + 1);
    }
    return len;
  };
  // The chunks (cap 4) in cache-slot order: length 3 -> rows {0, 2, 5, 6}; 5 -> {1, 4, 7}; 8 -> {3}.
  const std::vector<std::vector<int>> chunks = {{0, 2, 5, 6}, {1, 4, 7}, {3}};
  // ... and in some chunk a row stops >= 4 steps before a row in a LATER slot, so the survivors' cache rows
  // must move down (compact_cache) and keep decoding for a while.
  auto moves = [&](const std::vector<int64_t>& len) {
    for (const auto& c : chunks)
      for (size_t j = 0; j < c.size(); j++)
        for (size_t k = j + 1; k < c.size(); k++)
          if (len[c[j]] + 4 <= len[c[k]]) return true;
    return false;
  };
  int64_t stop = -1;
  for (int64_t t = 0; t < m.args.vocab_size && stop < 0; t++) {
    std::vector<int64_t> len = lengths_with(t);
    std::set<int64_t> distinct(len.begin(), len.end());
    bool some_never = false;
    for (const auto& row : free_run) some_never |= std::find(row.begin(), row.end(), t) == row.end();
    if (distinct.size() >= 3 && some_never && moves(len)) stop = t;
  }
  REQUIRE(stop >= 0);
  const std::vector<int64_t> want_len = lengths_with(stop);
  std::string lens;
  for (int64_t l : want_len) lens += " " + std::to_string(l);
  MESSAGE("stop token " << stop << ", row lengths" << lens);

  BatchGenerateStats st;
  auto got = generate_batch(m, kPrompts, max_new, c, kSeeds, stop, &st);
  auto ref = row_by_row(m, kPrompts, max_new, c, kSeeds, stop);
  int64_t total = 0;
  for (size_t r = 0; r < kPrompts.size(); r++) {
    CAPTURE(r);
    CHECK(got[r] == ref[r]);
    REQUIRE((int64_t)got[r].size() == want_len[r]);
    CHECK(std::equal(got[r].begin(), got[r].end(), free_run[r].begin()));  // a prefix of the free run
    if (want_len[r] < max_new || free_run[r].back() == stop) CHECK(got[r].back() == stop);
    CHECK(std::count(got[r].begin(), got[r].end(), stop) <= 1);
    total += (int64_t)got[r].size();
  }
  CHECK(st.new_tokens == total);
  // A chunk runs until its longest row is done: 1 prefill + (longest - 1) decode forwards.
  auto longest = [&](const std::vector<int>& rows) {
    int64_t l = 0;
    for (int r : rows) l = std::max(l, want_len[r]);
    return l;
  };
  CHECK(st.forwards == longest(chunks[0]) + longest(chunks[1]) + longest(chunks[2]));
}

TEST_CASE("generate_batch: a DSA model (index_topk > 0) decodes batched == row by row") {
  Rng rng(6);
  Transformer m(tiny_args(3, /*dsa=*/true), rng);
  REQUIRE(m.layers[0]->dsa);
  SamplingConfig greedy;
  CHECK(generate_batch(m, kPrompts, 10, greedy, kSeeds) == row_by_row(m, kPrompts, 10, greedy, kSeeds));
  SamplingConfig sampled;
  sampled.temperature = 1.0;
  sampled.top_p = 0.9;
  CHECK(generate_batch(m, kPrompts, 10, sampled, kSeeds) == row_by_row(m, kPrompts, 10, sampled, kSeeds));
}

TEST_CASE("generate_batch: errors name the row and what is wrong; empty requests") {
  Rng rng(1);
  Transformer m(tiny_args(4), rng);
  SamplingConfig c;
  auto err = [&](std::vector<std::vector<int64_t>> prompts, int64_t max_new, std::vector<uint64_t> seeds,
                 int64_t stop = -1, SamplingConfig cfg = {}) {
    return error_of([&] { generate_batch(m, prompts, max_new, cfg, seeds, stop); });
  };
  std::string e = err({{1, 2}, {}}, 4, {0, 1});
  CHECK(contains(e, "[generate_batch] row 1: the prompt is empty"));
  e = err({{1, 2}, {3}}, 4, {0});
  CHECK(contains(e, "[generate_batch] seeds has 1 entries but there are 2 prompts"));
  e = err({{1, 2}, std::vector<int64_t>(60, 1)}, 5, {0, 1});
  CHECK(contains(e, "row 1: prompt (60 tokens) + max_new_tokens 5 exceed max_seq_len 64"));
  e = err({{1, 48}}, 4, {0});
  CHECK(contains(e, "row 0: token id 48 at position 1 is outside [0, vocab_size = 48)"));
  e = err({{1, 2}, {-3}}, 4, {0, 1});
  CHECK(contains(e, "row 1: token id -3 at position 0"));
  e = err({{1}}, -1, {0});
  CHECK(contains(e, "max_new_tokens -1 is negative"));
  e = err({{1}}, 3, {0}, 48);
  CHECK(contains(e, "stop_token 48 is outside [0, vocab_size = 48)"));
  SamplingConfig bad;
  bad.temperature = 1;
  bad.top_p = 0;
  e = err({{1}}, 3, {0}, -1, bad);
  CHECK(contains(e, "top_p 0.000000 must be in (0, 1]"));
  bad.top_p = 1;
  bad.top_k = -2;
  CHECK(contains(err({{1}}, 3, {0}, -1, bad), "top_k -2 is negative"));

  BatchGenerateStats st;
  CHECK(generate_batch(m, {}, 5, c, {}, -1, &st).empty());
  CHECK(st.rows == 0);
  auto none = generate_batch(m, {{1, 2}, {3}}, 0, c, {0, 1}, -1, &st);
  CHECK(none == std::vector<std::vector<int64_t>>{{}, {}});
  CHECK(st.forwards == 0);
  CHECK(st.prompt_tokens == 3);
}
