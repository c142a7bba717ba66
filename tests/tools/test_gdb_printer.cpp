// tests/tools/test_gdb_printer.cpp — checks what the gdb pretty-printers (tools/gdb/seekgrad.py)
// print, by running real gdb in batch mode on the small debug program gdb_target
// (tests/tools/gdb_target.cpp, built -O0 -g as build/bin/gdb_target) and reading its output.
//
// Compiles nothing itself. Finds the program at SEEKGRAD_BINARY_DIR/bin/gdb_target (the build
// defines SEEKGRAD_BINARY_DIR), else at $SEEKGRAD_GDB_TARGET. When gdb or the program is missing
// each test declares itself skipped (SEEKGRAD_SKIP, tests/test_util.h), so CTest reports the entry
// tools/test_gdb_printer as "Skipped", never "Passed"; when both are there it must pass.
#include <doctest/doctest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "tests/test_util.h"

namespace fs = std::filesystem;

namespace {

std::string gdb_target_path() {
#ifdef SEEKGRAD_BINARY_DIR
  fs::path built = fs::path(SEEKGRAD_BINARY_DIR) / "bin" / "gdb_target";
  if (fs::exists(built)) return built.string();
#endif
  if (const char* env = std::getenv("SEEKGRAD_GDB_TARGET"))
    if (*env && fs::exists(env)) return env;
  return "";
}

std::string printer_path() {
#ifdef SEEKGRAD_SOURCE_DIR
  return (fs::path(SEEKGRAD_SOURCE_DIR) / "tools" / "gdb" / "seekgrad.py").string();
#else
  return (fs::path(__FILE__).parent_path() / ".." / ".." / "tools" / "gdb" / "seekgrad.py").lexically_normal().string();
#endif
}

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// Each printed expression is preceded by `echo @@label:` so its line can be found by label:
// "@@x:$2 = Tensor ..." -> "Tensor ...".
struct Print {
  std::string label, expr;
};
const std::vector<Print> kPrints = {
    {"x", "x"},
    {"xt", "xt"},
    {"w", "w"},
    {"y", "y"},
    {"big", "big"},
    {"undefined", "undefined_tensor"},
    {"grad_w", "$grad(w)"},
    {"node_y", "$grad_fn(y)"},
    {"node_loss", "$grad_fn(loss)"},
    {"inputs_y", "$grad_fn(y).inputs"},
    {"impl_xt", "*xt.impl_._M_ptr"},
    {"grad_x", "$grad(x)"},
};

struct GdbRun {
  std::string skip_reason;  // non-empty: gdb or the program is missing
  std::string output;       // everything gdb printed (stdout and stderr)
};

// Runs gdb once per process: stops first at main (tensors not constructed yet: the printer must
// not break), then at breakpoint_here, goes up to main and prints every expression above.
const GdbRun& gdb_run() {
  static const GdbRun run = [] {
    GdbRun r;
    if (std::system("gdb --version > /dev/null 2>&1") != 0) {
      r.skip_reason = "gdb is not installed (not on PATH): the pretty-printers cannot be run";
      return r;
    }
    std::string target = gdb_target_path();
    if (target.empty()) {
      r.skip_reason = "gdb_target not found (build the gdb_target executable, or set SEEKGRAD_GDB_TARGET)";
      return r;
    }
    std::string cmd = "timeout 120 gdb -batch -nx -ex " + shell_quote("set disable-randomization off") + " -ex " +
                      shell_quote("source " + printer_path()) + " -ex 'break main' -ex 'break breakpoint_here' -ex run" +
                      " -ex " + shell_quote("echo @@before:") + " -ex 'print x' -ex continue -ex up";
    for (const Print& p : kPrints)
      cmd += " -ex " + shell_quote("echo @@" + p.label + ":") + " -ex " + shell_quote("print " + p.expr);
    cmd += " " + shell_quote(target) + " 2>&1";
    FILE* pipe = popen(cmd.c_str(), "r");
    REQUIRE_MESSAGE(pipe, "could not run: ", cmd);
    char buf[4096];
    for (size_t n; (n = std::fread(buf, 1, sizeof buf, pipe)) > 0;) r.output.append(buf, n);
    pclose(pipe);
    return r;
  }();
  return run;
}

// The text gdb printed for `label`: after "@@label:" and the "$N = " that print adds; errors
// (no "$N =") come back whole.
std::string printed(const std::string& label) {
  const std::string& out = gdb_run().output;
  std::string key = "@@" + label + ":";
  size_t at = out.find(key);
  if (at == std::string::npos) return "<" + label + " not printed>";
  at += key.size();
  std::string line = out.substr(at, out.find('\n', at) - at);
  size_t eq = line.find(" = ");
  return line.rfind("$", 0) == 0 && eq != std::string::npos ? line.substr(eq + 3) : line;
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("gdb printer: Tensor shows name, shape, dtype, strides of views only, values, grad") {
  const GdbRun& run = gdb_run();
  if (!run.skip_reason.empty()) SEEKGRAD_SKIP(run.skip_reason);
  INFO("gdb output:\n", run.output);
  REQUIRE(contains(run.output, "Breakpoint 2, breakpoint_here"));
  CHECK_FALSE(contains(run.output, "Python Exception"));

  // Before construction the printer prints *something* tensor-like instead of failing.
  CHECK(printed("before").rfind("Tensor", 0) == 0);

  CHECK(printed("x") == "Tensor \"x\" (2, 3) f32 cpu [1, 2, 3, 4, 5, 6]  requires_grad: no  grad: none  leaf");
  CHECK(printed("xt") ==
        "Tensor \"xt\" (3, 2) f32 cpu strides (1, 3) [1, 4, 2, 5, 3, 6]  requires_grad: no  grad: none  leaf");
  CHECK(printed("w") == "Tensor \"w\" (2, 2) f64 cpu [0.5, -1, 2, 3]  requires_grad: yes  grad: yes (2, 2)  leaf");
  CHECK_FALSE(contains(printed("x"), "strides"));
  CHECK_FALSE(contains(printed("w"), "strides"));

  std::string y = printed("y");
  CHECK(contains(y, "\"y\" (2, 2) f64"));
  CHECK(contains(y, "[-1.75, -3.5, 7, 7]"));  // w·w
  CHECK(contains(y, "grad: none"));
  CHECK(contains(y, "grad_fn: layers.0/matmul"));

  CHECK(printed("big") == "Tensor (10) i64 cpu [0, 1, 2, 3, 4, 5, 6, 7, ... (10 values)]  requires_grad: no  grad: none  leaf");
  CHECK(printed("undefined") == "Tensor <undefined>");
  CHECK(printed("impl_xt") == printed("xt"));  // the TensorImpl printer says the same
}

TEST_CASE("gdb printer: $grad, $grad_fn and the Node printer") {
  const GdbRun& run = gdb_run();
  if (!run.skip_reason.empty()) SEEKGRAD_SKIP(run.skip_reason);
  INFO("gdb output:\n", run.output);
  REQUIRE(contains(run.output, "Breakpoint 2, breakpoint_here"));

  // w.grad = 2w
  CHECK(printed("grad_w") == "Tensor (2, 2) f64 cpu [1, -2, 4, 6]  requires_grad: no  grad: none  leaf");
  CHECK(contains(printed("grad_x"), "has no .grad"));

  std::string node = printed("node_y");
  CHECK(node.rfind("Node #", 0) == 0);
  CHECK(contains(node, "layers.0/matmul (2 inputs) -> (2, 2) f64 \"y\""));
  CHECK_FALSE(contains(node, "released"));

  std::string loss = printed("node_loss");  // backward() ran through it without retain_graph
  CHECK(contains(loss, " sum (0 inputs) -> () f64"));
  CHECK(contains(loss, "released"));

  std::string inputs = printed("inputs_y");  // std::vector<Tensor>: libstdc++'s printer, ours inside
  CHECK(contains(inputs, "length 2"));
  size_t first = inputs.find("Tensor \"w\" (2, 2) f64");
  REQUIRE(first != std::string::npos);
  CHECK(inputs.find("Tensor \"w\" (2, 2) f64", first + 1) != std::string::npos);
}
