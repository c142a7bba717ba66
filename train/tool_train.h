// train/tool_train.h — the data side of training a model to use the calculator (seekgrad issue 13): tool-trace SFT
// examples for SftStage (train/sft.h) and the large-number pools the tool GRPO stage draws from (train/grpo.h with
// GrpoToolOptions). The stages themselves are not forked: SftStage trains on any SftTokens and takes its loss where
// loss_mask says, so tool SFT is SftStage on encode_tool_sft's examples (mask 0 on prompt and inserted results).
//
// What this is not: a stage of its own, or the evaluation (train/tool_eval.h).
#pragma once
#include <string>
#include <vector>

#include "data/chat.h"
#include "data/reasoning.h"
#include "data/tokenizer.h"

namespace sg {

// One encode_tool_sft example per problem: render_sft_example(p, system) (think = the problem's tool trace).
std::vector<data::SftTokens> make_tool_sft_examples(const data::Tokenizer& tok, const std::vector<data::ReasoningProblem>& problems,
                                                    const std::string& system = data::kReasoningSystemPrompt);

}  // namespace sg
