// tests/ops/test_nn.cpp — the fused nn ops (ops/nn.h) against their composite twins built from
// elementwise/reduce/shape ops, values AND gradients in f64; hand-computed values; error messages;
// naive kernels vs fast kernels; dropout's determinism and keep rate.
//
// (The registry cases in ops/registry_nn.cpp add an independent plain-loop reference and a
// finite-difference gradcheck for every op; this file checks the fused kernels against the same
// math written the long way.)
#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "autograd/node.h"
#include "autograd/runtime.h"
#include "ops/cpu/runtime.h"
#include "ops/ops.h"

using namespace sg;

namespace {

using Fn = std::function<Tensor(const std::vector<Tensor>&)>;

Tensor randn64(Rng& rng, const Shape& shape, double std = 1.0, bool requires_grad = true) {
  Tensor t = Tensor::randn(shape, rng, std, DType::f64);
  if (requires_grad) t.requires_grad_();
  return t;
}

// Fresh leaves with the same numbers (and the same requires_grad) as `inputs`.
std::vector<Tensor> copies(const std::vector<Tensor>& inputs) {
  std::vector<Tensor> out;
  for (const Tensor& t : inputs) {
    if (!t.defined()) {
      out.push_back(t);
      continue;
    }
    Tensor c = t.clone_data();
    if (t.requires_grad()) c.requires_grad_();
    out.push_back(c);
  }
  return out;
}

void check_close(const Tensor& got, const Tensor& want, double atol, double rtol, const std::string& what) {
  INFO(what);
  REQUIRE(got.shape() == want.shape());
  std::vector<double> g = got.to_f64_vector(), w = want.to_f64_vector();
  for (size_t i = 0; i < g.size(); i++) {
    if (!(std::abs(g[i] - w[i]) <= atol + rtol * std::abs(w[i]))) {
      FAIL_CHECK("element " << i << ": got " << g[i] << ", want " << w[i]);
      return;
    }
  }
}

void check_equal(const Tensor& got, const Tensor& want, const std::string& what) {
  INFO(what);
  REQUIRE(got.shape() == want.shape());
  CHECK(got.to_f64_vector() == want.to_f64_vector());
}

// Runs the fused op and its composite twin on separate copies of `inputs`, seeds both backward
// passes with the same random upstream gradient, and compares the outputs and every input's .grad.
void check_twin(const std::string& what, const Fn& fused, const Fn& composite, const std::vector<Tensor>& inputs,
                double tol = 1e-10) {
  std::vector<Tensor> a = copies(inputs), b = copies(inputs);
  Tensor ya = fused(a), yb = composite(b);
  check_close(ya, yb, tol, tol, what + ": value");
  Rng rng(7);
  Tensor dy = Tensor::randn(ya.shape(), rng, 1.0, ya.dtype());
  ya.backward(dy);
  yb.backward(dy);
  for (size_t i = 0; i < inputs.size(); i++) {
    if (!inputs[i].defined() || !inputs[i].requires_grad()) continue;
    REQUIRE(a[i].grad().defined());
    REQUIRE(b[i].grad().defined());
    check_close(a[i].grad(), b[i].grad(), tol, tol, what + ": grad of input " + std::to_string(i));
  }
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no error)";
}

// ---- the composite twins -----------------------------------------------------------------------

