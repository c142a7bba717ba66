// tests/cuda/test_norm_emu.cpp — the CUDA rms_norm, layer_norm and rope kernels (cuda/kernels/norm.cuh), run in
// the CPU emulation in both lane orders, against the CPU kernels (ops/cpu/nn.h) on random inputs: ragged rows,
// rows longer than the block, and more rows than the backward's G = 256 blocks (so blocks walk several rows).
//
// The norms: the formulas are the CPU's term by term, but a row's sums run in f32 in the block's order where the
// CPU's run in double. Each check bounds the error by kTol times the sum of the magnitudes of the terms that
// feed the value (every term carries its rounding); kTol = 4e-6 covers the longest f32 sum of a row here (≤ 15
// roundings of 2^-24, see kSumTolerance in test_reduce_emu.cpp) plus the roundings after it. dweight and dbias
// are f32 sums over rows with a bound of their own (column_sum_bound). The two lane orders give the same bits.
// rope: scalar::rope_rotate on both sides, so the same bits.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "autograd/rng.h"
#include "cuda/emu/emu.h"
#include "cuda/norm.h"
#include "ops/cpu/nn.h"
#include "tests/test_util.h"
#include "tests/cuda/emu_test_util.h"

using sg::emu::LaneOrder;

using sg::test::emu::random_values;
using sg::test::emu::same_bits;

namespace {

constexpr double kTol = 4e-6;

// Rows for every code path: a partial warp (37 -> a 64-thread block), one past a full 256-thread block (257),
// a row longer than the block (1000), and 270 short rows (> 256: backward blocks 0..13 take two rows each; the
// forward, one block per row, is not run on it: emulated lanes are slow and it adds no path).
struct Shape {
  int64_t rows, D;
};
constexpr Shape kShapes[] = {{5, 37}, {3, 257}, {4, 1000}, {270, 20}};
constexpr int64_t kForwardRows = 8;

// |got − want| ≤ tol · scale[i] for every i.
void check_close(const std::vector<float>& got, const std::vector<float>& want, const std::vector<double>& scale,
                 double tol = kTol) {
  REQUIRE(got.size() == want.size());
  double worst = 0;
  size_t at = 0;
  for (size_t i = 0; i < got.size(); i++) {
    const double ratio = std::abs((double)got[i] - want[i]) / (tol * scale[i]);
    if (!(ratio <= worst)) worst = ratio, at = i;
  }
  CAPTURE(at);
  CAPTURE(got[at]);
  CAPTURE(want[at]);
  CHECK(worst <= 1.0);
}

// Runs f (which fills its outputs) in both lane orders and checks the two give the same bits; returns the
// forward order's outputs.
template <class F> std::vector<std::vector<float>> both_orders(F&& f) {
  std::vector<std::vector<float>> out[2];
  for (LaneOrder order : {LaneOrder::forward, LaneOrder::reverse}) {
    sg::emu::LaneOrderScope scope(order);
    out[(int)order] = f();
  }
  REQUIRE(out[0].size() == out[1].size());
  for (size_t k = 0; k < out[0].size(); k++) CHECK(same_bits(out[0][k], out[1][k]));
  return out[0];
}

// The bound on an f32 column sum over rows, Σ_r term(r, c), as the backward adds it: block g adds its rows
// (ceil(rows / G) adds), then the G partials are added in order (G adds): (ceil(rows/G) + G + 1) · 2^-24 · Σ|term|.
// Plus the terms' own roundings (a few ulps each).
std::vector<double> column_sum_bound(int64_t rows, int64_t D, const std::vector<double>& abs_sums) {
  const int64_t G = sg::norm_backward_blocks(rows);
  const double adds = (double)((rows + G - 1) / G + G + 1 + 4);
  std::vector<double> b(D);
  for (int64_t c = 0; c < D; c++) b[c] = adds * 0x1p-24 * abs_sums[c];
  return b;
}

}  // namespace

