// train/reasoning_eval.cpp — see reasoning_eval.h.
#include "train/reasoning_eval.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <optional>
#include <sstream>
#include <stdexcept>

#include "models/generate.h"
#include "models/json.h"
#include "models/transformer.h"
#include "train/rewards.h"

namespace sg {

namespace {

[[noreturn]] void fail(const std::string& message) { throw std::runtime_error("[reasoning_eval] " + message); }

uint64_t splitmix64(uint64_t x) {
  uint64_t z = x + 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// Ids the tokenizer does not have (a model with a padded vocabulary) print as <|id N|>, as `seekgrad
// generate` shows them; such a completion cannot be well formed or correct.
std::string decode_lenient(const data::Tokenizer& tok, const std::vector<int64_t>& ids) {
  std::string text;
  std::vector<int32_t> run;
  for (int64_t id : ids) {
    if (id < tok.vocab_size()) {
      run.push_back((int32_t)id);
      continue;
    }
    text += tok.decode(run) + "<|id " + std::to_string(id) + "|>";
    run.clear();
  }
  return text + tok.decode(run);
}

}  // namespace

double pass_at_k(int64_t n, int64_t c, int64_t k) {
  if (n < 1 || c < 0 || c > n || k < 1 || k > n)
    fail("pass_at_k(n " + std::to_string(n) + ", c " + std::to_string(c) + ", k " + std::to_string(k) +
         "): need 0 <= c <= n and 1 <= k <= n");
  if (n - c < k) return 1.0;  // every k-subset holds a correct sample
  // C(n − c, k) / C(n, k) = Π_{i = n−c+1}^{n} (1 − k / i)
  double miss = 1.0;
  for (int64_t i = n - c + 1; i <= n; i++) miss *= 1.0 - (double)k / (double)i;
  return 1.0 - miss;
}

uint64_t sample_seed(uint64_t seed, int64_t problem_index, int64_t sample_index) {
  return splitmix64(splitmix64(splitmix64(seed) ^ (uint64_t)problem_index) ^ (uint64_t)sample_index);
}

ProblemEvalResult evaluate_problems(Transformer& model, const data::Tokenizer& tok,
                                    const std::vector<data::ReasoningProblem>& problems, const ProblemEvalOptions& opt) {
  const auto t0 = std::chrono::steady_clock::now();
  if (problems.empty()) fail("no problems to evaluate");
  if (opt.samples < 1) fail("samples " + std::to_string(opt.samples) + " must be >= 1");
  if (opt.max_new_tokens < 1) fail("max_new_tokens " + std::to_string(opt.max_new_tokens) + " must be >= 1");
  if (!(opt.temperature >= 0.0) || !std::isfinite(opt.temperature))
    fail("temperature " + std::to_string(opt.temperature) + " must be >= 0 (0 = greedy)");
  if (!(opt.top_p > 0.0 && opt.top_p <= 1.0)) fail("top_p " + std::to_string(opt.top_p) + " must be in (0, 1]");
  if (tok.vocab_size() > model.args.vocab_size)
    fail("the tokenizer has " + std::to_string(tok.vocab_size()) + " ids but the model's vocab_size is " +
         std::to_string(model.args.vocab_size) + ": they were not made for each other");
  const std::optional<int32_t> eot = tok.find_token("<|endoftext|>");
  if (!eot) fail("the tokenizer has no <|endoftext|> token: completions could not end");

  const int64_t n = (int64_t)problems.size(), K = opt.samples;
  std::vector<std::vector<int64_t>> rows;
  std::vector<uint64_t> seeds;
  rows.reserve(n * K);
  for (int64_t i = 0; i < n; i++) {
    const std::vector<int32_t> ids = tok.encode(data::render_prompt(problems[i], opt.system));
    if ((int64_t)ids.size() + opt.max_new_tokens > model.args.max_seq_len)
      fail("problem " + std::to_string(i) + " (" +
           (problems[i].expression.empty() ? "\"" + problems[i].question.substr(0, 40) + (problems[i].question.size() > 40 ? "...\"" : "\"")
                                           : problems[i].expression) + "): its prompt is " +
           std::to_string(ids.size()) + " tokens, + max_new_tokens " + std::to_string(opt.max_new_tokens) +
           " exceed the model's max_seq_len " + std::to_string(model.args.max_seq_len));
    for (int64_t s = 0; s < K; s++) {
      rows.emplace_back(ids.begin(), ids.end());
      seeds.push_back(sample_seed(opt.seed, i, s));
    }
  }

  SamplingConfig sc;
  sc.temperature = opt.temperature;
  sc.top_p = opt.top_p;
  BatchGenerateStats gs;
  const std::vector<std::vector<int64_t>> out = generate_batch(model, rows, opt.max_new_tokens, sc, seeds, *eot, &gs);

  ProblemEvalResult r;
  r.n_problems = n;
  r.samples = K;
  double correct = 0, formed = 0, length = 0, pass = 0;
  for (int64_t i = 0; i < n; i++) {
    ProblemResult p;
    p.expression = problems[i].expression;
    p.answer = problems[i].answer;
    for (int64_t s = 0; s < K; s++) {
      const std::vector<int64_t>& ids = out[i * K + s];
      std::string text = decode_lenient(tok, ids);
      const double acc = accuracy_reward(text, problems[i]);
      const bool ok = format_reward(text, problems[i]) == 1.0;
      p.completions.push_back(std::move(text));
      p.accuracy.push_back(acc);
      p.well_formed.push_back(ok);
      p.lengths.push_back((int64_t)ids.size());
      p.n_correct += acc == 1.0 ? 1 : 0;
      correct += acc;
      formed += ok ? 1 : 0;
      length += (double)ids.size();
    }
    pass += pass_at_k(K, p.n_correct, K);
    r.problems.push_back(std::move(p));
  }
  const double total = (double)(n * K);
  r.accuracy = correct / total;
  r.pass_at_k = pass / (double)n;
  r.format_rate = formed / total;
  r.mean_length = length / total;
  r.stderr_accuracy = std::sqrt(r.accuracy * (1.0 - r.accuracy) / total);
  r.rollout_tokens_per_s = gs.new_tokens_per_s;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

void write_problem_results_jsonl(const ProblemEvalResult& r, const std::string& path) {
  std::string text;
  for (const ProblemResult& p : r.problems) {
    Json acc = Json::array(), formed = Json::array(), len = Json::array(), comp = Json::array();
    for (double a : p.accuracy) acc.push_back(a);
    for (bool w : p.well_formed) formed.push_back(w);
    for (int64_t l : p.lengths) len.push_back((long long)l);
    for (const std::string& c : p.completions) comp.push_back(c);
    Json line = Json::object();
    line.set("expression", p.expression);
    line.set("answer", (long long)p.answer);
    line.set("n_correct", (long long)p.n_correct);
    line.set("samples", (long long)p.completions.size());
    line.set("accuracy", acc);
    line.set("well_formed", formed);
    line.set("lengths", len);
    line.set("completions", comp);
    text += line.dump() + "\n";
  }
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) fail("cannot write " + tmp);
    f.write(text.data(), (std::streamsize)text.size());
    if (!f) fail("write failed: " + tmp);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) fail("cannot rename " + tmp + " to " + path);
}

std::vector<ProblemResult> read_problem_results_jsonl(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail(path + ": cannot open");
  std::vector<ProblemResult> out;
  std::string line;
  for (int64_t number = 1; std::getline(f, line); number++) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = path + ":" + std::to_string(number);
    try {
      Json j = Json::parse(line, where);
      ProblemResult p;
      p.expression = j.at("expression").get_string();
      p.answer = j.at("answer").get_int();
      p.n_correct = j.at("n_correct").get_int();
      for (const Json& a : j.at("accuracy").elements()) p.accuracy.push_back(a.get_double());
      for (const Json& w : j.at("well_formed").elements()) p.well_formed.push_back(w.get_bool());
      for (const Json& l : j.at("lengths").elements()) p.lengths.push_back(l.get_int());
      for (const Json& c : j.at("completions").elements()) p.completions.push_back(c.get_string());
      const size_t k = p.completions.size();
      if ((int64_t)k != j.at("samples").get_int() || p.accuracy.size() != k || p.well_formed.size() != k ||
          p.lengths.size() != k)
        fail(where + ": samples, accuracy, well_formed, lengths and completions disagree on the sample count");
      out.push_back(std::move(p));
    } catch (const std::runtime_error& e) {
      const std::string msg = e.what();
      if (msg.rfind("[reasoning_eval]", 0) == 0) throw;
      fail(where + ": " + msg);
    }
  }
  return out;
}

}  // namespace sg
