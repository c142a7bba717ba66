// tests/data/test_tool.cpp — the calculator executor (data/tool.h): values against C++ arithmetic written in the
// test, every error string exactly on adversarial calls, and 20k random calls against an independent evaluator
// (shunting-yard to RPN over __int128) that agrees on every value and on every error's kind.
#include <doctest/doctest.h>

#include <climits>
#include <functional>
#include <string>
#include <vector>

#include "autograd/rng.h"
#include "data/tool.h"

using namespace sg::data;

namespace {

static_assert(noexcept(run_calculator(std::string_view{}, ToolLimits{})));

ToolResult calc(std::string_view s, const ToolLimits& lim = {}) {
  ToolResult r;
  CHECK_NOTHROW(r = run_calculator(s, lim));
  return r;
}

std::string repeat(const std::string& s, int n) {
  std::string out;
  for (int i = 0; i < n; i++) out += s;
  return out;
}

// ---- the independent evaluator ----------------------------------------------------------------------
// Syntax by shunting-yard (an expect-operand / expect-operator state machine), then the RPN evaluated on a
// __int128 stack, every intermediate checked against the int64 range. It shares no code with data/tool.cpp.
enum class Kind { ok, syntax, div0, overflow };
struct Ref {
  Kind kind;
  int64_t value = 0;
};

Ref reference(std::string_view s, const ToolLimits& lim) {
  if ((int64_t)s.size() > lim.max_call_bytes) return {Kind::syntax};
  const int64_t max_depth = std::min<int64_t>(std::max<int64_t>(lim.max_depth, 0), kMaxToolDepth);
  struct Item {
    bool is_num;
    __int128 num;
    char op;  // + - * / % and 'u' (unary minus)
  };
  auto prec = [](char op) { return op == 'u' ? 3 : (op == '+' || op == '-') ? 1 : 2; };
  std::vector<Item> rpn;
  std::vector<char> ops;
  bool expect_operand = true, any = false;
  int64_t depth = 0;
  for (size_t i = 0; i < s.size(); i++) {
    const char c = s[i];
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') continue;
    any = true;
    if (expect_operand) {
      if (c >= '0' && c <= '9') {
        size_t j = i;
        __int128 v = 0;
        while (j < s.size() && s[j] >= '0' && s[j] <= '9') v = v * 10 + (s[j++] - '0');
        if ((int64_t)(j - i) > lim.max_digits) return {Kind::syntax};
        rpn.push_back({true, v, 0});
        i = j - 1;
        expect_operand = false;
      } else if (c == '-') {
        ops.push_back('u');  // prefix, right-associative: pushed without popping
      } else if (c == '(') {
        if (++depth > max_depth) return {Kind::syntax};
        ops.push_back('(');
      } else {
        return {Kind::syntax};
      }
    } else if (c == '+' || c == '-' || c == '*' || c == '/' || c == '%') {
      while (!ops.empty() && ops.back() != '(' && prec(ops.back()) >= prec(c)) rpn.push_back({false, 0, ops.back()}), ops.pop_back();
      ops.push_back(c);
      expect_operand = true;
    } else if (c == ')') {
      while (!ops.empty() && ops.back() != '(') rpn.push_back({false, 0, ops.back()}), ops.pop_back();
      if (ops.empty()) return {Kind::syntax};
      ops.pop_back();
      depth--;
    } else {
      return {Kind::syntax};
    }
  }
  if (!any || expect_operand) return {Kind::syntax};
  while (!ops.empty()) {
    if (ops.back() == '(') return {Kind::syntax};
    rpn.push_back({false, 0, ops.back()});
    ops.pop_back();
  }
  const __int128 lo = INT64_MIN, hi = INT64_MAX;
  std::vector<__int128> st;
  for (const Item& it : rpn) {
    if (it.is_num) {
      if (it.num > hi) return {Kind::overflow};
      st.push_back(it.num);
      continue;
    }
    __int128 r;
    if (it.op == 'u') {
      r = -st.back();
      st.pop_back();
    } else {
      const __int128 b = st.back();
      st.pop_back();
      const __int128 a = st.back();
      st.pop_back();
      if ((it.op == '/' || it.op == '%') && b == 0) return {Kind::div0};
      r = it.op == '+' ? a + b : it.op == '-' ? a - b : it.op == '*' ? a * b : it.op == '/' ? a / b : a % b;
    }
    if (r < lo || r > hi) return {Kind::overflow};
    st.push_back(r);
  }
  return {Kind::ok, (int64_t)st.back()};
}

}  // namespace

