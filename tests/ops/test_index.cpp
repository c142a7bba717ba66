// tests/ops/test_index.cpp — the index ops (ops/index.h): values and gradients computed by hand,
// error messages, float64 gradcheck of each op, and the plain-loop kernels (SEEKGRAD_NAIVE) against
// the threaded ones, bit for bit. The registry cases (ops/registry_index.cpp) add a value check
// against an independent reference on more layouts.
#include <doctest/doctest.h>

#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "autograd/gradcheck.h"
#include "autograd/node.h"
#include "autograd/runtime.h"
#include "ops/cpu/runtime.h"
#include "ops/index.h"
#include "ops/shape.h"

using sg::DType;
using sg::Tensor;

namespace {

std::vector<double> values(const Tensor& t) { return t.to_f64_vector(); }

Tensor f32(const std::vector<float>& v, const sg::Shape& s) { return Tensor::from_vector(v, s); }
Tensor f64(const std::vector<double>& v, const sg::Shape& s) { return Tensor::from_vector(v, s); }
Tensor i64(const std::vector<int64_t>& v, const sg::Shape& s) { return Tensor::from_vector(v, s); }
Tensor i32(const std::vector<int32_t>& v, const sg::Shape& s) { return Tensor::from_vector(v, s); }

// The message of the exception `fn` throws ("" if none).
std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

void check_gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& f, const std::vector<Tensor>& inputs) {
  sg::GradcheckResult r = sg::gradcheck(f, inputs);
  CHECK_MESSAGE(r.ok, r.message);
}

struct NaiveKernels {
  explicit NaiveKernels(bool on) : prev_(sg::naive_kernels()) { sg::set_naive_kernels(on); }
  ~NaiveKernels() { sg::set_naive_kernels(prev_); }
  bool prev_;
};

struct Threads {
  explicit Threads(int n) : prev_(sg::num_threads()) { sg::set_num_threads(n); }
  ~Threads() { sg::set_num_threads(prev_); }
  int prev_;
};

}  // namespace

// ---- values and gradients by hand --------------------------------------------------------------

TEST_CASE("embedding: 3x2 table, ids [[2,0],[2,1]] — output rows and accumulated dweight") {
  // weight = [[1,2],[3,4],[5,6]]
  // y      = [[[5,6],[1,2]], [[5,6],[3,4]]]
  // dy     = [[[1,2],[3,4]], [[5,6],[7,8]]]
  // dweight row 0 = dy[0][1] = [3,4];  row 1 = dy[1][1] = [7,8];  row 2 = dy[0][0] + dy[1][0] = [6,8]
  for (DType id_dtype : {DType::i64, DType::i32}) {
    CAPTURE(sg::dtype_name(id_dtype));
    Tensor weight = f32({1, 2, 3, 4, 5, 6}, {3, 2});
    weight.requires_grad_();
    Tensor ids = id_dtype == DType::i64 ? i64({2, 0, 2, 1}, {2, 2}) : i32({2, 0, 2, 1}, {2, 2});
    Tensor y = sg::embedding(weight, ids);
    CHECK(y.shape() == sg::Shape{2, 2, 2});
    CHECK(y.dtype() == DType::f32);
    CHECK(values(y) == std::vector<double>{5, 6, 1, 2, 5, 6, 3, 4});
    y.backward(f32({1, 2, 3, 4, 5, 6, 7, 8}, {2, 2, 2}));
    CHECK(values(weight.grad()) == std::vector<double>{3, 4, 7, 8, 6, 8});
  }
}

TEST_CASE("embedding: non-contiguous ids and weight read through their strides") {
  Tensor weight_t = f64({1, 2, 3, 4, 5, 6}, {2, 3});          // weight = its transpose, (3, 2)
  Tensor ids_t = i64({2, 1, 0, 2}, {2, 2});                   // ids = its transpose [[2,0],[1,2]]
  Tensor y = sg::embedding(sg::transpose(weight_t, 0, 1), sg::transpose(ids_t, 0, 1));
  // weight = [[1,4],[2,5],[3,6]]
  CHECK(values(y) == std::vector<double>{3, 6, 1, 4, 2, 5, 3, 6});
}

