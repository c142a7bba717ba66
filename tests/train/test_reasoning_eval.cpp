// tests/train/test_reasoning_eval.cpp — train/reasoning_eval.h: sampled completions on reasoning problems,
// scored by the rule-based rewards.
//   * pass_at_k by hand (Chen et al.'s estimator), sample_seed deterministic and distinct;
//   * a FORCED model (every block adds 0, all embeddings equal, the head picks one of two tokens): its
//     completions are known, so accuracy, pass@k, format rate, lengths and stderr are checked by value —
//     including an answer that is right but badly formatted, and pass@k > accuracy;
//   * a random model: every reported number recomputed from the completions through the rewards, a row equal
//     to generate() on that row's prompt and seed, same seed same results;
//   * the JSON-lines results read back; errors.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "autograd/node.h"
#include "data/chat.h"
#include "data/reasoning.h"
#include "data/tokenizer.h"
#include "models/generate.h"
#include "models/json.h"
#include "models/transformer.h"
#include "tests/data/temp_dir.h"
#include "tests/test_util.h"
#include "train/reasoning_eval.h"
#include "train/rewards.h"

using namespace sg;
using sg::data::testing::slurp;
using sg::data::testing::TempDir;
using sg::test::error_of;

namespace {

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// A whole well-formed, correct completion of "37 + 48" as ONE special token, so a model can write it in one step.
const std::string kForced = "<think>\n37 + 48 = 85\n</think>\n85";

const data::Tokenizer& tokenizer() {
  static const data::Tokenizer tok = [] {
    std::vector<std::string> corpus;
    for (const data::ReasoningProblem& p : data::reasoning_split(data::Split::train, 3, 60, 1))
      corpus.push_back(data::render_sft_example(p).text);
    std::vector<std::string> special = data::default_special_tokens();
    special.push_back(kForced);
    return data::Tokenizer::train(corpus, 400, special);
  }();
  return tok;
}

ModelArgs tiny_args(int64_t vocab) {
  ModelArgs a;
  a.vocab_size = vocab;
  a.dim = 16;
  a.inter_dim = 32;
  a.moe_inter_dim = 8;
  a.n_layers = 2;
  a.n_dense_layers = 1;
  a.n_heads = 2;
  a.n_routed_experts = 4;
  a.n_shared_experts = 1;
  a.n_activated_experts = 2;
  a.kv_lora_rank = 8;
  a.qk_nope_head_dim = 8;
  a.qk_rope_head_dim = 4;
  a.v_head_dim = 8;
  a.max_seq_len = 256;
  a.original_seq_len = 256;
  a.max_batch_size = 4;
  return a;
}

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// Every block's output projection is 0 (so h = Emb(t)), every embedding row is 1 (so norm(h) = 1), and the
// head's rows a and b are 2.5, the rest 0: logits[a] = logits[b] = 40, every other logit 0. Greedy writes
// min(a, b); temperature 1 writes a or b with probability 1/2 each (the rest: e^-40).
Transformer forced_model(int32_t a, int32_t b) {
  Rng rng(3);
  Transformer m(tiny_args(tokenizer().vocab_size()), rng);
  NoGradGuard ng;
  for (auto& [name, t] : m.named_parameters()) {
    float* w = t->data<float>();
    if (ends_with(name, "attn.wo.weight") || ends_with(name, ".w2.weight")) std::fill(w, w + t->numel(), 0.0f);
    if (name == "embed.weight") std::fill(w, w + t->numel(), 1.0f);
    if (name == "head.weight") {
      const int64_t d = t->size(1);
      std::fill(w, w + t->numel(), 0.0f);
      std::fill(w + a * d, w + (a + 1) * d, 2.5f);
      std::fill(w + b * d, w + (b + 1) * d, 2.5f);
    }
  }
  return m;
}

const std::vector<data::ReasoningProblem> kProblems = {data::make_reasoning_problem("37 + 48"),
                                                       data::make_reasoning_problem("12 - 40")};

}  // namespace

