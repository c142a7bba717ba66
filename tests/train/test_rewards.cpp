// tests/train/test_rewards.cpp — the rule-based rewards on correct, wrong and adversarial completions
// (unclosed tags, two think blocks, several answers, an answer only inside <think>, int64 overflow, junk
// bytes, empty output, whitespace, negative numbers).
#include <doctest/doctest.h>

#include <cstring>

#include "data/chat.h"
#include "train/rewards.h"

using namespace sg;
using data::make_reasoning_problem;

namespace {

struct Case {
  std::string completion;
  double accuracy, format;
};

void check_cases(const data::ReasoningProblem& p, const std::vector<Case>& cases) {
  for (const Case& k : cases) {
    CAPTURE(data::escape_bytes(k.completion));
    CHECK(accuracy_reward(k.completion, p) == k.accuracy);
    CHECK(format_reward(k.completion, p) == k.format);
    const RewardTerms t = compute_rewards(k.completion, p);
    CHECK(t.accuracy == k.accuracy);
    CHECK(t.format == k.format);
    CHECK(t.total == doctest::Approx(1.0 * k.accuracy + 0.1 * k.format));
  }
}

}  // namespace

TEST_CASE("rewards: the worked completion scores 1 and 1; every reasoning problem's own solution too") {
  const data::ReasoningProblem p = make_reasoning_problem("37 + 48 * 2");
  const std::string good = data::render_completion(p.think, "133");
  CHECK(accuracy_reward(good, p) == 1.0);
  CHECK(format_reward(good, p) == 1.0);
  CHECK(compute_rewards(good, p).total == doctest::Approx(1.1));
  for (int level = 1; level <= 3; ++level)
    for (const auto& q : data::reasoning_split(data::Split::test, 4, 50, level)) {
      const std::string c = data::render_sft_example(q).text.substr(data::render_sft_example(q).assistant_start);
      CHECK(compute_rewards(c, q).total == doctest::Approx(1.1));
      CHECK(accuracy_reward(data::render_completion(q.think, std::to_string(q.answer + 1)), q) == 0.0);
    }
}

TEST_CASE("rewards: adversarial completions") {
  const data::ReasoningProblem p = make_reasoning_problem("37 + 48 * 2");  // 133
  check_cases(p, {
      {"<think>48 * 2 = 96\n37 + 96 = 133</think>133", 1, 1},
      {"<think>x</think>134", 0, 1},                                   // wrong answer, right format
      {"", 0, 0},                                                      // empty output
      {" \n\t ", 0, 0},
      {"133", 0, 0},                                                   // no think block: no answer after </think>
      {"<think>37 + 96 = 133", 0, 0},                                  // unclosed, answer only inside
      {"<think>so it is 133</think>", 0, 0},                           // answer only inside the think block
      {"<think>so it is 133</think>  \n", 0, 0},
      {"<think>a</think>132<think>b</think>133", 1, 0},                // two think blocks: format fails
      {"<think>a</think>133</think>", 0, 0},                           // a stray close after the answer
      {"<think>a</think>133 134", 0, 1},                               // several answers: no credit
      {"<think>a</think>134 133", 0, 1},
      {"<think>a</think>133\n133", 0, 1},
      {"<think>a</think>133.", 0, 1},                                  // not exactly an integer
      {"<think>a</think>1,33", 0, 1},
      {"<think>a</think>The answer is 133", 0, 1},
      {"<think>a</think>\\boxed{133}", 0, 1},
      {"\n\n  <think>a</think>\n  133  \n\n", 1, 1},                  // leading/trailing whitespace is fine
      {"x <think>a</think>133", 1, 0},                                 // text before <think>
      {"<think></think>133", 1, 0},                                    // empty reasoning
      {"<think>a</think>133<|endoftext|>", 1, 1},
      {"<think>a</think>133<|endoftext|>junk 134", 1, 1},              // after <|endoftext|> is not the completion
      {"<think>a</think>133<|user|>", 0, 0},                           // writes the next turn
      {"<think>a</think>+133", 1, 1},
      {"<think>a</think>0133", 1, 1},
      {"<think>\xff\xfe\x80</think>\xc3\x28", 0, 1},                   // invalid UTF-8: bytes, no throw
      {"<think>\xff</think>133\xff", 0, 1},
      {"<think>\xff</think>\xff" "133", 0, 1},
  });
}

TEST_CASE("rewards: huge numbers never throw and never wrap into a false positive") {
  const data::ReasoningProblem p = make_reasoning_problem("37 + 48 * 2");  // 133
  // 2^64 + 133 and 2^63 * 4 + 133 wrap to 133 in uint64 arithmetic.
  check_cases(p, {
      {"<think>a</think>18446744073709551749", 0, 1},
      {"<think>a</think>36893488147419103365", 0, 1},
      {"<think>a</think>-18446744073709551483", 0, 1},  // -(2^64 - 133)
      {"<think>a</think>" + std::string(5000, '9'), 0, 1},
      {"<think>a</think>" + std::string(5000, '0') + "133", 1, 1},  // leading zeros: still exactly 133
  });
  const data::ReasoningProblem big = make_reasoning_problem("999 * 999 * 999");
  CHECK(big.answer == 997002999);
  CHECK(accuracy_reward("<think>a</think>997002999", big) == 1.0);
  data::ReasoningProblem extreme = p;
  extreme.answer = INT64_MIN;
  CHECK(accuracy_reward("<think>a</think>-9223372036854775808", extreme) == 1.0);
  CHECK(accuracy_reward("<think>a</think>-9223372036854775809", extreme) == 0.0);
  extreme.answer = INT64_MAX;
  CHECK(accuracy_reward("<think>a</think>9223372036854775807", extreme) == 1.0);
  CHECK(accuracy_reward("<think>a</think>9223372036854775808", extreme) == 0.0);
}

TEST_CASE("rewards: negative answers") {
  const data::ReasoningProblem p = make_reasoning_problem("12 - 40");  // -28
  check_cases(p, {
      {data::render_completion(p.think, "-28"), 1, 1},
      {"<think>a</think>28", 0, 1},
      {"<think>a</think>- 28", 0, 1},
      {"<think>a</think>--28", 0, 1},
      {"<think>a</think>+-28", 0, 1},
      {"<think>a</think> -28 ", 1, 1},
  });
}

TEST_CASE("rewards: named terms, weights, the function table") {
  const data::ReasoningProblem p = make_reasoning_problem("2 * 3");
  const RewardTerms t = compute_rewards("<think>2 * 3 = 6</think>6", p, RewardWeights{2.0, 0.5});
  CHECK(t.accuracy == 1.0);
  CHECK(t.format == 1.0);
  CHECK(t.total == 2.5);
  const RewardTerms f = compute_rewards("<think>a</think>7", p, RewardWeights{2.0, 0.5});
  CHECK(f.total == 0.5);
  const auto named = compute_rewards("6", p).named();
  REQUIRE(named.size() == 3);
  CHECK(named[0].first == "accuracy");
  CHECK(named[0].second == 0.0);
  CHECK(named[1].first == "format");
  CHECK(named[2].first == "total");
  CHECK(named[2].second == 0.0);
  const auto& fns = reward_functions();
  REQUIRE(fns.size() == 2);
  CHECK(std::strcmp(fns[0].name, "accuracy") == 0);
  CHECK(std::strcmp(fns[1].name, "format") == 0);
  CHECK(fns[0].fn("<think>a</think>6", p) == 1.0);
  CHECK(fns[1].fn("<think>a</think>7", p) == 1.0);
  CHECK(fns[1].fn("<think>a", p) == 0.0);
}
