// tests/cuda/test_softmax_emu.cpp — the CUDA softmax, log_softmax and cross-entropy kernels
// (cuda/kernels/softmax.cuh), run in the CPU emulation in both lane orders, against the CPU kernels
// (ops/cpu/nn.h) on random inputs, ragged rows and rows longer than the block.
//
// The formulas are the CPU's term by term; the row max is exact and so is every x − max. What differs: the
// sums (f32 in the block's order here; f32 SIMD lanes or double on the CPU) and exp (libm's expf here; the
// CPU's f32 softmax and cross entropy use the polynomial exp_f32, ~1e-7 relative). Each check bounds the error
// by kTol times the sum of the magnitudes of the terms that feed the value (a forward error bound: every term
// carries its rounding); kTol = 4e-6 covers the longest f32 sum here (≤ 15 roundings of 2^-24, kSumTolerance in
// test_reduce_emu.cpp) on both sides, plus a few ulps of exp and log. The two lane orders give the same bits.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "autograd/rng.h"
#include "cuda/emu/emu.h"
#include "cuda/softmax.h"
#include "ops/cpu/nn.h"
#include "tests/test_util.h"
#include "tests/cuda/emu_test_util.h"

using sg::emu::LaneOrder;

using sg::test::emu::random_values;
using sg::test::emu::same_bits;

namespace {

constexpr double kTol = 4e-6;

// Rows for every code path: a single column, a partial warp (37 -> a 64-thread block), one past a full
// 256-thread block (257), and rows longer than the block (1000: each thread loops 3 or 4 times).
struct Shape {
  int64_t rows, cols;
};
constexpr Shape kShapes[] = {{2, 1}, {5, 37}, {3, 257}, {4, 1000}};

// Logits with a different offset per row (up to +60: exp would overflow without the max subtraction).
std::vector<float> logits_for(const Shape& sh, uint64_t seed) {
  std::vector<float> x = random_values(sh.rows * sh.cols, seed, -4.0f, 4.0f);
  for (int64_t r = 0; r < sh.rows; r++)
    for (int64_t c = 0; c < sh.cols; c++) x[r * sh.cols + c] += 20.0f * (float)(r % 4);
  return x;
}

// Runs f in both lane orders and checks that they give the same bits; returns the forward order's result.
template <class F> std::vector<float> both_orders(F&& f) {
  std::vector<float> out[2];
  for (LaneOrder order : {LaneOrder::forward, LaneOrder::reverse}) {
    sg::emu::LaneOrderScope scope(order);
    out[(int)order] = f();
  }
  CHECK(same_bits(out[0], out[1]));
  return out[0];
}

// |got − want| ≤ kTol · scale[i] for every i; reports the worst ratio.
void check_close(const std::vector<float>& got, const std::vector<float>& want, const std::vector<double>& scale) {
  REQUIRE(got.size() == want.size());
  double worst = 0;
  size_t at = 0;
  for (size_t i = 0; i < got.size(); i++) {
    const double ratio = std::abs((double)got[i] - want[i]) / (kTol * scale[i]);
    if (!(ratio <= worst)) worst = ratio, at = i;
  }
  CAPTURE(at);
  CAPTURE(got[at]);
  CAPTURE(want[at]);
  CHECK(worst <= 1.0);
}

}  // namespace

