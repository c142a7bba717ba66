// tests/ops/test_registry.cpp — THE op test: walks sg::op_registry() and, for every case,
//   (a) value check: runs the op on f32 copies of the inputs and compares it elementwise with the
//       case's independent reference (computed in f64 from the original inputs) within atol + rtol·|ref|;
//   (b) gradcheck: float64 central differences vs backward() for every input that requires grad.
// Also: the registry covers every required op name, and the harness itself FAILS on a deliberately
// wrong backward and a deliberately wrong forward (a harness that cannot fail proves nothing).
//
// Run one op's cases:  SEEKGRAD_OP_CASE=matmul/ ./test_ops -tc="registry: every*"
// (the filter is a substring of the case name); SEEKGRAD_OP_VERBOSE=1 prints each case's errors.
#include <doctest/doctest.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "autograd/gradcheck.h"
#include "autograd/node.h"
#include "ops/elementwise.h"
#include "ops/registry.h"

namespace {

using sg::DType;
using sg::OpCase;
using sg::Tensor;

struct ValueCheckResult {
  bool ok = true;
  double max_abs_error = 0;
  std::string message;  // first failure: shape mismatch, or which element, got vs expected
};

// f32 copies of the f64 inputs (no autograd history, requires_grad false); other dtypes pass as they are.
std::vector<Tensor> to_f32_inputs(const std::vector<Tensor>& inputs) {
  sg::NoGradGuard no_grad;
  std::vector<Tensor> out;
  for (const Tensor& t : inputs) out.push_back(t.defined() && t.dtype() == DType::f64 ? sg::to_dtype(t, DType::f32).detach() : t);
  return out;
}

// (a) The value check: fn on f32 inputs vs reference on the f64 inputs.
ValueCheckResult value_check(const OpCase& c, const std::vector<Tensor>& inputs) {
  ValueCheckResult r;
  Tensor out, ref;
  {
    sg::NoGradGuard no_grad;
    out = c.fn(to_f32_inputs(inputs));
    ref = c.reference(inputs);
  }
  if (out.shape() != ref.shape()) {
    r.ok = false;
    r.message = "shape " + sg::shape_str(out.shape()) + " but the reference has " + sg::shape_str(ref.shape());
    return r;
  }
  std::vector<double> o = out.to_f64_vector(), e = ref.to_f64_vector();
  for (size_t i = 0; i < o.size(); i++) {
    double err = std::abs(o[i] - e[i]);
    if (!std::isnan(err)) r.max_abs_error = std::max(r.max_abs_error, err);
    if (r.ok && !(err <= c.atol + c.rtol * std::abs(e[i]))) {  // written so NaN fails
      std::ostringstream os;
      os << "element " << i << " (row-major) of " << sg::shape_str(out.shape()) << ": got " << o[i] << ", reference "
         << e[i] << " (error " << err << ", allowed " << c.atol + c.rtol * std::abs(e[i]) << ")";
      r.ok = false;
      r.message = os.str();
    }
  }
  return r;
}

// (b) gradcheck with the case's step and tolerances.
sg::GradcheckResult run_gradcheck(const OpCase& c, const std::vector<Tensor>& inputs) {
  sg::GradcheckOptions opt;
  opt.eps = c.grad_eps;
  opt.atol = c.grad_atol;
  opt.rtol = c.grad_rtol;
  return sg::gradcheck(c.fn, inputs, opt);
}

// Same case name -> same inputs, whatever the order or filter (FNV-1a of the name).
uint64_t seed_of(const std::string& name) {
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char ch : name) h = (h ^ ch) * 1099511628211ULL;
  return h;
}

std::string op_of(const std::string& case_name) { return case_name.substr(0, case_name.find('/')); }

bool selected(const std::string& name) {
  const char* f = std::getenv("SEEKGRAD_OP_CASE");
  return !f || !*f || name.find(f) != std::string::npos;
}

