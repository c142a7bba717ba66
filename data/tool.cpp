// data/tool.cpp — the calculator executor (see tool.h): recursive descent over the call's bytes, int64 arithmetic
// with __builtin_*_overflow on every operation.
#include "data/tool.h"

#include <algorithm>
#include <cstdio>

namespace sg::data {

namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

// One byte as the model reads it in an error: printable ASCII as is, anything else \xNN.
std::string quote_byte(char c) {
  const unsigned char u = (unsigned char)c;
  if (u >= 0x21 && u <= 0x7e) return std::string("'") + c + "'";
  char buf[8];
  std::snprintf(buf, sizeof buf, "'\\x%02x'", u);
  return buf;
}

// The parser and evaluator in one pass. A syntax (or limit) error stops it at once: syntax_error is set and
// every function returns 0 up the stack. An arithmetic error is remembered (the first one, in evaluation
// order) and parsing goes on, so a malformed call is reported as malformed; once one is set, the values
// computed after it are meaningless and never shown.
struct Calculator {
  std::string_view s;
  int64_t max_digits = 0, max_depth = 0;
  size_t pos = 0;
  int64_t depth = 0;
  std::string syntax_error;
  const char* arith_error = nullptr;

  bool failed() const { return !syntax_error.empty(); }
  int64_t fail(std::string message) {
    syntax_error = "error: " + std::move(message);
    return 0;
  }
  int64_t arith(const char* message) {
    if (!arith_error) arith_error = message;
    return 0;
  }
  void skip_space() {
    while (pos < s.size() && is_space(s[pos])) pos++;
  }

  int64_t apply(char op, int64_t a, int64_t b) {
    if (arith_error) return 0;
    int64_t r = 0;
    switch (op) {
      case '+': return __builtin_add_overflow(a, b, &r) ? arith("overflow") : r;
      case '-': return __builtin_sub_overflow(a, b, &r) ? arith("overflow") : r;
      case '*': return __builtin_mul_overflow(a, b, &r) ? arith("overflow") : r;
      case '/':
        if (b == 0) return arith("division by zero");
        if (a == INT64_MIN && b == -1) return arith("overflow");  // 2^63 does not fit
        return a / b;                                               // truncates toward zero
      default:  // '%'
        if (b == 0) return arith("division by zero");
        if (b == -1) return 0;  // exact; INT64_MIN % -1 would trap in hardware
        return a % b;           // the dividend's sign
    }
  }

  // expr := term (('+' | '-') term)*
  int64_t expr() {
    int64_t v = term();
    while (!failed()) {
      skip_space();
      if (pos == s.size() || (s[pos] != '+' && s[pos] != '-')) break;
      const char op = s[pos++];
      const int64_t r = term();
      if (failed()) break;
      v = apply(op, v, r);
    }
    return failed() ? 0 : v;
  }

  // term := unary (('*' | '/' | '%') unary)*
  int64_t term() {
    int64_t v = unary();
    while (!failed()) {
      skip_space();
      if (pos == s.size() || (s[pos] != '*' && s[pos] != '/' && s[pos] != '%')) break;
      const char op = s[pos++];
      const int64_t r = unary();
      if (failed()) break;
      v = apply(op, v, r);
    }
    return failed() ? 0 : v;
  }

  // unary := '-'* primary, the minuses counted in a loop and applied one checked negation each, innermost first.
  int64_t unary() {
    int64_t minuses = 0;
    for (skip_space(); pos < s.size() && s[pos] == '-'; skip_space()) {
      pos++;
      minuses++;
    }
    int64_t v = primary();
    if (failed()) return 0;
    for (int64_t i = 0; i < minuses && !arith_error; i++) v = apply('-', 0, v);
    return v;
  }

  // primary := digits | '(' expr ')'
  int64_t primary() {
    skip_space();
    if (pos == s.size()) return fail("unexpected end of call at byte " + std::to_string(pos));
    const char c = s[pos];
    if (is_digit(c)) {
      const size_t start = pos;
      while (pos < s.size() && is_digit(s[pos])) pos++;
      if ((int64_t)(pos - start) > max_digits)
        return fail("number longer than " + std::to_string(max_digits) + " digits");
      int64_t v = 0;
      for (size_t i = start; i < pos && !arith_error; i++)
        if (__builtin_mul_overflow(v, (int64_t)10, &v) || __builtin_add_overflow(v, (int64_t)(s[i] - '0'), &v))
          arith("overflow");
      return arith_error ? 0 : v;
    }
    if (c == '(') {
      const size_t open = pos++;
      if (++depth > max_depth) return fail("nesting deeper than " + std::to_string(max_depth));
      const int64_t v = expr();
      if (failed()) return 0;
      skip_space();
      if (pos == s.size()) return fail("unbalanced parentheses at byte " + std::to_string(open));
      if (s[pos] != ')') return fail("unexpected " + quote_byte(s[pos]) + " at byte " + std::to_string(pos));
      pos++;
      depth--;
      return v;
    }
    if (c == ')' && depth == 0) return fail("unbalanced parentheses at byte " + std::to_string(pos));
    return fail("unexpected " + quote_byte(c) + " at byte " + std::to_string(pos));
  }
};

}  // namespace

ToolResult run_calculator(std::string_view expr, const ToolLimits& limits) noexcept {
  if ((int64_t)expr.size() > limits.max_call_bytes)
    return {false, "error: call longer than " + std::to_string(limits.max_call_bytes) + " bytes"};
  if (std::all_of(expr.begin(), expr.end(), is_space)) return {false, "error: empty call"};
  Calculator calc;
  calc.s = expr;
  calc.max_digits = limits.max_digits;
  calc.max_depth = std::clamp<int64_t>(limits.max_depth, 0, kMaxToolDepth);
  const int64_t v = calc.expr();
  if (!calc.failed()) {
    calc.skip_space();
    if (calc.pos < expr.size()) {
      const char c = expr[calc.pos];
      calc.fail(c == ')' ? "unbalanced parentheses at byte " + std::to_string(calc.pos)
                         : "unexpected " + quote_byte(c) + " at byte " + std::to_string(calc.pos));
    }
  }
  if (calc.failed()) return {false, calc.syntax_error};
  if (calc.arith_error) return {false, std::string("error: ") + calc.arith_error};
  return {true, std::to_string(v)};
}

}  // namespace sg::data