TEST_CASE("index_select: columns [2,0,2] of a 2x3 matrix; dx counts each pick") {
  Tensor x = f64({1, 2, 3, 4, 5, 6}, {2, 3});
  x.requires_grad_();
  Tensor y = sg::index_select(x, 1, i64({2, 0, 2}, {3}));
  CHECK(y.shape() == sg::Shape{2, 3});
  CHECK(values(y) == std::vector<double>{3, 1, 3, 6, 4, 6});
  y.backward(f64({1, 2, 3, 4, 5, 6}, {2, 3}));
  // column 0 gets dy[:,1]; column 1 nothing; column 2 gets dy[:,0] + dy[:,2]
  CHECK(values(x.grad()) == std::vector<double>{2, 0, 4, 5, 0, 10});
}

TEST_CASE("index_add: rows [0,2,0] of src added into x; dsrc = index_select(dy)") {
  Tensor x = f64({1, 1, 1, 1, 1, 1}, {3, 2});
  Tensor src = f64({1, 2, 3, 4, 5, 6}, {3, 2});
  x.requires_grad_();
  src.requires_grad_();
  Tensor y = sg::index_add(x, 0, i32({0, 2, 0}, {3}), src);
  CHECK(values(y) == std::vector<double>{7, 9, 1, 1, 4, 5});
  CHECK(values(x) == std::vector<double>{1, 1, 1, 1, 1, 1});  // x itself untouched
  y.backward(f64({1, 2, 3, 4, 5, 6}, {3, 2}));
  CHECK(values(x.grad()) == std::vector<double>{1, 2, 3, 4, 5, 6});
  CHECK(values(src.grad()) == std::vector<double>{1, 2, 5, 6, 1, 2});
}

TEST_CASE("gather: torch's example, x [[1,2],[3,4]], dim 1, index [[0,0],[1,0]]") {
  Tensor x = f64({1, 2, 3, 4}, {2, 2});
  x.requires_grad_();
  Tensor y = sg::gather(x, 1, i64({0, 0, 1, 0}, {2, 2}));
  CHECK(values(y) == std::vector<double>{1, 1, 4, 3});
  y.backward(f64({1, 2, 3, 4}, {2, 2}));
  // x[0][0] gathered twice: 1 + 2;  x[1][1] <- 3;  x[1][0] <- 4
  CHECK(values(x.grad()) == std::vector<double>{3, 0, 4, 3});
}

TEST_CASE("gather: index smaller than x in the other dim") {
  Tensor x = f64({1, 2, 3, 4, 5, 6, 7, 8, 9}, {3, 3});
  Tensor y = sg::gather(x, 0, i64({2, 0, 1, 1}, {2, 2}));
  // y[i][j] = x[index[i][j]][j]
  CHECK(values(y) == std::vector<double>{7, 2, 4, 5});
}

TEST_CASE("scatter_add: x zeros (2,3), dim 1, index [[0,0,2],[1,1,1]]; dsrc = gather(dy)") {
  Tensor x = Tensor::zeros({2, 3}, DType::f64);
  Tensor src = f64({1, 2, 3, 4, 5, 6}, {2, 3});
  x.requires_grad_();
  src.requires_grad_();
  Tensor index = i64({0, 0, 2, 1, 1, 1}, {2, 3});
  Tensor y = sg::scatter_add(x, 1, index, src);
  CHECK(values(y) == std::vector<double>{3, 0, 3, 0, 15, 0});
  y.backward(f64({1, 2, 3, 4, 5, 6}, {2, 3}));
  CHECK(values(x.grad()) == std::vector<double>{1, 2, 3, 4, 5, 6});
  CHECK(values(src.grad()) == std::vector<double>{1, 1, 3, 5, 5, 5});
}

TEST_CASE("scatter_add / index_add: only src requires grad") {
  Tensor x = Tensor::zeros({3, 2}, DType::f64);
  Tensor src = f64({1, 2, 3, 4}, {2, 2});
  src.requires_grad_();
  Tensor y = sg::index_add(x, 0, i64({1, 1}, {2}), src);
  y.backward(f64({1, 2, 3, 4, 5, 6}, {3, 2}));
  CHECK(values(src.grad()) == std::vector<double>{3, 4, 3, 4});
  CHECK_FALSE(x.grad().defined());

  Tensor src2 = f64({1, 2}, {1, 2});
  src2.requires_grad_();
  Tensor y2 = sg::scatter_add(x, 0, i64({2, 0}, {1, 2}), src2);
  CHECK(values(y2) == std::vector<double>{0, 2, 0, 0, 1, 0});
  y2.backward(f64({1, 2, 3, 4, 5, 6}, {3, 2}));
  CHECK(values(src2.grad()) == std::vector<double>{5, 2});
}

