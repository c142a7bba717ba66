// data/chat.h — the chat template with the tokenizer's special tokens (data/tokenizer.h), and the parser that
// reads a model's completion back into its reasoning and its answer (models/README.md §10; DeepSeek-R1 §2.2.3,
// the training template: reasoning inside <think> … </think>, then the answer).
//
// A whole SFT example, byte for byte ("⏎" is '\n'):
//
//   <|system|>⏎{system}⏎<|user|>⏎{question}⏎<|assistant|>⏎      <- render_prompt: the model writes from here
//   <think>⏎48 * 2 = 96⏎37 + 96 = 133⏎</think>⏎133<|endoftext|>  <- the completion (the assistant part)
//
// The turns have no end-of-turn token of their own: a turn ends where the next tag starts, the assistant's
// with <|endoftext|>. The prompt ends with "<|assistant|>\n" and every completion starts with the <think>
// special token, so encoding prompt and completion apart gives exactly the ids of encoding them together
// (the tokenizer splits at special tokens first); encode_sft relies on that and its test checks it.
//
// Tool calls (seekgrad issue 13). Inside its reasoning the model may write a call to the calculator
// (data/tool.h) between <tool_call> and </tool_call>; generation pauses at the </tool_call> token, the executor
// runs the call, and its result is inserted right after it between <tool_result> and </tool_result> — by the
// generation loop (train/tool_generate.h), not by the model — and generation goes on. Several calls per
// completion, each one "<tool_call>EXPR</tool_call><tool_result>VALUE</tool_result>" with no bytes between the
// two parts. A completion with one call, byte for byte:
//
//   <think>⏎48213 * 977 = <tool_call>48213*977</tool_call><tool_result>47104101</tool_result>⏎</think>⏎47104101<|endoftext|>
//
// and with a call the calculator refuses (the error is the result the model reads):
//
//   <think>⏎<tool_call>1/0</tool_call><tool_result>error: division by zero</tool_result>⏎…
//
// The four tags are special tokens, so a call's expression and its result are plain text between them. Calls
// belong inside <think> … </think>: the answer after </think> holds no special token (answer_has_special).
//
// What this is not: a multi-turn conversation format, or a tool protocol with tool names and JSON arguments
// (there is one tool, the calculator).
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "data/reasoning.h"
#include "data/tokenizer.h"

namespace sg::data {

// The default system turn. It names the tags in words, not as tags, so it never contains a special token.
extern const char* const kReasoningSystemPrompt;

// "<|system|>\n{system}\n<|user|>\n{question}\n<|assistant|>\n" (no system turn when system is empty).
std::string render_prompt(std::string_view question, std::string_view system = kReasoningSystemPrompt);
std::string render_prompt(const ReasoningProblem& p, std::string_view system = kReasoningSystemPrompt);

// "<think>\n{think}\n</think>\n{answer}<|endoftext|>": what the model should write after the prompt.
std::string render_completion(std::string_view think, std::string_view answer);

struct ChatExample {
  std::string text;             // prompt + completion
  size_t assistant_start = 0;   // byte offset of the completion in text (= prompt size)
};
// The problem's prompt and its worked completion (think = p.think, answer = std::to_string(p.answer)).
ChatExample render_sft_example(const ReasoningProblem& p, std::string_view system = kReasoningSystemPrompt);

struct SftTokens {
  std::vector<int32_t> ids;        // prompt ids then completion ids
  std::vector<uint8_t> loss_mask;  // 0 on prompt ids, 1 on completion ids (the <|endoftext|> included)
  size_t prompt_tokens = 0;        // number of leading 0s in loss_mask
};
// Encodes text[0, assistant_start) and text[assistant_start, end) separately (special tokens allowed).
SftTokens encode_sft(const Tokenizer& tok, const ChatExample& ex);

// A completion read back. The completion is cut at its first <|endoftext|> (what follows is not part of
// it), and leading/trailing ASCII whitespace is ignored. Then:
//   think   the text between the first <think> and the first </think> after it, whitespace-trimmed
//           ("" when either is missing)
//   answer  the text after the LAST </think>, whitespace-trimmed ("" when there is no </think>)
struct ParsedCompletion {
  std::string think;
  std::string answer;
  bool starts_with_think = false;  // the first non-space bytes are <think>
  int n_think_open = 0;            // occurrences of <think>
  int n_think_close = 0;           // occurrences of </think>
  bool closed = false;             // a </think> follows the first <think>
  bool has_endoftext = false;      // the completion had an <|endoftext|> (so it ended, not ran out of tokens)
  bool answer_has_special = false; // the answer holds a special token (<think>, </think>, <|user|>, ...)
  int n_tool_calls = 0;            // occurrences of </tool_call> (count_tool_calls)
  // Every tool tag belongs to a complete "<tool_call>EXPR</tool_call><tool_result>TEXT</tool_result>",
  // EXPR and TEXT hold no special token, and all of them lie inside the first <think> … </think>. True
  // when the completion has no tool tag at all.
  bool tool_calls_well_formed = true;
  // starts_with_think, exactly one <think> and one </think>, think and answer non-empty, no special token in
  // the answer, and tool_calls_well_formed: the format R1's format reward asks for, tool calls allowed in the
  // reasoning. (On a completion without tool tags this is the same test as before tool calls existed.)
  bool well_formed = false;
};
ParsedCompletion parse_completion(std::string_view completion);

// ---- tool calls --------------------------------------------------------------------------------------

// "<tool_call>{expr}</tool_call>"
std::string render_tool_call(std::string_view expr);
// "<tool_result>{result}</tool_result>": what the generation loop inserts after a call.
std::string render_tool_result(std::string_view result);
// render_tool_call(expr) + render_tool_result(result): a call and its answer, as an SFT example writes them.
std::string render_tool_turn(std::string_view expr, std::string_view result);

// The call the executor owes an answer: present when `completion` ends with </tool_call> (no result after it
// yet). has_open: a <tool_call> opens it, i.e. the last <tool_call> comes after the previous </tool_call>;
// expression is then the text between them, verbatim (spaces and any other tags included: the calculator
// judges it). Without an opener the expression is "" (the loop answers
// "error: call closed without being opened").
struct PendingToolCall {
  std::string expression;
  bool has_open = false;
};
std::optional<PendingToolCall> find_pending_tool_call(std::string_view completion);

// Occurrences of </tool_call> in `completion` (each is a call the loop answers, well formed or not).
int count_tool_calls(std::string_view completion);

// The answer as an integer, strictly: after trimming ASCII whitespace, an optional sign and 1..19 digits
// and nothing else ("133", "-28", "+7", "007" = 7). Not "133.", "1,234", "133 134", "x = 133", "\boxed{133}".
// nullopt when it is not such a string or does not fit int64 (never wraps).
std::optional<int64_t> parse_integer_answer(std::string_view answer);

}  // namespace sg::data
