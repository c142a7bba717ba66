// train/tool_eval.h — how well a model solves problems when it may call the calculator, and when it may not
// (seekgrad issue 13). The same completions loop as train/tool_generate.h, one row per (problem, sample), scored
// from the decoded text (train/rewards.h), with the tool's own counts beside the accuracy.
//
//   prompt      data::render_prompt(problem, system), encoded with special tokens
//   sampling    generate_with_tools per row, seed sample_seed(opt.seed, i, s) (train/reasoning_eval.h), stop at
//               <|endoftext|>, at most max_new_tokens tokens (sampled + inserted). tools_enabled = false: the
//               calculator is off — a </tool_call> is an ordinary token, nothing is inserted, and the model
//               must write any <tool_result> itself (the "without the tool" column of the chapter's table)
//   text        the decoded completion, inserted results included (what the rewards read)
//   metrics     accuracy          mean accuracy_reward over all completions
//               format_rate       mean format_reward (well_formed)
//               tool_use_rate     share of completions that wrote at least one </tool_call> (count_tool_calls on
//                                 the text: with tools off it counts the attempts)
//               well_formed_call_rate  among those, the share whose tool tags are all well formed
//                                 (ParsedCompletion::tool_calls_well_formed; NaN when no completion used a call)
//               right_call_rate   among those, the share whose first call the calculator answered with the
//                                 problem's answer (tools on only; NaN otherwise or when none used a call)
//               calls             </tool_call>s answered by the loop (tools on), calculator_errors of them got an
//                                 "error: ..." result (malformed calls, no opener, too many calls)
//               mean_length       tokens per completion (sampled + inserted); inserted_tokens: their sum
//
// What this is not: a batched evaluator (rows are decoded one after another, as generate_batch_with_tools does),
// or a trainer.
#pragma once
#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "data/chat.h"
#include "data/reasoning.h"
#include "data/tokenizer.h"
#include "data/tool.h"
#include "train/tool_generate.h"

namespace sg {

struct ToolEvalOptions {
  int64_t samples = 1;           // completions per problem
  double temperature = 0;        // 0: greedy
  double top_p = 1.0;
  int64_t max_new_tokens = 64;   // per completion, sampled and inserted tokens together
  uint64_t seed = 0;
  std::string system = data::kReasoningSystemPrompt;
  data::ToolLimits limits;
  bool tools_enabled = true;
};

struct ToolEvalRow {
  int64_t problem = 0;           // index into the problems
  std::string completion;        // decoded
  double accuracy = 0;
  bool well_formed = false;
  int n_tool_calls = 0;          // </tool_call>s in the text
  bool calls_well_formed = true;
  bool right_call = false;       // the first answered call's result is the problem's answer
  int64_t length = 0;
};

struct ToolEvalResult {
  int64_t n_problems = 0, samples = 0;
  double accuracy = 0, format_rate = 0, tool_use_rate = 0;
  double well_formed_call_rate = NAN, right_call_rate = NAN;
  int64_t calls = 0, calculator_errors = 0, inserted_tokens = 0;
  double mean_length = 0, seconds = 0;
  std::vector<ToolEvalRow> rows;  // row i * samples + s
};

// A fresh logits source for one completion (a KV cache of its own), given its prompt and budget.
using LogitsSourceFactory = std::function<NextLogitsFn(const std::vector<int64_t>& prompt, int64_t max_new_tokens)>;

// The loop on any model (tests pass scripted ones). Throws "[tool_eval] ..." for no problems, samples < 1,
// max_new_tokens < 1, or a tokenizer without <|endoftext|>; generate_with_tools' own errors pass through.
ToolEvalResult evaluate_problems_with_tools(const LogitsSourceFactory& model, const data::Tokenizer& tok,
                                            const std::vector<data::ReasoningProblem>& problems,
                                            const ToolEvalOptions& opt);
// On a Transformer through its KV cache (prompt + max_new_tokens must fit max_seq_len).
ToolEvalResult evaluate_problems_with_tools(Transformer& model, const data::Tokenizer& tok,
                                            const std::vector<data::ReasoningProblem>& problems,
                                            const ToolEvalOptions& opt);

}  // namespace sg
