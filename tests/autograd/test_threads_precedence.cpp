// tests/autograd/test_threads_precedence.cpp — where the thread count comes from (autograd/runtime.h): the command
// line wins over SEEKGRAD_THREADS, which wins over a config's train.threads, which wins over the default; a
// setting of lower precedence changes nothing and says so (returns false); a count < 1 is a named error.
// (The environment variable itself is read once per process: tests/tools/test_cli.cpp runs the binary with it.)
#include <doctest/doctest.h>

#include <string>

#include "autograd/runtime.h"

using namespace sg;

namespace {
// Restores the process-wide setting (count and source) after a case: the other tests run in the same process.
struct KeepThreads {
  int n = num_threads();
  ThreadsFrom from = num_threads_from();
  ~KeepThreads() {
    set_num_threads(n);
    set_num_threads_source_for_tests(from);
  }
};
}  // namespace

TEST_CASE("threads precedence: --threads > SEEKGRAD_THREADS > train.threads > default") {
  KeepThreads keep;
  set_num_threads_source_for_tests(ThreadsFrom::default_value);
  CHECK(set_num_threads(3, ThreadsFrom::config));
  CHECK(num_threads() == 3);
  CHECK(num_threads_from() == ThreadsFrom::config);
  CHECK(set_num_threads(1, ThreadsFrom::config));  // another config (the next stage): same precedence, applies
  CHECK(num_threads() == 1);
  CHECK(set_num_threads(2, ThreadsFrom::environment));
  CHECK_FALSE(set_num_threads(4, ThreadsFrom::config));  // the environment wins over a config
  CHECK(num_threads() == 2);
  CHECK(set_num_threads(5, ThreadsFrom::command_line));
  CHECK_FALSE(set_num_threads(6, ThreadsFrom::environment));
  CHECK_FALSE(set_num_threads(7, ThreadsFrom::config));
  CHECK(num_threads() == 5);
  CHECK(num_threads_from() == ThreadsFrom::command_line);
  CHECK(std::string(threads_from_name(ThreadsFrom::command_line)) == "--threads");
  CHECK(std::string(threads_from_name(ThreadsFrom::config)) == "train.threads");
}

TEST_CASE("threads precedence: a count below 1 is an error naming where it came from") {
  KeepThreads keep;
  std::string err;
  try {
    set_num_threads(0, ThreadsFrom::config);
  } catch (const std::exception& e) {
    err = e.what();
  }
  CHECK(err == "[threads] train.threads: n = 0 must be >= 1");
}
