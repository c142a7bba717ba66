// data/tool_problems.h — problems a small model can only answer reliably with the calculator (seekgrad issue 13),
// their worked tool traces, and the SFT encoding that does not train the model on the calculator's output.
//
// The family ("large numbers"): one operation on operands far past what the model can work out in its head —
//   mul   "48213 * 977"        a × b, each operand 3 to 5 digits (digit count uniform, then the value uniform)
//   add   "482130 + 977415"    a + b, both 6 digits
//   sub   "482130 - 977415"    a − b, both 6 digits (the answer may be negative)
// The operation is drawn uniformly from the three. Every such problem is a ReasoningProblem (data/reasoning.h)
// with level kLargeNumberLevel (outside reasoning_level's 1..3, which stops at 3-digit operands), and its split is
// data::split_of(expression), the same hash: train / val / test are disjoint whatever seeds either side used.
//
// The worked trace — the call, then the result the tool loop would insert:
//   think = "<tool_call> 48213 * 977</tool_call><tool_result>47104101</tool_result>"
//   completion (render_completion): "<think>⏎" + think + "⏎</think>⏎47104101<|endoftext|>"
// The call is " " + the expression: exactly the bytes that follow "What is" in the question (the calculator skips
// whitespace), so the BPE pieces are the same ones (data/tokenizer.h pre-splits " 482" "13" " *" " 977" the same
// way in both places) and the call is a token-for-token copy of the question; the answer "47104101" after
// "</think>⏎" is likewise the same pieces as the result after <tool_result>. A tiny model learns two copies in a
// few hundred SFT steps; with a different spacing (say "48213*977", or a leading "48213 * 977 = " line) the
// pieces differ and chapter 13's 2-layer model did not learn the copy in 200 steps (accuracy 0 %).
//
// encode_tool_sft: like encode_sft (data/chat.h) — prompt and completion encoded apart, so the ids are those of
// the whole text — but the loss mask is 0 on the prompt AND on every inserted span, <tool_result> … </tool_result>
// (both tags included), 1 elsewhere in the completion (the <tool_call> … </tool_call> the model writes, the
// answer, <|endoftext|>). That is exactly train/tool_generate.h's ToolCompletion::sampled mask for the same
// completion: the model learns to call and to use the result, never to predict it. Between the tags the result
// is encoded with special tokens off, as the generation loop encodes what it inserts.
//
// What this is not: a multi-step tool curriculum (one call per problem), or a word-problem generator.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "autograd/rng.h"
#include "data/chat.h"
#include "data/reasoning.h"
#include "data/tokenizer.h"

namespace sg::data {

// ReasoningProblem::level of the large-number family.
inline constexpr int kLargeNumberLevel = 4;

// A large-number problem from its expression "a op b" (canonical spacing: one space around the operator):
// answer computed exactly, think = tool_trace(expression, answer), question "What is <expr>?", level
// kLargeNumberLevel. Throws std::invalid_argument naming the expression when it is not "a op b" with op in
// + - * and a, b non-negative integers without leading zeros, or when the answer overflows int64.
ReasoningProblem make_large_number_problem(const std::string& expression);

// render_tool_turn(" " + expr, to_string(answer)).
std::string tool_trace(const std::string& expression, int64_t answer);

// One large-number problem (any split), drawn from rng.
ReasoningProblem generate_large_number_problem(Rng& rng);

// n distinct large-number problems of `split`, deterministic from (split, seed) (the scheme of reasoning_split).
// Throws std::invalid_argument on n < 0.
std::vector<ReasoningProblem> large_number_split(Split split, uint64_t seed, int n);

// See above: ids as encode_sft's, loss_mask 0 on the prompt and on each <tool_result> … </tool_result> span.
// A <tool_result> without its </tool_result> masks to the end of the text (the loop's truncated insertion).
SftTokens encode_tool_sft(const Tokenizer& tok, const ChatExample& ex);

}  // namespace sg::data