TEST_CASE("index ops record nothing under NoGradGuard") {
  Tensor x = f64({1, 2, 3, 4}, {2, 2});
  x.requires_grad_();
  sg::NoGradGuard no_grad;
  CHECK_FALSE(sg::gather(x, 0, i64({1, 0}, {1, 2})).requires_grad());
  CHECK_FALSE(sg::embedding(x, i64({1}, {1})).requires_grad());
}

// ---- errors ------------------------------------------------------------------------------------

TEST_CASE("index errors name the op, the index, its position and the shapes") {
  Tensor table = Tensor::zeros({512, 128});
  CHECK(error_of([&] { sg::embedding(table, i64({0, 1, 2, 600, 4}, {5})); }) ==
        "[embedding] id 600 at position 3 is outside the vocabulary of weight (512, 128)");
  CHECK(error_of([&] { sg::embedding(table, i32({7, -1}, {2})); }) ==
        "[embedding] id -1 at position 1 is outside the vocabulary of weight (512, 128)");
  CHECK(error_of([&] { sg::embedding(Tensor::zeros({6}), i64({0}, {1})); }) == "[embedding] weight (6) must be 2-D (vocab, dim)");
  CHECK(error_of([&] { sg::embedding(table, Tensor::zeros({2})); }) ==
        "[embedding] ids (2) must be an integer tensor (i32 or i64), got f32");
  CHECK(error_of([&] { sg::embedding(i64({1, 2}, {1, 2}), i64({0}, {1})); }) == "[embedding] weight (1, 2) must be f32 or f64, got i64");

  Tensor x = Tensor::zeros({4, 3}, DType::f64);
  CHECK(error_of([&] { sg::index_select(x, 0, i64({1, 5}, {2})); }) ==
        "[index_select] index 5 at position 1 is out of range for dim 0 of x (4, 3), which has size 4");
  CHECK(error_of([&] { sg::index_select(x, 0, i64({1, 2, 0, 0}, {2, 2})); }) == "[index_select] index (2, 2) must be 1-D");
  CHECK(error_of([&] { sg::index_select(x, 2, i64({0}, {1})); }).rfind("[index_select] dim 2 is out of range", 0) == 0);

  CHECK(error_of([&] { sg::index_add(x, -1, i64({3}, {1}), Tensor::zeros({4, 1}, DType::f64)); }) ==
        "[index_add] index 3 at position 0 is out of range for dim 1 of x (4, 3), which has size 3");
  CHECK(error_of([&] { sg::index_add(x, 0, i64({0, 1}, {2}), Tensor::zeros({2, 5}, DType::f64)); }) ==
        "[index_add] src (2, 5) must have shape (2, 3): x (4, 3) with dim 0 replaced by the length of index (2)");
  CHECK(error_of([&] { sg::index_add(x, 0, i64({0, 1}, {2}), Tensor::zeros({2, 3})); }) ==
        "[index_add] src (2, 3) f32 and x (4, 3) f64 have different dtypes");

  Tensor g = Tensor::zeros({2, 3}, DType::f64);
  CHECK(error_of([&] { sg::gather(g, 1, i64({0, 1, 3, 0}, {2, 2})); }) ==
        "[gather] index 3 at position (1, 0) is out of range for dim 1 of x (2, 3), which has size 3");
  CHECK(error_of([&] { sg::gather(g, 1, i64({0, 1, 2, 0, 1, 2}, {6})); }) ==
        "[gather] index (6) is 1-D but x (2, 3) is 2-D; they must have the same rank");
  CHECK(error_of([&] { sg::gather(g, 0, i64({0, 0, 0, 0, 0, 0, 0, 0}, {2, 4})); }) ==
        "[gather] index (2, 4) is larger than x (2, 3) in dim 1 (only dim 0, the indexed one, may be larger)");
  CHECK(error_of([&] { sg::gather(g, 0, Tensor::zeros({1, 1}, DType::f64)); }) ==
        "[gather] index (1, 1) must be an integer tensor (i32 or i64), got f64");

  CHECK(error_of([&] { sg::scatter_add(g, 0, i64({0, 1, 0, 1}, {2, 2}), Tensor::zeros({2, 3}, DType::f64)); }) ==
        "[scatter_add] src (2, 3) and index (2, 2) must have the same shape");
  CHECK(error_of([&] { sg::scatter_add(g, 0, i32({0, -2}, {1, 2}), Tensor::zeros({1, 2}, DType::f64)); }) ==
        "[scatter_add] index -2 at position (0, 1) is out of range for dim 0 of x (2, 3), which has size 2");
  CHECK(error_of([&] { sg::scatter_add(g, 1, i64({0}, {1, 1, 1}), Tensor::zeros({1, 1, 1}, DType::f64)); }) ==
        "[scatter_add] index (1, 1, 1) is 3-D but x (2, 3) is 2-D; they must have the same rank");
}

