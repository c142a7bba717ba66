// train/rewards.h — rule-based rewards for GRPO on the reasoning problems (models/README.md §10; DeepSeek-R1
// §2.2.2: an accuracy reward, the final answer checked by rule, and a format reward, the reasoning inside
// <think> … </think>; no neural reward model, so nothing to reward-hack but the rules themselves).
//
// Each reward is a plain function of (completion text, problem) -> a value in {0, 1}; the completion is what
// the model wrote after render_prompt (data/chat.h), read by parse_completion:
//   accuracy  1 iff the answer after the LAST </think> is exactly one integer (parse_integer_answer: optional
//             sign and digits, surrounding whitespace allowed, nothing else) equal to problem.answer. No
//             </think>, an answer only inside the think block, "133 134", "1,234", junk bytes, or a number
//             that does not fit int64 (never wrapped) all give 0.
//   format    1 iff parse_completion(...).well_formed: the completion starts with <think>, has exactly one
//             <think> and one </think>, non-empty reasoning, a non-empty answer after it and no special token
//             in the answer. The answer's content is accuracy's business, not format's.
//   tool_format  (tool use, seekgrad issue 13) 1 iff the completion holds at least one tool call, every tool tag
//             belongs to a well-formed "<tool_call>EXPR</tool_call><tool_result>TEXT</tool_result>" inside the
//             think block (ParsedCompletion::tool_calls_well_formed) and no TEXT is a calculator error
//             ("error: ..."): a call the calculator could run. Not in reward_functions() (whose two entries the
//             non-tool stages log); tool_reward_functions() lists all three.
// total = weights.accuracy * accuracy + weights.format * format + weights.tool_format * tool_format. The default
// weights (1, 0.1, 0) are this project's choice — R1 does not publish its weights — so a correct answer always
// beats a merely tidy one, and without a tool weight the total is what it was before tool calls existed.
//
// What this is not: a learned reward, a language-consistency reward (R1 §2.3.2) or the GRPO advantage
// (that normalises the rewards of a group; it belongs to the RL step).
#pragma once
#include <string>
#include <string_view>
#include <vector>

#include "data/reasoning.h"

namespace sg {

double accuracy_reward(std::string_view completion, const data::ReasoningProblem& problem);
double format_reward(std::string_view completion, const data::ReasoningProblem& problem);
double tool_format_reward(std::string_view completion, const data::ReasoningProblem& problem);

using RewardFn = double (*)(std::string_view completion, const data::ReasoningProblem& problem);
struct NamedReward {
  const char* name;  // "accuracy", "format": the metric names a trainer logs (reward/accuracy, ...)
  RewardFn fn;
};
// {"accuracy", accuracy_reward}, {"format", format_reward}, in that order.
const std::vector<NamedReward>& reward_functions();
// reward_functions() then {"tool_format", tool_format_reward}.
const std::vector<NamedReward>& tool_reward_functions();

struct RewardWeights {
  double accuracy = 1.0;
  double format = 0.1;
  double tool_format = 0.0;  // e.g. 0.1 when GRPO samples with the calculator (train/grpo.h GrpoToolOptions)
};

struct RewardTerms {
  double accuracy = 0;
  double format = 0;
  double tool_format = 0;
  double total = 0;  // weights.accuracy * accuracy + weights.format * format + weights.tool_format * tool_format
  // {{"accuracy", accuracy}, {"format", format}, {"total", total}}, for logging (tool_format: read it directly).
  std::vector<std::pair<std::string, double>> named() const;
};

// Parses the completion once and fills every term.
RewardTerms compute_rewards(std::string_view completion, const data::ReasoningProblem& problem,
                            const RewardWeights& weights = {});

}  // namespace sg
