// data/reasoning.h — a verifiable task family for R1-style training: integer arithmetic expressions whose
// answers a rule checks exactly, each with a worked solution to put inside <think> … </think> (models/README.md
// §10; DeepSeek-R1 §2.2.2, rule-based rewards need a task whose answer can be checked by rule).
//
//   level 1  "37 + 48"          two operands 0..99, op one of + - *
//   level 2  "37 + 48 * 2"      three operands 0..99, two ops, the usual precedence (* first)
//   level 3  "370 - 48 * 912"   three operands 0..999, at least one of them >= 100 (so no level-3 problem
//                               is also a level-2 one: the level is a function of the expression)
// Answers may be negative ("12 - 40" = -28). The worked solution is evaluate_expression's steps
// (data/generators.h), one line per operation in evaluation order:
//   think = "48 * 2 = 96\n37 + 96 = 133"
//
// Held-out splits: a problem's split (train / val / test) is decided by a hash of its canonical expression
// alone, never by a seed, so a test problem is never a training problem whatever seeds either side used.
// Same seed => same problems on every machine (sg::Rng, drawn in a fixed order).
//
// What this is not: a curriculum or a word-problem generator (generate_word_problem in generators.h is one),
// and it has no parentheses or division.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "autograd/rng.h"

namespace sg::data {

struct ReasoningProblem {
  std::string expression;  // "37 + 48 * 2": canonical spacing, one space around each operator
  int64_t answer = 0;      // 133
  std::string question;    // "What is 37 + 48 * 2?"
  int level = 0;           // 1..3 for this family, 0 for an expression from a file that is outside it
  std::string think;       // "48 * 2 = 96\n37 + 96 = 133": no leading or trailing newline
};

enum class Split { train, val, test };
const char* split_name(Split s);                // "train", "val", "test"
Split parse_split(std::string_view name);       // throws std::invalid_argument naming the string

// The expression with every ASCII whitespace byte removed: "37 + 48*2" and "37+48 * 2" are one problem.
std::string canonical_expression(std::string_view expression);
// FNV-1a 64 of the canonical expression, then splitmix64's finaliser (so nearby strings spread out).
uint64_t expression_hash(std::string_view expression);
// hash % 100: 0..4 -> test, 5..9 -> val, 10..99 -> train (90 / 5 / 5 %).
Split split_of(std::string_view expression);

// 1, 2 or 3 when `expression` is in the family above (canonical spacing not required), else 0.
int reasoning_level(std::string_view expression);

// A problem from an expression: answer and think from evaluate_expression, question "What is <expr>?" (or
// `question` when non-empty), level from reasoning_level. Throws std::invalid_argument (evaluate_expression's
// message) on a malformed expression or an int64 overflow.
ReasoningProblem make_reasoning_problem(std::string_view expression, std::string question = "");

// How the worked solution inside <think> is written.
//   steps    one line per operation, "48 * 2 = 96" (ReasoningProblem::think as made above)
//   columns  every + and − (and every × by a one-digit number) worked digit by digit, units first, the way a
//            person does it on paper, then the operation's result line. Each line is a one-digit fact, so a
//            small model can learn the procedure instead of memorising a 100 × 100 table:
//              37 + 48:  "7 + 8 = 15\n3 + 4 + 1 = 8\n37 + 48 = 85"          (a carry joins the next column)
//              74 - 38:  "14 - 8 = 6\n7 - 1 - 3 = 3\n74 - 38 = 36"          (a borrow: 10 added, 1 taken next)
//              12 - 40:  "40 - 12 = 28\n..." then "12 - 40 = -28"           (a < b: b − a, negated)
//              37 * 8:   "8 * 7 = 56\n8 * 3 + 5 = 29\n37 * 8 = 296"
//            Missing digits are 0 ("3 + 39": "3 + 9 = 12\n0 + 3 + 1 = 4\n3 + 39 = 42"). A × of two numbers
//            ≥ 10, and any step with a negative operand, stay one line.
enum class SolutionStyle { steps, columns };
SolutionStyle parse_solution_style(std::string_view name);  // "steps" | "columns"; throws naming the string
// The worked solution of p in `style` (steps: p.think; columns: from p.think's lines).
std::string worked_solution(const ReasoningProblem& p, SolutionStyle style);
// p.think = worked_solution(p, style) for every problem.
void apply_solution_style(std::vector<ReasoningProblem>& problems, SolutionStyle style);

// One problem of `level` (1..3), any split. Throws std::invalid_argument outside 1..3.
ReasoningProblem generate_reasoning_problem(Rng& rng, int level);

// n distinct problems of `level` that all belong to `split`, deterministic from (split, seed, level): the
// generator draws from Rng(mix(seed, split, level)) and keeps the problems whose split_of() is `split`.
// Throws std::invalid_argument on a bad level or n < 0, and std::runtime_error when the split runs out of
// distinct problems (level 1 has 30000 problems in all, so about 1500 in test).
std::vector<ReasoningProblem> reasoning_split(Split split, uint64_t seed, int n, int level);

}  // namespace sg::data
