// tests/autograd/test_trace_path.cpp — autograd/trace_path: the gradient's path from a loss to one parameter.
//
// On hand-built graphs whose gradients are worked out in the comments: the nodes of the path (numbers, ops,
// scopes, inputs, the input the path takes), the gradient norm flowing into each, the parameter's gradient,
// the part through the last edge, the direct consumers; the numbers agree with tape_to_text and with the
// backward trace; the hooks are gone afterwards; errors name the parameter and the reached ones.
// (The same on a real model, layer 0's MLA of a tiny Transformer: tests/train/test_trace.cpp.)
#include <doctest/doctest.h>

#include <cmath>
#include <sstream>
#include <string>
#include <vector>

#include "autograd/node.h"
#include "autograd/trace_path.h"
#include "ops/ops.h"

using namespace sg;

namespace {

Tensor param(const std::vector<double>& v, const Shape& shape, const std::string& name = "") {
  Tensor t = Tensor::from_vector(v, shape);
  t.requires_grad_();
  if (!name.empty()) t.set_name(name);
  return t;
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

std::vector<std::string> lines_of(const std::string& s) {
  std::vector<std::string> lines;
  std::istringstream is(s);
  for (std::string l; std::getline(is, l);) lines.push_back(l);
  return lines;
}

void check_values(const Tensor& t, const std::vector<double>& want) {
  REQUIRE(t.defined());
  std::vector<double> got = t.to_f64_vector();
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < want.size(); i++) CHECK(got[i] == doctest::Approx(want[i]).epsilon(1e-12));
}

// W = [[1, -2], [3, 1], [-1, -1]], x = (1, 2)ᵀ (a constant).
const std::vector<double> kW = {1, -2, 3, 1, -1, -1};
Tensor the_x() { return Tensor::from_vector(std::vector<double>{1, 2}, {2, 1}); }

}  // namespace

// y = Σ (relu(W x) · 2):  z = W x = (−3, 5, −3),  relu(z) = (0, 5, 0),  y = 10.
// Backward, by hand:  dy/d(relu(z)·2) = (1, 1, 1)        norm √3
//                     dy/d relu(z)    = (2, 2, 2)        norm 2√3
//                     dy/dz           = (0, 2, 0)        norm 2   (relu' = 0 at −3)
//                     dy/dW = dz xᵀ   = [[0, 0], [2, 4], [0, 0]]   norm √20
TEST_CASE("gradient_path on y = sum(relu(W x) * 2): the nodes, their gradient norms and W's gradient by hand") {
  Tensor W = param(kW, {3, 2}, "W");
  Tensor x = the_x().set_name("x");
  Tensor y;
  {
    ScopeGuard s("blk");
    Tensor z;
    {
      ScopeGuard lin("lin");
      z = matmul(W, x);
    }
    y = sum(relu(z) * 2.0);
  }
  CHECK(y.item() == 10);
  const std::vector<std::string> tape = lines_of(tape_to_text(y));  // before backward frees the tape
  REQUIRE(tape.size() == 4);
  CHECK(tape[0] == "%0 = blk.lin/matmul(W (3, 2), x (2, 1) const) -> (3, 1) f64");
  CHECK(find_gradient_path(y, W) == std::vector<int64_t>{3, 2, 1, 0});

  GradientPath p = gradient_path(y, W);
  REQUIRE(p.steps.size() == 4);
  CHECK(p.tape_nodes == 4);
  CHECK(p.param_name == "W");
  const std::vector<std::string> ops = {"sum", "mul_scalar", "relu", "matmul"};
  const std::vector<double> norms = {1, std::sqrt(3.0), 2 * std::sqrt(3.0), 2};
  const std::vector<Shape> shapes = {{}, {3, 1}, {3, 1}, {3, 1}};
  for (size_t i = 0; i < 4; i++) {
    INFO("step ", i);
    const GradPathStep& s = p.steps[i];
    CHECK(s.number == (int64_t)(3 - i));
    CHECK(s.op == ops[i]);
    CHECK(s.scope == (i == 3 ? "blk.lin" : "blk"));
    CHECK(s.grad_reached);
    CHECK(s.grad_shape == shapes[i]);
    CHECK(s.grad_norm == doctest::Approx(norms[i]).epsilon(1e-12));
    CHECK(s.via_input == 0);
  }
  CHECK(p.steps[0].inputs == std::vector<std::string>{"%2"});
  CHECK(p.steps[1].inputs == std::vector<std::string>{"%1"});  // mul by the number 2: one input
  CHECK(p.steps[3].inputs == std::vector<std::string>{"W (3, 2)", "x (2, 1) const"});
  // Every step's number is the tape listing's: line %N is that node.
  for (const GradPathStep& s : p.steps)
    CHECK(tape[s.number].rfind("%" + std::to_string(s.number) + " = " + s.label() + "(", 0) == 0);

  check_values(p.param_grad, {0, 0, 2, 4, 0, 0});
  CHECK(p.param_grad_norm == doctest::Approx(std::sqrt(20.0)).epsilon(1e-12));
  CHECK(p.edge_grad_norm == doctest::Approx(std::sqrt(20.0)).epsilon(1e-12));
  CHECK(p.consumers == std::vector<int64_t>{0});
  check_values(W.grad(), {0, 0, 2, 4, 0, 0});  // the real backward ran: W.grad is set as usual

  // The hooks and the wrapped backward are gone: W has no hook, and backward freed the tape as usual.
  CHECK(W.impl()->hooks.empty());
  CHECK(y.grad_fn()->hooks.empty());
  CHECK_FALSE(y.grad_fn()->backward);

  const std::string text = format_gradient_path(p);
  CHECK(contains(text, "gradient path: loss (%3 blk/sum) -> W (3, 2)"));
  CHECK(contains(text, "4 nodes of the loss's tape of 4"));
  CHECK(contains(text, "blk.lin/matmul"));
  CHECK(contains(text, "W (3, 2)*, x (2, 1) const"));
  CHECK(contains(text, "2.0000e+00"));                             // dy/dz
  CHECK(contains(text, "parameter W: grad (3, 2), norm 4.4721e+00"));  // √20
  CHECK(contains(text, "consumed directly by 1 node: %0"));
}

