// tools/chapters/ch01_autograd.cpp — Chapter 1: the autograd engine.
// A 2-layer MLP on 3-class spirals: print the tape, run backward with the trace on, gradcheck it in
// float64, then train it with SGD and watch the loss fall. Read ch01_autograd.md beside this file;
// the numbers it promises are checked at the end (sg::chapter::Checks, exit 1 if one fails).
//
//   build/bin/ch01_autograd [--steps 300] [--dot runs/ch01/tape.dot]
#include <CLI/CLI.hpp>

#include <cmath>
#include <filesystem>
#include <iostream>

#include "tools/chapters/chapter_check.h"
#include "tools/cli/mlp_demo.h"

int main(int argc, char** argv) {
  CLI::App app{"Chapter 1: the autograd engine on a 2-layer MLP"};
  int steps = 300;
  std::string dot = "runs/ch01/tape.dot";
  app.add_option("--steps", steps, "SGD steps")->check(CLI::PositiveNumber);
  app.add_option("--dot", dot, "where to write the tape as Graphviz DOT ('' = don't)");
  CLI11_PARSE(app, argc, argv);
  if (!dot.empty()) std::filesystem::create_directories(std::filesystem::path(dot).parent_path());
  try {
    sg::demo::Chapter1Numbers n;
    const int rc = sg::demo::run_chapter1(steps, dot, std::cout, &n);
    std::cout << "\n== the numbers ch01_autograd.md promises ==\n";
    sg::chapter::Checks checks;
    checks.that("run_chapter1 reports success", rc == 0);
    checks.near("tape nodes of one forward pass", (double)n.tape_nodes, 8, 0);
    checks.near("first gradient of the sweep (d loss/d loss)", n.loss_grad, 1.0, 0);
    checks.that("float64 gradcheck PASS", n.gradcheck_ok);
    checks.at_most("gradcheck max |analytic - numeric|", n.gradcheck_max_error, 1e-7);
    checks.near("loss at step 0 (chance: ln 3)", n.first_loss, std::log(3.0), 0.15);
    checks.in_range("accuracy before training", n.initial_accuracy, 0.2, 0.6);
    if (steps >= 300) {  // the training claims hold for the default run, not for `--steps 3` in gdb
      checks.at_most("loss after 300 steps", n.last_loss, 0.1);
      checks.at_least("accuracy after 300 steps", n.final_accuracy, 0.97);
    }
    return checks.exit_code();
  } catch (const std::exception& e) {
    std::cerr << "ch01_autograd: error: " << e.what() << "\n";
    return 1;
  }
}
