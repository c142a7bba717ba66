// tests/ops/test_fp8_linear.cpp — FP8 tensors of the engine and the FP8 linear (ops/fp8_linear.h).
//
// Checked by value:
//   * FP8 tensors are real codes: dtype f8e4m3, one byte per element, decoding by at() equals e4m3_to_f32;
//     compute ops refuse them by name.
//   * the block transpose is exact: dequant(transpose(q)) == transpose(dequant(q)) bit for bit.
//   * fp8_linear's forward, Dgrad and Wgrad are bit for bit the composition of the quantizers and the FP8
//     GEMM written out here (so the op does what the header says, nothing else), and within a bound
//     derived from the E4M3 rounding of the f32 linear's values and gradients (below).
//   * fp8_linear_stored on a stored weight = fp8_linear on that weight's dequantization when it re-quantizes
//     to the same codes; the weight gets no gradient, x does.
//   * bad input: f64 x, mismatched in, a scale_inv of the wrong shape — each names the op and the shapes.
//
// The forward bound. For an element x of a tile with scale s, the round trip error is
// e(x) ≤ 2^-4·|x| + s·2^-10 (test_fp8_quant.cpp derives it: half an ulp of 3 mantissa bits for normals,
// half the subnormal spacing below). For y = Σ_k x_k w_k the quantized product differs by at most
// Σ_k (e(x_k)|w_k| + |x_k| e(w_k) + e(x_k) e(w_k)), plus the f32 accumulation (K·2^-24·Σ|x||w|, allowed twice).
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "autograd/node.h"
#include "autograd/rng.h"
#include "ops/fp8.h"
#include "ops/fp8_linear.h"
#include "ops/ops.h"
#include "tests/test_util.h"

using namespace sg;

namespace {

bool same_bits(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape() || a.dtype() != b.dtype()) return false;
  Tensor x = a.clone_data(), y = b.clone_data();
  return std::memcmp(x.raw_data(), y.raw_data(), (size_t)x.numel() * dtype_size(x.dtype())) == 0;
}

// ||a - b|| / ||b|| (Frobenius).
double rel_error(const Tensor& a, const Tensor& b) {
  std::vector<double> x = a.to_f64_vector(), y = b.to_f64_vector();
  double num = 0, den = 0;
  for (size_t i = 0; i < x.size(); i++) num += (x[i] - y[i]) * (x[i] - y[i]), den += y[i] * y[i];
  return std::sqrt(num / den);
}

}  // namespace

TEST_CASE("fp8 tensors: f8e4m3 is a one-byte dtype of real codes; compute ops refuse it") {
  Tensor x = Tensor::from_vector(std::vector<float>{1.0f, -0.3f, 500.0f, 0.0013f}, {4});
  Tensor q = to_dtype(x, DType::f8e4m3);
  CHECK(q.dtype() == DType::f8e4m3);
  CHECK(dtype_size(q.dtype()) == 1);
  CHECK(std::string(dtype_name(q.dtype())) == "f8e4m3");
  const uint8_t* codes = q.fp8_codes();
  for (int i = 0; i < 4; i++) {
    CHECK(codes[i] == lowp::f32_to_e4m3(x.data<float>()[i]));
    CHECK(q.at({i}) == (double)lowp::e4m3_to_f32(codes[i]));
  }
  CHECK(q.at({2}) == 448.0);  // saturating
  CHECK(q.at({1}) == -0.3125);  // -0.3 rounds to -1.25·2^-2
  Tensor b = to_dtype(x, DType::bf16);
  CHECK(dtype_size(b.dtype()) == 2);
  CHECK(b.at({0}) == 1.0);
  CHECK(test::error_of([&] { add(q, q); }).find("[add]") != std::string::npos);
  CHECK(test::error_of([&] { x.fp8_codes(); }).find("not an FP8 tensor") != std::string::npos);
}

TEST_CASE("fp8 tensors: quantize, dequantize and the exact block transpose") {
  Rng rng(3);
  Tensor w = Tensor::randn({200, 300}, rng, 0.05);
  Fp8Tensor q = fp8_quantize_blocks(w);
  CHECK(q.codes.shape() == Shape{200, 300});
  CHECK(q.scale.shape() == Shape{2, 3});
  Tensor dq = fp8_dequantize(q);
  // every element within the round-trip bound of its block
  for (int64_t r = 0; r < 200; r += 7)
    for (int64_t c = 0; c < 300; c += 5) {
      const double s = q.scale.at({r / 128, c / 128}), v = w.at({r, c});
      CHECK(std::abs(dq.at({r, c}) - v) <= (std::ldexp(std::abs(v), -4) + s * std::ldexp(1.0, -10)) * (1 + 1e-6));
    }
  Fp8Tensor t = fp8_transpose_blocks(q);
  CHECK(t.codes.shape() == Shape{300, 200});
  CHECK(same_bits(fp8_dequantize(t), contiguous(transpose(dq, 0, 1))));
  Fp8Tensor a = fp8_quantize_tiles(w, /*ue8m0=*/true);
  CHECK(a.scale.shape() == Shape{200, 3});
  for (double s : a.scale.to_f64_vector()) CHECK(std::exp2(std::round(std::log2(s))) == s);  // powers of two
  CHECK(test::error_of([&] { fp8_transpose_blocks(a); }).find("[fp8_transpose_blocks]") != std::string::npos);
}