// ---- float64 gradcheck -------------------------------------------------------------------------

TEST_CASE("gradcheck: embedding with repeated ids (i64 and i32)") {
  sg::Rng rng(1);
  Tensor weight = Tensor::randn({5, 3}, rng, 1.0, DType::f64);
  weight.requires_grad_();
  Tensor ids64 = i64({4, 0, 4, 4, 2, 0}, {2, 3});
  Tensor ids32 = i32({1, 1, 3}, {3});
  check_gradcheck([&](const std::vector<Tensor>& in) { return sg::embedding(in[0], ids64); }, {weight});
  check_gradcheck([&](const std::vector<Tensor>& in) { return sg::embedding(in[0], ids32); }, {weight});
}

TEST_CASE("gradcheck: index_select / index_add along a negative dim of a permuted x") {
  sg::Rng rng(2);
  Tensor x = Tensor::randn({4, 3, 5}, rng, 1.0, DType::f64);   // viewed as permute {2,0,1}: (5, 4, 3)
  Tensor src = Tensor::randn({5, 4, 4}, rng, 1.0, DType::f64);
  x.requires_grad_();
  src.requires_grad_();
  Tensor index = i64({2, 0, 2, 1}, {4});
  check_gradcheck([&](const std::vector<Tensor>& in) { return sg::index_select(sg::permute(in[0], {2, 0, 1}), -1, index); }, {x});
  check_gradcheck([&](const std::vector<Tensor>& in) { return sg::index_add(sg::permute(in[0], {2, 0, 1}), -1, index, in[1]); },
                  {x, src});
  Tensor index32 = i32({3, 3, 0}, {3});
  check_gradcheck([&](const std::vector<Tensor>& in) { return sg::index_select(in[0], 2, index32); }, {x});
}

TEST_CASE("gradcheck: gather / scatter_add with repeated indices and a smaller index") {
  sg::Rng rng(3);
  Tensor x = Tensor::randn({3, 4, 5}, rng, 1.0, DType::f64);
  x.requires_grad_();
  Tensor index = Tensor::randint({2, 7, 5}, rng, 0, 4);       // along dim 1 (size 4): repeats for sure
  Tensor src = Tensor::randn({2, 7, 5}, rng, 1.0, DType::f64);
  src.requires_grad_();
  check_gradcheck([&](const std::vector<Tensor>& in) { return sg::gather(in[0], 1, index); }, {x});
  check_gradcheck([&](const std::vector<Tensor>& in) { return sg::scatter_add(in[0], -2, index, in[1]); }, {x, src});
  // permuted x (5, 3, 4), gather along the last dim with an i32 index
  Tensor index32 = i32({3, 3, 0, 1, 3, 2, 0, 0}, {2, 2, 2});
  check_gradcheck([&](const std::vector<Tensor>& in) { return sg::gather(sg::permute(in[0], {2, 0, 1}), -1, index32); }, {x});
  check_gradcheck([&](const std::vector<Tensor>& in) { return sg::scatter_add(sg::permute(in[0], {2, 0, 1}), 2, index32, in[1]); },
                  {x, Tensor::randn({2, 2, 2}, rng, 1.0, DType::f64).requires_grad_()});
}

// ---- plain loops == threaded kernels, bit for bit ----------------------------------------------
// Sizes are chosen so every threaded path really splits (>= 2 chunks of its grain). The scatters
// sum repeated indices in the same order on both paths, so the results must be identical.