// softmax = exp(x − max) / Σ exp(x − max)
Tensor softmax_twin(const Tensor& x, int64_t dim) {
  Tensor e = exp(sub(x, max(x, {dim}, true)));
  return div(e, sum(e, {dim}, true));
}
// log_softmax = x − max − log Σ exp(x − max)
Tensor log_softmax_twin(const Tensor& x, int64_t dim) {
  Tensor shifted = sub(x, max(x, {dim}, true));
  return sub(shifted, log(sum(exp(shifted), {dim}, true)));
}
// cross_entropy = −Σ log_softmax ⊙ onehot / n_valid  (ignored rows have an all-zero one-hot row)
Tensor cross_entropy_twin(const Tensor& logits, const Tensor& targets, int64_t ignore_index) {
  Tensor onehot = Tensor::zeros(logits.shape(), logits.dtype());
  std::vector<int64_t> t = targets.to_i64_vector();
  int64_t V = logits.shape().back(), n_valid = 0;
  for (size_t r = 0; r < t.size(); r++) {
    if (t[r] == ignore_index) continue;
    onehot.data<double>()[r * V + t[r]] = 1.0;
    n_valid++;
  }
  return mul(sum(mul(log_softmax_twin(logits, -1), onehot)), -1.0 / (double)n_valid);
}
// rms_norm = x · rsqrt(mean(x²) + eps) · w
Tensor rms_norm_twin(const Tensor& x, const Tensor& w, double eps) {
  return mul(mul(x, rsqrt(add(mean(square(x), {-1}, true), eps))), w);
}
// layer_norm = (x − mean) · rsqrt(var + eps) · w + b   (population variance)
Tensor layer_norm_twin(const Tensor& x, const Tensor& w, const Tensor& b, double eps) {
  Tensor xhat = mul(sub(x, mean(x, {-1}, true)), rsqrt(add(var(x, {-1}, true, 0), eps)));
  Tensor y = mul(xhat, w);
  return b.defined() ? add(y, b) : y;
}
// rope: split x into the pair halves a, b by slices, rotate with broadcast cos/sin, put back
// (interleaved: stack the halves as the last dim and flatten; half_split: cat them).
Tensor rope_twin(const Tensor& x, const Tensor& cos, const Tensor& sin, RopeLayout layout) {
  int64_t dr = x.shape().back(), h = dr / 2;
  bool interleaved = layout == RopeLayout::interleaved;
  Tensor a = interleaved ? slice(x, -1, 0, dr, 2) : slice(x, -1, 0, h);
  Tensor b = interleaved ? slice(x, -1, 1, dr, 2) : slice(x, -1, h, dr);
  Shape table = x.dim() == 4 ? Shape{cos.shape()[0], 1, h} : Shape{cos.shape()[0], h};  // [S, (1,) dr/2]
  Tensor c = reshape(cos, table), s = reshape(sin, table);
  Tensor ya = sub(mul(a, c), mul(b, s)), yb = add(mul(a, s), mul(b, c));
  return interleaved ? reshape(stack({ya, yb}, -1), x.shape()) : cat({ya, yb}, -1);
}

// cos/sin [S, half] of the angles φ(s, i) = (s + 1) · 0.7^i + 0.2 i
std::vector<Tensor> rope_tables(int64_t S, int64_t half, DType dtype = DType::f64) {
  Tensor c = Tensor::empty({S, half}, dtype), s = Tensor::empty({S, half}, dtype);
  for (int64_t p = 0; p < S; p++)
    for (int64_t i = 0; i < half; i++) {
      double phi = (double)(p + 1) * std::pow(0.7, (double)i) + 0.2 * (double)i;
      c.set_at({p, i}, std::cos(phi));
      s.set_at({p, i}, std::sin(phi));
    }
  return {c, s};
}

}  // namespace

// ================================================================================================
// composite twins, f64, values and gradients
// ================================================================================================

TEST_CASE("softmax matches exp(x - max) / sum, over every dim and on a permuted input") {
  Rng rng(1);
  Tensor x = randn64(rng, {3, 4, 5}, 2.0);
  for (int64_t dim : {0, 1, 2, -1})
    check_twin("softmax dim " + std::to_string(dim), [dim](auto& in) { return softmax(in[0], dim); },
               [dim](auto& in) { return softmax_twin(in[0], dim); }, {x});
  check_twin("softmax of a permuted view", [](auto& in) { return softmax(permute(in[0], {2, 0, 1}), 1); },
             [](auto& in) { return softmax_twin(permute(in[0], {2, 0, 1}), 1); }, {x});
}

TEST_CASE("log_softmax matches x - max - log sum exp") {
  Rng rng(2);
  Tensor x = randn64(rng, {4, 6}, 3.0);
  for (int64_t dim : {0, 1})
    check_twin("log_softmax dim " + std::to_string(dim), [dim](auto& in) { return log_softmax(in[0], dim); },
               [dim](auto& in) { return log_softmax_twin(in[0], dim); }, {x});
  check_twin("log_softmax of a transposed view", [](auto& in) { return log_softmax(transpose(in[0], 0, 1), -1); },
             [](auto& in) { return log_softmax_twin(transpose(in[0], 0, 1), -1); }, {x});
}

