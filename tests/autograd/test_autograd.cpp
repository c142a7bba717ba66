// tests/autograd/test_autograd.cpp — the autograd engine (autograd/): gradient accumulation,
// retain_graph, no_grad, detach, hooks, retain_grad, scopes, anomaly mode, the trace, the tape as
// DOT/text, gradcheck, views, the caching allocator and the RNG.
//
// Every test checks numbers worked out by hand in the comment above it (or a property that must
// hold exactly), not merely that the code runs. Gradients are checked in f64.
//
// What this is not: the per-op value/gradient sweep — that is tests/ops/test_registry.cpp.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "autograd/allocator.h"
#include "autograd/gradcheck.h"
#include "autograd/node.h"
#include "autograd/rng.h"
#include "autograd/runtime.h"
#include "ops/ops.h"

using namespace sg;

namespace {

Tensor f64(const std::vector<double>& v, const Shape& shape) { return Tensor::from_vector(v, shape); }
Tensor param(const std::vector<double>& v, const Shape& shape, const std::string& name = "") {
  Tensor t = Tensor::from_vector(v, shape);
  t.requires_grad_();
  if (!name.empty()) t.set_name(name);
  return t;
}

void check_values(const Tensor& t, const std::vector<double>& want, double eps = 1e-12) {
  REQUIRE(t.defined());
  std::vector<double> got = t.to_f64_vector();
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < want.size(); i++) {
    INFO("element ", i, " of ", t.describe());
    CHECK(got[i] == doctest::Approx(want[i]).epsilon(eps));
  }
}

// The message of the exception `fn` throws, or "" when it does not throw.
template <class F> std::string error_of(F fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

int count_of(const std::string& s, const std::string& part) {
  int n = 0;
  for (size_t at = s.find(part); at != std::string::npos; at = s.find(part, at + part.size())) n++;
  return n;
}

std::vector<std::string> lines_of(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream is(s);
  for (std::string line; std::getline(is, line);) out.push_back(line);
  return out;
}

}  // namespace

// ---- accumulation ---------------------------------------------------------------------------------

// y = Σ (x² + x): x reaches y along two paths (through mul, twice, and through add), so
// dy/dx = 2x + 1 = (3, 5, 7) at x = (1, 2, 3).
TEST_CASE("a tensor used twice accumulates both contributions: y = x*x + x gives dx = 2x + 1") {
  Tensor x = param({1, 2, 3}, {3}, "x");
  Tensor y = sum(x * x + x);
  CHECK(y.item() == doctest::Approx(1 + 1 + 4 + 2 + 9 + 3));
  y.backward();
  check_values(x.grad(), {3, 5, 7});
  CHECK(x.grad().shape() == Shape{3});
}

TEST_CASE("two backward() calls on two graphs add up in .grad; zero_grad clears it") {
  Tensor x = param({1, 2, 3}, {3});
  sum(x * x + x).backward();
  sum(x * x + x).backward();
  check_values(x.grad(), {6, 10, 14});
  // A different function adds its own gradient on top: d/dx Σ 3x = 3.
  sum(x * 3.0).backward();
  check_values(x.grad(), {9, 13, 17});
  x.zero_grad();
  CHECK_FALSE(x.grad().defined());
  sum(x * 3.0).backward();
  check_values(x.grad(), {3, 3, 3});
}

// y = Σ x²: dy/dx = 2x.
TEST_CASE("retain_graph: a second backward without it throws a clear error; with it, grads accumulate") {
  Tensor x = param({1, -2}, {2});
  Tensor y = sum(x * x);
  y.backward(Tensor(), /*retain_graph=*/true);
  check_values(x.grad(), {2, -4});
  y.backward();  // the graph was retained: runs again and frees it
  check_values(x.grad(), {4, -8});
  std::string msg = error_of([&] { y.backward(); });
  CHECK(contains(msg, "[backward]"));
  CHECK(contains(msg, "already freed"));
  CHECK(contains(msg, "retain_graph"));
  check_values(x.grad(), {4, -8});  // the failed call changed nothing
}

TEST_CASE("backward without retain_graph releases every node's edges and saved tensors") {
  Tensor x = param({1, 2}, {2});
  Tensor h = x * x;
  Tensor y = sum(h);
  std::shared_ptr<Node> mul_node = h.grad_fn(), sum_node = y.grad_fn();
  CHECK(mul_node->inputs.size() == 2);
  y.backward();
  CHECK(mul_node->inputs.empty());
  CHECK_FALSE(mul_node->backward);
  CHECK(sum_node->inputs.empty());
}

// ---- no_grad / detach ------------------------------------------------------------------------------