TEST_CASE("cuda emu norm: rms_norm forward and backward (dweight over rows) equal the CPU kernel") {
  for (const Shape& sh : kShapes) {
    CAPTURE(sh.rows);
    CAPTURE(sh.D);
    const int64_t rows = sh.rows, D = sh.D, n = rows * D;
    const std::vector<float> x = random_values(n, 1 + n, -2.0f, 2.0f), w = random_values(D, 2 + n, 0.5f, 1.5f),
                             dy = random_values(n, 3 + n, -1.0f, 1.0f);
    const float eps = 1e-5f;
    std::vector<float> y_cpu(n), rstd_cpu(rows), dx_cpu(n), dw_cpu(D);
    sg::cpu::rms_norm_forward(x.data(), w.data(), y_cpu.data(), rstd_cpu.data(), rows, D, (double)eps);
    sg::cpu::rms_norm_backward(x.data(), w.data(), rstd_cpu.data(), dy.data(), dx_cpu.data(), dw_cpu.data(), rows, D);

    std::vector<double> scale(n), rscale(rows);
    if (rows <= kForwardRows) {
      const auto fwd = both_orders([&] {
        std::vector<float> y(n, NAN), rstd(rows, NAN);
        sg::cuda_emu::rms_norm_forward({rows, D, eps, x.data(), w.data(), y.data(), rstd.data()});
        return std::vector<std::vector<float>>{y, rstd};
      });
      // rstd from a sum of positive terms: a relative error of a few roundings, and y = (x · rstd) · w with it
      for (int64_t i = 0; i < n; i++) scale[i] = std::abs(y_cpu[i]);
      for (int64_t r = 0; r < rows; r++) rscale[r] = rstd_cpu[r];
      check_close(fwd[0], y_cpu, scale);
      check_close(fwd[1], rstd_cpu, rscale);
    }

    // the backward from the CPU's rstd, so only the backward's own arithmetic differs
    const std::vector<float> scratch_init(sg::rms_norm_backward_scratch_size(rows, D), NAN);
    const auto bwd = both_orders([&] {
      std::vector<float> dx(n, NAN), dw(D, NAN), scratch = scratch_init;
      sg::cuda_emu::rms_norm_backward(
          {rows, D, x.data(), w.data(), rstd_cpu.data(), dy.data(), dx.data(), dw.data(), scratch.data()});
      return std::vector<std::vector<float>>{dx, dw};
    });
    // dx = r g − x r³ Σ(g x) / D: bounded by r |g| + |x| r³ Σ|g x| / D
    std::vector<double> dw_abs(D, 0.0);
    for (int64_t r = 0; r < rows; r++) {
      const double rs = rstd_cpu[r];
      double sgx = 0;
      for (int64_t c = 0; c < D; c++) sgx += std::abs((double)w[c] * dy[r * D + c] * x[r * D + c]);
      for (int64_t c = 0; c < D; c++) {
        const int64_t i = r * D + c;
        scale[i] = rs * std::abs((double)w[c] * dy[i]) + std::abs(x[i]) * rs * rs * rs * sgx / (double)D;
        dw_abs[c] += std::abs((double)dy[i] * x[i] * rs);
      }
    }
    check_close(bwd[0], dx_cpu, scale);
    check_close(bwd[1], dw_cpu, column_sum_bound(rows, D, dw_abs), 1.0);
  }
}

