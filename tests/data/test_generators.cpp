// tests/data/test_generators.cpp — story grammar (determinism, no leftover slots, length, vocabulary)
// and arithmetic problems (answers checked by an independent evaluator, worked steps checked one by one,
// answer extraction).
#include <doctest/doctest.h>

#include <cctype>
#include <regex>
#include <set>

#include "data/generators.h"

using namespace sg::data;

namespace {

std::vector<std::string> split_corpus(const std::string& corpus) {
  std::vector<std::string> stories;
  const std::string sep = "\n<|endoftext|>\n";
  size_t start = 0;
  for (size_t p; (p = corpus.find(sep, start)) != std::string::npos; start = p + sep.size())
    stories.push_back(corpus.substr(start, p - start));
  return stories;
}

// Shunting-yard evaluation (a different algorithm from evaluate_expression's recursive descent).
int64_t shunting_yard(const std::string& e) {
  std::vector<int64_t> vals;
  std::vector<char> ops;
  auto prec = [](char op) { return op == '*' ? 2 : (op == '+' || op == '-') ? 1 : 0; };
  auto reduce = [&]() {
    const int64_t b = vals.back();
    vals.pop_back();
    const int64_t a = vals.back();
    vals.pop_back();
    const char op = ops.back();
    ops.pop_back();
    vals.push_back(op == '+' ? a + b : op == '-' ? a - b : a * b);
  };
  bool expect_operand = true;
  for (size_t i = 0; i < e.size(); ++i) {
    const char c = e[i];
    if (c == ' ') continue;
    if (std::isdigit((unsigned char)c) || (c == '-' && expect_operand)) {
      size_t j = i + (c == '-');
      int64_t v = 0;
      while (j < e.size() && std::isdigit((unsigned char)e[j])) v = v * 10 + (e[j++] - '0');
      vals.push_back(c == '-' ? -v : v);
      i = j - 1;
      expect_operand = false;
    } else if (c == '(') {
      ops.push_back(c);
    } else if (c == ')') {
      while (ops.back() != '(') reduce();
      ops.pop_back();
    } else {
      while (!ops.empty() && prec(ops.back()) >= prec(c)) reduce();
      ops.push_back(c);
      expect_operand = true;
    }
  }
  while (!ops.empty()) reduce();
  REQUIRE(vals.size() == 1);
  return vals[0];
}

}  // namespace

TEST_CASE("stories: deterministic by seed, different across seeds") {
  const std::string a = generate_story_corpus(1, 50), b = generate_story_corpus(1, 50);
  const std::string c = generate_story_corpus(2, 50);
  CHECK(a == b);
  CHECK(a != c);
  sg::Rng r1(77), r2(77);
  CHECK(generate_story(r1) == generate_story(r2));
  CHECK(generate_story(r1) != generate_story(r1));  // the stream moves on
}

TEST_CASE("stories: well formed, 3-8 sentences, no template slots, a few hundred words") {
  const std::string corpus = generate_story_corpus(123, 1500);
  const auto stories = split_corpus(corpus);
  REQUIRE(stories.size() == 1500);
  std::set<std::string> distinct(stories.begin(), stories.end());
  CHECK(distinct.size() >= 1490);

  std::set<std::string> vocabulary;
  for (const std::string& s : stories) {
    INFO(s);
    CHECK(s.find('{') == std::string::npos);
    CHECK(s.find('}') == std::string::npos);
    CHECK(s.find("<|") == std::string::npos);
    CHECK(s.find("  ") == std::string::npos);
    const int n = count_sentences(s);
    CHECK(n >= 3);
    CHECK(n <= 8);
    CHECK(std::isupper((unsigned char)s[0]));
    CHECK((s.back() == '.' || s.back() == '!' || s.back() == '"'));
    for (char ch : s) CHECK(((ch >= 0x20 && ch < 0x7f) || ch == '\n'));
    std::string word;
    for (char ch : s + " ") {
      if (std::isalpha((unsigned char)ch))
        word += (char)std::tolower((unsigned char)ch);
      else if (!word.empty())
        vocabulary.insert(word), word.clear();
    }
  }
  MESSAGE("story vocabulary: " << vocabulary.size() << " distinct words");
  CHECK(vocabulary.size() >= 200);
  CHECK(vocabulary.size() <= 1000);
}

TEST_CASE("stories: the hero keeps name and pronouns") {
  // The openings that name the hero: "... named X.", "... called X who ...", "X was a ...".
  sg::Rng rng(5);
  const std::regex named(R"((?:named|called) ([A-Z][a-z]+))");
  for (int i = 0; i < 300; ++i) {
    const std::string s = generate_story(rng);
    std::smatch m;
    const std::string first = s.substr(0, s.find('.'));
    std::string hero;
    if (std::regex_search(first, m, named))
      hero = m[1];
    else
      hero = first.substr(0, first.find(' '));
    INFO(s);
    // the hero is mentioned again after the opening
    CHECK(s.find(hero, first.size()) != std::string::npos);
  }
  CHECK(count_sentences("He said, \"Hi there.\" Then he left. \"Thank you!\" said Tom. Bye!") == 4);
}