TEST_CASE("NoGradGuard: nothing is recorded and outputs do not require grad; it nests and restores") {
  Tensor x = param({1, 2}, {2});
  {
    NoGradGuard no_grad;
    CHECK_FALSE(grad_enabled());
    Tensor y = x * x + x;
    CHECK_FALSE(y.requires_grad());
    CHECK(y.is_leaf());
    CHECK_FALSE(y.grad_fn());
    check_values(y, {2, 6});  // the numbers are still computed
    {
      NoGradGuard inner;
      CHECK_FALSE(grad_enabled());
    }
    CHECK_FALSE(grad_enabled());  // the inner guard restored "off", not "on"
    std::string msg = error_of([&] { sum(y).backward(); });
    CHECK(contains(msg, "does not require grad"));
  }
  CHECK(grad_enabled());
  Tensor z = x * x;
  CHECK(z.requires_grad());
  REQUIRE(z.grad_fn());
  CHECK(z.grad_fn()->op == "mul");
}

TEST_CASE("detach shares storage (writes are seen both ways) and stops the gradient") {
  Tensor x = param({1, 2, 3}, {3}, "x");
  Tensor d = x.detach();
  CHECK(d.impl()->storage == x.impl()->storage);
  CHECK_FALSE(d.requires_grad());
  CHECK(d.is_leaf());
  d.set_at({0}, 42);
  CHECK(x.at({0}) == 42);
  x.set_at({2}, -5);
  CHECK(d.at({2}) == -5);
  x.set_at({0}, 1);
  x.set_at({2}, 3);

  // y = Σ x ⊙ detach(x): only the first factor is differentiated, so dx = x (not 2x).
  Tensor y = sum(x * d);
  y.backward();
  check_values(x.grad(), {1, 2, 3});

  // A function of the detached tensor alone has no gradient path back to x.
  Tensor z = sum(d * d);
  CHECK_FALSE(z.requires_grad());
  CHECK(contains(error_of([&] { z.backward(); }), "does not require grad"));
}

// ---- hooks and retain_grad ---------------------------------------------------------------------------

// y = Σ (x² + x): the leaf's hook sees its TOTAL gradient 2x + 1 once, not one call per use.
TEST_CASE("a hook on a leaf sees the leaf's total gradient once and can replace it") {
  Tensor x = param({1, 2, 3}, {3});
  int calls = 0;
  std::vector<double> seen;
  x.on_grad([&](Tensor& g) {
    calls++;
    seen = g.to_f64_vector();
  });
  sum(x * x + x).backward();
  CHECK(calls == 1);
  CHECK(seen == std::vector<double>{3, 5, 7});
  check_values(x.grad(), {3, 5, 7});

  // A second hook that doubles the gradient: .grad receives 2 (2x + 1).
  Tensor w = param({1, 2, 3}, {3});
  w.on_grad([](Tensor& g) { g = g * 2.0; });
  sum(w * w + w).backward();
  check_values(w.grad(), {6, 10, 14});
}

// h = x², y = Σ 3h: dy/dh = 3, dy/dx = 3 · 2x.
TEST_CASE("a hook on a non-leaf observes dy/dh and a doubling hook doubles everything below it") {
  Tensor x = param({1, 2, 3}, {3});
  Tensor h = x * x;
  std::vector<double> seen;
  h.on_grad([&](Tensor& g) { seen = g.to_f64_vector(); });
  sum(h * 3.0).backward();
  CHECK(seen == std::vector<double>{3, 3, 3});
  check_values(x.grad(), {6, 12, 18});

  Tensor x2 = param({1, 2, 3}, {3});
  Tensor h2 = x2 * x2;
  h2.on_grad([](Tensor& g) { g = g * 2.0; });
  sum(h2 * 3.0).backward();
  check_values(x2.grad(), {12, 24, 36});
  CHECK_FALSE(h2.grad().defined());  // hooks do not imply retain_grad
}

TEST_CASE("retain_grad keeps dy/dh on a non-leaf; without it a non-leaf has no .grad") {
  Tensor x = param({1, 2}, {2});
  Tensor h = x * x;      // h = (1, 4)
  Tensor k = x * x;
  h.retain_grad();
  Tensor y = sum(h * h + k);  // dy/dh = 2h = (2, 8)
  y.backward();
  check_values(h.grad(), {2, 8});
  CHECK_FALSE(k.grad().defined());
  // dy/dx = 2h · 2x + 2x = (4 + 2, 32 + 4)
  check_values(x.grad(), {6, 36});
}

// ---- scopes and names -------------------------------------------------------------------------------