TEST_CASE("cross_entropy matches -mean(log_softmax picked by a one-hot), with ignored targets and 3-D logits") {
  Rng rng(3);
  Tensor logits = randn64(rng, {5, 7}, 2.0);
  Tensor targets = Tensor::from_vector(std::vector<int64_t>{3, 0, 6, 2, 2}, {5});
  check_twin("cross_entropy", [&](auto& in) { return cross_entropy(in[0], targets); },
             [&](auto& in) { return cross_entropy_twin(in[0], targets, -100); }, {logits});

  Tensor with_ignored = Tensor::from_vector(std::vector<int64_t>{3, -100, 6, -100, 1}, {5});
  check_twin("cross_entropy, 2 ignored", [&](auto& in) { return cross_entropy(in[0], with_ignored); },
             [&](auto& in) { return cross_entropy_twin(in[0], with_ignored, -100); }, {logits});

  Tensor logits3 = randn64(rng, {2, 3, 4});
  Tensor targets3 = Tensor::from_vector(std::vector<int32_t>{0, 3, 1, 2, 2, 0}, {2, 3});  // i32 targets too
  check_twin("cross_entropy 3-D, ignore_index 2", [&](auto& in) { return cross_entropy(in[0], targets3, 2); },
             [&](auto& in) { return cross_entropy_twin(in[0], targets3, 2); }, {logits3});
}

TEST_CASE("cross_entropy with every target ignored is 0 with a zero gradient") {
  Rng rng(4);
  Tensor logits = randn64(rng, {3, 4});
  Tensor targets = Tensor::full({3}, -100, DType::i64);
  Tensor loss = cross_entropy(logits, targets);
  CHECK(loss.item() == 0.0);
  loss.backward();
  for (double g : logits.grad().to_f64_vector()) CHECK(g == 0.0);
}

TEST_CASE("rms_norm matches x * rsqrt(mean(x^2) + eps) * w") {
  Rng rng(5);
  Tensor x = randn64(rng, {2, 3, 8}), w = randn64(rng, {8});
  check_twin("rms_norm", [](auto& in) { return rms_norm(in[0], in[1], 1e-6); },
             [](auto& in) { return rms_norm_twin(in[0], in[1], 1e-6); }, {x, w});
  check_twin("rms_norm of a transposed x", [](auto& in) { return rms_norm(transpose(in[0], 1, 2), in[1], 1e-6); },
             [](auto& in) { return rms_norm_twin(transpose(in[0], 1, 2), in[1], 1e-6); },
             {randn64(rng, {2, 8, 3}), randn64(rng, {8})});
  Tensor frozen = randn64(rng, {8}, 1.0, false);
  check_twin("rms_norm, weight without grad", [](auto& in) { return rms_norm(in[0], in[1], 1e-6); },
             [](auto& in) { return rms_norm_twin(in[0], in[1], 1e-6); }, {x, frozen});
}

TEST_CASE("layer_norm matches (x - mean) * rsqrt(var + eps) * w + b, with and without bias") {
  Rng rng(6);
  Tensor x = randn64(rng, {2, 3, 6}, 2.0), w = randn64(rng, {6}), b = randn64(rng, {6});
  check_twin("layer_norm with bias", [](auto& in) { return layer_norm(in[0], in[1], in[2], 1e-5); },
             [](auto& in) { return layer_norm_twin(in[0], in[1], in[2], 1e-5); }, {x, w, b});
  check_twin("layer_norm without bias", [](auto& in) { return layer_norm(in[0], in[1], Tensor(), 1e-5); },
             [](auto& in) { return layer_norm_twin(in[0], in[1], Tensor(), 1e-5); }, {x, w});
}

TEST_CASE("rope matches the rotation written with slices, mul and cat, in both layouts") {
  Rng rng(7);
  for (RopeLayout layout : {RopeLayout::interleaved, RopeLayout::half_split}) {
    std::string tag = layout == RopeLayout::interleaved ? "interleaved" : "half_split";
    std::vector<Tensor> t4 = rope_tables(3, 4), t3 = rope_tables(5, 3);
    check_twin("rope 4-D " + tag, [layout](auto& in) { return rope(in[0], in[1], in[2], layout); },
               [layout](auto& in) { return rope_twin(in[0], in[1], in[2], layout); },
               {randn64(rng, {2, 3, 2, 8}), t4[0], t4[1]});
    check_twin("rope 3-D " + tag, [layout](auto& in) { return rope(in[0], in[1], in[2], layout); },
               [layout](auto& in) { return rope_twin(in[0], in[1], in[2], layout); },
               {randn64(rng, {2, 5, 6}), t3[0], t3[1]});
    // the rope slice of wider heads (MLA's q_pe), a non-contiguous x
    check_twin("rope on a slice " + tag, [layout](auto& in) { return rope(slice(in[0], -1, 2, 10), in[1], in[2], layout); },
               [layout](auto& in) { return rope_twin(slice(in[0], -1, 2, 10), in[1], in[2], layout); },
               {randn64(rng, {2, 3, 2, 12}), t4[0], t4[1]});
  }
}

