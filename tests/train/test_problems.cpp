// tests/train/test_problems.cpp — reasoning problems as JSON lines: reading, checking answers, errors that
// name the file, the line and the key, and a write/read round trip.
#include <doctest/doctest.h>

#include "tests/data/temp_dir.h"
#include "train/problems.h"

#include <fstream>

using namespace sg;

TEST_CASE("parse_problems_jsonl: fields, optional question, blank lines") {
  const std::string text =
      "{\"expression\": \"37 + 48 * 2\", \"answer\": 133}\n"
      "\n"
      "  \r\n"
      "{\"expression\": \"12 - 40\", \"answer\": -28, \"question\": \"Twelve minus forty?\"}\r\n"
      "{\"answer\": 5, \"expression\": \"1+2*2\"}";  // no final newline, keys in any order
  const auto ps = parse_problems_jsonl(text, "p.jsonl");
  REQUIRE(ps.size() == 3);
  CHECK(ps[0].expression == "37 + 48 * 2");
  CHECK(ps[0].answer == 133);
  CHECK(ps[0].question == "What is 37 + 48 * 2?");
  CHECK(ps[0].think == "48 * 2 = 96\n37 + 96 = 133");
  CHECK(ps[0].level == 2);
  CHECK(ps[1].answer == -28);
  CHECK(ps[1].question == "Twelve minus forty?");
  CHECK(ps[1].level == 1);
  CHECK(ps[2].answer == 5);
  CHECK(ps[2].think == "2 * 2 = 4\n1 + 4 = 5");
  CHECK(parse_problems_jsonl("").empty());
}

