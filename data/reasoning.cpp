// data/reasoning.cpp — the arithmetic reasoning family, its worked solutions and its hash splits
// (see reasoning.h).
#include "data/reasoning.h"

#include <sstream>

#include <algorithm>
#include <stdexcept>
#include <unordered_set>

#include "data/generators.h"

namespace sg::data {

namespace {

uint64_t splitmix64_finalise(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

void check_level(int level, const char* op) {
  if (level < 1 || level > 3)
    throw std::invalid_argument(std::string("[") + op + "] level must be 1, 2 or 3, got " + std::to_string(level));
}

std::string join_steps(const std::vector<std::string>& steps) {
  std::string s;
  for (size_t k = 0; k < steps.size(); ++k) s += (k ? "\n" : "") + steps[k];
  return s;
}

// "a op b [op c]" with single spaces; ops from "+-*".
std::string format_expression(const std::vector<int64_t>& nums, const std::vector<char>& ops) {
  std::string e = std::to_string(nums[0]);
  for (size_t k = 0; k < ops.size(); ++k) e += std::string(" ") + ops[k] + " " + std::to_string(nums[k + 1]);
  return e;
}

}  // namespace

const char* split_name(Split s) {
  switch (s) {
    case Split::train: return "train";
    case Split::val: return "val";
    case Split::test: return "test";
  }
  return "?";
}

Split parse_split(std::string_view name) {
  if (name == "train") return Split::train;
  if (name == "val") return Split::val;
  if (name == "test") return Split::test;
  throw std::invalid_argument("[parse_split] expected train, val or test, got \"" + std::string(name) + "\"");
}

std::string canonical_expression(std::string_view expression) {
  std::string c;
  for (char ch : expression)
    if (!is_space(ch)) c += ch;
  return c;
}

uint64_t expression_hash(std::string_view expression) {
  uint64_t h = 0xcbf29ce484222325ULL;  // FNV-1a 64
  for (char ch : expression) {
    if (is_space(ch)) continue;  // = hashing canonical_expression(expression)
    h ^= (unsigned char)ch;
    h *= 0x100000001b3ULL;
  }
  return splitmix64_finalise(h);
}

Split split_of(std::string_view expression) {
  const uint64_t bucket = expression_hash(expression) % 100;
  return bucket < 5 ? Split::test : bucket < 10 ? Split::val : Split::train;
}

int reasoning_level(std::string_view expression) {
  // Tokenise the canonical form: number (op number)*, numbers without sign or leading zeros.
  const std::string c = canonical_expression(expression);
  std::vector<int64_t> nums;
  size_t i = 0;
  for (;;) {
    const size_t start = i;
    while (i < c.size() && c[i] >= '0' && c[i] <= '9') ++i;
    const size_t len = i - start;
    if (len == 0 || len > 3 || (len > 1 && c[start] == '0')) return 0;
    nums.push_back(std::stoll(c.substr(start, len)));
    if (i == c.size()) break;
    if (c[i] != '+' && c[i] != '-' && c[i] != '*') return 0;
    ++i;
  }
  int64_t max_num = 0;
  for (int64_t v : nums) max_num = std::max(max_num, v);
  if (nums.size() == 2) return max_num <= 99 ? 1 : 0;
  if (nums.size() == 3) return max_num <= 99 ? 2 : 3;  // len <= 3 already bounds them by 999
  return 0;
}

ReasoningProblem make_reasoning_problem(std::string_view expression, std::string question) {
  ReasoningProblem p;
  p.expression = std::string(expression);
  std::vector<std::string> steps;
  p.answer = evaluate_expression(p.expression, &steps);
  p.think = join_steps(steps);
  p.level = reasoning_level(expression);
  p.question = question.empty() ? "What is " + p.expression + "?" : std::move(question);
  return p;
}

// ---- column arithmetic (SolutionStyle::columns) --------------------------------------------------------

namespace {

std::vector<int> digits_of(int64_t v) {  // units first; 0 -> {0}
  std::vector<int> d;
  do {
    d.push_back((int)(v % 10));
    v /= 10;
  } while (v > 0);
  return d;
}

// a + b, a, b >= 0: one line per column, then "a + b = s".
void column_add(int64_t a, int64_t b, std::vector<std::string>& out) {
  std::vector<int> da = digits_of(a), db = digits_of(b);
  const size_t n = std::max(da.size(), db.size());
  int carry = 0;
  for (size_t i = 0; i < n; i++) {
    const int x = i < da.size() ? da[i] : 0, y = i < db.size() ? db[i] : 0, s = x + y + carry;
    out.push_back(std::to_string(x) + " + " + std::to_string(y) + (carry ? " + " + std::to_string(carry) : "") + " = " + std::to_string(s));
    carry = s / 10;
  }
  out.push_back(std::to_string(a) + " + " + std::to_string(b) + " = " + std::to_string(a + b));
}

// a − b with a >= b >= 0: one line per column ("14 - 8 = 6" when it borrows, "7 - 1 - 3 = 3" after a borrow).
void column_sub_columns(int64_t a, int64_t b, std::vector<std::string>& out) {
  std::vector<int> da = digits_of(a), db = digits_of(b);
  int borrow = 0;
  for (size_t i = 0; i < da.size(); i++) {
    const int x = da[i], y = i < db.size() ? db[i] : 0;
    const int top = x - borrow;
    const int next_borrow = top < y ? 1 : 0;
    const int shown = x + 10 * next_borrow;
    out.push_back(std::to_string(shown) + (borrow ? " - " + std::to_string(borrow) : "") + " - " + std::to_string(y) + " = " +
                  std::to_string(shown - borrow - y));
    borrow = next_borrow;
  }
}

void column_sub(int64_t a, int64_t b, std::vector<std::string>& out) {
  if (a >= b) {
    column_sub_columns(a, b, out);
  } else {
    column_sub_columns(b, a, out);
    out.push_back(std::to_string(b) + " - " + std::to_string(a) + " = " + std::to_string(b - a));
  }
  out.push_back(std::to_string(a) + " - " + std::to_string(b) + " = " + std::to_string(a - b));
}

// n × d with d one digit: "d * n_i (+ carry) = p" per digit of n, then the result line in the original order.
void column_mul(int64_t a, int64_t b, std::vector<std::string>& out) {
  const bool a_is_digit = a < 10;
  const int64_t n = a_is_digit ? b : a;
  const int d = (int)(a_is_digit ? a : b);
  int carry = 0;
  for (int x : digits_of(n)) {
    const int p = d * x + carry;
    out.push_back(std::to_string(d) + " * " + std::to_string(x) + (carry ? " + " + std::to_string(carry) : "") + " = " + std::to_string(p));
    carry = p / 10;
  }
  out.push_back(std::to_string(a) + " * " + std::to_string(b) + " = " + std::to_string(a * b));
}

// One "a op b = c" step line -> its column lines (or the line itself).
void expand_step(const std::string& line, std::vector<std::string>& out) {
  std::istringstream in(line);
  int64_t a = 0, b = 0, c = 0;
  std::string op, eq;
  if (!(in >> a >> op >> b >> eq >> c) || eq != "=" || a < 0 || b < 0) {
    out.push_back(line);
    return;
  }
  if (op == "+") column_add(a, b, out);
  else if (op == "-") column_sub(a, b, out);
  else if (op == "*" && (a < 10 || b < 10)) column_mul(a, b, out);
  else out.push_back(line);
}

}  // namespace

SolutionStyle parse_solution_style(std::string_view name) {
  if (name == "steps") return SolutionStyle::steps;
  if (name == "columns") return SolutionStyle::columns;
  throw std::invalid_argument("unknown solution style '" + std::string(name) + "' (steps or columns)");
}

std::string worked_solution(const ReasoningProblem& p, SolutionStyle style) {
  if (style == SolutionStyle::steps) return p.think;
  std::vector<std::string> lines;
  std::istringstream in(p.think);
  for (std::string line; std::getline(in, line);) {
    std::vector<std::string> expanded;
    expand_step(line, expanded);
    for (std::string& l : expanded)  // a one-column step's column line is its result line: keep it once
      if (lines.empty() || l != lines.back()) lines.push_back(std::move(l));
  }
  return join_steps(lines);
}

void apply_solution_style(std::vector<ReasoningProblem>& problems, SolutionStyle style) {
  for (ReasoningProblem& p : problems) p.think = worked_solution(p, style);
}

ReasoningProblem generate_reasoning_problem(Rng& rng, int level) {
  check_level(level, "generate_reasoning_problem");
  const int n_ops = level == 1 ? 1 : 2;
  const uint64_t n_values = level == 3 ? 1000 : 100;
  std::vector<char> ops;
  for (int k = 0; k < n_ops; ++k) ops.push_back("+-*"[rng.randint(3)]);
  std::vector<int64_t> nums(n_ops + 1);
  for (;;) {  // level 3: redraw the operands until one is >= 100 (all < 100 is a level-2 problem)
    int64_t max_num = 0;
    for (int64_t& v : nums) {
      v = (int64_t)rng.randint(n_values);
      max_num = std::max(max_num, v);
    }
    if (level != 3 || max_num >= 100) break;
  }
  return make_reasoning_problem(format_expression(nums, ops));
}

std::vector<ReasoningProblem> reasoning_split(Split split, uint64_t seed, int n, int level) {
  check_level(level, "reasoning_split");
  if (n < 0) throw std::invalid_argument("[reasoning_split] n must be >= 0, got " + std::to_string(n));
  // One stream per (seed, split, level), so asking for val does not shift the train problems.
  Rng rng(splitmix64_finalise(seed ^ splitmix64_finalise(0x5eed0000ULL + (uint64_t)split * 16 + (uint64_t)level)));
  std::vector<ReasoningProblem> out;
  std::unordered_set<std::string> seen;
  // A draw is rejected when it is in another split or already taken. A million rejections in a row means
  // the split has (almost surely) no problem left: level 1 test, with ~1500 problems, needs at most ~3e4
  // draws for its last one.
  const int64_t max_rejections = 1000000;
  int64_t rejections = 0;
  while ((int)out.size() < n) {
    ReasoningProblem p = generate_reasoning_problem(rng, level);
    if (split_of(p.expression) != split || !seen.insert(p.expression).second) {
      if (++rejections == max_rejections)
        throw std::runtime_error("[reasoning_split] the " + std::string(split_name(split)) + " split of level " +
                                 std::to_string(level) + " ran out of distinct problems after " +
                                 std::to_string(out.size()) + " (asked for " + std::to_string(n) + ")");
      continue;
    }
    rejections = 0;
    out.push_back(std::move(p));
  }
  return out;
}

}  // namespace sg::data