TEST_CASE("rope keeps every pair's length and rope(-angle) undoes it") {
  Rng rng(8);
  std::vector<Tensor> t = rope_tables(4, 4);
  Tensor x = randn64(rng, {1, 4, 8}, 1.0, false);
  Tensor neg_sin = mul(t[1], -1.0);
  for (RopeLayout layout : {RopeLayout::interleaved, RopeLayout::half_split}) {
    Tensor y = rope(x, t[0], t[1], layout);
    check_close(sum(square(y), {-1}), sum(square(x), {-1}), 1e-12, 1e-12, "norm per token");
    check_close(rope(y, t[0], neg_sin, layout), x, 1e-12, 1e-12, "inverse rotation");
  }
}

TEST_CASE("topk values and gradient: twin of max for k = 1, hand-checked for k = 3") {
  Rng rng(9);
  Tensor x = randn64(rng, {4, 6});
  for (int64_t dim : {0, 1}) {
    check_twin("topk k=1 vs max, dim " + std::to_string(dim), [dim](auto& in) { return topk(in[0], 1, dim).values; },
               [dim](auto& in) { return max(in[0], {dim}, true); }, {x});
    check_twin("topk k=1 smallest vs min, dim " + std::to_string(dim),
               [dim](auto& in) { return topk(in[0], 1, dim, false).values; },
               [dim](auto& in) { return min(in[0], {dim}, true); }, {x});
    Tensor idx = topk(x, 1, dim).indices, am = argmax(x, dim, true);
    CHECK(idx.dtype() == DType::i64);
    check_equal(idx, am, "topk k=1 indices vs argmax keepdim");
  }

  Tensor v = Tensor::from_vector(std::vector<double>{3, 1, 4, 1, 5}, {1, 5}).requires_grad_();
  TopK top = topk(v, 3);
  CHECK(top.values.to_f64_vector() == std::vector<double>{5, 4, 3});
  CHECK(top.indices.to_i64_vector() == std::vector<int64_t>{4, 2, 0});
  top.values.backward(Tensor::from_vector(std::vector<double>{1, 2, 3}, {1, 3}));
  CHECK(v.grad().to_f64_vector() == std::vector<double>{3, 0, 2, 0, 1});  // dy scattered to the chosen positions

  TopK low = topk(v.detach(), 3, -1, /*largest=*/false);  // tie 1, 1: the lower index first
  CHECK(low.values.to_f64_vector() == std::vector<double>{1, 1, 3});
  CHECK(low.indices.to_i64_vector() == std::vector<int64_t>{1, 3, 0});
}

TEST_CASE("argmax returns the first maximum, i64, with and without keepdim") {
  Tensor x = Tensor::from_vector(std::vector<double>{1, 7, 7, 2, 9, 9, 9, 0}, {2, 4});
  Tensor a = argmax(x, 1);
  CHECK(a.dtype() == DType::i64);
  CHECK(a.shape() == Shape{2});
  CHECK(a.to_i64_vector() == std::vector<int64_t>{1, 0});
  Tensor k = argmax(x, 0, true);
  CHECK(k.shape() == Shape{1, 4});
  CHECK(k.to_i64_vector() == std::vector<int64_t>{1, 1, 1, 0});
}

// ================================================================================================
// hand-computed values
// ================================================================================================