TEST_CASE("nested ScopeGuards give Node::scope \"layers.2.attn\" and restore on exit") {
  Tensor x = param({1, 2}, {2});
  Tensor y, z;
  CHECK(current_scope() == "");
  {
    ScopeGuard layers("layers");
    ScopeGuard block("2");
    {
      ScopeGuard attn("attn");
      ScopeGuard empty("");  // empty parts are skipped, not turned into ".."
      y = x * x;
      CHECK(current_scope() == "layers.2.attn");
    }
    z = y + x;
    CHECK(current_scope() == "layers.2");
  }
  CHECK(current_scope() == "");
  REQUIRE(y.grad_fn());
  CHECK(y.grad_fn()->scope == "layers.2.attn");
  CHECK(y.grad_fn()->label() == "layers.2.attn/mul");
  CHECK(z.grad_fn()->scope == "layers.2");
  CHECK(z.grad_fn()->label() == "layers.2/add");
  Tensor top = sum(z);
  CHECK(top.grad_fn()->scope == "");
  CHECK(top.grad_fn()->label() == "sum");
}

TEST_CASE("set_name names the gradient in the trace: grad(<name>)") {
  Tensor x = param({1, 2}, {2}, "x");
  Tensor h = (x * x).set_name("layers.0.attn.wq_b");
  CHECK(h.name() == "layers.0.attn.wq_b");
  CHECK(h.grad_fn()->out_name == "layers.0.attn.wq_b");
  Tensor y = sum(h);
  std::ostringstream os;
  {
    TraceGuard trace(&os);
    y.backward();
  }
  std::string out = os.str();
  CHECK(contains(out, "grad(layers.0.attn.wq_b)"));
  CHECK(contains(out, "grad(sum)"));  // an unnamed node's gradient is named after its op
  CHECK(x.describe() == "x (2) f64");
}

// ---- anomaly mode -------------------------------------------------------------------------------------

TEST_CASE("anomaly mode: log of a negative number is reported in forward with scope and op") {
  Tensor x = param({-1, 2}, {2}, "x");
  std::string msg;
  {
    AnomalyGuard anomaly;
    ScopeGuard layers("layers");
    ScopeGuard block("2");
    ScopeGuard attn("attn");
    msg = error_of([&] { log(x); });
  }
  CHECK(contains(msg, "[anomaly]"));
  CHECK(contains(msg, "forward of layers.2.attn/log"));
  CHECK(contains(msg, "NaN at flat index 0"));
  CHECK(contains(msg, "x (2) f64"));  // names the input

  // Without anomaly mode nothing throws; the NaN is simply there.
  Tensor y;
  CHECK_NOTHROW(y = log(x));
  CHECK(std::isnan(y.at({0})));
  CHECK(y.at({1}) == doctest::Approx(std::log(2.0)));
}

// y = Σ √x at x = (0, 4): forward is finite (0 + 2) but dy/dx = 1 / (2√x) = (Inf, 0.25).
TEST_CASE("anomaly mode: an Inf gradient (sqrt at 0) is reported in backward naming the op") {
  {
    Tensor x = param({0, 4}, {2}, "x");
    Tensor y;
    std::string msg;
    {
      AnomalyGuard anomaly;
      ScopeGuard scope("norm");
      y = sum(sqrt(x));  // forward is finite: no throw here
      CHECK(y.item() == 2);
      msg = error_of([&] { y.backward(); });
    }
    CHECK(contains(msg, "[anomaly] backward of norm/sqrt"));
    CHECK(contains(msg, "gradient for input 0 (x (2) f64)"));
    CHECK(contains(msg, "NaN/Inf"));
  }
  {
    Tensor x = param({0, 4}, {2}, "x");
    Tensor y = sum(sqrt(x));
    CHECK_NOTHROW(y.backward());
    CHECK(std::isinf(x.grad().at({0})));
    CHECK(x.grad().at({1}) == doctest::Approx(0.25));
  }
  CHECK_FALSE(autograd_state().anomaly);  // the guard restored the switch
}

// ---- trace ---------------------------------------------------------------------------------------------

