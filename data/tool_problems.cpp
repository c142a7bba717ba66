// data/tool_problems.cpp — the large-number problems, their tool traces and the tool-aware SFT mask
// (see tool_problems.h).
#include "data/tool_problems.h"

#include <stdexcept>
#include <unordered_set>

namespace sg::data {

namespace {

uint64_t splitmix64_finalise(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

[[noreturn]] void bad_expression(const std::string& e, const std::string& why) {
  throw std::invalid_argument("[make_large_number_problem] \"" + e + "\": " + why);
}

// A non-negative integer without leading zeros, at most 18 digits, at s[i...]; advances i.
int64_t read_number(const std::string& e, size_t& i) {
  const size_t start = i;
  while (i < e.size() && e[i] >= '0' && e[i] <= '9') i++;
  const size_t len = i - start;
  if (len == 0) bad_expression(e, "expected a number at byte " + std::to_string(start));
  if (len > 18) bad_expression(e, "a number longer than 18 digits");
  if (len > 1 && e[start] == '0') bad_expression(e, "a number with a leading zero");
  return std::stoll(e.substr(start, len));
}

// A value with `digits` digits, uniform: [10^(digits-1), 10^digits).
int64_t draw_digits(Rng& rng, int digits) {
  int64_t lo = 1;
  for (int k = 1; k < digits; k++) lo *= 10;
  return lo + (int64_t)rng.randint((uint64_t)(9 * lo));
}

const std::string kResultOpen = "<tool_result>", kResultClose = "</tool_result>";

}  // namespace

std::string tool_trace(const std::string& expression, int64_t answer) {
  return render_tool_turn(" " + expression, std::to_string(answer));
}

ReasoningProblem make_large_number_problem(const std::string& expression) {
  size_t i = 0;
  const int64_t a = read_number(expression, i);
  if (expression.size() < i + 3 || expression[i] != ' ' || expression[i + 2] != ' ')
    bad_expression(expression, "expected \"a op b\" with one space around the operator");
  const char op = expression[i + 1];
  i += 3;
  const int64_t b = read_number(expression, i);
  if (i != expression.size()) bad_expression(expression, "unexpected text at byte " + std::to_string(i));
  int64_t v = 0;
  bool overflow = false;
  switch (op) {
    case '+': overflow = __builtin_add_overflow(a, b, &v); break;
    case '-': overflow = __builtin_sub_overflow(a, b, &v); break;
    case '*': overflow = __builtin_mul_overflow(a, b, &v); break;
    default: bad_expression(expression, std::string("the operator must be + - or *, got '") + op + "'");
  }
  if (overflow) bad_expression(expression, "the answer overflows int64");
  ReasoningProblem p;
  p.expression = expression;
  p.answer = v;
  p.question = "What is " + expression + "?";
  p.level = kLargeNumberLevel;
  p.think = tool_trace(expression, v);
  return p;
}

ReasoningProblem generate_large_number_problem(Rng& rng) {
  const char op = "*+-"[rng.randint(3)];
  int64_t a = 0, b = 0;
  if (op == '*') {
    a = draw_digits(rng, 3 + (int)rng.randint(3));
    b = draw_digits(rng, 3 + (int)rng.randint(3));
  } else {
    a = draw_digits(rng, 6);
    b = draw_digits(rng, 6);
  }
  return make_large_number_problem(std::to_string(a) + " " + op + " " + std::to_string(b));
}

std::vector<ReasoningProblem> large_number_split(Split split, uint64_t seed, int n) {
  if (n < 0) throw std::invalid_argument("[large_number_split] n must be >= 0, got " + std::to_string(n));
  // One stream per (seed, split), distinct from reasoning_split's streams (its constant + level 4 would collide
  // only if that function ever grew a level 4; this one has a constant of its own).
  Rng rng(splitmix64_finalise(seed ^ splitmix64_finalise(0x7001b16ULL + (uint64_t)split * 16)));
  std::vector<ReasoningProblem> out;
  std::unordered_set<std::string> seen;
  // The family has ~10^12 problems per split: a draw is rejected only by its hash (95 % of draws for test / val)
  // or, almost never, as a repeat.
  while ((int)out.size() < n) {
    ReasoningProblem p = generate_large_number_problem(rng);
    if (split_of(p.expression) != split || !seen.insert(p.expression).second) continue;
    out.push_back(std::move(p));
  }
  return out;
}

SftTokens encode_tool_sft(const Tokenizer& tok, const ChatExample& ex) {
  if (ex.assistant_start > ex.text.size())
    throw std::invalid_argument("[encode_tool_sft] assistant_start " + std::to_string(ex.assistant_start) +
                                " is past the end of a " + std::to_string(ex.text.size()) + "-byte example");
  const auto open_id = tok.find_token(kResultOpen), close_id = tok.find_token(kResultClose);
  if (!open_id || !close_id || !tok.is_special(*open_id) || !tok.is_special(*close_id))
    throw std::invalid_argument("[encode_tool_sft] the tokenizer has no <tool_result>, </tool_result> special tokens");
  const std::string_view text = ex.text;
  SftTokens out;
  auto add = [&](const std::vector<int32_t>& ids, uint8_t m) {
    out.ids.insert(out.ids.end(), ids.begin(), ids.end());
    out.loss_mask.insert(out.loss_mask.end(), ids.size(), m);
  };
  add(tok.encode(text.substr(0, ex.assistant_start)), 0);
  out.prompt_tokens = out.ids.size();
  size_t pos = ex.assistant_start;
  while (pos < text.size()) {
    const size_t open = text.find(kResultOpen, pos);
    if (open == std::string_view::npos) {
      add(tok.encode(text.substr(pos)), 1);
      break;
    }
    add(tok.encode(text.substr(pos, open - pos)), 1);  // what the model writes, up to the </tool_call> included
    const size_t body = open + kResultOpen.size();
    const size_t close = text.find(kResultClose, body);
    const size_t body_end = close == std::string_view::npos ? text.size() : close;
    // The inserted span: the tags and the result's text encoded with special tokens off, as the loop encodes it.
    std::vector<int32_t> span{*open_id};
    for (int32_t id : tok.encode(text.substr(body, body_end - body), /*allow_special=*/false)) span.push_back(id);
    if (close != std::string_view::npos) span.push_back(*close_id);
    add(span, 0);
    pos = close == std::string_view::npos ? text.size() : close + kResultClose.size();
  }
  return out;
}

}  // namespace sg::data