TEST_CASE("softmax of [1, 2, 3] and log_softmax of it") {
  Tensor x = Tensor::from_vector(std::vector<double>{1, 2, 3}, {3});
  // e^k / (e + e² + e³)
  check_close(softmax(x), Tensor::from_vector(std::vector<double>{0.09003057317038046, 0.24472847105479767, 0.6652409557748219}, {3}),
              1e-15, 1e-14, "softmax([1,2,3])");
  check_close(log_softmax(x), log(Tensor::from_vector(std::vector<double>{0.09003057317038046, 0.24472847105479767, 0.6652409557748219}, {3})),
              1e-14, 1e-14, "log_softmax([1,2,3])");
  // the same in f32, and shifted by 1000 (no overflow: the row max is subtracted first)
  Tensor big = Tensor::from_vector(std::vector<float>{1001, 1002, 1003}, {3});
  check_close(softmax(big), Tensor::from_vector(std::vector<double>{0.09003057317038046, 0.24472847105479767, 0.6652409557748219}, {3}),
              1e-6, 1e-6, "softmax([1001,1002,1003]) f32");
}

TEST_CASE("softmax of a causal row: -inf entries get probability 0") {
  Tensor x = Tensor::from_vector(std::vector<double>{0.5, 0.5, -INFINITY, -INFINITY}, {1, 4});
  CHECK(softmax(x).to_f64_vector() == std::vector<double>{0.5, 0.5, 0.0, 0.0});
}

TEST_CASE("cross_entropy of a 2x3 example") {
  // row 0: logits (0, 0, 0), target 0  ->  log 3                        = 1.0986122886681098
  // row 1: logits (1, 2, 3), target 2  ->  log(e + e² + e³) − 3          = 0.40760596444438013
  Tensor logits = Tensor::from_vector(std::vector<double>{0, 0, 0, 1, 2, 3}, {2, 3}).requires_grad_();
  Tensor targets = Tensor::from_vector(std::vector<int64_t>{0, 2}, {2});
  Tensor loss = cross_entropy(logits, targets);
  CHECK(loss.shape() == Shape{});
  CHECK(loss.item() == doctest::Approx(0.7531091265562448).epsilon(1e-14));
  loss.backward();
  // (softmax − onehot) / 2
  std::vector<double> want = {(1.0 / 3 - 1) / 2, 1.0 / 6, 1.0 / 6, 0.09003057317038046 / 2, 0.24472847105479767 / 2,
                              (0.6652409557748219 - 1) / 2};
  check_close(logits.grad(), Tensor::from_vector(want, {2, 3}), 1e-15, 1e-13, "dlogits");
}

TEST_CASE("rope rotates (1, 0) by 90 degrees to (0, 1), and pairs elements by layout") {
  Tensor x = Tensor::from_vector(std::vector<double>{1, 0}, {1, 1, 2});
  Tensor c = Tensor::from_vector(std::vector<double>{0}, {1, 1}), s = Tensor::from_vector(std::vector<double>{1}, {1, 1});
  for (RopeLayout layout : {RopeLayout::interleaved, RopeLayout::half_split})
    check_close(rope(x, c, s, layout), Tensor::from_vector(std::vector<double>{0, 1}, {1, 1, 2}), 1e-15, 0, "(1,0) by 90°");

  // dr = 4, angles (90°, 0°): interleaved pairs (x0, x1), (x2, x3); half_split pairs (x0, x2), (x1, x3)
  Tensor x4 = Tensor::from_vector(std::vector<double>{1, 2, 3, 4}, {1, 1, 4});
  Tensor c4 = Tensor::from_vector(std::vector<double>{0, 1}, {1, 2}), s4 = Tensor::from_vector(std::vector<double>{1, 0}, {1, 2});
  check_close(rope(x4, c4, s4, RopeLayout::interleaved), Tensor::from_vector(std::vector<double>{-2, 1, 3, 4}, {1, 1, 4}),
              1e-15, 0, "interleaved");
  check_close(rope(x4, c4, s4, RopeLayout::half_split), Tensor::from_vector(std::vector<double>{-3, 2, 1, 4}, {1, 1, 4}),
              1e-15, 0, "half_split");
}

TEST_CASE("rms_norm of (3, 4) with eps 0 is (3, 4) / sqrt(12.5)") {
  Tensor x = Tensor::from_vector(std::vector<float>{3, 4}, {1, 2});
  Tensor w = Tensor::from_vector(std::vector<float>{1, 2}, {2});
  check_close(rms_norm(x, w, 0.0), Tensor::from_vector(std::vector<double>{0.848528137423857, 2 * 1.131370849898476}, {1, 2}),
              1e-6, 1e-6, "rms_norm f32");
}

