// data/chat.cpp — the chat template, SFT encoding with a prompt mask, and the completion parser (see chat.h).
#include "data/chat.h"

#include <algorithm>
#include <charconv>
#include <stdexcept>

namespace sg::data {

namespace {

const std::string kSystem = "<|system|>", kUser = "<|user|>", kAssistant = "<|assistant|>";
const std::string kThink = "<think>", kThinkEnd = "</think>", kEndOfText = "<|endoftext|>";
const std::string kToolCall = "<tool_call>", kToolCallEnd = "</tool_call>";
const std::string kToolResult = "<tool_result>", kToolResultEnd = "</tool_result>";

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

int count(std::string_view s, std::string_view needle) {
  int n = 0;
  for (size_t p = s.find(needle); p != std::string_view::npos; p = s.find(needle, p + needle.size())) ++n;
  return n;
}

bool has_special(std::string_view s) {
  for (const std::string& special : default_special_tokens())
    if (s.find(special) != std::string_view::npos) return true;
  return false;
}

// The tool tags of c in order: (offset, which) with which = 0 <tool_call>, 1 </tool_call>, 2 <tool_result>,
// 3 </tool_result>. The four strings never overlap one another, so sorting by offset is the reading order.
std::vector<std::pair<size_t, int>> tool_tags(std::string_view c) {
  const std::string* tags[4] = {&kToolCall, &kToolCallEnd, &kToolResult, &kToolResultEnd};
  std::vector<std::pair<size_t, int>> out;
  for (int w = 0; w < 4; w++)
    for (size_t p = c.find(*tags[w]); p != std::string_view::npos; p = c.find(*tags[w], p + tags[w]->size()))
      out.push_back({p, w});
  std::sort(out.begin(), out.end());
  return out;
}

// See ParsedCompletion::tool_calls_well_formed. [lo, hi) is the inside of the think block (lo > hi: none).
bool tool_calls_well_formed(std::string_view c, size_t lo, size_t hi) {
  const std::vector<std::pair<size_t, int>> tags = tool_tags(c);
  if (tags.size() % 4 != 0) return false;
  const size_t len[4] = {kToolCall.size(), kToolCallEnd.size(), kToolResult.size(), kToolResultEnd.size()};
  for (size_t i = 0; i < tags.size(); i += 4) {
    for (int k = 0; k < 4; k++)
      if (tags[i + k].second != k) return false;
    if (tags[i].first < lo || tags[i + 3].first + len[3] > hi) return false;
    if (tags[i + 2].first != tags[i + 1].first + len[1]) return false;  // the result follows the call at once
    const size_t expr = tags[i].first + len[0], result = tags[i + 2].first + len[2];
    if (has_special(c.substr(expr, tags[i + 1].first - expr)) ||
        has_special(c.substr(result, tags[i + 3].first - result)))
      return false;
  }
  return true;
}

}  // namespace

const char* const kReasoningSystemPrompt =
    "You are a careful calculator. Reason step by step between the think tags, one operation per line, "
    "then write only the final integer.";

std::string render_prompt(std::string_view question, std::string_view system) {
  std::string s;
  if (!system.empty()) s += kSystem + "\n" + std::string(system) + "\n";
  s += kUser + "\n" + std::string(question) + "\n" + kAssistant + "\n";
  return s;
}

std::string render_prompt(const ReasoningProblem& p, std::string_view system) {
  return render_prompt(p.question, system);
}

std::string render_completion(std::string_view think, std::string_view answer) {
  return kThink + "\n" + std::string(think) + "\n" + kThinkEnd + "\n" + std::string(answer) + kEndOfText;
}

ChatExample render_sft_example(const ReasoningProblem& p, std::string_view system) {
  ChatExample ex;
  ex.text = render_prompt(p, system);
  ex.assistant_start = ex.text.size();
  ex.text += render_completion(p.think, std::to_string(p.answer));
  return ex;
}

SftTokens encode_sft(const Tokenizer& tok, const ChatExample& ex) {
  if (ex.assistant_start > ex.text.size())
    throw std::invalid_argument("[encode_sft] assistant_start " + std::to_string(ex.assistant_start) +
                                " is past the end of a " + std::to_string(ex.text.size()) + "-byte example");
  const std::string_view text = ex.text;
  SftTokens out;
  out.ids = tok.encode(text.substr(0, ex.assistant_start));
  out.prompt_tokens = out.ids.size();
  const std::vector<int32_t> completion = tok.encode(text.substr(ex.assistant_start));
  out.ids.insert(out.ids.end(), completion.begin(), completion.end());
  out.loss_mask.assign(out.ids.size(), 1);
  std::fill(out.loss_mask.begin(), out.loss_mask.begin() + out.prompt_tokens, 0);
  return out;
}

ParsedCompletion parse_completion(std::string_view completion) {
  ParsedCompletion r;
  const size_t eot = completion.find(kEndOfText);
  r.has_endoftext = eot != std::string_view::npos;
  const std::string_view c = trim(r.has_endoftext ? completion.substr(0, eot) : completion);

  r.starts_with_think = c.substr(0, kThink.size()) == kThink;
  r.n_think_open = count(c, kThink);
  r.n_think_close = count(c, kThinkEnd);
  const size_t open = c.find(kThink);
  const size_t close = open == std::string_view::npos ? open : c.find(kThinkEnd, open + kThink.size());
  r.closed = close != std::string_view::npos;
  if (r.closed) r.think = std::string(trim(c.substr(open + kThink.size(), close - open - kThink.size())));
  const size_t last_close = c.rfind(kThinkEnd);
  if (last_close != std::string_view::npos) r.answer = std::string(trim(c.substr(last_close + kThinkEnd.size())));
  r.answer_has_special = has_special(r.answer);
  r.n_tool_calls = count(c, kToolCallEnd);
  r.tool_calls_well_formed = r.closed ? tool_calls_well_formed(c, open + kThink.size(), close)
                                      : tool_tags(c).empty();
  r.well_formed = r.starts_with_think && r.n_think_open == 1 && r.n_think_close == 1 && r.closed &&
                  !r.think.empty() && !r.answer.empty() && !r.answer_has_special && r.tool_calls_well_formed;
  return r;
}

std::string render_tool_call(std::string_view expr) { return kToolCall + std::string(expr) + kToolCallEnd; }

std::string render_tool_result(std::string_view result) {
  return kToolResult + std::string(result) + kToolResultEnd;
}

std::string render_tool_turn(std::string_view expr, std::string_view result) {
  return render_tool_call(expr) + render_tool_result(result);
}

std::optional<PendingToolCall> find_pending_tool_call(std::string_view completion) {
  if (completion.size() < kToolCallEnd.size() ||
      completion.substr(completion.size() - kToolCallEnd.size()) != kToolCallEnd)
    return std::nullopt;
  const std::string_view before = completion.substr(0, completion.size() - kToolCallEnd.size());
  const size_t open = before.rfind(kToolCall), prev_close = before.rfind(kToolCallEnd);
  PendingToolCall call;
  call.has_open = open != std::string_view::npos && (prev_close == std::string_view::npos || prev_close < open);
  if (call.has_open) call.expression = std::string(before.substr(open + kToolCall.size()));
  return call;
}

int count_tool_calls(std::string_view completion) { return count(completion, kToolCallEnd); }

std::optional<int64_t> parse_integer_answer(std::string_view answer) {
  std::string_view s = trim(answer);
  if (!s.empty() && s.front() == '+') {
    s.remove_prefix(1);
    if (!s.empty() && s.front() == '-') return std::nullopt;  // "+-5"
  }
  if (s.empty()) return std::nullopt;
  int64_t v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);  // "-" then digits, no spaces
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;   // out of range: ec set, no wrap
  return v;
}

}  // namespace sg::data