TEST_CASE("cuda emu softmax: softmax forward and backward equal the CPU kernel in both lane orders") {
  for (const Shape& sh : kShapes) {
    CAPTURE(sh.rows);
    CAPTURE(sh.cols);
    const int64_t n = sh.rows * sh.cols;
    const std::vector<float> x = logits_for(sh, 1 + n), dy = random_values(n, 2 + n, -1.0f, 1.0f);
    std::vector<float> y_cpu(n), dx_cpu(n);
    sg::cpu::softmax_forward(x.data(), y_cpu.data(), sh.rows, sh.cols);
    sg::cpu::softmax_backward(y_cpu.data(), dy.data(), dx_cpu.data(), sh.rows, sh.cols);

    const std::vector<float> y = both_orders([&] {
      std::vector<float> out(n, NAN);
      sg::cuda_emu::softmax_forward({sh.rows, sh.cols, x.data(), out.data()});
      return out;
    });
    // y = e_c / Σ e: all terms positive, so the relative error of each y is a few roundings
    std::vector<double> scale(n);
    for (int64_t i = 0; i < n; i++) scale[i] = std::abs(y_cpu[i]);
    check_close(y, y_cpu, scale);

    // the backward from the CPU's y, so only the backward's own arithmetic differs
    const std::vector<float> dx = both_orders([&] {
      std::vector<float> out(n, NAN);
      sg::cuda_emu::softmax_backward({sh.rows, sh.cols, y_cpu.data(), dy.data(), out.data()});
      return out;
    });
    // dx = y (dy − Σ dy y): bounded by y (|dy| + Σ |dy y|)
    for (int64_t r = 0; r < sh.rows; r++) {
      double s = 0;
      for (int64_t c = 0; c < sh.cols; c++) s += std::abs((double)dy[r * sh.cols + c] * y_cpu[r * sh.cols + c]);
      for (int64_t c = 0; c < sh.cols; c++) {
        const int64_t i = r * sh.cols + c;
        scale[i] = std::abs(y_cpu[i]) * (std::abs(dy[i]) + s);
      }
    }
    check_close(dx, dx_cpu, scale);
  }
}

TEST_CASE("cuda emu softmax: log_softmax forward and backward equal the CPU kernel in both lane orders") {
  for (const Shape& sh : kShapes) {
    CAPTURE(sh.rows);
    CAPTURE(sh.cols);
    const int64_t n = sh.rows * sh.cols;
    const std::vector<float> x = logits_for(sh, 11 + n), dy = random_values(n, 12 + n, -1.0f, 1.0f);
    std::vector<float> y_cpu(n), dx_cpu(n);
    sg::cpu::log_softmax_forward(x.data(), y_cpu.data(), sh.rows, sh.cols);
    sg::cpu::log_softmax_backward(y_cpu.data(), dy.data(), dx_cpu.data(), sh.rows, sh.cols);

    const std::vector<float> y = both_orders([&] {
      std::vector<float> out(n, NAN);
      sg::cuda_emu::log_softmax_forward({sh.rows, sh.cols, x.data(), out.data()});
      return out;
    });
    // y = (x − m) − log Σ e: log Σ e errs by the sum's relative error (absolute, in y), the subtractions by
    // their roundings: bounded by 1 + |x − m| + |log Σ e| ≤ 1 + 2 |x − m| + |y|
    std::vector<double> scale(n);
    for (int64_t r = 0; r < sh.rows; r++) {
      float m = x[r * sh.cols];
      for (int64_t c = 0; c < sh.cols; c++) m = std::max(m, x[r * sh.cols + c]);
      for (int64_t c = 0; c < sh.cols; c++) {
        const int64_t i = r * sh.cols + c;
        scale[i] = 1.0 + 2.0 * std::abs((double)x[i] - m) + std::abs(y_cpu[i]);
      }
    }
    check_close(y, y_cpu, scale);

    const std::vector<float> dx = both_orders([&] {
      std::vector<float> out(n, NAN);
      sg::cuda_emu::log_softmax_backward({sh.rows, sh.cols, y_cpu.data(), dy.data(), out.data()});
      return out;
    });
    // dx = dy − exp(y) Σ dy: bounded by |dy| + exp(y) Σ |dy|
    for (int64_t r = 0; r < sh.rows; r++) {
      double s = 0;
      for (int64_t c = 0; c < sh.cols; c++) s += std::abs(dy[r * sh.cols + c]);
      for (int64_t c = 0; c < sh.cols; c++) {
        const int64_t i = r * sh.cols + c;
        scale[i] = std::abs(dy[i]) + std::exp((double)y_cpu[i]) * s;
      }
    }
    check_close(dx, dx_cpu, scale);
  }
}

