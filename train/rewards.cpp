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

}  // namespace

double accuracy_reward(std::string_view completion, const data::ReasoningProblem& problem) {
  return accuracy_of(data::parse_completion(completion), problem);
}

double format_reward(std::string_view completion, const data::ReasoningProblem& problem) {
  return format_of(data::parse_completion(completion));
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
  t.total = weights.accuracy * t.accuracy + weights.format * t.format;
  return t;
}

}  // namespace sg