// y = Σ (x ⊙ x + x) at x = (1, 2, 3), scope "blk": the sweep visits sum (grad 1, shape ()),
// add (grad ones(3), norm √3) and mul (grad ones(3)), one line each.
TEST_CASE("TraceGuard prints one line per node: scope/op, gradient shape, norm, min, max") {
  Tensor x = param({1, 2, 3}, {3}, "x");
  Tensor y;
  {
    ScopeGuard scope("blk");
    y = sum(x * x + x);
  }
  std::ostringstream os;
  {
    TraceGuard trace(&os);
    y.backward();
  }
  std::vector<std::string> lines = lines_of(os.str());
  REQUIRE(lines.size() == 4);
  CHECK(contains(lines[0], "backward sweep: 3 nodes from blk/sum"));
  CHECK(contains(lines[1], "blk/sum"));
  CHECK(contains(lines[1], "()"));
  CHECK(contains(lines[1], "norm 1.0000e+00"));
  CHECK(contains(lines[2], "blk/add"));
  CHECK(contains(lines[2], "(3)"));
  CHECK(contains(lines[2], "norm 1.7321e+00"));
  CHECK(contains(lines[2], "min 1.0000e+00"));
  CHECK(contains(lines[3], "blk/mul"));
  CHECK(contains(lines[3], "max 1.0000e+00"));

  // Outside the guard the trace is off again.
  std::ostringstream after;
  autograd_state().trace_out = &after;
  sum(x * x).backward();
  autograd_state().trace_out = nullptr;
  CHECK(after.str().empty());
}

TEST_CASE("SEEKGRAD_TRACE=1 in the environment turns the trace on") {
  std::ostringstream os;
  autograd_state().trace_out = &os;  // where the env-triggered trace goes (default std::cerr)
  Tensor x = param({1, 2}, {2});

  setenv("SEEKGRAD_TRACE", "1", 1);
  CHECK(trace_requested_by_env());
  sum(x * x).backward();
  CHECK(count_of(os.str(), "norm") == 2);

  setenv("SEEKGRAD_TRACE", "0", 1);
  CHECK_FALSE(trace_requested_by_env());
  unsetenv("SEEKGRAD_TRACE");
  CHECK_FALSE(trace_requested_by_env());
  os.str("");
  sum(x * x).backward();
  CHECK(os.str().empty());
  autograd_state().trace_out = nullptr;
}

// ---- tape printing ---------------------------------------------------------------------------------------

// y = Σ (a ⊙ b + a), b a constant: 3 ops, 2 leaves, 5 edges (mul<-a, mul<-b, add<-mul, add<-a, sum<-add).
TEST_CASE("tape_to_dot: a digraph with one box per op, one ellipse per leaf, one edge per input") {
  Tensor a = param({1, 2, 3}, {3}, "a");
  Tensor b = f64({4, 5, 6}, {3}).set_name("b");
  Tensor y = sum(a * b + a);
  std::string dot = tape_to_dot(y);
  CHECK(contains(dot, "digraph"));
  CHECK(count_of(dot, "shape=box") == 3);
  CHECK(count_of(dot, "shape=ellipse") == 2);  // `a` is used twice but drawn once
  CHECK(count_of(dot, "->") == 5);
  CHECK(contains(dot, "label=\"mul\\n(3)\""));
  CHECK(contains(dot, "label=\"sum\\n()\""));
  CHECK(contains(dot, "label=\"a (3)\""));
  CHECK(contains(dot, "style=dashed, label=\"b (3)\""));  // constants are dashed
  CHECK(dot.back() == '\n');
  CHECK(contains(dot, "}"));
}

TEST_CASE("tape_to_text: one line per node in topological order") {
  Tensor a = param({1, 2, 3}, {3}, "a");
  Tensor b = f64({4, 5, 6}, {3}).set_name("b");
  Tensor h = (a * b + a).set_name("h");
  Tensor y = sum(h);
  std::vector<std::string> lines = lines_of(tape_to_text(y));
  REQUIRE(lines.size() == 3);
  CHECK(lines[0] == "%0 = mul(a (3), b (3) const) -> (3) f64");
  CHECK(lines[1] == "%1 = add(%0, a (3)) -> (3) f64  [h]");
  CHECK(lines[2] == "%2 = sum(%1) -> () f64");
  CHECK(tape_to_text(a).empty());  // a leaf has no tape
}

// ---- gradcheck -----------------------------------------------------------------------------------------------

TEST_CASE("gradcheck passes on a composite function of two inputs") {
  Rng rng(7);
  Tensor x = Tensor::randn({3, 4}, rng, 1.0, DType::f64).requires_grad_();
  Tensor w = Tensor::randn({4, 3}, rng, 1.0, DType::f64).requires_grad_();
  // f(x, w) = Σ_cols tanh(x w)² + mean_cols(x ⊙ x) + Σ_cols slice(xᵀ)…, shape (3)
  auto f = [](const std::vector<Tensor>& in) {
    Tensor y = tanh(matmul(in[0], in[1]));
    Tensor t = permute(in[0], {1, 0});              // (4, 3), non-contiguous
    Tensor s = slice(t, 0, 1, 4, 2);                 // rows 1 and 3 of xᵀ: (2, 3)
    return sum(y * y, {1}) + mean(in[0] * in[0], {1}) + sum(exp(s), {0});
  };
  GradcheckResult r = gradcheck(f, {x, w});
  INFO(r.message);
  CHECK(r.ok);
  CHECK(r.max_abs_error < 1e-7);
}

