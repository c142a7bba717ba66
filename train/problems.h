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
// The public math sets read through the same path (the project never needs them; ../shared/data has samples):
//   GSM8K  JSON lines {"question": "...", "answer": "<reasoning with <<16-3=13>> calculator notes>\n#### 18"}:
//          question as is; answer = the integer after "####" (thousands commas removed); think = the reasoning
//          with the <<...>> notes removed (a worked solution, so SFT can train on it); expression "", level 0.
//   SVAMP  one JSON array of {"Body", "Question", "Equation", "Answer", ...}: question = Body + " " + Question,
//          answer = Answer; no worked solution (think ""), so it serves evaluation only.
// Problems whose answer is not an integer are skipped (the rewards check integers), and counted.
// What it is not: a general dataset loader (no streaming, no other datasets).
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

std::vector<data::ReasoningProblem> parse_gsm8k_jsonl(std::string_view text, std::string_view source_name = "<string>",
                                                      int64_t* skipped = nullptr);
std::vector<data::ReasoningProblem> parse_svamp_json(std::string_view text, std::string_view source_name = "<string>",
                                                     int64_t* skipped = nullptr);
// Any of the three by content (zstd-compressed or not): a JSON array is SVAMP; JSON lines whose first object has
// "expression" are this project's format, ones with a string "answer" GSM8K. Throws "[problems] <path>: ..." when
// it is none of them.
std::vector<data::ReasoningProblem> read_reasoning_file(const std::string& path, int64_t* skipped = nullptr);

// One line per problem: {"expression": ..., "answer": ..., "question": ...}, each ending in '\n'.
std::string problems_to_jsonl(const std::vector<data::ReasoningProblem>& problems);
// Written to path + ".tmp" then renamed.
void write_problems_jsonl(const std::string& path, const std::vector<data::ReasoningProblem>& problems);

}  // namespace sg
