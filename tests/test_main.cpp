// tests/test_main.cpp — doctest's main for every test executable (one per tests/<folder>/).
//
// A test case that cannot run on this machine (a CPU instruction set, a program it drives) says so with
// SEEKGRAD_SKIP(reason) (tests/test_util.h). When at least one case did and nothing failed, main returns
// 77, which CTest shows as "Skipped" (every test has SKIP_RETURN_CODE 77), never as "Passed". That is why a
// case that depends on such a feature lives in its own source file (one CTest entry per file): the entry
// that reports the skip contains nothing else.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>

#include "tests/test_util.h"

int main(int argc, char** argv) {
  doctest::Context context(argc, argv);
  const int rc = context.run();
  if (context.shouldExit()) return rc;  // --help, --list-test-cases, ...
  const std::vector<std::string>& skipped = sg::test::skipped_cases();
  if (rc != 0 || skipped.empty()) return rc;
  std::fprintf(stderr, "\n%zu test case(s) cannot run here (exit code %d = skipped):\n", skipped.size(),
               sg::test::kSkipReturnCode);
  for (const std::string& s : skipped) std::fprintf(stderr, "  SKIPPED %s\n", s.c_str());
  return sg::test::kSkipReturnCode;
}