TEST_CASE("fp8_linear: forward, Dgrad and Wgrad are the FP8 GEMMs of the header, bit for bit") {
  Rng rng(11);
  const int64_t M = 37, K = 160, N = 140;  // ragged tiles and blocks on every axis
  Tensor x = Tensor::randn({M, K}, rng, 1.0).requires_grad_();
  Tensor w = Tensor::randn({N, K}, rng, 0.08).requires_grad_();
  Tensor dy = Tensor::randn({M, N}, rng, 0.5);
  Tensor y = fp8_linear(x, w);
  y.backward(dy);

  Fp8Tensor xq = fp8_quantize_tiles(x.detach()), wq = fp8_quantize_blocks(w.detach());
  CHECK(same_bits(y.detach(), fp8_matmul(xq, wq)));
  Tensor dx = fp8_matmul(fp8_quantize_tiles(dy), fp8_transpose_blocks(wq));
  CHECK(same_bits(x.grad(), dx));
  Tensor x_t = contiguous(transpose(fp8_dequantize(xq), 0, 1)), dy_t = contiguous(transpose(dy, 0, 1));
  Tensor dw = fp8_matmul(fp8_quantize_tiles(dy_t), fp8_quantize_tiles(x_t));
  CHECK(same_bits(w.grad(), dw));

  // Against the f32 linear: the forward within the derived bound, per element.
  Tensor y32 = linear(x.detach(), w.detach());
  for (int64_t m = 0; m < M; m++)
    for (int64_t n = 0; n < N; n++) {
      double bound = 0, abs_sum = 0;
      for (int64_t k = 0; k < K; k++) {
        const double xv = std::abs(x.at({m, k})), wv = std::abs(w.at({n, k}));
        const double ex = std::ldexp(xv, -4) + xq.scale.at({m, k / 128}) * std::ldexp(1.0, -10);
        const double ew = std::ldexp(wv, -4) + wq.scale.at({n / 128, k / 128}) * std::ldexp(1.0, -10);
        bound += ex * wv + xv * ew + ex * ew;
        abs_sum += xv * wv;
      }
      bound += 2 * K * std::ldexp(abs_sum, -24);
      REQUIRE(std::abs(y.at({m, n}) - y32.at({m, n})) <= bound);
    }
  // The gradients against the f32 linear's (relative Frobenius error; E4M3's per-element error is about
  // 2^-4 / sqrt(3) ≈ 3.6% RMS and averages down in the sums).
  Tensor x2 = x.detach().clone_data().requires_grad_(), w2 = w.detach().clone_data().requires_grad_();
  linear(x2, w2).backward(dy);
  const double e_y = rel_error(y.detach(), y32), e_dx = rel_error(x.grad(), x2.grad()), e_dw = rel_error(w.grad(), w2.grad());
  MESSAGE("fp8_linear vs f32 linear, relative error: y " << e_y << ", dx " << e_dx << ", dW " << e_dw);
  CHECK(e_y < 0.05);
  CHECK(e_dx < 0.05);
  CHECK(e_dw < 0.05);
  CHECK(e_y > 1e-4);  // it really is quantized
}

TEST_CASE("fp8_linear: batched input, ue8m0 scales, gradients only where asked") {
  Rng rng(5);
  Tensor x = Tensor::randn({2, 3, 130}, rng, 1.0).requires_grad_();
  Tensor w = Tensor::randn({20, 130}, rng, 0.1);  // no grad
  Fp8LinearOptions o;
  o.ue8m0 = true;
  Tensor y = fp8_linear(x, w, o);
  CHECK(y.shape() == Shape{2, 3, 20});
  Fp8Tensor xq = fp8_quantize_tiles(reshape(x.detach(), {6, 130}), true);
  CHECK(same_bits(reshape(y.detach(), {6, 20}), fp8_matmul(xq, fp8_quantize_blocks(w))));
  sum(y).backward();
  CHECK(x.grad().shape() == x.shape());
  CHECK(!w.grad().defined());
}

TEST_CASE("fp8_linear_stored: the official act_quant + fp8_gemm on a checkpoint's codes") {
  Rng rng(8);
  Tensor w = Tensor::randn({40, 256}, rng, 0.06);
  Fp8Tensor wq = fp8_quantize_blocks(w);
  Tensor x = Tensor::randn({5, 256}, rng, 1.0).requires_grad_();
  Tensor y = fp8_linear_stored(x, wq.codes, wq.scale);
  CHECK(same_bits(y.detach(), fp8_matmul(fp8_quantize_tiles(x.detach()), wq)));
  sum(y).backward();
  CHECK(same_bits(x.grad(), fp8_matmul(fp8_quantize_tiles(Tensor::ones({5, 40})), fp8_transpose_blocks(wq))));
  {
    NoGradGuard g;
    CHECK(!fp8_linear_stored(x, wq.codes, wq.scale).requires_grad());
  }
}

TEST_CASE("fp8_linear: bad input names the op and the shapes") {
  Rng rng(1);
  Tensor w = Tensor::randn({8, 16}, rng);
  CHECK(test::error_of([&] { fp8_linear(Tensor::randn({2, 16}, rng, 1.0, DType::f64), w); }).find("[fp8_linear] x") !=
        std::string::npos);
  std::string e = test::error_of([&] { fp8_linear(Tensor::randn({2, 15}, rng), w); });
  CHECK(e.find("[fp8_linear]") != std::string::npos);
  CHECK(e.find("(2, 15)") != std::string::npos);
  Fp8Tensor wq = fp8_quantize_blocks(w);
  e = test::error_of([&] { fp8_linear_stored(Tensor::randn({2, 16}, rng), wq.codes, Tensor::ones({2, 1})); });
  CHECK(e.find("[fp8_weight]") != std::string::npos);
  CHECK(e.find("(1, 1)") != std::string::npos);
}