TEST_CASE("run_calculator: values equal the same arithmetic done in C++") {
  const int64_t int64_min = -2147483648LL * 4294967296LL;
  struct Case {
    const char* expr;
    int64_t value;
  };
  const Case cases[] = {
      {"0", 0},
      {"007", 7},
      {"1+2*3", 1 + 2 * 3},
      {"(1+2)*3", (1 + 2) * 3},
      {"100-10-1", 100 - 10 - 1},
      {"100/10/2", 100 / 10 / 2},
      {"2*(3+4)*5", 2 * (3 + 4) * 5},
      {"-2*3", -2 * 3},
      {"2*-3", 2 * -3},
      {"--5", 5},
      {"- - -5", -5},
      {"-(4-9)", -(4 - 9)},
      {"7/2", 7 / 2},
      {"-7/2", -7 / 2},
      {"7/-2", 7 / -2},
      {"-7%2", -7 % 2},
      {"7%-2", 7 % -2},
      {"17%5*3", 17 % 5 * 3},
      {"987654321*12345", 987654321LL * 12345LL},
      {"48213 * 977", 48213LL * 977LL},
      {"37 + 48 * 2", 37 + 48 * 2},
      {"370 - 48 * 912", 370 - 48 * 912},
      {" ( ( 1 ) ) ", 1},
      {"\t1\n+\r2 ", 3},
      {"((((((((((1+1))))))))))*2", 4},
      {"999999999999999999", 999999999999999999LL},
      {"999999999999999999*9", 999999999999999999LL * 9},
      {"-2147483648*4294967296", int64_min},
      {"(-2147483648*4294967296)%-1", 0},
      {"-(-2147483648*4294967296+1)", INT64_MAX},
      {"3037000499*3037000499", 3037000499LL * 3037000499LL},
      {"(12-40)*(3+-4)/7", (12 - 40) * (3 + -4) / 7},
  };
  for (const Case& c : cases) {
    CAPTURE(c.expr);
    const ToolResult r = calc(c.expr);
    CHECK(r.ok);
    CHECK(r.text == std::to_string(c.value));
  }
  // exactly 32 levels of parentheses is allowed, and 256 bytes is not too long
  CHECK(calc(repeat("(", 32) + "5" + repeat(")", 32)).text == "5");
  const std::string long_ok = repeat("1+", 127) + "10";  // 256 bytes
  REQUIRE(long_ok.size() == 256);
  CHECK(calc(long_ok).text == "137");
}

