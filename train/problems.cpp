// train/problems.cpp — reasoning problems as JSON lines (see problems.h).
#include "train/problems.h"

#include "data/chat.h"
#include "data/shards.h"

#include <cstdio>
#include <fstream>
#include <optional>
#include <cmath>
#include <algorithm>
#include <sstream>
#include <stdexcept>

#include "models/json.h"

namespace sg {

namespace {

bool blank(std::string_view s) {
  for (char c : s)
    if (c != ' ' && c != '\t' && c != '\r' && c != '\n') return false;
  return true;
}

}  // namespace

std::vector<data::ReasoningProblem> parse_problems_jsonl(std::string_view text, std::string_view source_name) {
  std::vector<data::ReasoningProblem> out;
  size_t start = 0;
  for (int line_no = 1; start < text.size(); ++line_no) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view line = text.substr(start, end - start);
    start = end + 1;
    if (blank(line)) continue;
    const std::string where = "[problems] " + std::string(source_name) + ":" + std::to_string(line_no) + ": ";
    Json j;
    try {
      j = Json::parse(line, "line " + std::to_string(line_no));
    } catch (const std::runtime_error& e) {
      throw std::runtime_error(where + e.what());
    }
    if (!j.is_object()) throw std::runtime_error(where + "expected a JSON object, found " + j.type_name());
    for (const auto& [key, value] : j.items())
      if (key != "expression" && key != "answer" && key != "question")
        throw std::runtime_error(where + "unknown key '" + key + "' (expected expression, answer, question)");
    for (const char* key : {"expression", "answer"})
      if (!j.contains(key)) throw std::runtime_error(where + "missing key '" + key + "'");
    const Json& e = j.at("expression");
    const Json& a = j.at("answer");
    if (!e.is_string()) throw std::runtime_error(where + "key 'expression' must be a string, found " + e.type_name());
    if (!a.is_int()) throw std::runtime_error(where + "key 'answer' must be an integer, found " + a.type_name());
    std::string question;
    if (const Json* q = j.find("question")) {
      if (!q->is_string())
        throw std::runtime_error(where + "key 'question' must be a string, found " + q->type_name());
      question = q->get_string();
    }
    data::ReasoningProblem p;
    try {
      p = data::make_reasoning_problem(e.get_string(), question);
    } catch (const std::invalid_argument& err) {
      throw std::runtime_error(where + "key 'expression': " + err.what());
    }
    if (p.answer != a.get_int())
      throw std::runtime_error(where + "key 'answer' is " + std::to_string(a.get_int()) + " but \"" + p.expression +
                               "\" evaluates to " + std::to_string(p.answer));
    out.push_back(std::move(p));
  }
  return out;
}

std::vector<data::ReasoningProblem> read_problems_jsonl(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("[problems] cannot open " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return parse_problems_jsonl(ss.str(), path);
}

namespace {

std::string trim_ascii(std::string_view s) {
  size_t a = 0, b = s.size();
  while (a < b && (s[a] == ' ' || s[a] == '\n' || s[a] == '\r' || s[a] == '\t')) a++;
  while (b > a && (s[b - 1] == ' ' || s[b - 1] == '\n' || s[b - 1] == '\r' || s[b - 1] == '\t')) b--;
  return std::string(s.substr(a, b - a));
}

// "1,234" -> 1234; nullopt unless the whole string is an integer.
std::optional<int64_t> integer_answer(std::string s) {
  s.erase(std::remove(s.begin(), s.end(), ','), s.end());
  return data::parse_integer_answer(s);
}

}  // namespace

std::vector<data::ReasoningProblem> parse_gsm8k_jsonl(std::string_view text, std::string_view source_name, int64_t* skipped) {
  std::vector<data::ReasoningProblem> out;
  int64_t skip = 0;
  size_t start = 0;
  for (int line_no = 1; start < text.size(); line_no++) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(start, end - start);
    start = end + 1;
    if (trim_ascii(line).empty()) continue;
    const std::string where = "[problems] " + std::string(source_name) + ":" + std::to_string(line_no) + ": ";
    Json j;
    try {
      j = Json::parse(line, source_name);
    } catch (const std::exception& e) {
      throw std::runtime_error(where + "not a JSON object: " + e.what());
    }
    if (!j.is_object() || !j.contains("question") || !j.contains("answer") || !j.at("answer").is_string())
      throw std::runtime_error(where + "a GSM8K line needs a string 'question' and a string 'answer'");
    const std::string& full = j.at("answer").get_string();
    const size_t mark = full.rfind("####");
    if (mark == std::string::npos) throw std::runtime_error(where + "key 'answer' has no '#### <answer>' line");
    std::optional<int64_t> a = integer_answer(trim_ascii(std::string_view(full).substr(mark + 4)));
    if (!a) {
      skip++;
      continue;
    }
    std::string think;  // the reasoning without the <<...>> calculator notes
    std::string_view r = std::string_view(full).substr(0, mark);
    for (size_t i = 0; i < r.size(); i++) {
      if (r.compare(i, 2, "<<") == 0) {
        size_t close = r.find(">>", i);
        if (close != std::string_view::npos) {
          i = close + 1;
          continue;
        }
      }
      think += r[i];
    }
    data::ReasoningProblem p;
    p.question = j.at("question").get_string();
    p.answer = *a;
    p.think = trim_ascii(think);
    out.push_back(std::move(p));
  }
  if (skipped) *skipped = skip;
  return out;
}

