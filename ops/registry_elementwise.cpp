// ops/registry_elementwise.cpp — registry cases for every op in ops/elementwise.h.
//
// Each case's `reference` is written here from the math, in double, with plain loops over
// Tensor::at / at_broadcast / make_reference: it never calls an op from ops/. Where `fn` applies a
// view to a stored input (permute, slice) the reference reads the same element by index arithmetic.
//
// What this is not: the test. tests/ops/test_registry.cpp walks these cases (value check in f32 against
// the reference, float64 gradcheck).
#include <cmath>
#include <functional>

#include "ops/elementwise.h"
#include "ops/registry.h"
#include "ops/shape.h"

namespace sg {
namespace {

using Index = std::vector<int64_t>;
using Inputs = std::vector<Tensor>;
using ViewFn = std::function<Tensor(const Tensor&)>;
using ReadFn = std::function<double(const Tensor&, const Index&)>;  // element of the view at an output index

Tensor identity_view(const Tensor& t) { return t; }

// A 0/1 mask of `shape` in `dtype` holding both values (so both branches of where are exercised).
Tensor random_mask(Rng& rng, const Shape& shape, DType dtype) {
  Tensor m = Tensor::zeros(shape, dtype);
  int64_t i = 0;
  for_each_index(shape, [&](const Index& idx) {
    double v = i == 0 ? 1.0 : i == 1 ? 0.0 : (rng.uniform() < 0.5 ? 1.0 : 0.0);
    m.set_at(idx, v);
    i++;
  });
  return m;
}

// ---- binary ops with broadcasting ---------------------------------------------------------------
// One layout = the stored input shapes, the view fn applies to each, and how the reference reads
// that view at an output index.
struct BinaryLayout {
  const char* name;
  Shape a_shape, b_shape, out_shape;
  ViewFn view_a = identity_view, view_b = identity_view;
  ReadFn read_a = at_broadcast, read_b = at_broadcast;
};

std::vector<BinaryLayout> binary_layouts() {
  std::vector<BinaryLayout> layouts;
  layouts.push_back({"same_shape", {3, 4}, {3, 4}, {3, 4}});
  layouts.push_back({"broadcast_row", {3, 4}, {4}, {3, 4}});
  layouts.push_back({"broadcast_col", {3, 4}, {3, 1}, {3, 4}});
  layouts.push_back({"broadcast_both", {3, 1}, {2, 1, 4}, {2, 3, 4}});
  layouts.push_back({"scalar_rhs", {3, 4}, {}, {3, 4}});
  layouts.push_back({"scalar_lhs", {}, {3, 4}, {3, 4}});
  // a stored [4,3] and viewed as its transpose [3,4]; b stored [4,3] too, transposed the other way.
  BinaryLayout permuted{"permuted", {4, 3}, {4, 3}, {3, 4}};
  permuted.view_a = [](const Tensor& t) { return permute(t, {1, 0}); };
  permuted.view_b = [](const Tensor& t) { return transpose(t, 0, 1); };
  permuted.read_a = permuted.read_b = [](const Tensor& t, const Index& i) { return t.at({i[1], i[0]}); };
  layouts.push_back(permuted);
  // a stored [3,9], viewed as columns 1,3,5,7; b stored [6,4], viewed as rows 0,2,4.
  BinaryLayout sliced{"sliced", {3, 9}, {6, 4}, {3, 4}};
  sliced.view_a = [](const Tensor& t) { return slice(t, 1, 1, 9, 2); };
  sliced.view_b = [](const Tensor& t) { return slice(t, 0, 0, 6, 2); };
  sliced.read_a = [](const Tensor& t, const Index& i) { return t.at({i[0], 1 + 2 * i[1]}); };
  sliced.read_b = [](const Tensor& t, const Index& i) { return t.at({2 * i[0], i[1]}); };
  layouts.push_back(sliced);
  return layouts;
}

void add_binary(std::vector<OpCase>& cases, const std::string& op, std::function<Tensor(const Tensor&, const Tensor&)> f,
                std::function<double(double, double)> math, double b_min_abs) {
  for (const BinaryLayout& L : binary_layouts()) {
    OpCase c;
    c.name = op + "/" + L.name;
    c.make_inputs = [L, b_min_abs](Rng& rng) {
      return Inputs{rand_input(rng, L.a_shape), rand_input(rng, L.b_shape, -1.0, 1.0, b_min_abs)};
    };
    c.fn = [L, f](const Inputs& in) { return f(L.view_a(in[0]), L.view_b(in[1])); };
    c.reference = [L, math](const Inputs& in) {
      return make_reference(L.out_shape, [&](const Index& i) { return math(L.read_a(in[0], i), L.read_b(in[1], i)); });
    };
    cases.push_back(c);
  }
}

// ---- unary ops -----------------------------------------------------------------------------------
struct UnarySpec {
  std::string name;  // "exp/range_-2_2"
  std::function<Tensor(const Tensor&)> f;
  std::function<double(double)> math;
  double lo, hi, min_abs = 0.0;
  Shape shape = {3, 5};
};

void add_unary(std::vector<OpCase>& cases, const UnarySpec& s) {
  OpCase c;
  c.name = s.name;
  c.make_inputs = [s](Rng& rng) { return Inputs{rand_input(rng, s.shape, s.lo, s.hi, s.min_abs)}; };
  c.fn = [s](const Inputs& in) { return s.f(in[0]); };
  c.reference = [s](const Inputs& in) {
    return make_reference(in[0].shape(), [&](const Index& i) { return s.math(in[0].at(i)); });
  };
  cases.push_back(c);
}

// The same unary op on a permuted input: stored [5,3], fn sees [3,5].
void add_unary_permuted(std::vector<OpCase>& cases, const UnarySpec& s) {
  OpCase c;
  c.name = s.name;
  c.make_inputs = [s](Rng& rng) { return Inputs{rand_input(rng, {5, 3}, s.lo, s.hi, s.min_abs)}; };
  c.fn = [s](const Inputs& in) { return s.f(permute(in[0], {1, 0})); };
  c.reference = [s](const Inputs& in) {
    return make_reference({3, 5}, [&](const Index& i) { return s.math(in[0].at({i[1], i[0]})); });
  };
  cases.push_back(c);
}

// Independent formulas (not ops/scalar_math.h): the textbook definitions in double.
double ref_sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }
double ref_gelu(double x) {
  const double k = std::sqrt(2.0 / M_PI);
  return 0.5 * x * (1.0 + std::tanh(k * (x + 0.044715 * x * x * x)));
}

}  // namespace

