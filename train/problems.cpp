// train/problems.cpp — reasoning problems as JSON lines (see problems.h).
#include "train/problems.h"

#include <cstdio>
#include <fstream>
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