TEST_CASE("parse_problems_jsonl: errors name the file, the line and the key") {
  auto err = [](const std::string& line2) {
    const std::string text = "{\"expression\": \"1 + 1\", \"answer\": 2}\n" + line2 + "\n";
    try {
      parse_problems_jsonl(text, "p.jsonl");
    } catch (const std::runtime_error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  CHECK(err("{\"expression\": \"37 + 48 * 2\", \"answer\": 134}") ==
        "[problems] p.jsonl:2: key 'answer' is 134 but \"37 + 48 * 2\" evaluates to 133");
  CHECK(err("{\"expression\": \"1 + 1\"}") == "[problems] p.jsonl:2: missing key 'answer'");
  CHECK(err("{\"answer\": 2}") == "[problems] p.jsonl:2: missing key 'expression'");
  CHECK(err("{\"expression\": \"1 + 1\", \"anwser\": 2}") ==
        "[problems] p.jsonl:2: unknown key 'anwser' (expected expression, answer, question)");
  CHECK(err("{\"expression\": \"1 + 1\", \"answer\": \"2\"}") ==
        "[problems] p.jsonl:2: key 'answer' must be an integer, found string");
  CHECK(err("{\"expression\": \"1 + 1\", \"answer\": 2.5}") ==
        "[problems] p.jsonl:2: key 'answer' must be an integer, found number");
  CHECK(err("{\"expression\": 7, \"answer\": 7}") ==
        "[problems] p.jsonl:2: key 'expression' must be a string, found integer");
  CHECK(err("{\"expression\": \"1 + 1\", \"answer\": 2, \"question\": null}") ==
        "[problems] p.jsonl:2: key 'question' must be a string, found null");
  CHECK(err("[1, 2]") == "[problems] p.jsonl:2: expected a JSON object, found array");
  const std::string bad_expr = err("{\"expression\": \"1 + \", \"answer\": 1}");
  CHECK(bad_expr.rfind("[problems] p.jsonl:2: key 'expression': [evaluate_expression]", 0) == 0);
  const std::string overflow = err("{\"expression\": \"9999999999 * 9999999999\", \"answer\": 1}");
  CHECK(overflow.find("int64 overflow") != std::string::npos);
  const std::string bad_json = err("{\"expression\": \"1 + 1\", \"answer\": 2");
  CHECK(bad_json.rfind("[problems] p.jsonl:2: [json]", 0) == 0);
}

TEST_CASE("write_problems_jsonl / read_problems_jsonl round trip") {
  data::testing::TempDir dir("problems");
  std::vector<data::ReasoningProblem> ps = data::reasoning_split(data::Split::test, 9, 25, 3);
  ps.push_back(data::make_reasoning_problem("12 - 40", "A \"quoted\" question\twith a tab?"));
  const std::string path = dir.file("test.jsonl");
  write_problems_jsonl(path, ps);
  const auto back = read_problems_jsonl(path);
  REQUIRE(back.size() == ps.size());
  for (size_t k = 0; k < ps.size(); ++k) {
    CHECK(back[k].expression == ps[k].expression);
    CHECK(back[k].answer == ps[k].answer);
    CHECK(back[k].question == ps[k].question);
    CHECK(back[k].think == ps[k].think);
    CHECK(back[k].level == ps[k].level);
  }
  CHECK(data::testing::slurp(path).rfind("{\"expression\":\"", 0) == 0);
  CHECK_THROWS_WITH_AS(read_problems_jsonl(dir.file("missing.jsonl")), doctest::Contains("missing.jsonl"),
                       std::runtime_error);
}

TEST_CASE("problems: GSM8K and SVAMP through the same reader — by value, calculator notes removed, non-integers skipped") {
  const std::string gsm =
      "{\"question\": \"Janet has 16 eggs and eats 3. How many are left?\", \"answer\": \"She has 16 - 3 = <<16-3=13>>13 eggs left.\\n#### 13\"}\n"
      "\n"
      "{\"question\": \"A big sum?\", \"answer\": \"It is 1,000 + 234 = <<1000+234=1234>>1,234.\\n#### 1,234\"}\n"
      "{\"question\": \"Half of 3?\", \"answer\": \"3 / 2 = <<3/2=1.5>>1.5\\n#### 1.5\"}\n";
  int64_t skipped = -1;
  std::vector<data::ReasoningProblem> g = parse_gsm8k_jsonl(gsm, "gsm.jsonl", &skipped);
  REQUIRE(g.size() == 2);
  CHECK(skipped == 1);
  CHECK(g[0].question == "Janet has 16 eggs and eats 3. How many are left?");
  CHECK(g[0].answer == 13);
  CHECK(g[0].think == "She has 16 - 3 = 13 eggs left.");
  CHECK(g[0].expression.empty());
  CHECK(g[1].answer == 1234);
  CHECK(g[1].think == "It is 1,000 + 234 = 1,234.");
  CHECK_THROWS_WITH(parse_gsm8k_jsonl("{\"question\": \"q\", \"answer\": \"no mark\"}\n", "g.jsonl"),
                    doctest::Contains("[problems] g.jsonl:1: key 'answer' has no '#### <answer>' line"));
  CHECK_THROWS_WITH(parse_gsm8k_jsonl("{\"question\": \"q\"}\n", "g.jsonl"), doctest::Contains("g.jsonl:1: a GSM8K line needs"));

  const std::string svamp = "[{\"ID\": \"a\", \"Body\": \"Each pack costs 76 dollars. There is a discount of 25 dollars\", "
                            "\"Question\": \"How much do you pay?\", \"Equation\": \"( 76.0 - 25.0 )\", \"Answer\": 51.0},"
                            " {\"ID\": \"b\", \"Body\": \"x\", \"Question\": \"y\", \"Answer\": 2.5}]";
  std::vector<data::ReasoningProblem> s = parse_svamp_json(svamp, "svamp.json", &skipped);
  REQUIRE(s.size() == 1);
  CHECK(skipped == 1);
  CHECK(s[0].question == "Each pack costs 76 dollars. There is a discount of 25 dollars How much do you pay?");
  CHECK(s[0].answer == 51);
  CHECK(s[0].think.empty());

  // read_reasoning_file tells the three apart by content
  data::testing::TempDir dir("problem_formats");
  std::ofstream(dir.file("g.jsonl")) << gsm;
  std::ofstream(dir.file("s.json")) << svamp;
  std::ofstream(dir.file("o.jsonl")) << "{\"expression\": \"2 + 3\", \"answer\": 5}\n";
  std::ofstream(dir.file("x.txt")) << "hello\n";
  CHECK(read_reasoning_file(dir.file("g.jsonl")).size() == 2);
  CHECK(read_reasoning_file(dir.file("s.json")).size() == 1);
  CHECK(read_reasoning_file(dir.file("o.jsonl"))[0].answer == 5);
  CHECK_THROWS_WITH(read_reasoning_file(dir.file("x.txt")), doctest::Contains("not a problems file"));
}