TEST_CASE("reasoning_eval: pass_at_k by hand; sample_seed") {
  CHECK(pass_at_k(5, 0, 1) == 0.0);
  CHECK(pass_at_k(5, 1, 1) == doctest::Approx(0.2));
  CHECK(pass_at_k(5, 2, 2) == doctest::Approx(1.0 - 3.0 / 10.0));  // 1 − C(3,2)/C(5,2)
  CHECK(pass_at_k(10, 3, 4) == doctest::Approx(1.0 - 35.0 / 210.0));  // 1 − C(7,4)/C(10,4)
  CHECK(pass_at_k(5, 4, 2) == 1.0);  // n − c < k
  CHECK(pass_at_k(4, 1, 4) == 1.0);
  CHECK(pass_at_k(4, 0, 4) == 0.0);
  CHECK(contains(error_of([] { pass_at_k(3, 4, 1); }), "[reasoning_eval] pass_at_k(n 3, c 4, k 1)"));
  CHECK(contains(error_of([] { pass_at_k(3, 1, 4); }), "1 <= k <= n"));
  std::set<uint64_t> seen;
  for (int64_t i = 0; i < 20; i++)
    for (int64_t s = 0; s < 20; s++) seen.insert(sample_seed(7, i, s));
  CHECK(seen.size() == 400);
  CHECK(sample_seed(7, 3, 4) == sample_seed(7, 3, 4));
  CHECK(sample_seed(7, 3, 4) != sample_seed(8, 3, 4));
  CHECK(sample_seed(7, 3, 4) != sample_seed(7, 4, 3));
}

TEST_CASE("reasoning_eval: a forced model's completions, scored by value") {
  const data::Tokenizer& tok = tokenizer();
  const int32_t forced = tok.token_id(kForced), eot = tok.token_id("<|endoftext|>");
  REQUIRE(forced > eot);

  SUBCASE("greedy, one token: the forced completion, right for one problem, well formed for both") {
    Transformer m = forced_model(forced, forced);
    ProblemEvalOptions o;
    o.max_new_tokens = 1;
    ProblemEvalResult r = evaluate_problems(m, tok, kProblems, o);
    REQUIRE(r.problems.size() == 2);
    CHECK(r.n_problems == 2);
    CHECK(r.samples == 1);
    for (const ProblemResult& p : r.problems) {
      CHECK(p.completions == std::vector<std::string>{kForced});
      CHECK(p.lengths == std::vector<int64_t>{1});
      CHECK(p.well_formed == std::vector<bool>{true});
    }
    CHECK(r.problems[0].expression == "37 + 48");
    CHECK(r.problems[0].answer == 85);
    CHECK(r.problems[0].accuracy == std::vector<double>{1.0});
    CHECK(r.problems[0].n_correct == 1);
    CHECK(r.problems[1].answer == -28);
    CHECK(r.problems[1].accuracy == std::vector<double>{0.0});
    CHECK(r.accuracy == 0.5);
    CHECK(r.pass_at_k == 0.5);
    CHECK(r.format_rate == 1.0);
    CHECK(r.mean_length == 1.0);
    CHECK(r.stderr_accuracy == doctest::Approx(std::sqrt(0.25 / 2)));
    CHECK(r.rollout_tokens_per_s > 0);
    CHECK(r.seconds > 0);
  }
  SUBCASE("three tokens: the answer after the last </think> is still right, the format is not") {
    Transformer m = forced_model(forced, forced);
    ProblemEvalOptions o;
    o.max_new_tokens = 3;
    o.samples = 2;
    ProblemEvalResult r = evaluate_problems(m, tok, kProblems, o);
    CHECK(r.problems[0].completions[1] == kForced + kForced + kForced);
    CHECK(r.problems[0].accuracy == std::vector<double>{1.0, 1.0});
    CHECK(r.problems[0].well_formed == std::vector<bool>{false, false});
    CHECK(r.problems[1].n_correct == 0);
    CHECK(r.accuracy == 0.5);
    CHECK(r.format_rate == 0.0);
    CHECK(r.mean_length == 3.0);
  }
  SUBCASE("greedy picks the lower id: <|endoftext|> at once") {
    Transformer m = forced_model(eot, forced);
    ProblemEvalResult r = evaluate_problems(m, tok, kProblems, ProblemEvalOptions{});
    CHECK(r.problems[0].completions == std::vector<std::string>{"<|endoftext|>"});
    CHECK(r.problems[0].lengths == std::vector<int64_t>{1});  // stopped, although max_new_tokens is 64
    CHECK(r.accuracy == 0.0);
    CHECK(r.format_rate == 0.0);
    CHECK(r.pass_at_k == 0.0);
    CHECK(r.stderr_accuracy == 0.0);
  }
  SUBCASE("temperature 1 between the two: pass@8 > accuracy, everything from the completions") {
    Transformer m = forced_model(eot, forced);
    ProblemEvalOptions o;
    o.samples = 8;
    o.temperature = 1.0;
    o.max_new_tokens = 2;
    o.seed = 5;
    ProblemEvalResult r = evaluate_problems(m, tok, kProblems, o);
    int64_t n_forced = 0;
    for (size_t s = 0; s < 8; s++) {
      const std::string& c = r.problems[0].completions[s];
      // one token each: <|endoftext|> stops; the forced token is followed by a second draw
      CHECK((c == "<|endoftext|>" || c == kForced + "<|endoftext|>" || c == kForced + kForced));
      const bool right = c.rfind(kForced, 0) == 0;
      n_forced += right;
      CHECK(r.problems[0].accuracy[s] == (right ? 1.0 : 0.0));
      CHECK(r.problems[0].well_formed[s] == (c == kForced + "<|endoftext|>"));
      CHECK(r.problems[0].lengths[s] == (c == "<|endoftext|>" ? 1 : 2));
    }
    MESSAGE("forced token drawn first in " << n_forced << " of 8 samples");
    REQUIRE(n_forced > 0);
    REQUIRE(n_forced < 8);
    CHECK(r.problems[0].n_correct == n_forced);
    CHECK(r.problems[1].n_correct == 0);
    CHECK(r.accuracy == doctest::Approx(n_forced / 16.0));
    CHECK(r.pass_at_k == 0.5);  // problem 0 has a correct sample, problem 1 none
    CHECK(r.pass_at_k > r.accuracy);
  }
}

