// train/tool_eval.cpp — accuracy and tool counts with the calculator on or off (see tool_eval.h).
#include "train/tool_eval.h"

#include <chrono>
#include <memory>
#include <optional>
#include <stdexcept>

#include "models/transformer.h"
#include "train/reasoning_eval.h"
#include "train/rewards.h"

namespace sg {

ToolEvalResult evaluate_problems_with_tools(const LogitsSourceFactory& model, const data::Tokenizer& tok,
                                            const std::vector<data::ReasoningProblem>& problems,
                                            const ToolEvalOptions& opt) {
  const auto t0 = std::chrono::steady_clock::now();
  auto fail = [](const std::string& m) { throw std::runtime_error("[tool_eval] " + m); };
  if (problems.empty()) fail("no problems to evaluate");
  if (opt.samples < 1) fail("samples " + std::to_string(opt.samples) + " must be >= 1");
  if (opt.max_new_tokens < 1) fail("max_new_tokens " + std::to_string(opt.max_new_tokens) + " must be >= 1");
  const std::optional<int32_t> eot = tok.find_token("<|endoftext|>");
  if (!eot) fail("the tokenizer has no <|endoftext|> token: completions could not end");

  SamplingConfig sc;
  sc.temperature = opt.temperature;
  sc.top_p = opt.top_p;
  ToolEvalResult r;
  r.n_problems = (int64_t)problems.size();
  r.samples = opt.samples;
  int64_t used = 0, used_well_formed = 0, used_right = 0, length = 0;
  double correct = 0, formed = 0;
  for (int64_t i = 0; i < r.n_problems; i++) {
    const data::ReasoningProblem& p = problems[(size_t)i];
    const std::vector<int32_t> ids32 = tok.encode(data::render_prompt(p, opt.system));
    const std::vector<int64_t> prompt(ids32.begin(), ids32.end());
    for (int64_t s = 0; s < opt.samples; s++) {
      ToolGenStats st;
      const ToolCompletion c =
          generate_with_tools(model(prompt, opt.max_new_tokens), tok, prompt, opt.max_new_tokens, sc,
                              sample_seed(opt.seed, i, s), *eot, opt.limits, opt.tools_enabled, &st);
      ToolEvalRow row;
      row.problem = i;
      row.completion = tok.decode(std::vector<int32_t>(c.tokens.begin(), c.tokens.end()));
      const data::ParsedCompletion pc = data::parse_completion(row.completion);
      row.accuracy = accuracy_reward(row.completion, p);
      row.well_formed = pc.well_formed;
      row.n_tool_calls = pc.n_tool_calls;
      row.calls_well_formed = pc.tool_calls_well_formed;
      row.right_call = !c.calls.empty() && c.calls[0].result.ok && c.calls[0].result.text == std::to_string(p.answer);
      row.length = (int64_t)c.tokens.size();
      correct += row.accuracy;
      formed += row.well_formed ? 1 : 0;
      if (row.n_tool_calls > 0) {
        used++;
        used_well_formed += row.calls_well_formed;
        used_right += row.right_call;
      }
      r.calls += st.calls;
      r.calculator_errors += st.errors;
      r.inserted_tokens += st.inserted_tokens;
      length += row.length;
      r.rows.push_back(std::move(row));
    }
  }
  const double total = (double)r.rows.size();
  r.accuracy = correct / total;
  r.format_rate = formed / total;
  r.tool_use_rate = (double)used / total;
  if (used > 0) {
    r.well_formed_call_rate = (double)used_well_formed / (double)used;
    if (opt.tools_enabled) r.right_call_rate = (double)used_right / (double)used;
  }
  r.mean_length = (double)length / total;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

ToolEvalResult evaluate_problems_with_tools(Transformer& model, const data::Tokenizer& tok,
                                            const std::vector<data::ReasoningProblem>& problems,
                                            const ToolEvalOptions& opt) {
  if (tok.vocab_size() > model.args.vocab_size)
    throw std::runtime_error("[tool_eval] the tokenizer has " + std::to_string(tok.vocab_size()) +
                             " ids but the model's vocab_size is " + std::to_string(model.args.vocab_size));
  LogitsSourceFactory factory = [&model](const std::vector<int64_t>& prompt, int64_t max_new) -> NextLogitsFn {
    if ((int64_t)prompt.size() + max_new > model.args.max_seq_len)
      throw std::runtime_error("[tool_eval] a prompt of " + std::to_string(prompt.size()) + " tokens + max_new_tokens " +
                               std::to_string(max_new) + " exceed max_seq_len " + std::to_string(model.args.max_seq_len));
    auto cached = std::make_shared<CachedLogits>(model, (int64_t)prompt.size() + max_new);
    return [cached](const std::vector<int64_t>& ids) { return (*cached)(ids); };
  };
  return evaluate_problems_with_tools(factory, tok, problems, opt);
}

}  // namespace sg