void register_elementwise_cases(std::vector<OpCase>& cases) {
  // ---- add / sub / mul / div, every layout ----
  add_binary(cases, "add", [](const Tensor& a, const Tensor& b) { return add(a, b); }, [](double a, double b) { return a + b; }, 0.0);
  add_binary(cases, "sub", [](const Tensor& a, const Tensor& b) { return sub(a, b); }, [](double a, double b) { return a - b; }, 0.0);
  add_binary(cases, "mul", [](const Tensor& a, const Tensor& b) { return mul(a, b); }, [](double a, double b) { return a * b; }, 0.0);
  add_binary(cases, "div", [](const Tensor& a, const Tensor& b) { return div(a, b); }, [](double a, double b) { return a / b; }, 0.5);

  // ---- with a double ----
  add_unary(cases, {"add_scalar/positive", [](const Tensor& x) { return add(x, 0.75); }, [](double x) { return x + 0.75; }, -1, 1});
  add_unary(cases, {"add_scalar/operator_minus", [](const Tensor& x) { return x - 2.5; }, [](double x) { return x - 2.5; }, -1, 1});
  add_unary(cases, {"mul_scalar/negative", [](const Tensor& x) { return mul(x, -1.5); }, [](double x) { return -1.5 * x; }, -1, 1});
  add_unary(cases, {"mul_scalar/operator_div", [](const Tensor& x) { return x / 4.0; }, [](double x) { return x * 0.25; }, -1, 1});
  add_unary_permuted(cases, {"mul_scalar/permuted", [](const Tensor& x) { return 3.0 * x; }, [](double x) { return 3.0 * x; }, -1, 1});

  // ---- unary math ----
  add_unary(cases, {"neg/basic", [](const Tensor& x) { return neg(x); }, [](double x) { return -x; }, -1, 1});
  add_unary_permuted(cases, {"neg/permuted", [](const Tensor& x) { return -x; }, [](double x) { return -x; }, -1, 1});
  add_unary(cases, {"square/basic", [](const Tensor& x) { return square(x); }, [](double x) { return x * x; }, -2, 2});
  add_unary(cases, {"pow/int3_positive", [](const Tensor& x) { return pow(x, 3.0); }, [](double x) { return x * x * x; }, 0.5, 1.5});
  add_unary(cases, {"pow/int3_signed", [](const Tensor& x) { return pow(x, 3.0); }, [](double x) { return x * x * x; }, -1.5, 1.5});
  add_unary(cases, {"pow/int2", [](const Tensor& x) { return pow(x, 2.0); }, [](double x) { return x * x; }, -1.5, 1.5});
  add_unary(cases, {"pow/sqrt", [](const Tensor& x) { return pow(x, 0.5); }, [](double x) { return std::sqrt(x); }, 0.3, 2.0});
  add_unary(cases, {"pow/frac_-1.5", [](const Tensor& x) { return pow(x, -1.5); }, [](double x) { return 1.0 / (x * std::sqrt(x)); }, 0.5, 2.0});
  add_unary(cases, {"pow/frac_2.5", [](const Tensor& x) { return pow(x, 2.5); }, [](double x) { return x * x * std::sqrt(x); }, 0.3, 2.0});
  add_unary_permuted(cases, {"pow/permuted", [](const Tensor& x) { return pow(x, 1.5); }, [](double x) { return x * std::sqrt(x); }, 0.3, 2.0});
  add_unary(cases, {"exp/basic", [](const Tensor& x) { return exp(x); }, [](double x) { return std::exp(x); }, -2, 2});
  add_unary(cases, {"log/positive", [](const Tensor& x) { return log(x); }, [](double x) { return std::log(x); }, 0.2, 3});
  add_unary(cases, {"sqrt/positive", [](const Tensor& x) { return sqrt(x); }, [](double x) { return std::sqrt(x); }, 0.2, 3});
  add_unary(cases, {"rsqrt/positive", [](const Tensor& x) { return rsqrt(x); }, [](double x) { return 1.0 / std::sqrt(x); }, 0.2, 3});
  add_unary(cases, {"abs/away_from_0", [](const Tensor& x) { return abs(x); }, [](double x) { return x < 0 ? -x : x; }, -1, 1, 0.05});
  add_unary(cases, {"relu/away_from_0", [](const Tensor& x) { return relu(x); }, [](double x) { return x > 0 ? x : 0.0; }, -1, 1, 0.05});
  add_unary(cases, {"sigmoid/basic", [](const Tensor& x) { return sigmoid(x); }, ref_sigmoid, -4, 4});
  add_unary(cases, {"sigmoid/wide", [](const Tensor& x) { return sigmoid(x); }, ref_sigmoid, -30, 30});
  add_unary(cases, {"silu/basic", [](const Tensor& x) { return silu(x); }, [](double x) { return x * ref_sigmoid(x); }, -4, 4});
  add_unary_permuted(cases, {"silu/permuted", [](const Tensor& x) { return silu(x); }, [](double x) { return x * ref_sigmoid(x); }, -4, 4});
  add_unary(cases, {"gelu/basic", [](const Tensor& x) { return gelu(x); }, ref_gelu, -4, 4});
  add_unary_permuted(cases, {"gelu/permuted", [](const Tensor& x) { return gelu(x); }, ref_gelu, -4, 4});
  add_unary(cases, {"tanh/basic", [](const Tensor& x) { return tanh(x); }, [](double x) { return std::tanh(x); }, -3, 3});
  add_unary(cases, {"softplus/basic", [](const Tensor& x) { return softplus(x); }, [](double x) { return std::log(1.0 + std::exp(x)); }, -4, 4});
  add_unary(cases, {"softplus/wide", [](const Tensor& x) { return softplus(x); }, [](double x) { return std::log1p(std::exp(x)); }, -30, 30});
  add_unary(cases, {"logsigmoid/basic", [](const Tensor& x) { return logsigmoid(x); }, [](double x) { return std::log(ref_sigmoid(x)); }, -4, 4});
  add_unary(cases, {"logsigmoid/wide", [](const Tensor& x) { return logsigmoid(x); }, [](double x) { return -std::log1p(std::exp(-x)); }, -30, 30});

  // ---- where: out = cond ? a : b ----
  {
    OpCase c;
    c.name = "where/same_shape";
    c.make_inputs = [](Rng& rng) { return Inputs{random_mask(rng, {3, 4}, DType::i64), rand_input(rng, {3, 4}), rand_input(rng, {3, 4})}; };
    c.fn = [](const Inputs& in) { return where(in[0], in[1], in[2]); };
    c.reference = [](const Inputs& in) {
      return make_reference({3, 4}, [&](const Index& i) { return in[0].at(i) != 0 ? in[1].at(i) : in[2].at(i); });
    };
    cases.push_back(c);
  }
  {  // cond [3,1] i32, a [1,4], b a 0-d scalar: all three broadcast to [3,4]
    OpCase c;
    c.name = "where/broadcast_all";
    c.make_inputs = [](Rng& rng) { return Inputs{random_mask(rng, {3, 1}, DType::i32), rand_input(rng, {1, 4}), rand_input(rng, {})}; };
    c.fn = [](const Inputs& in) { return where(in[0], in[1], in[2]); };
    c.reference = [](const Inputs& in) {
      return make_reference({3, 4}, [&](const Index& i) { return at_broadcast(in[0], i) != 0 ? at_broadcast(in[1], i) : at_broadcast(in[2], i); });
    };
    cases.push_back(c);
  }
  {  // a floating-point cond (no grad), a permuted a
    OpCase c;
    c.name = "where/float_cond_permuted";
    c.make_inputs = [](Rng& rng) { return Inputs{random_mask(rng, {3, 4}, DType::f64), rand_input(rng, {4, 3}), rand_input(rng, {3, 4})}; };
    c.fn = [](const Inputs& in) { return where(in[0], permute(in[1], {1, 0}), in[2]); };
    c.reference = [](const Inputs& in) {
      return make_reference({3, 4}, [&](const Index& i) { return in[0].at(i) != 0 ? in[1].at({i[1], i[0]}) : in[2].at(i); });
    };
    cases.push_back(c);
  }

  // ---- masked_fill: out = mask ? value : x ----
  {
    OpCase c;
    c.name = "masked_fill/same_shape";
    c.make_inputs = [](Rng& rng) { return Inputs{rand_input(rng, {3, 4}), random_mask(rng, {3, 4}, DType::i64)}; };
    c.fn = [](const Inputs& in) { return masked_fill(in[0], in[1], -2.5); };
    c.reference = [](const Inputs& in) {
      return make_reference({3, 4}, [&](const Index& i) { return in[1].at(i) != 0 ? -2.5 : in[0].at(i); });
    };
    cases.push_back(c);
  }
  {  // the attention pattern: a causal [4,4] mask (j > i) filled with -1e9, broadcast over 2 heads
    OpCase c;
    c.name = "masked_fill/causal_broadcast";
    c.make_inputs = [](Rng& rng) {
      Tensor mask = Tensor::zeros({4, 4}, DType::i64);
      for_each_index({4, 4}, [&](const Index& i) { mask.set_at(i, i[1] > i[0] ? 1.0 : 0.0); });
      return Inputs{rand_input(rng, {2, 4, 4}), mask};
    };
    c.fn = [](const Inputs& in) { return masked_fill(in[0], in[1], -1e9); };
    c.reference = [](const Inputs& in) {
      return make_reference({2, 4, 4}, [&](const Index& i) { return at_broadcast(in[1], i) != 0 ? -1e9 : in[0].at(i); });
    };
    // The output holds -1e9s: a 1e-6 step drowns in their rounding (1e9 · 1e-16 / 1e-6 = 0.1). The op
    // is linear in x, so a big step is exact.
    c.grad_eps = 0.5;
    c.grad_atol = 1e-5;
    cases.push_back(c);
  }

  // ---- to_dtype ----
  {  // f64 -> f32 -> f64: the gradient passes through both casts. The f32 rounding (~6e-8 relative)
     // is why the finite-difference step is 1e-3 here, not 1e-6.
    OpCase c;
    c.name = "to_dtype/f32_roundtrip";
    c.make_inputs = [](Rng& rng) { return Inputs{rand_input(rng, {3, 4})}; };
    c.fn = [](const Inputs& in) { return to_dtype(to_dtype(in[0], DType::f32), DType::f64); };
    c.reference = [](const Inputs& in) { return make_reference({3, 4}, [&](const Index& i) { return (double)(float)in[0].at(i); }); };
    c.grad_eps = 1e-3;
    c.grad_atol = 1e-4;
    c.grad_rtol = 1e-4;
    cases.push_back(c);
  }
  {  // a permuted input, cast and scaled (so the cast's backward receives a real gradient)
    OpCase c;
    c.name = "to_dtype/permuted_f64";
    c.make_inputs = [](Rng& rng) { return Inputs{rand_input(rng, {4, 3})}; };
    c.fn = [](const Inputs& in) { return mul(to_dtype(permute(in[0], {1, 0}), DType::f64), 2.0); };
    c.reference = [](const Inputs& in) { return make_reference({3, 4}, [&](const Index& i) { return 2.0 * in[0].at({i[1], i[0]}); }); };
    cases.push_back(c);
  }
  {  // float -> integer truncates toward zero; values kept 0.25 away from integers; no gradient.
    OpCase c;
    c.name = "to_dtype/to_i64";
    c.make_inputs = [](Rng& rng) {
      Tensor x = make_reference({2, 5}, [&](const Index&) { return (double)((int64_t)rng.randint(9) - 4) + rng.uniform(0.25, 0.75); });
      return Inputs{x};
    };
    c.fn = [](const Inputs& in) { return to_dtype(in[0], DType::i64); };
    c.reference = [](const Inputs& in) { return make_reference({2, 5}, [&](const Index& i) { return std::trunc(in[0].at(i)); }); };
    c.atol = 0;
    c.rtol = 0;
    c.gradcheck = false;
    cases.push_back(c);
  }
}

}  // namespace sg