TEST_CASE("reasoning_eval: a random model — every number recomputed from the completions") {
  const data::Tokenizer& tok = tokenizer();
  Rng rng(12);
  Transformer m(tiny_args(tok.vocab_size()), rng);
  const std::vector<data::ReasoningProblem> problems = data::reasoning_split(data::Split::test, 1, 3, 1);
  ProblemEvalOptions o;
  o.samples = 3;
  o.temperature = 1.0;
  o.top_p = 0.9;
  o.max_new_tokens = 10;
  o.seed = 42;
  o.system = "Be brief.";
  ProblemEvalResult r = evaluate_problems(m, tok, problems, o);
  REQUIRE(r.problems.size() == 3);
  double correct = 0, formed = 0, length = 0, pass = 0;
  for (size_t i = 0; i < problems.size(); i++) {
    const ProblemResult& p = r.problems[i];
    CHECK(p.expression == problems[i].expression);
    CHECK(p.answer == problems[i].answer);
    REQUIRE(p.completions.size() == 3);
    int64_t c = 0;
    for (size_t s = 0; s < 3; s++) {
      CHECK(p.accuracy[s] == accuracy_reward(p.completions[s], problems[i]));
      CHECK(p.well_formed[s] == data::parse_completion(p.completions[s]).well_formed);
      CHECK(p.lengths[s] >= 1);
      CHECK(p.lengths[s] <= 10);
      if (p.lengths[s] < 10) CHECK(ends_with(p.completions[s], "<|endoftext|>"));
      c += p.accuracy[s] == 1.0;
      formed += p.well_formed[s];
      length += (double)p.lengths[s];
    }
    CHECK(p.n_correct == c);
    correct += (double)c;
    pass += c > 0;
  }
  CHECK(r.accuracy == doctest::Approx(correct / 9));
  CHECK(r.pass_at_k == doctest::Approx(pass / 3));
  CHECK(r.pass_at_k >= r.accuracy);
  CHECK(r.format_rate == doctest::Approx(formed / 9));
  CHECK(r.mean_length == doctest::Approx(length / 9));
  CHECK(r.stderr_accuracy == doctest::Approx(std::sqrt(r.accuracy * (1 - r.accuracy) / 9)));

  // Row (problem 1, sample 2) is generate() on that problem's prompt with its own seed.
  const std::vector<int32_t> ids = tok.encode(data::render_prompt(problems[1], o.system));
  SamplingConfig sc;
  sc.temperature = 1.0;
  sc.top_p = 0.9;
  sc.seed = sample_seed(42, 1, 2);
  std::vector<int64_t> row = generate(m, std::vector<int64_t>(ids.begin(), ids.end()), 10, sc, tok.token_id("<|endoftext|>"));
  CHECK((int64_t)row.size() == r.problems[1].lengths[2]);
  CHECK(tok.decode(std::vector<int32_t>(row.begin(), row.end())) == r.problems[1].completions[2]);

  // Same options, same results; another seed, other completions.
  ProblemEvalResult again = evaluate_problems(m, tok, problems, o);
  for (size_t i = 0; i < 3; i++) CHECK(again.problems[i].completions == r.problems[i].completions);
  o.seed = 43;
  ProblemEvalResult other = evaluate_problems(m, tok, problems, o);
  bool differs = false;
  for (size_t i = 0; i < 3; i++) differs |= other.problems[i].completions != r.problems[i].completions;
  CHECK(differs);
}