namespace {

// Runs op on fresh leaves built from `inputs` (floating ones get requires_grad), backward with a
// fixed seed; returns the output followed by every input gradient, all flattened.
std::vector<std::vector<double>> run_index_op(const std::function<Tensor(const std::vector<Tensor>&)>& op,
                                              const std::vector<Tensor>& inputs, bool naive) {
  NaiveKernels mode(naive);
  std::vector<Tensor> leaves;
  for (const Tensor& t : inputs) {
    Tensor c = t.clone_data();
    if (sg::is_floating(c.dtype())) c.requires_grad_();
    leaves.push_back(c);
  }
  Tensor y = op(leaves);
  sg::Rng rng(7);
  y.backward(Tensor::randn(y.shape(), rng, 1.0, y.dtype()));
  std::vector<std::vector<double>> out{values(y)};
  for (const Tensor& t : leaves)
    if (t.requires_grad()) out.push_back(values(t.grad()));
  return out;
}

void check_naive_equals_fast(const char* what, const std::function<Tensor(const std::vector<Tensor>&)>& op,
                             const std::vector<Tensor>& inputs) {
  CAPTURE(what);
  auto naive = run_index_op(op, inputs, true);
  auto fast = run_index_op(op, inputs, false);
  REQUIRE(naive.size() == fast.size());
  for (size_t i = 0; i < naive.size(); i++) {
    CAPTURE(i);
    CHECK(naive[i] == fast[i]);
  }
}

}  // namespace

TEST_CASE("naive kernels == threaded kernels (f32 and f64, i32 and i64 indices)") {
  Threads two(2);
  sg::Rng rng(11);
  for (DType dt : {DType::f32, DType::f64}) {
    for (DType it : {DType::i64, DType::i32}) {
      CAPTURE(sg::dtype_name(dt));
      CAPTURE(sg::dtype_name(it));
      check_naive_equals_fast("embedding", [](const std::vector<Tensor>& in) { return sg::embedding(in[0], in[1]); },
                              {Tensor::randn({300, 96}, rng, 1.0, dt), Tensor::randint({64, 64}, rng, 0, 300, it)});
      check_naive_equals_fast("index_select dim 1",
                              [](const std::vector<Tensor>& in) { return sg::index_select(in[0], 1, in[1]); },
                              {Tensor::randn({16, 50, 64}, rng, 1.0, dt), Tensor::randint({200}, rng, 0, 50, it)});
      check_naive_equals_fast("index_add dim 1",
                              [](const std::vector<Tensor>& in) { return sg::index_add(in[0], 1, in[1], in[2]); },
                              {Tensor::randn({16, 50, 64}, rng, 1.0, dt), Tensor::randint({200}, rng, 0, 50, it),
                               Tensor::randn({16, 200, 64}, rng, 1.0, dt)});
      check_naive_equals_fast("gather dim 1",
                              [](const std::vector<Tensor>& in) { return sg::gather(in[0], 1, in[1]); },
                              {Tensor::randn({64, 40, 32}, rng, 1.0, dt), Tensor::randint({64, 100, 32}, rng, 0, 40, it)});
      check_naive_equals_fast("gather dim 1, smaller index",
                              [](const std::vector<Tensor>& in) { return sg::gather(in[0], 1, in[1]); },
                              {Tensor::randn({64, 40, 32}, rng, 1.0, dt), Tensor::randint({60, 100, 20}, rng, 0, 40, it)});
      check_naive_equals_fast("gather last dim",
                              [](const std::vector<Tensor>& in) { return sg::gather(in[0], -1, in[1]); },
                              {Tensor::randn({1000, 30}, rng, 1.0, dt), Tensor::randint({1000, 70}, rng, 0, 30, it)});
      check_naive_equals_fast("scatter_add dim 0",
                              [](const std::vector<Tensor>& in) { return sg::scatter_add(in[0], 0, in[1], in[2]); },
                              {Tensor::randn({40, 2000}, rng, 1.0, dt), Tensor::randint({100, 2000}, rng, 0, 40, it),
                               Tensor::randn({100, 2000}, rng, 1.0, dt)});
      check_naive_equals_fast("scatter_add dim 1, smaller index, permuted x",
                              [](const std::vector<Tensor>& in) {
                                return sg::scatter_add(sg::permute(in[0], {1, 0, 2}), 1, in[1], in[2]);
                              },
                              {Tensor::randn({40, 64, 32}, rng, 1.0, dt), Tensor::randint({60, 100, 20}, rng, 0, 40, it),
                               Tensor::randn({60, 100, 20}, rng, 1.0, dt)});
    }
  }
}