// ================================================================================================
// error messages
// ================================================================================================

TEST_CASE("errors name the op, the tensors and the shapes") {
  Tensor logits = Tensor::zeros({6, 512});
  Tensor targets = Tensor::from_vector(std::vector<int64_t>{0, 1, 2, 3, 4, 700}, {6});
  CHECK(error_of([&] { cross_entropy(logits, targets); }) == "[cross_entropy] target 700 at position 5 is outside [0, 512)");
  CHECK(error_of([&] { cross_entropy(logits, Tensor::zeros({5}, DType::i64)); }).find("[cross_entropy] targets") == 0);
  CHECK(error_of([&] { cross_entropy(logits, Tensor::zeros({6})); }).find("integer") != std::string::npos);

  CHECK(error_of([] { rms_norm(Tensor::zeros({2, 384}), Tensor::ones({512})); }) ==
        "[rms_norm] weight has shape (512) but x has last dim 384");
  CHECK(error_of([] { rms_norm(Tensor::zeros({2, 4}), Tensor::ones({4}, DType::f64)); }).find("[rms_norm]") == 0);
  CHECK(error_of([] { layer_norm(Tensor::zeros({2, 4}), Tensor::ones({4}), Tensor::zeros({5}), 1e-5); }) ==
        "[layer_norm] bias has shape (5) but x has last dim 4");

  std::string e = error_of([] { rope(Tensor::zeros({2, 5, 4, 16}), Tensor::zeros({7, 8}), Tensor::zeros({5, 8}), RopeLayout::interleaved); });
  CHECK(e == "[rope] cos tensor (7, 8) f32 does not match x tensor (2, 5, 4, 16) f32, which needs (5, 8)");
  CHECK(error_of([] { rope(Tensor::zeros({2, 5, 3}), Tensor::zeros({5, 1}), Tensor::zeros({5, 1}), RopeLayout::half_split); })
            .find("odd rope dim 3") != std::string::npos);
  CHECK(error_of([] { rope(Tensor::zeros({5, 4}), Tensor::zeros({5, 2}), Tensor::zeros({5, 2}), RopeLayout::half_split); })
            .find("[rope] x tensor (5, 4) f32 must be") == 0);

  CHECK(error_of([] { topk(Tensor::zeros({2, 8}), 9); }) == "[topk] k = 9 is outside [0, 8] for dim 1 of x tensor (2, 8) f32");
  CHECK(error_of([] { argmax(Tensor::zeros({2, 3}), 2); }).find("[argmax] dim 2 is out of range") == 0);
  Rng rng(1);
  CHECK(error_of([&] { dropout(Tensor::zeros({3}), 1.0, rng); }).find("[dropout] p = 1") == 0);
  CHECK(error_of([&] { dropout(Tensor::zeros({3}), -0.1, rng); }).find("must be in [0, 1)") != std::string::npos);
  CHECK(error_of([] { softmax(Tensor::zeros({3}, DType::i64)); }).find("[softmax]") == 0);
}

// ================================================================================================
// naive kernels vs fast kernels, on inputs big enough to split over threads
// ================================================================================================

