// tools/chapters/ch01_autograd.cpp — Chapter 1: the autograd engine.
// A 2-layer MLP on 3-class spirals: print the tape, run backward with the trace on, gradcheck it in
// float64, then train it with SGD and watch the loss fall. Read ch01_autograd.md beside this file.
//
//   build/bin/ch01_autograd [--steps 300] [--dot runs/ch01/tape.dot]
#include <CLI/CLI.hpp>

#include <filesystem>
#include <iostream>

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
    return sg::demo::run_chapter1(steps, dot, std::cout);
  } catch (const std::exception& e) {
    std::cerr << "ch01_autograd: error: " << e.what() << "\n";
    return 1;
  }
}