TEST_CASE("cuda emu norm: layer_norm forward and backward (dweight, dbias over rows) equal the CPU kernel") {
  for (const Shape& sh : kShapes) {
    CAPTURE(sh.rows);
    CAPTURE(sh.D);
    const int64_t rows = sh.rows, D = sh.D, n = rows * D;
    std::vector<float> x = random_values(n, 11 + n, -2.0f, 2.0f);
    for (int64_t i = 0; i < n; i++) x[i] += 1.5f;   // a mean away from 0
    const std::vector<float> w = random_values(D, 12 + n, 0.5f, 1.5f), b = random_values(D, 13 + n, -1.0f, 1.0f),
                             dy = random_values(n, 14 + n, -1.0f, 1.0f);
    const float eps = 1e-5f;
    for (bool with_bias : {true, false}) {
      if (!with_bias && rows > kForwardRows) continue;   // no bias: the short-row shapes are enough
      CAPTURE(with_bias);
      const float* bias = with_bias ? b.data() : nullptr;
      std::vector<float> y_cpu(n), mean_cpu(rows), rstd_cpu(rows), dx_cpu(n), dw_cpu(D), db_cpu(D);
      sg::cpu::layer_norm_forward(x.data(), w.data(), bias, y_cpu.data(), mean_cpu.data(), rstd_cpu.data(), rows, D,
                                  (double)eps);
      sg::cpu::layer_norm_backward(x.data(), w.data(), mean_cpu.data(), rstd_cpu.data(), dy.data(), dx_cpu.data(),
                                   dw_cpu.data(), with_bias ? db_cpu.data() : nullptr, rows, D);

      // mean: a sum of x; x̂ = (x − mean) rstd errs by |Δmean| rstd + |x̂| |Δrstd / rstd|: bounded by
      // rstd · mean_c|x| + |x̂|; y = x̂ w + b
      if (rows <= kForwardRows) {
        const auto fwd = both_orders([&] {
          std::vector<float> y(n, NAN), mean(rows, NAN), rstd(rows, NAN);
          sg::cuda_emu::layer_norm_forward({rows, D, eps, x.data(), w.data(), bias, y.data(), mean.data(), rstd.data()});
          return std::vector<std::vector<float>>{y, mean, rstd};
        });
        std::vector<double> yscale(n), mscale(rows), rscale(rows);
        for (int64_t r = 0; r < rows; r++) {
          double mabs = 0;
          for (int64_t c = 0; c < D; c++) mabs += std::abs(x[r * D + c]);
          mabs /= (double)D;
          const double rs = rstd_cpu[r];
          mscale[r] = mabs;
          rscale[r] = rs;
          for (int64_t c = 0; c < D; c++) {
            const int64_t i = r * D + c;
            const double xhat = ((double)x[i] - mean_cpu[r]) * rs;
            yscale[i] = std::abs(w[c]) * (rs * mabs + std::abs(xhat)) + (bias ? std::abs(bias[c]) : 0.0);
          }
        }
        check_close(fwd[0], y_cpu, yscale);
        check_close(fwd[1], mean_cpu, mscale);
        check_close(fwd[2], rstd_cpu, rscale);
      }

      const std::vector<float> scratch_init(sg::layer_norm_backward_scratch_size(rows, D), NAN);
      const auto bwd = both_orders([&] {
        std::vector<float> dx(n, NAN), dw(D, NAN), db(D, NAN), scratch = scratch_init;
        sg::cuda_emu::layer_norm_backward({rows, D, x.data(), w.data(), mean_cpu.data(), rstd_cpu.data(), dy.data(),
                                           dx.data(), dw.data(), with_bias ? db.data() : nullptr, scratch.data()});
        return std::vector<std::vector<float>>{dx, dw, db};
      });
      // dx = rstd (g − mean g − x̂ mean(g x̂)): bounded by rstd (|g| + mean|g| + |x̂| (1 + mean|g x̂|))
      // (the 1: x̂ itself is a rounded product)
      std::vector<double> dxscale(n), dw_abs(D, 0.0), db_abs(D, 0.0);
      for (int64_t r = 0; r < rows; r++) {
        const double rs = rstd_cpu[r];
        double sg_abs = 0, sgx_abs = 0;
        for (int64_t c = 0; c < D; c++) {
          const int64_t i = r * D + c;
          const double g = (double)w[c] * dy[i], xhat = ((double)x[i] - mean_cpu[r]) * rs;
          sg_abs += std::abs(g);
          sgx_abs += std::abs(g * xhat);
          dw_abs[c] += std::abs(dy[i] * xhat) * (1.0 + rs * std::abs(mean_cpu[r]));   // x − mean cancels
          db_abs[c] += std::abs(dy[i]);
        }
        for (int64_t c = 0; c < D; c++) {
          const int64_t i = r * D + c;
          const double g = (double)w[c] * dy[i], xhat = ((double)x[i] - mean_cpu[r]) * rs;
          dxscale[i] = rs * (std::abs(g) + sg_abs / (double)D + std::abs(xhat) * (1.0 + sgx_abs / (double)D));
        }
      }
      check_close(bwd[0], dx_cpu, dxscale);
      check_close(bwd[1], dw_cpu, column_sum_bound(rows, D, dw_abs), 1.0);
      if (with_bias) check_close(bwd[2], db_cpu, column_sum_bound(rows, D, db_abs), 1.0);
      else CHECK(std::isnan(bwd[2][0]));   // not asked for: not written
    }
  }
}

