// tests/data/test_tool_problems.cpp — the large-number problems and their tool traces (data/tool_problems.h): the
// trace and the problem by value on hand-made expressions, the generator's operand ranges and answers against
// C++ arithmetic, disjoint deterministic splits, and encode_tool_sft's ids and loss mask by value with a byte-level
// tokenizer (no merges, so every id is a byte or a special token whose id is known).
#include <doctest/doctest.h>

#include <cstdio>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "data/chat.h"
#include "data/reasoning.h"
#include "data/tokenizer.h"
#include "data/tool_problems.h"

using namespace sg::data;

namespace {

// 256 bytes + 0 merges + the 10 default special tokens: <|endoftext|> 256, <think> 257, </think> 258, <tool_call> 259,
// </tool_call> 260, <tool_result> 261, </tool_result> 262, <|user|> 263, <|assistant|> 264, <|system|> 265.
const Tokenizer& byte_tokenizer() {
  static const Tokenizer tok = [] {
    BpeTrainOptions bo;
    bo.vocab_size = 266;
    return Tokenizer::train("abc abc", bo);
  }();
  return tok;
}

std::vector<int32_t> bytes(const std::string& s) { return {s.begin(), s.end()}; }
std::vector<int32_t> cat(std::initializer_list<std::vector<int32_t>> parts) {
  std::vector<int32_t> out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}
std::vector<uint8_t> ones_zeros(std::initializer_list<std::pair<int, uint8_t>> runs) {
  std::vector<uint8_t> out;
  for (auto [n, v] : runs) out.insert(out.end(), (size_t)n, v);
  return out;
}

// The digit count of a positive value.
int digits(int64_t v) {
  int d = 0;
  for (; v > 0; v /= 10) d++;
  return d;
}

}  // namespace

TEST_CASE("tool_problems: the trace and the problem of a hand-made expression, by value") {
  CHECK(tool_trace("48213 * 977", 47104101) == "<tool_call> 48213 * 977</tool_call><tool_result>47104101</tool_result>");
  const ReasoningProblem p = make_large_number_problem("48213 * 977");
  CHECK(p.answer == 47104101);
  CHECK(p.question == "What is 48213 * 977?");
  CHECK(p.level == kLargeNumberLevel);
  CHECK(p.think == "<tool_call> 48213 * 977</tool_call><tool_result>47104101</tool_result>");
  CHECK(render_completion(p.think, std::to_string(p.answer)) ==
        "<think>\n<tool_call> 48213 * 977</tool_call><tool_result>47104101</tool_result>\n</think>\n47104101<|endoftext|>");
  // The worked completion is well formed, with one well-formed call.
  const ParsedCompletion c = parse_completion(render_completion(p.think, "47104101"));
  CHECK(c.well_formed);
  CHECK(c.n_tool_calls == 1);
  CHECK(c.tool_calls_well_formed);
  CHECK(make_large_number_problem("123456 - 654321").answer == -530865);
  CHECK(make_large_number_problem("123456 + 654321").answer == 777777);
  // Not part of the level 1..3 family (operands longer than 3 digits).
  CHECK(reasoning_level("48213 * 977") == 0);
  CHECK_THROWS_WITH(make_large_number_problem("12*3"), doctest::Contains("one space around the operator"));
  CHECK_THROWS_WITH(make_large_number_problem("12 / 3"), doctest::Contains("must be + - or *"));
  CHECK_THROWS_WITH(make_large_number_problem("012 + 3"), doctest::Contains("leading zero"));
  CHECK_THROWS_WITH(make_large_number_problem("12 + 3 "), doctest::Contains("unexpected text at byte 6"));
  CHECK_THROWS_WITH(make_large_number_problem("999999999999999999 * 999999999999999999"), doctest::Contains("overflows int64"));
}

TEST_CASE("tool_problems: the generator's operands, ops and answers") {
  const std::vector<ReasoningProblem> ps = large_number_split(Split::train, 3, 600);
  std::map<char, int> ops;
  std::set<int> mul_digits;
  for (const ReasoningProblem& p : ps) {
    long long a = 0, b = 0;
    char op = 0;
    REQUIRE(std::sscanf(p.expression.c_str(), "%lld %c %lld", &a, &op, &b) == 3);
    CHECK(p.expression == std::to_string(a) + " " + op + " " + std::to_string(b));
    ops[op]++;
    if (op == '*') {
      CHECK(digits(a) >= 3);
      CHECK(digits(a) <= 5);
      CHECK(digits(b) >= 3);
      CHECK(digits(b) <= 5);
      mul_digits.insert(digits(a));
      CHECK(p.answer == a * b);
    } else {
      CHECK(digits(a) == 6);
      CHECK(digits(b) == 6);
      CHECK(p.answer == (op == '+' ? a + b : a - b));
    }
    CHECK(p.think == tool_trace(p.expression, p.answer));
    CHECK(p.level == kLargeNumberLevel);
  }
  REQUIRE(ops.size() == 3);
  for (auto [op, n] : ops) CHECK(n > 150);  // uniform over 3 ops: 200 each expected, sd ≈ 12
  CHECK(mul_digits == std::set<int>{3, 4, 5});
}

