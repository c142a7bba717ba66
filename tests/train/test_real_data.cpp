// tests/train/test_real_data.cpp — the optional real math sets in ../shared/data (GSM8K, SVAMP) read through the
// project's problem reader. Its own file, so a machine without ../shared reports exactly this test as skipped.
#include <doctest/doctest.h>

#include <filesystem>
#include <string>

#include "tests/test_util.h"
#include "train/problems.h"

using namespace sg;

TEST_CASE("problems: the real GSM8K and SVAMP samples in ../shared/data parse (optional data)") {
  const std::string root = std::string(SEEKGRAD_SOURCE_DIR) + "/../shared/data/";
  if (!std::filesystem::exists(root + "gsm8k_test.jsonl") || !std::filesystem::exists(root + "svamp.json")) {
    SEEKGRAD_SKIP("../shared/data is not here (optional real data)");
    return;
  }
  int64_t skipped = 0;
  std::vector<data::ReasoningProblem> g = read_reasoning_file(root + "gsm8k_test.jsonl", &skipped);
  CHECK(g.size() + (size_t)skipped > 100);
  CHECK(g[0].answer == 18);  // Janet's ducks
  CHECK(g[0].think.find("<<") == std::string::npos);
  std::vector<data::ReasoningProblem> s = read_reasoning_file(root + "svamp.json", &skipped);
  CHECK(s.size() > 100);
  CHECK(s[0].answer == 51);
}
