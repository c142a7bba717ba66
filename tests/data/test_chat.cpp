// tests/data/test_chat.cpp — the chat template byte for byte, SFT encoding and its prompt mask, and the
// completion parser on well-formed and adversarial completions.
#include <doctest/doctest.h>

#include "data/chat.h"

using namespace sg::data;

TEST_CASE("render_prompt / render_completion / render_sft_example: the exact bytes") {
  const ReasoningProblem p = make_reasoning_problem("37 + 48 * 2");
  CHECK(render_prompt(p, "Be brief.") == "<|system|>\nBe brief.\n<|user|>\nWhat is 37 + 48 * 2?\n<|assistant|>\n");
  CHECK(render_prompt("Hi?", "") == "<|user|>\nHi?\n<|assistant|>\n");
  CHECK(render_prompt("Hi?") == std::string("<|system|>\n") + kReasoningSystemPrompt + "\n<|user|>\nHi?\n<|assistant|>\n");
  CHECK(std::string(kReasoningSystemPrompt).find('<') == std::string::npos);  // no special token in it
  CHECK(render_completion("48 * 2 = 96\n37 + 96 = 133", "133") ==
        "<think>\n48 * 2 = 96\n37 + 96 = 133\n</think>\n133<|endoftext|>");

  const ChatExample ex = render_sft_example(p, "Be brief.");
  CHECK(ex.text ==
        "<|system|>\nBe brief.\n<|user|>\nWhat is 37 + 48 * 2?\n<|assistant|>\n"
        "<think>\n48 * 2 = 96\n37 + 96 = 133\n</think>\n133<|endoftext|>");
  CHECK(ex.assistant_start == render_prompt(p, "Be brief.").size());
  CHECK(ex.text.substr(ex.assistant_start, 7) == "<think>");
  CHECK(render_sft_example(make_reasoning_problem("12 - 40")).text.find("</think>\n-28<|endoftext|>") !=
        std::string::npos);
}

TEST_CASE("encode_sft: ids equal encoding the whole text, mask 0 on the prompt and 1 on the completion") {
  std::string corpus;
  for (const ReasoningProblem& p : reasoning_split(Split::train, 1, 200, 2)) corpus += render_sft_example(p).text;
  const Tokenizer tok = Tokenizer::train(corpus, 400);
  const int32_t think_id = tok.token_id("<think>"), eot_id = tok.token_id("<|endoftext|>");
  const int32_t assistant_id = tok.token_id("<|assistant|>");
  for (const ReasoningProblem& p : reasoning_split(Split::test, 1, 20, 2)) {
    const ChatExample ex = render_sft_example(p);
    const SftTokens t = encode_sft(tok, ex);
    CHECK(t.ids == tok.encode(ex.text));
    REQUIRE(t.loss_mask.size() == t.ids.size());
    REQUIRE(t.prompt_tokens > 2);
    REQUIRE(t.prompt_tokens < t.ids.size());
    for (size_t k = 0; k < t.ids.size(); ++k) CHECK(t.loss_mask[k] == (k >= t.prompt_tokens ? 1 : 0));
    CHECK(t.ids[t.prompt_tokens - 2] == assistant_id);
    CHECK(tok.decode({t.ids[t.prompt_tokens - 1]}) == "\n");
    CHECK(t.ids[t.prompt_tokens] == think_id);
    CHECK(t.ids.back() == eot_id);
    const std::vector<int32_t> prompt(t.ids.begin(), t.ids.begin() + t.prompt_tokens);
    const std::vector<int32_t> completion(t.ids.begin() + t.prompt_tokens, t.ids.end());
    CHECK(tok.decode(prompt) == render_prompt(p));
    CHECK(tok.decode(completion) == ex.text.substr(ex.assistant_start));
  }
  ChatExample bad{"abc", 4};
  CHECK_THROWS_WITH_AS(encode_sft(tok, bad), doctest::Contains("[encode_sft]"), std::invalid_argument);
}

TEST_CASE("parse_completion: a rendered completion reads back") {
  for (const ReasoningProblem& p : reasoning_split(Split::val, 2, 30, 3)) {
    const ParsedCompletion c = parse_completion(render_completion(p.think, std::to_string(p.answer)));
    CHECK(c.think == p.think);
    CHECK(c.answer == std::to_string(p.answer));
    CHECK(c.well_formed);
    CHECK(c.starts_with_think);
    CHECK(c.has_endoftext);
    CHECK(c.n_think_open == 1);
    CHECK(c.n_think_close == 1);
    CHECK(parse_integer_answer(c.answer) == p.answer);
  }
}