TEST_CASE("arithmetic: answers verified by an independent evaluator, steps checked") {
  const std::regex step(R"((-?\d+) ([-+*]) (-?\d+) = (-?\d+))");
  for (int d = 1; d <= 4; ++d) {
    sg::Rng rng(1000 + d);
    int n_word = 0;
    for (int i = 0; i < 300; ++i) {
      const ArithmeticProblem p = generate_arithmetic(rng, d);
      INFO("difficulty " << d << ": " << p.question << " | " << p.expression << " | " << p.worked_solution);
      n_word += p.word_problem;
      CHECK(p.difficulty == d);
      CHECK(shunting_yard(p.expression) == p.value);
      CHECK(evaluate_expression(p.expression) == p.value);
      CHECK(p.answer == std::to_string(p.value));
      CHECK(extract_final_answer(p.worked_solution) == p.value);
      if (d < 4 || p.word_problem) CHECK(p.value >= 0);
      if (!p.word_problem) CHECK(p.question.find(p.expression) != std::string::npos);
      if (p.word_problem) CHECK(p.question.find("How many") != std::string::npos);
      CHECK(p.question.find('{') == std::string::npos);
      int n_steps = 0;
      for (auto it = std::sregex_iterator(p.worked_solution.begin(), p.worked_solution.end(), step);
           it != std::sregex_iterator(); ++it, ++n_steps) {
        const int64_t a = std::stoll((*it)[1]), b = std::stoll((*it)[3]), c = std::stoll((*it)[4]);
        const char op = std::string((*it)[2])[0];
        CHECK((op == '+' ? a + b : op == '-' ? a - b : a * b) == c);
      }
      CHECK(n_steps >= std::min(d, 3));  // difficulty 4: 3-4 steps
    }
    CHECK(n_word > 100);
    CHECK(n_word < 200);
  }
  sg::Rng a(3), b(3);
  CHECK(generate_arithmetic(a, 2).question == generate_arithmetic(b, 2).question);
  CHECK_THROWS_AS(generate_arithmetic(a, 0), std::invalid_argument);
  CHECK_THROWS_AS(generate_arithmetic(a, 5), std::invalid_argument);
}

TEST_CASE("arithmetic: evaluate_expression") {
  std::vector<std::string> steps;
  CHECK(evaluate_expression("12 + 7 * 3", &steps) == 33);
  CHECK(steps == std::vector<std::string>{"7 * 3 = 21", "12 + 21 = 33"});
  CHECK(evaluate_expression("(12 + 7) * 3") == 57);
  CHECK(evaluate_expression("10 - 4 - 3") == 3);
  CHECK(evaluate_expression("2 * -3 + 1") == -5);
  CHECK_THROWS_AS(evaluate_expression("2 +"), std::invalid_argument);
  CHECK_THROWS_AS(evaluate_expression("(2 + 3"), std::invalid_argument);
  CHECK_THROWS_AS(evaluate_expression("2 $ 3"), std::invalid_argument);
}

TEST_CASE("extract_final_answer") {
  CHECK(extract_final_answer("Tom has 3 + 5 = 8 apples. The answer is 8.") == 8);
  CHECK(extract_final_answer("so 2 + 2 = 4\n#### 4") == 4);
  CHECK(extract_final_answer("#### 1,234") == 1234);
  CHECK(extract_final_answer("we get \\boxed{42} and 7 more words") == 42);
  CHECK(extract_final_answer("\\boxed{1} then \\boxed{-17}") == -17);
  CHECK(extract_final_answer("Answer: -5") == -5);
  CHECK(extract_final_answer("<answer>12</answer>") == 12);
  CHECK(extract_final_answer("<think>3 * 4 = 12, minus 2</think> The ANSWER is 10 apples.") == 10);
  CHECK(extract_final_answer("first 3, then 9") == 9);
  CHECK(extract_final_answer("it is 8.0") == 8);
  CHECK(extract_final_answer("it is 8.5") == std::nullopt);
  CHECK(extract_final_answer("The answer is 7. Done.") == 7);
  CHECK(extract_final_answer("The answer is unknown, sorry") == std::nullopt);
  CHECK(extract_final_answer("no numbers here") == std::nullopt);
  CHECK(extract_final_answer("") == std::nullopt);
  CHECK(extract_final_answer("99999999999999999999999") == std::nullopt);  // does not fit int64
  CHECK(extract_final_answer("total: 1,000,000") == 1000000);
  CHECK(extract_final_answer("-3") == -3);
  CHECK(extract_final_answer("so x = -3") == -3);
  CHECK(extract_final_answer("it was 10-3") == 3);
}