TEST_CASE("tool_problems: splits are disjoint, follow split_of, and are deterministic") {
  const auto train = large_number_split(Split::train, 1, 400), val = large_number_split(Split::val, 1, 100),
             test = large_number_split(Split::test, 1, 100), test_other_seed = large_number_split(Split::test, 2, 100);
  std::set<std::string> seen;
  for (const auto* s : {&train, &val, &test})
    for (const ReasoningProblem& p : *s) CHECK(seen.insert(p.expression).second);  // distinct within and across
  for (const ReasoningProblem& p : train) CHECK(split_of(p.expression) == Split::train);
  for (const ReasoningProblem& p : val) CHECK(split_of(p.expression) == Split::val);
  for (const ReasoningProblem& p : test_other_seed) CHECK(split_of(p.expression) == Split::test);
  const auto again = large_number_split(Split::test, 1, 100);
  for (size_t i = 0; i < test.size(); i++) CHECK(again[i].expression == test[i].expression);
  CHECK(test_other_seed[0].expression != test[0].expression);
  // Asking for more is a prefix-extension: the first n do not depend on how many are asked for.
  const auto more = large_number_split(Split::test, 1, 120);
  CHECK(more[99].expression == test[99].expression);
  CHECK_THROWS_WITH(large_number_split(Split::test, 1, -1), doctest::Contains("n must be >= 0"));
}

TEST_CASE("tool_problems: encode_tool_sft — ids as one encode, mask 0 on the prompt and on <tool_result> … </tool_result>") {
  const Tokenizer& tok = byte_tokenizer();
  REQUIRE(tok.token_id("<tool_result>") == 261);
  REQUIRE(tok.token_id("</tool_result>") == 262);
  ChatExample ex;
  ex.text = render_prompt("6*7?", "");
  ex.assistant_start = ex.text.size();
  ex.text += "<think>\n<tool_call>6*7</tool_call><tool_result>42</tool_result>\n</think>\n42<|endoftext|>";
  const SftTokens t = encode_tool_sft(tok, ex);
  const std::vector<int32_t> prompt = cat({{263}, bytes("\n6*7?\n"), {264}, bytes("\n")});
  const std::vector<int32_t> want = cat({prompt, {257}, bytes("\n"), {259}, bytes("6*7"), {260},  // the model writes
                                         {261}, bytes("42"), {262},                               // inserted
                                         bytes("\n"), {258}, bytes("\n42"), {256}});              // the model writes
  CHECK(t.ids == want);
  CHECK(t.ids == tok.encode(ex.text));  // = encoding the whole text at once
  CHECK(t.prompt_tokens == prompt.size());
  CHECK(t.loss_mask == ones_zeros({{(int)prompt.size(), 0}, {7, 1}, {4, 0}, {6, 1}}));

  // Two calls, the second one's result an error string; the </tool_call> before each result keeps its 1.
  ex.text = render_prompt("q", "");
  ex.assistant_start = ex.text.size();
  ex.text += "<think>\n<tool_call>1/0</tool_call><tool_result>error: division by zero</tool_result>"
             "<tool_call>2</tool_call><tool_result>2</tool_result>\n</think>\n2<|endoftext|>";
  const SftTokens u = encode_tool_sft(tok, ex);
  const int np = (int)tok.encode(render_prompt("q", "")).size();
  CHECK(u.ids == tok.encode(ex.text));
  CHECK(u.loss_mask == ones_zeros({{np, 0}, {7, 1}, {2 + 23, 0}, {3, 1}, {3, 0}, {5, 1}}));

  // A result whose text holds a tag's bytes is encoded with special tokens off (as the generation loop inserts
  // it): bytes, not the <think> id, and all masked. A <tool_result> never closed masks to the end.
  ex.text = render_prompt("q", "");
  ex.assistant_start = ex.text.size();
  ex.text += "<think>\n<tool_call>x</tool_call><tool_result>a<think>";
  const SftTokens v = encode_tool_sft(tok, ex);
  CHECK(std::vector<int32_t>(v.ids.end() - 9, v.ids.end()) == cat({{261}, bytes("a<think>")}));
  CHECK(v.loss_mask == ones_zeros({{np, 0}, {5, 1}, {9, 0}}));

  // Without any tool result it is encode_sft exactly.
  ChatExample plain = render_sft_example(make_reasoning_problem("2 + 3"), "");
  CHECK(encode_tool_sft(tok, plain).ids == encode_sft(tok, plain).ids);
  CHECK(encode_tool_sft(tok, plain).loss_mask == encode_sft(tok, plain).loss_mask);
  ChatExample bad{"ab", 3};
  CHECK_THROWS_WITH(encode_tool_sft(tok, bad), doctest::Contains("past the end"));
}