TEST_CASE("reasoning_eval: results as JSON lines read back; bad lines name the file and line") {
  const data::Tokenizer& tok = tokenizer();
  Transformer m = forced_model(tok.token_id("<|endoftext|>"), tok.token_id(kForced));
  ProblemEvalOptions o;
  o.samples = 4;
  o.temperature = 1.0;
  o.max_new_tokens = 2;
  ProblemEvalResult r = evaluate_problems(m, tok, kProblems, o);
  TempDir tmp("reasoning_eval");
  const std::string path = tmp.file("results.jsonl");
  write_problem_results_jsonl(r, path);
  CHECK(!std::filesystem::exists(path + ".tmp"));
  const std::string text = slurp(path);
  CHECK(std::count(text.begin(), text.end(), '\n') == 2);
  Json first = Json::parse(text.substr(0, text.find('\n')));
  CHECK(first.at("expression").get_string() == "37 + 48");
  CHECK(first.at("answer").get_int() == 85);
  CHECK(first.at("samples").get_int() == 4);
  CHECK(first.at("n_correct").get_int() == r.problems[0].n_correct);
  std::vector<ProblemResult> back = read_problem_results_jsonl(path);
  REQUIRE(back.size() == 2);
  for (size_t i = 0; i < 2; i++) {
    CHECK(back[i].expression == r.problems[i].expression);
    CHECK(back[i].answer == r.problems[i].answer);
    CHECK(back[i].completions == r.problems[i].completions);
    CHECK(back[i].accuracy == r.problems[i].accuracy);
    CHECK(back[i].well_formed == r.problems[i].well_formed);
    CHECK(back[i].lengths == r.problems[i].lengths);
    CHECK(back[i].n_correct == r.problems[i].n_correct);
  }
  std::ofstream(tmp.file("bad.jsonl")) << text << "{\"expression\": \"1 + 1\"}\n";
  std::string e = error_of([&] { read_problem_results_jsonl(tmp.file("bad.jsonl")); });
  CHECK(contains(e, "[reasoning_eval] " + tmp.file("bad.jsonl") + ":3: "));
  CHECK(contains(e, "answer"));
}

TEST_CASE("reasoning_eval: errors") {
  const data::Tokenizer& tok = tokenizer();
  Rng rng(1);
  Transformer m(tiny_args(tok.vocab_size()), rng);
  ProblemEvalOptions o;
  auto err = [&](const ProblemEvalOptions& opt, const std::vector<data::ReasoningProblem>& ps = kProblems) {
    return error_of([&] { evaluate_problems(m, tok, ps, opt); });
  };
  CHECK(contains(err(o, {}), "[reasoning_eval] no problems"));
  o.samples = 0;
  CHECK(contains(err(o), "samples 0 must be >= 1"));
  o.samples = 1;
  o.max_new_tokens = 0;
  CHECK(contains(err(o), "max_new_tokens 0 must be >= 1"));
  o.max_new_tokens = 250;
  CHECK(contains(err(o), "problem 0 (37 + 48): its prompt is"));
  CHECK(contains(err(o), "exceed the model's max_seq_len 256"));
  o.max_new_tokens = 4;
  o.top_p = 0;
  CHECK(contains(err(o), "top_p"));
  o.top_p = 1;
  o.temperature = -1;
  CHECK(contains(err(o), "temperature"));
  o.temperature = 0;
  data::Tokenizer bytes_only;  // 256 ids, no <|endoftext|>
  CHECK(contains(error_of([&] { evaluate_problems(m, bytes_only, kProblems, o); }), "no <|endoftext|>"));
  REQUIRE(tok.vocab_size() > 300);
  Rng rng2(2);
  Transformer small(tiny_args(300), rng2);
  CHECK(contains(error_of([&] { evaluate_problems(small, tok, kProblems, o); }), "vocab_size is 300"));
}