TEST_CASE("parse_completion: adversarial completions") {
  struct Case {
    std::string text, think, answer;
    bool well_formed;
    int n_open, n_close;
  };
  const std::vector<Case> cases = {
      {"<think>a</think>5", "a", "5", true, 1, 1},
      {"  \n<think>\n a \n</think>\n 5 \n\n", "a", "5", true, 1, 1},  // outer and inner whitespace ignored
      {"<think>a</think>5<|endoftext|><think>b</think>6", "a", "5", true, 1, 1},  // nothing after <|endoftext|>
      {"", "", "", false, 0, 0},
      {"   \n\t", "", "", false, 0, 0},
      {"5", "", "", false, 0, 0},                                     // no think block at all
      {"<think>a 5", "", "", false, 1, 0},                            // unclosed
      {"<think>a</think>", "a", "", false, 1, 1},                     // no answer
      {"<think>a = 5</think>   ", "a = 5", "", false, 1, 1},          // the answer only inside the think block
      {"<think></think>5", "", "5", false, 1, 1},                     // empty reasoning
      {"<think> \n </think>5", "", "5", false, 1, 1},
      {"x<think>a</think>5", "a", "5", false, 1, 1},                  // text before <think>
      {"<think>a</think>4<think>b</think>5", "a", "5", false, 2, 2},  // two think blocks: the answer after the last
      {"<think>a<think>b</think>5", "a<think>b", "5", false, 2, 1},   // nested open
      {"<think>a</think>5</think>6", "a", "6", false, 1, 2},          // two closes
      {"</think>5", "", "5", false, 0, 1},                            // a close without an open
      {"</think><think>a</think>5", "a", "5", false, 1, 2},
      {"<think>a</think>5<|user|>more", "a", "5<|user|>more", false, 1, 1},  // starts a new turn
      {"<think>\xff\xfe</think>\x80" "5\xc3", "\xff\xfe", "\x80" "5\xc3", true, 1, 1},  // junk bytes are just bytes
  };
  for (const Case& k : cases) {
    CAPTURE(escape_bytes(k.text));
    const ParsedCompletion c = parse_completion(k.text);
    CHECK(c.think == k.think);
    CHECK(c.answer == k.answer);
    CHECK(c.well_formed == k.well_formed);
    CHECK(c.n_think_open == k.n_open);
    CHECK(c.n_think_close == k.n_close);
  }
  CHECK(parse_completion("<think>a</think>5<|user|>").answer_has_special);
  CHECK(parse_completion("<think>a</think>5<tool_call>").answer_has_special);
  CHECK_FALSE(parse_completion("<think>a</think>5").has_endoftext);
  CHECK(parse_completion("<think>a</think>5<|endoftext|>").has_endoftext);
  CHECK_FALSE(parse_completion("x<think>a</think>5").starts_with_think);
  CHECK(parse_completion("<think>a").starts_with_think);
  CHECK_FALSE(parse_completion("<think>a").closed);
  // A NUL byte inside is an ordinary byte.
  const ParsedCompletion nul = parse_completion(std::string("<think>a\0b</think>5", 19));
  CHECK(nul.think == std::string("a\0b", 3));
  CHECK(nul.answer == "5");
}

TEST_CASE("parse_integer_answer: strict integers, never wrapping") {
  CHECK(parse_integer_answer("133") == 133);
  CHECK(parse_integer_answer(" \n133\t") == 133);
  CHECK(parse_integer_answer("-28") == -28);
  CHECK(parse_integer_answer("+7") == 7);
  CHECK(parse_integer_answer("007") == 7);
  CHECK(parse_integer_answer("0") == 0);
  CHECK(parse_integer_answer("-0") == 0);
  CHECK(parse_integer_answer("9223372036854775807") == INT64_MAX);
  CHECK(parse_integer_answer("-9223372036854775808") == INT64_MIN);
  for (const char* bad : {"", " ", "-", "+", "+-5", "--5", "- 5", "133.", "133.0", "1,234", "133 134", "x = 133",
                          "\\boxed{133}", "The answer is 133", "133!", "1e3", "0x10", "\xff" "133", "133\xc3",
                          "9223372036854775808", "-9223372036854775809", "18446744073709551749",
                          "99999999999999999999999999999999999999"})
    CHECK_MESSAGE(!parse_integer_answer(bad).has_value(), escape_bytes(bad));
  CHECK_FALSE(parse_integer_answer(std::string("13\0" "3", 4)).has_value());
}