std::vector<data::ReasoningProblem> parse_svamp_json(std::string_view text, std::string_view source_name, int64_t* skipped) {
  const Json j = Json::parse(text, source_name);
  if (!j.is_array()) throw std::runtime_error("[problems] " + std::string(source_name) + ": SVAMP is one JSON array of problems");
  std::vector<data::ReasoningProblem> out;
  int64_t skip = 0;
  for (size_t i = 0; i < j.size(); i++) {
    const Json& e = j.at(i);
    const std::string where = "[problems] " + std::string(source_name) + ": item " + std::to_string(i) + ": ";
    if (!e.is_object() || !e.contains("Body") || !e.contains("Question") || !e.contains("Answer"))
      throw std::runtime_error(where + "an SVAMP item needs 'Body', 'Question' and 'Answer'");
    const double v = e.at("Answer").get_double();
    if (!(std::fabs(v) < 9e15) || v != std::floor(v)) {
      skip++;
      continue;
    }
    data::ReasoningProblem p;
    p.question = trim_ascii(e.at("Body").get_string()) + " " + trim_ascii(e.at("Question").get_string());
    p.answer = (int64_t)v;
    out.push_back(std::move(p));
  }
  if (skipped) *skipped = skip;
  return out;
}

std::vector<data::ReasoningProblem> read_reasoning_file(const std::string& path, int64_t* skipped) {
  if (skipped) *skipped = 0;
  std::string text;
  try {
    text = data::read_text_file(path);
  } catch (const std::exception& e) {
    throw std::runtime_error("[problems] cannot read " + path + ": " + e.what());
  }
  const std::string head = trim_ascii(std::string_view(text).substr(0, std::min<size_t>(text.size(), 4096)));
  if (!head.empty() && head[0] == '[') return parse_svamp_json(text, path, skipped);
  const size_t nl = text.find('\n');
  const std::string first = trim_ascii(std::string_view(text).substr(0, nl == std::string::npos ? text.size() : nl));
  if (first.find("\"expression\"") != std::string::npos || first.empty()) return parse_problems_jsonl(text, path);
  if (first.find("\"question\"") != std::string::npos && first.find("\"answer\"") != std::string::npos)
    return parse_gsm8k_jsonl(text, path, skipped);
  throw std::runtime_error("[problems] " + path + ": not a problems file (this project's JSON lines with \"expression\", "
                           "GSM8K JSON lines with \"question\"/\"answer\", or an SVAMP JSON array)");
}

std::string problems_to_jsonl(const std::vector<data::ReasoningProblem>& problems) {
  std::string s;
  for (const data::ReasoningProblem& p : problems) {
    Json j = Json::object();
    j.set("expression", p.expression);
    j.set("answer", (long long)p.answer);
    j.set("question", p.question);
    s += j.dump() + "\n";
  }
  return s;
}

void write_problems_jsonl(const std::string& path, const std::vector<data::ReasoningProblem>& problems) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw std::runtime_error("[problems] cannot write " + tmp);
    const std::string s = problems_to_jsonl(problems);
    out.write(s.data(), (std::streamsize)s.size());
    if (!out) throw std::runtime_error("[problems] write failed: " + tmp);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) throw std::runtime_error("[problems] cannot rename " + tmp + " to " + path);
}

}  // namespace sg