// A deliberately wrong op: forward y = x², backward returns dy ⊙ x (missing the factor 2).
static Tensor wrong_square(const Tensor& x) {
  Tensor y = Tensor::empty(x.shape(), DType::f64);
  std::vector<double> v = x.to_f64_vector();
  for (int64_t i = 0; i < x.numel(); i++) y.data<double>()[i] = v[i] * v[i];
  if (needs_grad(x)) {
    Tensor xs = x.detach();
    record("wrong_square", y, {x}, [xs](const Tensor& dy) { return std::vector<Tensor>{dy * xs}; });
  }
  return y;
}

TEST_CASE("gradcheck fails on an op with a wrong backward and says where") {
  Tensor x = param({0.5, -1.5, 2.0}, {3});
  GradcheckResult r = gradcheck([](const std::vector<Tensor>& in) { return wrong_square(in[0]); }, {x});
  CHECK_FALSE(r.ok);
  CHECK(contains(r.message, "input 0"));
  CHECK(contains(r.message, "analytic"));
  CHECK(contains(r.message, "numeric"));
  // |analytic - numeric| = |x w - 2 x w| = |x w| > 0 somewhere; the worst is at least 1e-3.
  CHECK(r.max_abs_error > 1e-3);

  Tensor x32 = Tensor::from_vector(std::vector<float>{1, 2}, {2});
  x32.requires_grad_();
  CHECK(contains(error_of([&] { gradcheck([](const std::vector<Tensor>& in) { return in[0]; }, {x32}); }), "must be f64"));
}

// ---- views ---------------------------------------------------------------------------------------------------------

// x = [[0, 1, 2], [3, 4, 5]]
TEST_CASE("views share storage: reshape, permute and slice see writes, both ways") {
  Tensor x = f64({0, 1, 2, 3, 4, 5}, {2, 3});
  Tensor r = reshape(x, {3, 2});
  Tensor p = permute(x, {1, 0});
  Tensor s = slice(x, 1, 1, 3);  // columns 1..2
  for (const Tensor* v : {&r, &p, &s}) CHECK(v->impl()->storage == x.impl()->storage);
  CHECK(r.is_contiguous());
  CHECK_FALSE(p.is_contiguous());
  CHECK_FALSE(s.is_contiguous());
  CHECK(p.strides() == Shape{1, 3});
  CHECK(s.offset() == 1);
  check_values(p, {0, 3, 1, 4, 2, 5});  // row-major order of the view
  check_values(s, {1, 2, 4, 5});

  x.set_at({1, 2}, 100);  // flat 5
  CHECK(r.at({2, 1}) == 100);
  CHECK(p.at({2, 1}) == 100);
  CHECK(s.at({1, 1}) == 100);

  p.set_at({0, 1}, -7);  // p[0][1] = x[1][0]
  CHECK(x.at({1, 0}) == -7);
  CHECK(r.at({1, 1}) == -7);
  s.set_at({0, 0}, 9);   // s[0][0] = x[0][1]
  CHECK(x.at({0, 1}) == 9);

  Tensor c = contiguous(p);  // a copy: no longer shares
  CHECK(c.impl()->storage != x.impl()->storage);
  c.set_at({0, 0}, 1234);
  CHECK(x.at({0, 0}) == 0);
}

