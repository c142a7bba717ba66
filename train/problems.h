// train/problems.h — reasoning problems as JSON lines, one object per line:
//
//   {"expression": "37 + 48 * 2", "answer": 133}
//   {"expression": "12 - 40", "answer": -28, "question": "What is twelve minus forty?"}
//
// "expression" (string) and "answer" (integer) are required, "question" (string) is optional; any other key
// is an error (a misspelt "anwser" must not pass silently). The stated answer must equal what
// evaluate_expression computes, so a wrong file cannot train or score a model. Blank lines are skipped.
// Errors are std::runtime_error "[problems] <path>:<line>: ..." naming the key.
//
// It lives in train/, not data/, because it parses with models/json.h and data/ does not depend on models/.
// What it is not: a general dataset loader (no GSM8K fields, no streaming).
#pragma once
#include <string>
#include <string_view>
#include <vector>

#include "data/reasoning.h"

namespace sg {

// `source_name` names the text in errors (a file path).
std::vector<data::ReasoningProblem> parse_problems_jsonl(std::string_view text,
                                                         std::string_view source_name = "<string>");
std::vector<data::ReasoningProblem> read_problems_jsonl(const std::string& path);  // throws naming path

// One line per problem: {"expression": ..., "answer": ..., "question": ...}, each ending in '\n'.
std::string problems_to_jsonl(const std::vector<data::ReasoningProblem>& problems);
// Written to path + ".tmp" then renamed.
void write_problems_jsonl(const std::string& path, const std::vector<data::ReasoningProblem>& problems);

}  // namespace sg
