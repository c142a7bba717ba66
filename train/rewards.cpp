// train/rewards.cpp — the rule-based accuracy and format rewards (see rewards.h).
#include "train/rewards.h"

#include "data/chat.h"

namespace sg {

namespace {

double accuracy_of(const data::ParsedCompletion& c, const data::ReasoningProblem& problem) {
  const std::optional<int64_t> v = data::parse_integer_answer(c.answer);
  return v.has_value() && *v == problem.answer ? 1.0 : 0.0;
}

double format_of(const data::ParsedCompletion& c) { return c.well_formed ? 1.0 : 0.0; }

// A call present, all tool tags well formed, no result an "error: ..." (the text between each <tool_result> and
// the </tool_result> after it; well-formedness guarantees there is one).
double tool_format_of(std::string_view completion, const data::ParsedCompletion& c) {
  if (c.n_tool_calls == 0 || !c.tool_calls_well_formed) return 0.0;
  const std::string_view open = "<tool_result>", close = "</tool_result>";
  completion = completion.substr(0, completion.find("<|endoftext|>"));  // what parse_completion reads
  for (size_t p = completion.find(open); p != std::string_view::npos; p = completion.find(open, p + open.size())) {
    const size_t body = p + open.size(), end = completion.find(close, body);
    if (completion.substr(body, end == std::string_view::npos ? std::string_view::npos : end - body).substr(0, 6) == "error:")
      return 0.0;
  }
  return 1.0;
}

}  // namespace

double accuracy_reward(std::string_view completion, const data::ReasoningProblem& problem) {
  return accuracy_of(data::parse_completion(completion), problem);
}

double format_reward(std::string_view completion, const data::ReasoningProblem& problem) {
  return format_of(data::parse_completion(completion));
}

double tool_format_reward(std::string_view completion, const data::ReasoningProblem& problem) {
  (void)problem;
  return tool_format_of(completion, data::parse_completion(completion));
}

const std::vector<NamedReward>& tool_reward_functions() {
  static const std::vector<NamedReward> fns = {
      {"accuracy", accuracy_reward}, {"format", format_reward}, {"tool_format", tool_format_reward}};
  return fns;
}

const std::vector<NamedReward>& reward_functions() {
  static const std::vector<NamedReward> fns = {{"accuracy", accuracy_reward}, {"format", format_reward}};
  return fns;
}

std::vector<std::pair<std::string, double>> RewardTerms::named() const {
  return {{"accuracy", accuracy}, {"format", format}, {"total", total}};
}

RewardTerms compute_rewards(std::string_view completion, const data::ReasoningProblem& problem,
                            const RewardWeights& weights) {
  const data::ParsedCompletion c = data::parse_completion(completion);
  RewardTerms t;
  t.accuracy = accuracy_of(c, problem);
  t.format = format_of(c);
  t.tool_format = tool_format_of(completion, c);
  t.total = weights.accuracy * t.accuracy + weights.format * t.format + weights.tool_format * t.tool_format;
  return t;
}

}  // namespace sg
