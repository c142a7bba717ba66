// data/tool.h — the calculator a model calls from inside its reasoning (seekgrad issue 13; the call format
// <tool_call>EXPR</tool_call><tool_result>VALUE</tool_result> is data/chat.h's, the generation loop that pauses
// for it is train/tool_generate.h's).
//
// The executor is safe by construction: it never evaluates the model's text as code, it parses it with its own
// recursive-descent parser over int64 and computes every operation overflow-checked. Whatever bytes it is given
// it returns — never throws, never recurses past a fixed depth, runs in time linear in the (bounded) input — a
// value or an error string the model reads as its tool result.
//
// Grammar (ASCII whitespace ' ' '\t' '\n' '\r' allowed between tokens):
//   expr    := term (('+' | '-') term)*                 left-associative
//   term    := unary (('*' | '/' | '%') unary)*         left-associative, binds tighter than + -
//   unary   := '-'* primary                             unary minus binds tighter than * / % ("-2*3" = (-2)*3);
//                                                       read in a loop, so "- - - … 5" costs no stack
//   primary := digits | '(' expr ')'
// There is no unary '+', no '^', no decimal point, no names. Integer division truncates toward zero and % takes
// the dividend's sign (C++'s / and %: -7/2 = -3, -7%2 = -1); INT64_MIN % -1 is 0 (its exact value), INT64_MIN / -1
// is an overflow.
//
// Results, exact text (byte positions are 0-based offsets into the call as given):
//   ok     the value in decimal, "47104101", "-28"
//   error  "error: call longer than 256 bytes"          checked first, before anything is parsed
//          "error: empty call"                          nothing but whitespace
//          "error: number longer than 18 digits"
//          "error: nesting deeper than 32"
//          "error: unbalanced parentheses at byte 7"    the '(' never closed, or a ')' with no '(' open
//          "error: unexpected 'x' at byte 3"            a byte that cannot come there (non-printable bytes as \xNN:
//                                                       "unexpected '\x00' at byte 0")
//          "error: unexpected end of call at byte 2"    an operand is missing at the end ("1+")
//          "error: division by zero"                    / or % by 0
//          "error: overflow"                            a result (or a literal) outside int64
// A call that is malformed anywhere is reported as malformed even when it also divides by zero before the
// malformed part; among arithmetic errors the first in evaluation order (left operand, right operand, then
// the operation) is reported. The error string never holds a special token (one quoted byte at most).
//
// max_depth is capped at kMaxToolDepth whatever the caller asks, so the parser's recursion (4 frames per
// parenthesis) stays far inside any stack. max_calls_per_answer is not the calculator's business: the
// generation loop counts the calls (train/tool_generate.h).
//
// What this is not: a general expression language (no variables, functions, floats or bignums).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace sg::data {

struct ToolLimits {
  int64_t max_call_bytes = 256;     // longer calls are refused unparsed
  int64_t max_digits = 18;          // per literal; 18 digits always fit int64 (10^18 - 1 < 2^63)
  int64_t max_depth = 32;           // parentheses nesting ("((1))" has depth 2); capped at kMaxToolDepth
  int64_t max_calls_per_answer = 8; // tool calls executed per completion; later calls get "error: too many calls"
};

constexpr int64_t kMaxToolDepth = 1024;

struct ToolResult {
  bool ok = false;
  std::string text;  // the value, or "error: ..."
};

// The calculator on one call's text (what was between <tool_call> and </tool_call>).
ToolResult run_calculator(std::string_view expr, const ToolLimits& limits = {}) noexcept;

}  // namespace sg::data