TEST_CASE("cuda emu norm: the backward's column sums are deterministic and need only the scratch documented") {
  // 520 rows (G = 256: blocks take 2 or 3 rows) into a scratch of exactly the documented size, with a guard
  // value after it that must survive; dweight twice gives the same bits.
  const int64_t rows = 520, D = 8, n = rows * D;
  const std::vector<float> x = random_values(n, 41, -2.0f, 2.0f), w = random_values(D, 42, 0.5f, 1.5f),
                           dy = random_values(n, 43, -1.0f, 1.0f), rstd = random_values(rows, 44, 0.5f, 1.0f);
  const int64_t size = sg::rms_norm_backward_scratch_size(rows, D);
  CHECK(size == 256 * D);
  std::vector<float> scratch(size + 1, NAN), dx(n), dw1(D), dw2(D), dw_cpu(D), dx_cpu(n);
  scratch[size] = 12345.0f;
  sg::cuda_emu::rms_norm_backward({rows, D, x.data(), w.data(), rstd.data(), dy.data(), dx.data(), dw1.data(), scratch.data()});
  sg::cuda_emu::rms_norm_backward({rows, D, x.data(), w.data(), rstd.data(), dy.data(), dx.data(), dw2.data(), scratch.data()});
  CHECK(scratch[size] == 12345.0f);
  CHECK(same_bits(dw1, dw2));
  sg::cpu::rms_norm_backward(x.data(), w.data(), rstd.data(), dy.data(), dx_cpu.data(), dw_cpu.data(), rows, D);
  std::vector<double> dw_abs(D, 0.0);
  for (int64_t i = 0; i < n; i++) dw_abs[i % D] += std::abs((double)dy[i] * x[i] * rstd[i / D]);
  check_close(dw1, dw_cpu, column_sum_bound(rows, D, dw_abs), 1.0);
  // without dweight no scratch is needed; with it, a missing scratch is named
  sg::cuda_emu::rms_norm_backward({rows, D, x.data(), w.data(), rstd.data(), dy.data(), dx.data(), nullptr, nullptr});
  CHECK(sg::test::error_of([&] {
          sg::cuda_emu::rms_norm_backward({rows, D, x.data(), w.data(), rstd.data(), dy.data(), dx.data(), dw1.data(), nullptr});
        }).find("[cuda] rms_norm_backward: dweight needs a scratch buffer of rms_norm_backward_scratch_size = 2048") == 0);
  CHECK(sg::test::error_of([&] {
          sg::cuda_emu::layer_norm_forward({2, 0, 1e-5f, x.data(), w.data(), nullptr, dx.data(), dw1.data(), dw2.data()});
        }).find("[cuda] layer_norm_forward: rows 2 must be >= 0 and D 0 >= 1") == 0);
  // no rows: dweight is the empty sum, 0, as on the CPU
  sg::cuda_emu::rms_norm_backward({0, D, x.data(), w.data(), rstd.data(), dy.data(), dx.data(), dw1.data(), nullptr});
  for (float v : dw1) CHECK(v == 0.0f);
}

TEST_CASE("cuda emu norm: rope forward and backward are the CPU's bits, both layouts, in place too") {
  struct Case {
    int64_t B, S, H, dr;
  };
  for (const Case& cs : {Case{2, 5, 3, 8}, Case{1, 7, 1, 2}, Case{3, 4, 2, 64}}) {   // the last: > 1 block of pairs
    CAPTURE(cs.H);
    CAPTURE(cs.dr);
    const int64_t half = cs.dr / 2, n = cs.B * cs.S * cs.H * cs.dr;
    const std::vector<float> x = random_values(n, 61 + n, -2.0f, 2.0f), dy = random_values(n, 62 + n, -1.0f, 1.0f);
    std::vector<float> cos(cs.S * half), sin(cs.S * half);
    for (int64_t s = 0; s < cs.S; s++)
      for (int64_t i = 0; i < half; i++) {
        const double phi = (double)s * std::pow(10000.0, -2.0 * (double)i / (double)cs.dr);
        cos[s * half + i] = (float)std::cos(phi);
        sin[s * half + i] = (float)std::sin(phi);
      }
    for (bool interleaved : {true, false}) {
      CAPTURE(interleaved);
      std::vector<float> y_cpu(n), dx_cpu(n);
      sg::cpu::rope_forward(x.data(), cos.data(), sin.data(), y_cpu.data(), cs.B, cs.S, cs.H, cs.dr, interleaved);
      sg::cpu::rope_backward(dy.data(), cos.data(), sin.data(), dx_cpu.data(), cs.B, cs.S, cs.H, cs.dr, interleaved);
      for (LaneOrder order : {LaneOrder::forward, LaneOrder::reverse}) {
        sg::emu::LaneOrderScope scope(order);
        std::vector<float> y(n, NAN), dx(n, NAN);
        sg::cuda_emu::rope_forward({cs.B, cs.S, cs.H, cs.dr, interleaved, x.data(), cos.data(), sin.data(), y.data()});
        sg::cuda_emu::rope_backward({cs.B, cs.S, cs.H, cs.dr, interleaved, dy.data(), cos.data(), sin.data(), dx.data()});
        CHECK(same_bits(y, y_cpu));
        CHECK(same_bits(dx, dx_cpu));
        std::vector<float> inplace = x;   // y = x
        sg::cuda_emu::rope_forward(
            {cs.B, cs.S, cs.H, cs.dr, interleaved, inplace.data(), cos.data(), sin.data(), inplace.data()});
        CHECK(same_bits(inplace, y_cpu));
      }
    }
  }
  std::vector<float> v(12);
  CHECK(sg::test::error_of([&] {
          sg::cuda_emu::rope_forward({1, 2, 1, 3, 0, v.data(), v.data(), v.data(), v.data()});
        }).find("[cuda] rope_forward:") == 0);
}