// SEEKGRAD_OP_VERBOSE=1 prints every case's largest value and gradient errors.
bool verbose() {
  const char* v = std::getenv("SEEKGRAD_OP_VERBOSE");
  return v && *v && std::string(v) != "0";
}

}  // namespace

TEST_SUITE("gradcheck") {
  TEST_CASE("registry: every op case passes the value check and float64 gradcheck") {
    const std::vector<OpCase>& cases = sg::op_registry();
    REQUIRE(!cases.empty());
    int ran = 0, gradchecked = 0;
    auto t0 = std::chrono::steady_clock::now();
    for (const OpCase& c : cases) {
      if (!selected(c.name)) continue;
      INFO("case " << c.name);
      ran++;
      sg::Rng rng(seed_of(c.name));
      std::vector<Tensor> inputs = c.make_inputs(rng);

      ValueCheckResult v;
      CHECK_NOTHROW(v = value_check(c, inputs));
      INFO("value check: max error " << v.max_abs_error << "; " << v.message);
      CHECK(v.ok);

      bool any_grad = false;
      for (const Tensor& t : inputs) any_grad = any_grad || (t.defined() && t.requires_grad());
      if (c.gradcheck && any_grad) {
        gradchecked++;
        sg::GradcheckResult g;
        CHECK_NOTHROW(g = run_gradcheck(c, inputs));
        INFO("gradcheck: max error " << g.max_abs_error << "; " << g.message);
        CHECK(g.ok);
        if (verbose()) MESSAGE(c.name << ": value error " << v.max_abs_error << ", gradient error " << g.max_abs_error);
      } else if (verbose()) {
        MESSAGE(c.name << ": value error " << v.max_abs_error << " (no gradcheck)");
      }
    }
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    MESSAGE(ran << " op cases (" << gradchecked << " gradchecked) in " << seconds << " s");
  }
}

TEST_CASE("registry: case names are unique and read op/variant") {
  std::set<std::string> seen;
  for (const OpCase& c : sg::op_registry()) {
    INFO("case " << c.name);
    CHECK(c.name.find('/') != std::string::npos);
    CHECK(c.name.find('/') > 0);
    CHECK(seen.insert(c.name).second);
    CHECK(c.make_inputs);
    CHECK(c.fn);
    CHECK(c.reference);
  }
}

TEST_CASE("registry: covers every required op") {
  // The ops of ops/elementwise.h, reduce.h, shape.h, linalg.h, index.h and nn.h. A case named
  // "<op>/<variant>" covers <op>. (add/mul with a double are "add_scalar" and "mul_scalar".)
  const std::vector<std::string> required = {
      // elementwise.h
      "add", "sub", "mul", "div", "add_scalar", "mul_scalar", "neg", "square", "pow", "exp", "log", "sqrt", "rsqrt",
      "abs", "relu", "sigmoid", "silu", "gelu", "tanh", "softplus", "logsigmoid", "where", "masked_fill", "to_dtype",
      // reduce.h
      "sum", "mean", "max", "min", "var", "sum_to",
      // shape.h
      "reshape", "view", "permute", "transpose", "expand", "slice", "narrow", "squeeze", "unsqueeze", "flatten",
      "contiguous", "cat", "stack", "split", "split_sizes", "chunk",
      // linalg.h
      "matmul", "linear",
      // index.h
      "embedding", "index_select", "gather", "scatter_add", "index_add",
      // nn.h
      "softmax", "log_softmax", "cross_entropy", "rms_norm", "layer_norm", "rope", "topk", "argmax", "dropout", "scaled_dot_product_attention",
  };
  std::set<std::string> covered;
  for (const OpCase& c : sg::op_registry()) covered.insert(op_of(c.name));
  for (const std::string& op : required) {
    INFO("op " << op << " has no case in op_registry() (add one in ops/registry_<family>.cpp)");
    CHECK(covered.count(op) == 1);
  }
}