TEST_CASE("tool calls: render, the byte-for-byte example of chat.h, and parse_completion reading them") {
  CHECK(render_tool_call("48213*977") == "<tool_call>48213*977</tool_call>");
  CHECK(render_tool_result("47104101") == "<tool_result>47104101</tool_result>");
  CHECK(render_tool_turn("1/0", "error: division by zero") ==
        "<tool_call>1/0</tool_call><tool_result>error: division by zero</tool_result>");
  const std::string example = "<think>\n48213 * 977 = " + render_tool_turn("48213*977", "47104101") +
                              "\n</think>\n" + "47104101<|endoftext|>";
  CHECK(example ==
        "<think>\n48213 * 977 = <tool_call>48213*977</tool_call><tool_result>47104101</tool_result>\n</think>\n"
        "47104101<|endoftext|>");
  const ParsedCompletion c = parse_completion(example);
  CHECK(c.well_formed);
  CHECK(c.tool_calls_well_formed);
  CHECK(c.n_tool_calls == 1);
  CHECK(c.answer == "47104101");
  CHECK(c.think == "48213 * 977 = <tool_call>48213*977</tool_call><tool_result>47104101</tool_result>");
  CHECK_FALSE(c.answer_has_special);
  // two calls, one refused by the calculator: still well formed (the format does not judge the arithmetic)
  const ParsedCompletion two = parse_completion("<think>\n" + render_tool_turn("2*3", "6") + "\n" +
                                                render_tool_turn("1/0", "error: division by zero") +
                                                "\n</think>\n6<|endoftext|>");
  CHECK(two.well_formed);
  CHECK(two.n_tool_calls == 2);
  // no tool tag: as before tool calls existed
  const ParsedCompletion plain = parse_completion("<think>\na\n</think>\n5<|endoftext|>");
  CHECK(plain.well_formed);
  CHECK(plain.tool_calls_well_formed);
  CHECK(plain.n_tool_calls == 0);

  struct Bad {
    std::string text;
    const char* why;
  };
  const std::vector<Bad> bad = {
      {"<think>a</think>" + render_tool_turn("1", "1") + "5", "a call in the answer"},
      {"<think>a</think>5" + render_tool_turn("1", "1"), "a call after the answer"},
      {"<think>a <tool_call>1</tool_call></think>5", "a call without a result"},
      {"<think>a <tool_call>1</tool_call> <tool_result>1</tool_result></think>5", "bytes between call and result"},
      {"<think>a <tool_result>1</tool_result></think>5", "a result without a call"},
      {"<think>a <tool_call>1</tool_result></think>5", "mismatched tags"},
      {"<think>a </tool_call><tool_result>1</tool_result></think>5", "no opening tag"},
      {"<think>a <tool_call><tool_call>1</tool_call><tool_result>1</tool_result></think>5", "an opener twice"},
      {"<think>a " + render_tool_turn("1<|user|>", "1") + "</think>5", "a special token in the call"},
      {"<think>a " + render_tool_turn("1", "1<think>") + "</think>5", "a special token in the result"},
      {render_tool_turn("1", "1") + "<think>a</think>5", "a call before <think>"},
      {"<think>a " + render_tool_turn("1", "1"), "an unclosed think block"},
  };
  for (const Bad& b : bad) {
    CAPTURE(b.why);
    const ParsedCompletion p = parse_completion(b.text);
    CHECK_FALSE(p.tool_calls_well_formed);
    CHECK_FALSE(p.well_formed);
  }
  // the tags after <|endoftext|> are not part of the completion
  const ParsedCompletion after = parse_completion("<think>a</think>5<|endoftext|></tool_call>");
  CHECK(after.well_formed);
  CHECK(after.n_tool_calls == 0);
}

TEST_CASE("find_pending_tool_call / count_tool_calls") {
  auto pending = find_pending_tool_call("<think>\n2*3 = <tool_call>2*3</tool_call>");
  REQUIRE(pending.has_value());
  CHECK(pending->has_open);
  CHECK(pending->expression == "2*3");
  // the expression verbatim, spaces and junk included (the calculator judges it)
  pending = find_pending_tool_call("<tool_call> 1 + <think>\xff</tool_call>");
  REQUIRE(pending.has_value());
  CHECK(pending->expression == " 1 + <think>\xff");
  CHECK(find_pending_tool_call("<tool_call></tool_call>")->expression == "");
  CHECK(find_pending_tool_call("<tool_call></tool_call>")->has_open);
  // answered already, or not ended: nothing pending
  CHECK_FALSE(find_pending_tool_call("<tool_call>2*3</tool_call><tool_result>6</tool_result>").has_value());
  CHECK_FALSE(find_pending_tool_call("<tool_call>2*3</tool_call> ").has_value());
  CHECK_FALSE(find_pending_tool_call("<tool_call>2*3").has_value());
  CHECK_FALSE(find_pending_tool_call("").has_value());
  CHECK_FALSE(find_pending_tool_call("</tool_call").has_value());
  // the second of two calls
  pending = find_pending_tool_call(render_tool_turn("1+1", "2") + " then <tool_call>2+2</tool_call>");
  REQUIRE(pending.has_value());
  CHECK(pending->expression == "2+2");
  // a close without its own opener
  for (const std::string& s : {std::string("abc</tool_call>"), std::string("</tool_call>"),
                               render_tool_turn("1", "1") + "2</tool_call>",
                               std::string("<tool_call>1</tool_call></tool_call>")}) {
    CAPTURE(s);
    pending = find_pending_tool_call(s);
    REQUIRE(pending.has_value());
    CHECK_FALSE(pending->has_open);
    CHECK(pending->expression == "");
  }
  CHECK(count_tool_calls("") == 0);
  CHECK(count_tool_calls("<tool_call>1") == 0);
  CHECK(count_tool_calls(render_tool_turn("1", "1") + render_tool_turn("2", "2") + "</tool_call>") == 3);
}
