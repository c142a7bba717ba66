// tests/ops/test_errors.cpp — shape errors are exceptions that start with "[op]" and name the
// tensors and their shapes (README.md, Design §2). Each check states the whole message a student
// would read, then asserts the parts that matter.
#include <doctest/doctest.h>

#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "ops/elementwise.h"
#include "ops/linalg.h"
#include "ops/reduce.h"
#include "ops/shape.h"

namespace {

using sg::Tensor;

Tensor named(const sg::Shape& shape, const std::string& name) {
  Tensor t = Tensor::zeros(shape);
  t.set_name(name);
  return t;
}

// Runs f, which must throw std::runtime_error; returns the message ("" if nothing was thrown).
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

void check_has(const std::string& message, const std::vector<std::string>& parts) {
  INFO("message: " << message);
  REQUIRE(!message.empty());
  for (const std::string& p : parts) {
    INFO("expected to contain: " << p);
    CHECK(message.find(p) != std::string::npos);
  }
}

}  // namespace

TEST_CASE("errors: add of (2,3) and (4,5) names the op, both tensors and shapes") {
  Tensor a = named({2, 3}, "a"), b = named({4, 5}, "b");
  CHECK_THROWS_WITH_AS(sg::add(a, b), "[add] cannot broadcast a (2, 3) f32 with b (4, 5) f32", std::runtime_error);
  check_has(error_of([&] { sg::mul(a, b); }), {"[mul]", "a (2, 3)", "b (4, 5)"});
  check_has(error_of([&] { (void)(a - b); }), {"[sub]", "a (2, 3)", "b (4, 5)"});
}

TEST_CASE("errors: matmul inner-dim mismatch") {
  Tensor a = named({2, 3}, "a"), b = named({4, 5}, "b");
  check_has(error_of([&] { sg::matmul(a, b); }), {"[matmul]", "a (2, 3) f32", "b (4, 5) f32", "inner dims 3 and 4"});
  // batched, and batch dims that cannot broadcast
  Tensor q = named({2, 3, 4}, "q"), k = named({3, 4, 5}, "k");
  check_has(error_of([&] { sg::matmul(q, k); }), {"[matmul]", "cannot broadcast"});
}

TEST_CASE("errors: linear weight mismatch") {
  Tensor x = named({2, 7, 3}, "x"), w = named({5, 4}, "wq");
  check_has(error_of([&] { sg::linear(x, w); }), {"[linear]", "x (2, 7, 3)", "last dim 3", "wq (5, 4)", "in = 4"});
  Tensor w3 = named({5, 4, 1}, "w3");
  check_has(error_of([&] { sg::linear(x, w3); }), {"[linear]", "w3 (5, 4, 1)", "2-D"});
}

TEST_CASE("errors: reshape to a wrong numel") {
  Tensor x = named({2, 3}, "x");
  check_has(error_of([&] { sg::reshape(x, {4, 2}); }), {"[reshape]", "x (2, 3)", "6 elements", "(4, 2)"});
  check_has(error_of([&] { sg::reshape(x, {4, -1}); }), {"[reshape]", "x (2, 3)", "(4, -1)"});
  check_has(error_of([&] { sg::reshape(x, {-1, -1}); }), {"[reshape]", "only one dimension may be -1"});
}

TEST_CASE("errors: view of a non-viewable tensor") {
  Tensor x = named({2, 3}, "x");
  Tensor xt = sg::transpose(x, 0, 1);
  xt.set_name("xt");
  check_has(error_of([&] { sg::view(xt, {6}); }), {"[view]", "xt (3, 2)", "strides (1, 3)", "(6)", "reshape"});
  CHECK_NOTHROW(sg::reshape(xt, {6}));  // reshape copies instead
}

TEST_CASE("errors: permute with a repeated dim") {
  Tensor x = named({2, 3}, "x");
  check_has(error_of([&] { sg::permute(x, {0, 0}); }), {"[permute]", "repeated", "(0, 0)", "x (2, 3)"});
  check_has(error_of([&] { sg::permute(x, {0, 1, 2}); }), {"[permute]", "3 dims", "x (2, 3)"});
  check_has(error_of([&] { sg::permute(x, {0, 2}); }), {"[permute]", "dim 2", "out of range", "x (2, 3)"});
}

TEST_CASE("errors: cat with mismatched dims") {
  Tensor a = named({2, 3}, "a"), b = named({3, 4}, "b");
  check_has(error_of([&] { sg::cat({a, b}, 1); }), {"[cat]", "input 1", "b (3, 4)", "a (2, 3)", "dim 0"});
  Tensor c = named({2, 3, 1}, "c");
  check_has(error_of([&] { sg::cat({a, c}, 0); }), {"[cat]", "c (2, 3, 1)", "a (2, 3)"});
  check_has(error_of([&] { sg::stack({a, b}, 0); }), {"[stack]", "b (3, 4)", "a (2, 3)"});
}

TEST_CASE("errors: sum over an out-of-range axis") {
  Tensor x = named({2, 3}, "x");
  check_has(error_of([&] { sg::sum(x, {2}); }), {"[sum]", "dim 2", "out of range", "x (2, 3)"});
  check_has(error_of([&] { sg::max(x, {-3}); }), {"[max]", "dim -3", "x (2, 3)"});
  check_has(error_of([&] { sg::sum(x, {1, -1}); }), {"[sum]", "repeated"});
  check_has(error_of([&] { sg::var(named({2, 1}, "v"), {1}); }), {"[var]", "v (2, 1)"});
}

TEST_CASE("errors: expand of a non-1 dim") {
  Tensor x = named({2, 3}, "x");
  check_has(error_of([&] { sg::expand(x, {4, 3}); }), {"[expand]", "x (2, 3)", "(4, 3)", "dim 0 is 2, not 1"});
  check_has(error_of([&] { sg::expand(x, {3}); }), {"[expand]", "x (2, 3)", "fewer dims"});
}

TEST_CASE("errors: other shape ops name the tensor") {
  Tensor x = named({2, 3}, "x");
  check_has(error_of([&] { sg::squeeze(x, 1); }), {"[squeeze]", "x (2, 3)", "not 1"});
  check_has(error_of([&] { sg::narrow(x, 1, 2, 2); }), {"[narrow]", "x (2, 3)"});
  check_has(error_of([&] { sg::slice(x, 0, 0, 2, 0); }), {"[slice]", "step"});
  check_has(error_of([&] { sg::split_sizes(x, {1, 1}, 1); }), {"[split]", "x (2, 3)", "sum to 2"});
  check_has(error_of([&] { sg::masked_fill(x, named({4, 2, 3}, "mask"), 0.0); }), {"[masked_fill]", "mask (4, 2, 3)", "x (2, 3)"});
  check_has(error_of([&] { sg::where(named({4}, "cond"), x, x); }), {"[where]", "cond (4)"});
}