// ---- the harness must be able to fail ----------------------------------------------------------
namespace {

// y = x², recorded with the WRONG backward dx = 3x·dy (the right one is 2x·dy).
Tensor bad_square(const Tensor& x) {
  Tensor y = Tensor::empty(x.shape(), x.dtype());
  std::vector<double> v = x.to_f64_vector();
  int64_t i = 0;
  sg::for_each_index(x.shape(), [&](const std::vector<int64_t>& idx) {
    y.set_at(idx, v[i] * v[i]);
    i++;
  });
  if (sg::needs_grad(x)) {
    Tensor xs = x.detach();
    sg::record("bad_square", y, {x}, [xs](const Tensor& dy) { return std::vector<Tensor>{sg::mul(sg::mul(dy, xs), 3.0)}; });
  }
  return y;
}

OpCase square_case(std::function<Tensor(const std::vector<Tensor>&)> fn, std::function<double(double)> ref_math) {
  OpCase c;
  c.name = "test/square";
  c.make_inputs = [](sg::Rng& rng) {
    Tensor x = sg::rand_input(rng, {3, 4});
    x.set_name("x");
    return std::vector<Tensor>{x};
  };
  c.fn = std::move(fn);
  c.reference = [ref_math](const std::vector<Tensor>& in) {
    return sg::make_reference(in[0].shape(), [&](const std::vector<int64_t>& i) { return ref_math(in[0].at(i)); });
  };
  return c;
}

}  // namespace

TEST_CASE("registry harness: gradcheck fails on a wrong backward and names the input") {
  OpCase good = square_case([](const std::vector<Tensor>& in) { return sg::square(in[0]); }, [](double x) { return x * x; });
  OpCase bad = square_case([](const std::vector<Tensor>& in) { return bad_square(in[0]); }, [](double x) { return x * x; });
  sg::Rng rng(7);
  std::vector<Tensor> inputs = bad.make_inputs(rng);

  // The forward of bad_square is right: the value check passes, only the gradient is wrong.
  CHECK(value_check(bad, inputs).ok);
  sg::GradcheckResult g = run_gradcheck(bad, inputs);
  INFO("message: " << g.message);
  CHECK_FALSE(g.ok);
  CHECK(g.max_abs_error > 1e-3);
  CHECK(g.message.find("input 0") != std::string::npos);
  CHECK(g.message.find("x (3, 4) f64") != std::string::npos);
  CHECK(g.message.find("analytic") != std::string::npos);

  // The same harness passes the real square.
  CHECK(run_gradcheck(good, inputs).ok);
}

TEST_CASE("registry harness: the value check fails on a wrong forward") {
  // fn computes x² but the reference says x³: the value check must reject it and say where.
  OpCase wrong = square_case([](const std::vector<Tensor>& in) { return sg::square(in[0]); }, [](double x) { return x * x * x; });
  sg::Rng rng(7);
  std::vector<Tensor> inputs = wrong.make_inputs(rng);
  ValueCheckResult v = value_check(wrong, inputs);
  INFO("message: " << v.message);
  CHECK_FALSE(v.ok);
  CHECK(v.message.find("element") != std::string::npos);
  CHECK(v.max_abs_error > 1e-2);

  // A wrong output shape is caught too.
  OpCase wrong_shape = square_case(
      [](const std::vector<Tensor>&) { return sg::make_reference({4, 3}, [](const std::vector<int64_t>&) { return 0.0; }); },
      [](double x) { return x * x; });
  ValueCheckResult s = value_check(wrong_shape, inputs);
  CHECK_FALSE(s.ok);
  CHECK(s.message.find("shape (4, 3)") != std::string::npos);

  // NaN never passes.
  OpCase nan_case = square_case([](const std::vector<Tensor>& in) { return sg::log(sg::mul(sg::abs(in[0]), -1.0)); },
                                [](double) { return 0.0; });
  CHECK_FALSE(value_check(nan_case, inputs).ok);
}