// The same graph, path to x (made a parameter): the matmul's input 1. dy/dx = Wᵀ dz = (2·3, 2·1) = (6, 2).
TEST_CASE("gradient_path to the second input of an op: via_input 1, and names from a TensorNames list") {
  Tensor W = param(kW, {3, 2});
  Tensor x = the_x();
  x.requires_grad_();
  Tensor y = sum(relu(matmul(W, x)) * 2.0);
  GradientPath p = gradient_path(y, x, {{"model.W", &W}, {"model.x", &x}});
  REQUIRE(p.steps.size() == 4);
  CHECK(p.steps.back().via_input == 1);
  CHECK(p.steps.back().inputs == std::vector<std::string>{"model.W (3, 2)", "model.x (2, 1)"});
  CHECK(p.param_name == "model.x");
  check_values(p.param_grad, {6, 2});
  CHECK(p.param_grad_norm == doctest::Approx(std::sqrt(40.0)).epsilon(1e-12));
}

// y = Σ (relu(W x) · 2) + Σ (W · 0.5): W has two direct consumers, matmul (%0) and mul-by-0.5 (%4).
// The shortest path is add → sum → mul (3 nodes, not 5 through the matmul). dy/dW = [[0,0],[2,4],[0,0]] + 0.5,
// norm √(4·0.25 + 2.5² + 4.5²) = √27.5; through the path's edge only 0.5 · ones(3, 2), norm 0.5·√6.
TEST_CASE("gradient_path: a parameter used twice — the shortest route, both consumers, edge part vs total") {
  Tensor W = param(kW, {3, 2}, "W");
  Tensor y = add(sum(relu(matmul(W, the_x())) * 2.0), sum(W * 0.5));
  GradientPath p = gradient_path(y, W);
  REQUIRE(p.steps.size() == 3);
  CHECK(p.steps[0].op == "add");
  CHECK(p.steps[0].via_input == 1);  // the second summand
  CHECK(p.steps[1].op == "sum");
  CHECK(p.steps[2].op == "mul_scalar");
  CHECK(p.steps[2].grad_norm == doctest::Approx(std::sqrt(6.0)).epsilon(1e-12));  // ones(3, 2)
  CHECK(p.consumers.size() == 2);
  CHECK(p.consumers.back() == p.steps[2].number);
  check_values(p.param_grad, {0.5, 0.5, 2.5, 4.5, 0.5, 0.5});
  CHECK(p.param_grad_norm == doctest::Approx(std::sqrt(27.5)).epsilon(1e-12));
  CHECK(p.edge_grad_norm == doctest::Approx(0.5 * std::sqrt(6.0)).epsilon(1e-12));
  CHECK(contains(format_gradient_path(p), "consumed directly by 2 nodes"));
}

// y = Σ W ⊙ W: one node takes W twice; dy/dW = 2W through that one edge, norm 2·‖W‖ = 2√17.
TEST_CASE("gradient_path: one node taking the parameter twice — the edge part sums both inputs") {
  Tensor W = param(kW, {3, 2}, "W");
  GradientPath p = gradient_path(sum(W * W), W);
  REQUIRE(p.steps.size() == 2);
  CHECK(p.steps[1].inputs == std::vector<std::string>{"W (3, 2)", "W (3, 2)"});
  CHECK(p.consumers.size() == 1);
  CHECK(p.edge_grad_norm == doctest::Approx(2 * std::sqrt(17.0)).epsilon(1e-12));
  CHECK(p.param_grad_norm == doctest::Approx(2 * std::sqrt(17.0)).epsilon(1e-12));
}

