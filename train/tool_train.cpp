// train/tool_train.cpp — tool-trace SFT examples (see tool_train.h).
#include "train/tool_train.h"

#include "data/tool_problems.h"

namespace sg {

std::vector<data::SftTokens> make_tool_sft_examples(const data::Tokenizer& tok, const std::vector<data::ReasoningProblem>& problems,
                                                    const std::string& system) {
  std::vector<data::SftTokens> out;
  out.reserve(problems.size());
  for (const data::ReasoningProblem& p : problems) out.push_back(data::encode_tool_sft(tok, data::render_sft_example(p, system)));
  return out;
}

}  // namespace sg