TEST_CASE("run_calculator: adversarial calls get the exact error string, never a throw") {
  struct Case {
    std::string expr;
    const char* error;
  };
  const std::vector<Case> cases = {
      {"", "error: empty call"},
      {"   ", "error: empty call"},
      {"\n\t\r ", "error: empty call"},
      {"((1+2)", "error: unbalanced parentheses at byte 0"},
      {"(1+(2*3)", "error: unbalanced parentheses at byte 0"},
      {"1+(2*(3)", "error: unbalanced parentheses at byte 2"},
      {")(", "error: unbalanced parentheses at byte 0"},
      {"(1+2))", "error: unbalanced parentheses at byte 5"},
      {"1)", "error: unbalanced parentheses at byte 1"},
      {"()", "error: unexpected ')' at byte 1"},
      {"(1 2)", "error: unexpected '2' at byte 3"},
      {"1 2", "error: unexpected '2' at byte 2"},
      {"1+", "error: unexpected end of call at byte 2"},
      {"(1+", "error: unexpected end of call at byte 3"},
      {"-", "error: unexpected end of call at byte 1"},
      {"1**2", "error: unexpected '*' at byte 2"},
      {"+1", "error: unexpected '+' at byte 0"},
      {"10^100", "error: unexpected '^' at byte 2"},
      {"x", "error: unexpected 'x' at byte 0"},
      {"2x", "error: unexpected 'x' at byte 1"},
      {"1.5", "error: unexpected '.' at byte 1"},
      {"1,000", "error: unexpected ',' at byte 1"},
      {"<think>1+1", "error: unexpected '<' at byte 0"},
      {"1+</tool_call>", "error: unexpected '<' at byte 2"},
      {"<tool_result>6</tool_result>", "error: unexpected '<' at byte 0"},
      {std::string("1+\0", 3), "error: unexpected '\\x00' at byte 2"},
      {"\xff", "error: unexpected '\\xff' at byte 0"},
      {"1\f", "error: unexpected '\\x0c' at byte 1"},
      {"99999999999999999999", "error: number longer than 18 digits"},
      {"1+0000000000000000001", "error: number longer than 18 digits"},  // leading zeros count
      {"9223372036854775807+1", "error: number longer than 18 digits"},
      {"1/0", "error: division by zero"},
      {"5%0", "error: division by zero"},
      {"1/(2-2)", "error: division by zero"},
      {"1/0 + 3037000500*3037000500", "error: division by zero"},  // the first error in evaluation order
      {"3037000500*3037000500 + 1/0", "error: overflow"},
      {"1/0+", "error: unexpected end of call at byte 4"},         // malformed wins over arithmetic
      {"3037000500*3037000500", "error: overflow"},
      {"999999999999999999*10", "error: overflow"},
      {"-999999999999999999*10-999999999999999999", "error: overflow"},
      {"(-2147483648*4294967296)/-1", "error: overflow"},
      {"-(-2147483648*4294967296)", "error: overflow"},
      {"-2147483648*4294967296-1", "error: overflow"},
      {repeat("(", 33) + "1" + repeat(")", 33), "error: nesting deeper than 32"},
      {repeat("(", 33), "error: nesting deeper than 32"},
      {std::string(257, '1'), "error: call longer than 256 bytes"},
      {repeat("(", 10000) + "1" + repeat(")", 10000), "error: call longer than 256 bytes"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.expr);
    const ToolResult r = calc(c.expr);
    CHECK_FALSE(r.ok);
    CHECK(r.text == c.error);
  }
  // 10 kB of junk bytes, NUL and 0xFF included
  sg::Rng rng(13);
  std::string junk(10240, '\0');
  for (char& b : junk) b = (char)rng.randint(256);
  junk[0] = '\0', junk[1] = '\xff';
  CHECK(calc(junk).text == "error: call longer than 256 bytes");
  CHECK(calc(junk.substr(0, 200)).text == "error: unexpected '\\x00' at byte 0");
}

TEST_CASE("run_calculator: the limits are the caller's, and the depth cap holds whatever is asked") {
  ToolLimits wide;
  wide.max_digits = 19;
  CHECK(calc("9223372036854775807+1", wide).text == "error: overflow");
  CHECK(calc("-9223372036854775807-2", wide).text == "error: overflow");
  CHECK(calc("-9223372036854775807-1", wide).text == std::to_string(INT64_MIN));
  CHECK(calc("(-9223372036854775807-1)/-1", wide).text == "error: overflow");
  CHECK(calc("(-9223372036854775807-1)%-1", wide).text == "0");
  wide.max_digits = 20;
  CHECK(calc("99999999999999999999", wide).text == "error: overflow");  // a literal past int64
  CHECK(calc("9223372036854775808", wide).text == "error: overflow");
  CHECK(calc("09223372036854775807", wide).text == std::to_string(INT64_MAX));

  ToolLimits deep;
  deep.max_call_bytes = 1 << 20;
  const std::string nest10k = repeat("(", 10000) + "1" + repeat(")", 10000);
  CHECK(calc(nest10k, deep).text == "error: nesting deeper than 32");
  deep.max_depth = int64_t(1) << 40;  // capped at kMaxToolDepth: no stack overflow
  CHECK(calc(nest10k, deep).text == "error: nesting deeper than 1024");
  CHECK(calc(repeat("(", 10000), deep).text == "error: nesting deeper than 1024");
  CHECK(calc(repeat("(", 1024) + "7" + repeat(")", 1024), deep).text == "7");
  // 100k unary minuses are a loop, not recursion
  CHECK(calc(repeat("-", 100000) + "5", deep).text == "5");
  CHECK(calc(repeat("- ", 100001) + "5", deep).text == "-5");
  CHECK(calc(repeat("1+", 100000) + "1", deep).text == "100001");
  deep.max_depth = -3;
  CHECK(calc("(1)", deep).text == "error: nesting deeper than 0");
  CHECK(calc("1", deep).text == "1");
  ToolLimits tiny;
  tiny.max_call_bytes = 3;
  CHECK(calc("1+2", tiny).text == "3");
  CHECK(calc("1+2 ", tiny).text == "error: call longer than 3 bytes");
}