// retain_graph: the tape survives (the wrapped backward restored), a second backward adds to .grad, and each
// gradient_path reports its own sweep's gradient, not the accumulated .grad.
TEST_CASE("gradient_path with retain_graph: the path's numbers are the sweep's own, .grad accumulates as usual") {
  Tensor W = param(kW, {3, 2}, "W");
  Tensor y = sum(W * W);
  GradientPath a = gradient_path(y, W, {}, /*retain_graph=*/true);
  REQUIRE(y.grad_fn()->backward);
  GradientPath b = gradient_path(y, W, {}, true);
  CHECK(b.param_grad_norm == doctest::Approx(a.param_grad_norm).epsilon(1e-12));
  check_values(W.grad(), {4, -8, 12, 4, -4, -4});  // 2 · 2W
  CHECK(W.impl()->hooks.empty());
  CHECK(y.grad_fn()->hooks.empty());
}

TEST_CASE("the backward trace numbers nodes like tape_to_text (%N)") {
  Tensor W = param(kW, {3, 2}, "W");
  Tensor y = sum(relu(matmul(W, the_x())) * 2.0);
  std::ostringstream os;
  {
    TraceGuard trace(&os);
    y.backward();
  }
  std::vector<std::string> lines = lines_of(os.str());
  REQUIRE(lines.size() == 5);
  CHECK(lines[1].rfind("  %3 ", 0) == 0);
  CHECK(contains(lines[1], "sum"));
  CHECK(lines[4].rfind("  %0 ", 0) == 0);
  CHECK(contains(lines[4], "matmul"));
}

TEST_CASE("gradient_path errors: a parameter the loss does not reach (with the nearest reached names), frozen, no tape") {
  Tensor W = param(kW, {3, 2});
  Tensor V = param({1, 2}, {2});
  Tensor b = param({1, 2, 3}, {3});
  TensorNames names = {{"layers.0.attn.wq.weight", &W}, {"layers.0.attn.wkv_a.weight", &V},
                       {"layers.0.attn.wkv_b.weight", &b}};
  Tensor y = add(sum(W * 2.0), sum(b * b));
  std::string msg;
  try {
    gradient_path(y, V, names);
  } catch (const std::exception& e) {
    msg = e.what();
  }
  CHECK(contains(msg, "[gradient_path] parameter 'layers.0.attn.wkv_a.weight' (2) f64 is not reached by the loss"));
  CHECK(contains(msg, "a tape of 5 nodes"));
  CHECK(contains(msg, "parameters the loss does reach (2), nearest first: layers.0.attn.wkv_b.weight, "
                      "layers.0.attn.wq.weight"));
  CHECK(V.impl()->hooks.empty());
  REQUIRE(y.grad_fn()->backward);  // nothing ran: the tape is intact

  Tensor frozen = Tensor::from_vector(std::vector<double>{1, 2}, {2});
  CHECK_THROWS_WITH_AS(gradient_path(sum(W * 2.0), frozen),
                       doctest::Contains("does not require grad (frozen)"), std::runtime_error);
  Tensor h = W * 2.0;
  CHECK_THROWS_WITH_AS(gradient_path(sum(h), h), doctest::Contains("is not a leaf (it was computed by mul_scalar)"),
                       std::runtime_error);
  Tensor c = Tensor::from_vector(std::vector<double>{1, 2}, {2});
  CHECK_THROWS_WITH_AS(gradient_path(sum(c), W), doctest::Contains("has no tape"), std::runtime_error);
}

TEST_CASE("closest_names: shared leading components first, then edits, then the candidates' order") {
  const std::vector<std::string> c = {"embed.weight", "layers.0.attn.wq.weight", "layers.0.attn.wkv_a.weight",
                                      "layers.1.attn.wkv_a.weight", "layers.0.attn.wkv_b.weight"};
  CHECK(closest_names("layers.0.attn.wkv_a.weigth", c, 3) ==
        std::vector<std::string>{"layers.0.attn.wkv_a.weight", "layers.0.attn.wkv_b.weight", "layers.0.attn.wq.weight"});
  CHECK(closest_names("layers.1.attn.wkva.weight", c, 1) == std::vector<std::string>{"layers.1.attn.wkv_a.weight"});
  CHECK(closest_names("x", {}, 3).empty());
}

TEST_CASE("gradient_path_to_dot: the path's nodes drawn red in the tape's DOT") {
  Tensor W = param(kW, {3, 2}, "W");
  Tensor y = sum(relu(matmul(W, the_x())) * 2.0);
  std::string dot = gradient_path_to_dot(y, find_gradient_path(y, W));
  CHECK(contains(dot, "n0 [color=red"));
  CHECK(contains(dot, "n3 [color=red"));
  CHECK(dot.substr(dot.size() - 2) == "}\n");
}

TEST_CASE("gradient_path on a tape an earlier backward already freed: an error, the parameter's hooks removed") {
  Tensor W = param(kW, {3, 2}, "W");
  Tensor y = sum(W * W);
  y.backward();
  CHECK_THROWS_WITH_AS(gradient_path(y, W), doctest::Contains("already freed"), std::runtime_error);
  CHECK(W.impl()->hooks.empty());
}
