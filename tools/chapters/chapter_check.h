// tools/chapters/chapter_check.h — the numbers a chapter's .md promises, checked when it runs.
//
// A chapter is a story told with measured numbers; when the code changes and a number stops being
// true, the chapter must fail (CTest runs every chapter with its default arguments under the
// `chapters` label). Each check prints one line, so the output reads as the evidence:
//
//   check  val CE after 200 steps            1.83  in [0, 2.5]            ok
//   check  naive vs absorbed max |diff|    3.1e-07 <= 1e-05               ok
//
// and the chapter's main ends with `return checks.exit_code();` (1 if any check failed).
//
// What this is not: a test framework. Unit tests live in tests/; these are the chapter's claims.
#pragma once
#include <cmath>
#include <cstdio>
#include <string>

namespace sg::chapter {

class Checks {
 public:
  // lo <= value <= hi (NaN fails). `what` names the number as the .md does.
  bool in_range(const std::string& what, double value, double lo, double hi) {
    const bool ok = value >= lo && value <= hi;
    std::printf("check  %-48s %12.6g  in [%g, %g]  %s\n", what.c_str(), value, lo, hi, ok ? "ok" : "FAIL");
    return record(ok);
  }
  // value <= limit (NaN fails).
  bool at_most(const std::string& what, double value, double limit) {
    const bool ok = value <= limit;
    std::printf("check  %-48s %12.6g  <= %g  %s\n", what.c_str(), value, limit, ok ? "ok" : "FAIL");
    return record(ok);
  }
  // value >= limit (NaN fails).
  bool at_least(const std::string& what, double value, double limit) {
    const bool ok = value >= limit;
    std::printf("check  %-48s %12.6g  >= %g  %s\n", what.c_str(), value, limit, ok ? "ok" : "FAIL");
    return record(ok);
  }
  // |value − expected| <= tol (NaN fails).
  bool near(const std::string& what, double value, double expected, double tol) {
    const bool ok = std::abs(value - expected) <= tol;
    std::printf("check  %-48s %12.6g  = %g ± %g  %s\n", what.c_str(), value, expected, tol, ok ? "ok" : "FAIL");
    return record(ok);
  }
  // A yes/no claim ("DSA with k >= T equals dense MLA").
  bool that(const std::string& what, bool ok) {
    std::printf("check  %-48s %s\n", what.c_str(), ok ? "ok" : "FAIL");
    return record(ok);
  }

  int failures() const { return failures_; }
  int passed() const { return passed_; }
  // Prints the tally and returns the process exit code: 0 when every check held, else 1.
  int exit_code() const {
    std::printf("\n%d check(s) passed, %d failed\n", passed_, failures_);
    return failures_ ? 1 : 0;
  }

 private:
  bool record(bool ok) {
    (ok ? passed_ : failures_)++;
    return ok;
  }
  int failures_ = 0, passed_ = 0;
};

}  // namespace sg::chapter
