// tests/cuda/test_elementwise_emu.cpp — the CUDA elementwise kernels (cuda/kernels/elementwise.cuh), run in the
// CPU emulation in both lane orders, against the CPU kernels (ops/cpu/elementwise.h) on random inputs.
// Against the CPU's plain loops (SEEKGRAD_NAIVE) the numbers are the same bits: one formula per op
// (ops/scalar_math.h); against its SIMD loops (polynomial exp) within a few ulps.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "autograd/rng.h"
#include "cuda/elementwise.h"
#include "cuda/emu/emu.h"
#include "ops/cpu/elementwise.h"
#include "ops/cpu/runtime.h"
#include "tests/cuda/emu_test_util.h"

using sg::emu::LaneOrder;

using sg::test::emu::random_values;
using sg::test::emu::NaiveScope;

namespace {

double max_rel_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); i++) m = std::max(m, std::abs((double)a[i] - b[i]) / (1e-30 + std::abs((double)b[i])));
  return m;
}

constexpr sg::UnaryOp kAllUnary[] = {sg::UnaryOp::neg,      sg::UnaryOp::exp,  sg::UnaryOp::log,        sg::UnaryOp::sqrt,
                                     sg::UnaryOp::rsqrt,    sg::UnaryOp::abs,  sg::UnaryOp::relu,       sg::UnaryOp::sigmoid,
                                     sg::UnaryOp::silu,     sg::UnaryOp::gelu, sg::UnaryOp::tanh,       sg::UnaryOp::softplus,
                                     sg::UnaryOp::logsigmoid, sg::UnaryOp::square};

bool positive_domain(sg::UnaryOp op) { return op == sg::UnaryOp::log || op == sg::UnaryOp::sqrt || op == sg::UnaryOp::rsqrt; }

}  // namespace

TEST_CASE("cuda emu elementwise: every unary op, forward and backward, equals the CPU kernel in both lane orders") {
  const int64_t n = 1000;   // 4 blocks of 256, the last one partly idle
  for (sg::UnaryOp op : kAllUnary) {
    CAPTURE(sg::cpu::unary_op_name(op));
    const std::vector<float> x = random_values(n, 11 + (int)op, positive_domain(op) ? 0.05f : -6.0f, 6.0f);
    const std::vector<float> dy = random_values(n, 97 + (int)op, -2.0f, 2.0f);
    std::vector<float> y_naive(n), dx_naive(n), y_fast(n), dx_fast(n);
    {
      NaiveScope naive(true);
      sg::cpu::unary_forward(op, x.data(), y_naive.data(), n);
      sg::cpu::unary_backward(op, x.data(), y_naive.data(), dy.data(), dx_naive.data(), n);
    }
    {
      NaiveScope naive(false);
      sg::cpu::unary_forward(op, x.data(), y_fast.data(), n);
      sg::cpu::unary_backward(op, x.data(), y_fast.data(), dy.data(), dx_fast.data(), n);
    }
    for (LaneOrder order : {LaneOrder::forward, LaneOrder::reverse}) {
      CAPTURE(sg::emu::lane_order_name(order));
      sg::emu::LaneOrderScope scope(order);
      std::vector<float> y(n, NAN), dx(n, NAN);
      sg::cuda_emu::unary_forward({op, n, x.data(), y.data()});
      sg::cuda_emu::unary_backward({op, n, x.data(), y.data(), dy.data(), dx.data()});
      CHECK(y == y_naive);
      CHECK(dx == dx_naive);
      CHECK(max_rel_diff(y, y_fast) < 4e-6);
      CHECK(max_rel_diff(dx, dx_fast) < 4e-5);
    }
  }
}

TEST_CASE("cuda emu elementwise: binary ops with broadcast and transposed strides equal the CPU kernel") {
  // out (3, 4, 5): a is a transposed (5, 4, 3) buffer seen as (3, 4, 5); b broadcasts (1, 4, 1)
  const std::vector<int64_t> shape = {3, 4, 5};
  const std::vector<float> a = random_values(60, 5, -3.0f, 3.0f);
  const std::vector<float> b = random_values(4, 6, 0.5f, 2.0f);
  const std::vector<int64_t> a_strides = {1, 3, 12}, b_strides = {0, 1, 0};
  for (sg::BinaryOp op : {sg::BinaryOp::add, sg::BinaryOp::sub, sg::BinaryOp::mul, sg::BinaryOp::div}) {
    CAPTURE(sg::cpu::binary_op_name(op));
    std::vector<float> want(60);
    sg::cpu::binary_forward(op, shape, a.data(), a_strides, b.data(), b_strides, want.data());
    for (LaneOrder order : {LaneOrder::forward, LaneOrder::reverse}) {
      sg::emu::LaneOrderScope scope(order);
      sg::BinaryArgs<float> args{};
      args.op = op;
      args.ndim = 3;
      for (int d = 0; d < 3; d++) args.shape[d] = shape[d], args.a_strides[d] = a_strides[d], args.b_strides[d] = b_strides[d];
      args.a = a.data();
      args.b = b.data();
      std::vector<float> out(60, NAN);
      args.out = out.data();
      sg::cuda_emu::binary_forward(args);
      CHECK(out == want);
      // and one element by hand: out[2, 1, 3] = a[2·1 + 1·3 + 3·12] op b[1]
      const float x = a[2 + 3 + 36], z = b[1];
      const float hand = op == sg::BinaryOp::add ? x + z : op == sg::BinaryOp::sub ? x - z : op == sg::BinaryOp::mul ? x * z : x / z;
      CHECK(out[2 * 20 + 1 * 5 + 3] == hand);
    }
  }
}

TEST_CASE("cuda emu elementwise: affine equals the CPU kernel") {
  const int64_t n = 3 * 256 + 77;
  const std::vector<float> x = random_values(n, 3, -1.0f, 1.0f);
  std::vector<float> want(n), got(n, NAN);
  sg::cpu::affine_forward(x.data(), 1.5f, -0.25f, want.data(), n);
  sg::cuda_emu::affine_forward({n, 1.5f, -0.25f, x.data(), got.data()});
  CHECK(got == want);
}