TEST_CASE("run_calculator: 20k random calls never throw and agree with an independent evaluator") {
  sg::Rng rng(2024);
  const char* pieces[] = {"(", ")", "+", "-", "*", "/", "%", " ", "0", "1", "7", "12", "345", "-", "(", "*",
                          "^", "x", "\n", "99999", "3037000500", "999999999999999999", "<tool_call>", "\xff"};
  const int n_pieces = (int)(sizeof pieces / sizeof pieces[0]);
  // A random well-formed expression (then maybe perturbed): most random soups are malformed, these reach the
  // arithmetic, overflow and division by zero included.
  std::function<std::string(int)> tree = [&](int d) -> std::string {
    const uint64_t k = rng.randint(d > 4 ? 2 : 8);
    if (k == 0) return std::to_string(rng.randint(20));
    if (k == 1) return std::to_string(rng.randint(4000000000ULL));
    const char ops[] = "+-*/%";
    std::string a = tree(d + 1), b = tree(d + 1);
    if (k == 2) return "(" + a + ")";
    if (k == 3) return "-" + a;
    return a + " " + ops[rng.randint(5)] + " " + b;
  };
  int n_ok = 0, n_div0 = 0, n_overflow = 0, n_syntax = 0;
  for (int i = 0; i < 20000; i++) {
    std::string s;
    const int family = i % 3;
    if (family == 0) {  // random bytes, biased toward the calculator's alphabet
      const uint64_t len = rng.randint(40);
      for (uint64_t j = 0; j < len; j++)
        s += rng.randint(3) == 0 ? (char)rng.randint(256) : "0123456789+-*/%() "[rng.randint(18)];
    } else if (family == 1) {  // token soup
      const uint64_t len = rng.randint(16);
      for (uint64_t j = 0; j < len; j++) s += pieces[rng.randint(n_pieces)];
    } else {
      s = tree(0);
      if (rng.randint(4) == 0 && !s.empty()) s[rng.randint(s.size())] = "()+-*x 9"[rng.randint(8)];
    }
    ToolLimits lim;
    if (rng.randint(4) == 0) lim.max_digits = 19 + (int64_t)rng.randint(2);
    if (rng.randint(4) == 0) lim.max_depth = (int64_t)rng.randint(4);
    ToolResult r;
    bool threw = false;
    try {
      r = run_calculator(s, lim);
    } catch (...) {
      threw = true;
    }
    REQUIRE_FALSE(threw);
    const Ref ref = reference(s, lim);
    CAPTURE(s);
    if (r.ok) {
      n_ok++;
      REQUIRE(ref.kind == Kind::ok);
      REQUIRE(r.text == std::to_string(ref.value));
    } else {
      REQUIRE(r.text.rfind("error: ", 0) == 0);
      if (ref.kind == Kind::div0) {
        n_div0++;
        REQUIRE(r.text == "error: division by zero");
      } else if (ref.kind == Kind::overflow) {
        n_overflow++;
        REQUIRE(r.text == "error: overflow");
      } else {
        n_syntax++;
        REQUIRE(ref.kind == Kind::syntax);
        REQUIRE(r.text != "error: division by zero");
        REQUIRE(r.text != "error: overflow");
      }
    }
  }
  MESSAGE("ok " << n_ok << ", division by zero " << n_div0 << ", overflow " << n_overflow << ", malformed " << n_syntax);
  // every outcome is well represented, so the agreement above is not vacuous
  CHECK(n_ok > 3000);
  CHECK(n_div0 > 150);
  CHECK(n_overflow > 150);
  CHECK(n_syntax > 5000);
}
