// data/generators.h — synthetic training data, deterministic from a seed (README.md, Design §4): a children's
// story corpus from a small probabilistic grammar, and arithmetic problems with verifiable answers.
//
// Same seed => same text on every machine: every random choice goes through sg::Rng (autograd/rng.h),
// drawn in a fixed order. What this is not: a language model. The grammar is a few hundred words and a
// dozen story shapes — enough that a tiny model learns names, pronouns and cause/effect from it, small
// enough that a student can read all of it in generators.cpp.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "autograd/rng.h"

namespace sg::data {

// ---- stories -------------------------------------------------------------------------------------

// One story: a hero (named child or animal, consistent pronouns), a place, maybe a favourite object,
// a problem (lost, stuck in a tree, broken, rain, hunger, a scary noise, loneliness), an optional
// helper (friend, animal friend, parent), a resolution, an ending and maybe a moral. 3-8 sentences.
std::string generate_story(Rng& rng);

// n_stories stories, each followed by "\n<|endoftext|>\n" (the layout of TinyStories text files, so
// the real and the generated corpus go through the same pipeline).
std::string generate_story_corpus(uint64_t seed, int n_stories);

// Sentence count by punctuation: a '.', '!' or '?' (optionally followed by a closing quote) that ends
// the text or is followed by whitespace and then an upper-case letter or an opening quote.
int count_sentences(const std::string& text);

// ---- arithmetic ----------------------------------------------------------------------------------

struct ArithmeticProblem {
  std::string question;         // "Tom has 3 apples. He buys 5 more apples. How many apples does Tom have now?"
  std::string answer;           // "8"
  int64_t value = 0;            // 8
  std::string worked_solution;  // "Tom starts with 3 apples. 3 + 5 = 8. The answer is 8."
  std::string expression;       // "3 + 5": the whole computation, for checking `value` independently
  int difficulty = 1;
  bool word_problem = false;  // a story problem (true) or a bare expression "12 + 7 * 3 = ?" (false)
};

// difficulty 1: one + or -, numbers up to 20;  2: two steps, * appears, numbers up to 30;
//            3: three steps, parentheses (bare) or "doubles" (word), up to 50;
//            4: four operations (bare, may go negative) or 3-4 steps (word), up to 100.
// Answers stay within +-5000 and, except bare expressions at 4, are never negative (nor are the steps).
// Half word problems, half bare expressions. Throws std::invalid_argument outside 1..4.
ArithmeticProblem generate_arithmetic(Rng& rng, int difficulty);
ArithmeticProblem generate_word_problem(Rng& rng, int difficulty);
ArithmeticProblem generate_expression_problem(Rng& rng, int difficulty);

// Evaluates "12 + 7 * (3 - 1)" (integers, + - *, parentheses, unary minus on numbers) with the usual
// precedence; steps (if given) receives "7 * 2 = 14"-style lines in evaluation order. Throws
// std::invalid_argument naming the position on a malformed expression.
int64_t evaluate_expression(const std::string& expr, std::vector<std::string>* steps = nullptr);

// The final integer answer in a model completion, for rule-based rewards. In order of preference:
//   the last \boxed{...}; else the first number after the last "####"; else the first number after
//   the last "answer" (any case: "The answer is 8", "Answer: 8", "<answer>8</answer>"); else the last
//   number in the text. Numbers may have a sign and thousands commas ("-1,234"); "8.0" counts as 8,
//   "8.5" is not an integer answer. nullopt when there is none (or it does not fit int64).
std::optional<int64_t> extract_final_answer(const std::string& completion);

}  // namespace sg::data