// x (2, 3), p = xᵀ (3, 2) with strides (1, 3): y = Σ p ⊙ w gives dx = wᵀ, stored contiguous.
TEST_CASE("gradients through non-contiguous views land contiguous and in the right places") {
  Tensor x = param({1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor w = f64({10, 20, 30, 40, 50, 60}, {3, 2});  // w[i][j] multiplies x[j][i]
  sum(permute(x, {1, 0}) * w).backward();
  check_values(x.grad(), {10, 30, 50, 20, 40, 60});
  CHECK(x.grad().is_contiguous());
  CHECK(x.grad().shape() == Shape{2, 3});

  // Columns 0 and 2 (step 2): d/dx Σ s² = 2x there, 0 in column 1.
  x.zero_grad();
  Tensor s = slice(x, 1, 0, 3, 2);
  sum(s * s).backward();
  check_values(x.grad(), {2, 0, 6, 8, 0, 12});

  // A non-contiguous seed: z = 3x, seed g = permute(G) with G (3, 2) → dx = 3 Gᵀ.
  x.zero_grad();
  Tensor G = f64({1, 2, 3, 4, 5, 6}, {3, 2});
  Tensor g = permute(G, {1, 0});
  REQUIRE_FALSE(g.is_contiguous());
  (x * 3.0).backward(g);
  check_values(x.grad(), {3, 9, 15, 6, 12, 18});
  // ... and accumulating a second non-contiguous gradient adds in row-major order.
  (x * 1.0).backward(g);
  check_values(x.grad(), {4, 12, 20, 8, 16, 24});
  CHECK(x.grad().is_contiguous());
}

TEST_CASE("a leaf's .grad is its own buffer, not shared with another leaf or the seed") {
  Tensor a = param({1, 2}, {2}), b = param({3, 4}, {2});
  Tensor seed = f64({1, 1}, {2});
  (a + b).backward(seed);  // add passes the seed through unchanged to both inputs
  check_values(a.grad(), {1, 1});
  check_values(b.grad(), {1, 1});
  CHECK(a.grad().impl()->storage != b.grad().impl()->storage);
  CHECK(a.grad().impl()->storage != seed.impl()->storage);
  a.grad().set_at({0}, 100);  // e.g. in-place gradient clipping of one parameter
  CHECK(b.grad().at({0}) == 1);
  CHECK(seed.at({0}) == 1);
}

// ---- backward errors and graph shape -----------------------------------------------------------------------

TEST_CASE("backward on a non-scalar needs an explicit gradient; the error says so") {
  Tensor x = param({1, 2, 3}, {3}, "x");
  Tensor y = (x * x).set_name("y");
  std::string msg = error_of([&] { y.backward(); });
  CHECK(contains(msg, "[backward]"));
  CHECK(contains(msg, "y (3) f64"));
  CHECK(contains(msg, "not a scalar"));
  msg = error_of([&] { y.backward(f64({1, 1}, {2})); });
  CHECK(contains(msg, "gradient (2) does not match y (3) f64"));
  CHECK(contains(error_of([] { Tensor().backward(); }), "undefined"));
  // With a gradient of the right shape it works: dx = 2x ⊙ g.
  y.backward(f64({1, 0, -1}, {3}));
  check_values(x.grad(), {2, 0, -6});
}

TEST_CASE("backward on a leaf: the seed is its gradient (and its hooks run)") {
  Tensor x = param({1, 2}, {2});
  int calls = 0;
  x.on_grad([&](Tensor&) { calls++; });
  x.backward(f64({5, 6}, {2}));
  check_values(x.grad(), {5, 6});
  CHECK(calls == 1);
}

// Diamond: b = exp(x); c = 2b; d = b²; e = Σ (c + d).  de/db = 2 + 2b, de/dx = (2 + 2b) b.
TEST_CASE("topological order of a diamond visits each node once, inputs first") {
  Tensor x = param({0, 1}, {2});
  Tensor b = exp(x);
  Tensor c = b * 2.0;
  Tensor d = square(b);
  Tensor e_pre = c + d;
  Tensor e = sum(e_pre);
  std::vector<std::shared_ptr<Node>> order = topological_order(e);
  REQUIRE(order.size() == 5);
  auto pos = [&](const Tensor& t) {
    auto it = std::find(order.begin(), order.end(), t.grad_fn());
    REQUIRE(it != order.end());
    return it - order.begin();
  };
  for (size_t i = 0; i < order.size(); i++)
    for (size_t j = i + 1; j < order.size(); j++) CHECK(order[i] != order[j]);
  CHECK(pos(b) == 0);
  CHECK(pos(c) < pos(e_pre));
  CHECK(pos(d) < pos(e_pre));
  CHECK(pos(e_pre) == 3);
  CHECK(pos(e) == 4);

  int b_hook_calls = 0;
  b.on_grad([&](Tensor&) { b_hook_calls++; });  // b's backward runs once, with both branches summed
  e.backward();
  CHECK(b_hook_calls == 1);
  double b0 = 1.0, b1 = std::exp(1.0);
  check_values(x.grad(), {(2 + 2 * b0) * b0, (2 + 2 * b1) * b1}, 1e-12);
}

// y = x + x + ... (10 000 adds): dy/dx = 10 001.
TEST_CASE("a 10k-long chain backprops without stack overflow") {
  Tensor x = param({0.5}, {});
  Tensor y = x;
  for (int i = 0; i < 10000; i++) y = y + x;
  CHECK(y.item() == doctest::Approx(0.5 * 10001));
  CHECK(topological_order(y).size() == 10000);
  y.backward();
  CHECK(x.grad().item() == 10001);
}

// ---- caching allocator ----------------------------------------------------------------------------------------

TEST_CASE("ParamKind: none until a module registers the tensor; shared by handles, not by copies or views") {
  Tensor w = Tensor::zeros({2, 3});
  CHECK(w.param_kind() == ParamKind::none);
  Tensor handle = w;
  w.set_param_kind(ParamKind::weight);
  CHECK(handle.param_kind() == ParamKind::weight);  // one TensorImpl
  CHECK(w.clone_data().param_kind() == ParamKind::none);
  CHECK(w.detach().param_kind() == ParamKind::none);
  CHECK(reshape(w, {3, 2}).param_kind() == ParamKind::none);
  CHECK(std::string(param_kind_name(ParamKind::embedding)) == "embedding");
  CHECK(std::string(param_kind_name(ParamKind::buffer)) == "buffer");
}

TEST_CASE("parallel_for: disjoint ranges cover [0, n) exactly once, at least `grain` long, on any thread count") {
  const int saved = num_threads();
  for (int threads : {1, 2, 3, 4}) {
    set_num_threads(threads);
    for (int64_t n : {0, 1, 7, 100, 1000, 100003}) {
      for (int64_t grain : {1, 16, 4096}) {
        CAPTURE(threads);
        CAPTURE(n);
        CAPTURE(grain);
        std::vector<int> hits(n, 0);
        std::vector<std::pair<int64_t, int64_t>> ranges(64, {-1, -1});
        std::atomic<int> calls{0};
        parallel_for(n, grain, [&](int64_t b, int64_t e) {
          int c = calls.fetch_add(1);
          if (c < 64) ranges[c] = {b, e};
          for (int64_t i = b; i < e; i++) hits[i]++;
        });
        CHECK(std::all_of(hits.begin(), hits.end(), [](int h) { return h == 1; }));
        CHECK(calls.load() <= threads);
        if (n < 2 * grain || threads == 1) CHECK(calls.load() <= 1);  // serial: fn(0, n) on the caller
        for (int c = 0; c < std::min(calls.load(), 64); c++)
          if (calls.load() > 1) CHECK(ranges[c].second - ranges[c].first >= grain);
      }
    }
  }
  set_num_threads(saved);
}

TEST_CASE("parallel_for: a parallel_for inside a parallel_for runs serially on the calling worker") {
  const int saved = num_threads();
  set_num_threads(4);
  std::atomic<int> inner_calls{0}, wrong_thread{0};
  parallel_for(8, 1, [&](int64_t b, int64_t e) {
    const std::thread::id outer = std::this_thread::get_id();
    parallel_for(1000, 1, [&](int64_t ib, int64_t ie) {
      inner_calls++;
      if (std::this_thread::get_id() != outer || ib != 0 || ie != 1000) wrong_thread++;
    });
  });
  CHECK(inner_calls.load() >= 1);
  CHECK(inner_calls.load() <= 4);  // one inner call per outer chunk
  CHECK(wrong_thread.load() == 0);
  set_num_threads(saved);
}

TEST_CASE("allocator: size classes round up by at most 25% to multiples of 64") {
  CHECK(cpu_allocator_size_class(0) == 64);
  CHECK(cpu_allocator_size_class(1) == 64);
  CHECK(cpu_allocator_size_class(64) == 64);
  CHECK(cpu_allocator_size_class(65) == 128);
  CHECK(cpu_allocator_size_class(256) == 256);
  CHECK(cpu_allocator_size_class(257) == 320);        // [256, 512) in steps of 64
  CHECK(cpu_allocator_size_class(1000) == 1024);      // [512, 1024) in steps of 128
  CHECK(cpu_allocator_size_class(1025) == 1280);      // [1024, 2048) in steps of 256
  CHECK(cpu_allocator_size_class(1 << 20) == (1 << 20));
  CHECK(cpu_allocator_size_class((1 << 20) + 1) == (1 << 20) + (1 << 18));
  for (size_t n = 1; n < 100000; n = n * 3 / 2 + 1) {
    size_t c = cpu_allocator_size_class(n);
    INFO("n = ", n, " class = ", c);
    CHECK(c >= n);
    CHECK(c % 64 == 0);
    if (n > 256) CHECK(c * 4 < n * 5);  // less than 25% wasted
  }
}

TEST_CASE("allocator: free then allocate the same size class is a cache hit returning the same block") {
  const size_t n = 123456;  // an unusual size, so no other test's cached block is in its list
  cpu_allocator_release_cached();
  AllocatorStats s0 = cpu_allocator_stats();
  CHECK(s0.cached_bytes == 0);
  void* p = cpu_allocate(n);
  CHECK(reinterpret_cast<uintptr_t>(p) % 64 == 0);
  AllocatorStats s1 = cpu_allocator_stats();
  CHECK(s1.n_allocs == s0.n_allocs + 1);
  CHECK(s1.n_cache_hits == s0.n_cache_hits);  // the first one is a miss
  CHECK(s1.allocated_bytes == s0.allocated_bytes + (int64_t)cpu_allocator_size_class(n));
  cpu_free(p, n);
  AllocatorStats s2 = cpu_allocator_stats();
  CHECK(s2.allocated_bytes == s0.allocated_bytes);
  CHECK(s2.cached_bytes == (int64_t)cpu_allocator_size_class(n));
  void* q = cpu_allocate(n - 100);  // same size class
  AllocatorStats s3 = cpu_allocator_stats();
  CHECK(q == p);
  CHECK(s3.n_cache_hits == s2.n_cache_hits + 1);
  CHECK(s3.cached_bytes == 0);
  cpu_free(q, n - 100);

  // Tensors go through it too: a freed tensor's block serves the next tensor of that size.
  { Tensor t = Tensor::empty({30000}, DType::f32); }
  AllocatorStats s4 = cpu_allocator_stats();
  Tensor u = Tensor::empty({30000}, DType::f32);
  CHECK(cpu_allocator_stats().n_cache_hits == s4.n_cache_hits + 1);
}

TEST_CASE("allocator: peak tracks the high-water mark and reset_peak restarts it") {
  cpu_allocator_reset_peak();
  AllocatorStats s0 = cpu_allocator_stats();
  CHECK(s0.peak_bytes == s0.allocated_bytes);
  const size_t big = 3 << 20, small = 1 << 20;
  void* a = cpu_allocate(big);
  void* b = cpu_allocate(small);
  int64_t high = s0.allocated_bytes + (int64_t)(cpu_allocator_size_class(big) + cpu_allocator_size_class(small));
  CHECK(cpu_allocator_stats().peak_bytes == high);
  cpu_free(a, big);
  cpu_free(b, small);
  AllocatorStats s1 = cpu_allocator_stats();
  CHECK(s1.allocated_bytes == s0.allocated_bytes);
  CHECK(s1.peak_bytes == high);  // freeing does not lower the peak
  cpu_allocator_reset_peak();
  CHECK(cpu_allocator_stats().peak_bytes == s0.allocated_bytes);
  cpu_allocator_release_cached();
  CHECK(cpu_allocator_stats().cached_bytes == 0);
}

// ---- RNG ------------------------------------------------------------------------------------------------------

TEST_CASE("Rng: same seed, same numbers; another seed, other numbers; state round-trips") {
  Rng a(42), b(42), c(43);
  int differ = 0;
  for (int i = 0; i < 1000; i++) {
    uint64_t va = a.next_u64();
    CHECK(va == b.next_u64());
    differ += va != c.next_u64();
  }
  CHECK(differ == 1000);

  Rng r(42);
  for (int i = 0; i < 10; i++) r.normal();
  std::array<uint64_t, 4> saved = r.state();
  std::vector<double> first;
  for (int i = 0; i < 5; i++) first.push_back(r.normal());
  r.set_state(saved);
  for (int i = 0; i < 5; i++) CHECK(r.normal() == first[i]);

  Rng t1(42), t2(42);
  Tensor x1 = Tensor::randn({4, 5}, t1), x2 = Tensor::randn({4, 5}, t2);
  CHECK(x1.to_f64_vector() == x2.to_f64_vector());
  Tensor i1 = Tensor::randint({100}, t1, -3, 4);
  for (int64_t v : i1.to_i64_vector()) {
    CHECK(v >= -3);
    CHECK(v < 4);
  }
}

TEST_CASE("Rng: 100k normals have mean ~0 and std ~1; uniforms lie in [0, 1) with mean ~1/2") {
  Rng rng(42);
  const int n = 100000;
  double s = 0, s2 = 0;
  for (int i = 0; i < n; i++) {
    double v = rng.normal();
    s += v;
    s2 += v * v;
  }
  double mean = s / n, std = std::sqrt(s2 / n - mean * mean);
  CHECK(std::abs(mean) < 0.02);
  CHECK(std::abs(std - 1.0) < 0.02);

  double lo = 1, hi = 0, su = 0;
  for (int i = 0; i < n; i++) {
    double u = rng.uniform();
    lo = std::min(lo, u);
    hi = std::max(hi, u);
    su += u;
  }
  CHECK(lo >= 0.0);
  CHECK(hi < 1.0);
  CHECK(lo < 0.001);  // and the range is actually covered
  CHECK(hi > 0.999);
  CHECK(std::abs(su / n - 0.5) < 0.01);

  Tensor u = Tensor::rand({1000}, rng, -2.0, 3.0);
  for (float v : u.to_f32_vector()) {
    CHECK(v >= -2.0f);
    CHECK(v < 3.0f);
  }
}