TEST_CASE("naive mode and fast mode agree exactly, values and gradients") {
  Rng rng(10);
  Tensor x = Tensor::randn({64, 40, 33}, rng, 2.0, DType::f32).requires_grad_();  // 84480 values
  Tensor w = Tensor::randn({33}, rng, 1.0, DType::f32).requires_grad_();
  Tensor b = Tensor::randn({33}, rng, 1.0, DType::f32).requires_grad_();
  Tensor targets = Tensor::randint({64, 40}, rng, 0, 33);
  std::vector<Tensor> tables = rope_tables(40, 16, DType::f32);
  Tensor xr = Tensor::randn({8, 40, 4, 32}, rng, 1.0, DType::f32).requires_grad_();

  std::vector<std::pair<std::string, std::function<Tensor()>>> ops = {
      {"softmax", [&] { return softmax(x, -1); }},
      {"softmax dim 1", [&] { return softmax(x, 1); }},
      {"log_softmax", [&] { return log_softmax(x, -1); }},
      {"cross_entropy", [&] { return cross_entropy(x, targets); }},
      {"rms_norm", [&] { return rms_norm(x, w, 1e-6); }},
      {"layer_norm", [&] { return layer_norm(x, w, b, 1e-5); }},
      {"rope interleaved", [&] { return rope(xr, tables[0], tables[1], RopeLayout::interleaved); }},
      {"rope half_split", [&] { return rope(xr, tables[0], tables[1], RopeLayout::half_split); }},
      {"topk", [&] { return topk(x, 5, -1).values; }},
      {"topk smallest dim 0", [&] { return topk(x, 7, 0, false).values; }},
  };
  int saved_threads = num_threads();
  set_num_threads(std::max(2, saved_threads));
  for (auto& [name, f] : ops) {
    std::vector<Tensor> outs, grads;
    for (bool naive : {true, false}) {
      set_naive_kernels(naive);
      for (Tensor t : {x, w, b, xr}) t.zero_grad();
      Tensor y = f();
      Rng grng(3);
      y.backward(Tensor::randn(y.shape(), grng, 1.0, y.dtype()));
      outs.push_back(y);
      grads.push_back(name.rfind("rope", 0) == 0 ? xr.grad() : x.grad());
      if (name == "rms_norm" || name == "layer_norm") {
        outs.push_back(w.grad());
        if (name == "layer_norm") outs.push_back(b.grad());
      }
    }
    set_naive_kernels(false);
    size_t half = outs.size() / 2;
    for (size_t i = 0; i < half; i++) check_equal(outs[half + i], outs[i], name + ": output/param grad " + std::to_string(i));
    check_equal(grads[1], grads[0], name + ": dx");
  }
  set_naive_kernels(true);
  Tensor naive_idx = topk(x.detach(), 6, 1).indices, naive_argmax = argmax(x.detach(), 2);
  set_naive_kernels(false);
  check_equal(topk(x.detach(), 6, 1).indices, naive_idx, "topk indices");
  check_equal(argmax(x.detach(), 2), naive_argmax, "argmax");
  set_num_threads(saved_threads);
}

// ================================================================================================
// dropout
// ================================================================================================

TEST_CASE("dropout: same seed, same mask; the kept fraction is about 1 - p; survivors scaled by 1/(1-p)") {
  Tensor x = Tensor::ones({100000});
  Rng a(123), b(123), c(124);
  Tensor ya = dropout(x, 0.3, a), yb = dropout(x, 0.3, b), yc = dropout(x, 0.3, c);
  CHECK(ya.to_f64_vector() == yb.to_f64_vector());
  CHECK(ya.to_f64_vector() != yc.to_f64_vector());
  int64_t kept = 0;
  for (double v : ya.to_f64_vector()) {
    if (v != 0) {
      kept++;
      CHECK(v == doctest::Approx(1.0 / 0.7));
    }
  }
  // binomial std of the kept fraction: sqrt(0.3 · 0.7 / 1e5) ≈ 0.0015; allow 4 sigma
  CHECK(std::abs((double)kept / 100000.0 - 0.7) < 0.006);
  // the generator moved on: the next call draws a different mask
  CHECK(dropout(x, 0.3, a).to_f64_vector() != ya.to_f64_vector());
}

TEST_CASE("dropout backward multiplies by the same mask; p = 0 and eval mode are the identity") {
  Rng rng(5);
  Tensor x = randn64(rng, {8, 16});
  Rng d(77);
  Tensor y = dropout(transpose(x, 0, 1), 0.5, d);  // a non-contiguous input
  Tensor dy = Tensor::randn(y.shape(), rng, 1.0, DType::f64);
  y.backward(dy);
  std::vector<double> yv = y.to_f64_vector(), xv = transpose(x.detach(), 0, 1).to_f64_vector();
  std::vector<double> g = transpose(x.grad(), 0, 1).to_f64_vector(), dv = dy.to_f64_vector();
  for (size_t i = 0; i < yv.size(); i++) {
    double mask = yv[i] == 0 ? 0.0 : 2.0;
    CHECK(yv[i] == doctest::Approx(xv[i] * mask));
    CHECK(g[i] == doctest::Approx(dv[i] * mask));
  }

  Rng e(1), before(1);
  CHECK(dropout(x, 0.0, e).same(x));
  CHECK(dropout(x, 0.5, e, /*training=*/false).same(x));
  CHECK(e.next_u64() == before.next_u64());  // the identity draws nothing
}