TEST_CASE("cuda emu softmax: cross_entropy forward and backward equal the CPU kernel, ignored rows included") {
  const int64_t ignore_index = -100;
  for (const Shape& sh : kShapes) {
    CAPTURE(sh.rows);
    CAPTURE(sh.cols);
    const int64_t rows = sh.rows, V = sh.cols, n = rows * V;
    const std::vector<float> logits = logits_for(sh, 21 + n);
    std::vector<int64_t> targets(rows);
    sg::Rng rng(22 + n);
    for (int64_t r = 0; r < rows; r++) targets[r] = (int64_t)(rng.uniform() * (double)V) % V;
    targets[rows - 1] = V - 1;                       // the last column: the partial warp's last lane
    if (rows > 2) targets[1] = ignore_index;         // an ignored row between two others
    const float scale_arg = 1.0f / 3.0f;
    std::vector<float> lse_cpu(rows), loss_cpu(rows), d_cpu(n);
    sg::cpu::cross_entropy_forward(logits.data(), targets.data(), lse_cpu.data(), loss_cpu.data(), rows, V, ignore_index);
    sg::cpu::cross_entropy_backward(logits.data(), targets.data(), lse_cpu.data(), scale_arg, d_cpu.data(), rows, V,
                                    ignore_index);

    std::vector<float> lse_got;
    const std::vector<float> loss = both_orders([&] {
      std::vector<float> lse(rows, NAN), out(rows, NAN);
      sg::cuda_emu::cross_entropy_forward({rows, V, ignore_index, logits.data(), targets.data(), lse.data(), out.data()});
      lse_got = lse;
      return out;
    });
    // lse = m + log Σ e and loss = lse − x_t: the sum's relative error is an absolute error of the log
    std::vector<double> scale(rows);
    for (int64_t r = 0; r < rows; r++) scale[r] = 1.0 + std::abs(lse_cpu[r]);
    check_close(lse_got, lse_cpu, scale);
    check_close(loss, loss_cpu, scale);
    if (rows > 2) {
      CHECK(lse_got[1] == 0.0f);
      CHECK(loss[1] == 0.0f);
    }

    // from the CPU's lse: every exp argument is the same number on both sides
    const std::vector<float> d = both_orders([&] {
      std::vector<float> out(n, NAN);
      sg::cuda_emu::cross_entropy_backward(
          {rows, V, ignore_index, scale_arg, logits.data(), targets.data(), lse_cpu.data(), out.data()});
      return out;
    });
    // scale · exp(x − lse) − [c == t] scale: bounded by |scale| (p + [c == t])
    std::vector<double> dscale(n);
    for (int64_t r = 0; r < rows; r++)
      for (int64_t c = 0; c < V; c++)
        dscale[r * V + c] = scale_arg * (std::exp((double)logits[r * V + c] - lse_cpu[r]) + (c == targets[r] ? 1.0 : 0.0));
    check_close(d, d_cpu, dscale);
    if (rows > 2)
      for (int64_t c = 0; c < V; c++) CHECK(d[1 * V + c] == 0.0f);
  }
}

TEST_CASE("cuda emu softmax: a target outside [0, V) gives NaN, not an out-of-row read; bad sizes name the kernel") {
  const std::vector<float> logits = random_values(2 * 40, 5, -1.0f, 1.0f);
  const std::vector<int64_t> targets = {3, 40};
  std::vector<float> lse(2), loss(2), d(80);
  sg::cuda_emu::cross_entropy_forward({2, 40, -100, logits.data(), targets.data(), lse.data(), loss.data()});
  CHECK(std::isfinite(loss[0]));
  CHECK(std::isnan(loss[1]));
  sg::cuda_emu::cross_entropy_backward({2, 40, -100, 1.0f, logits.data(), targets.data(), lse.data(), d.data()});
  CHECK(std::isfinite(d[0]));
  CHECK(std::isnan(d[40]));
  CHECK(sg::test::error_of([&] { sg::cuda_emu::softmax_forward({2, 0, logits.data(), d.data()}); })
            .find("[cuda] softmax_forward: rows 2 must be >= 0 and cols 0 >= 1") == 0);
  CHECK(sg::test::error_of([&] {
          sg::cuda_emu::cross_entropy_forward({-1, 40, -100, logits.data(), targets.data(), lse.data(), loss.data()});
        }).find("[cuda] cross_entropy_forward:") == 0);
}
