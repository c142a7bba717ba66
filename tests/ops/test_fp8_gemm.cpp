// tests/ops/test_fp8_gemm.cpp — the blockwise FP8 GEMM (ops/cpu/fp8_gemm.h): DeepSeek-V3's
// C = Σ_kb (Σ_{k∈kb} q_a·q_b)·s_a·s_b over E4M3 codes, with three accumulation modes. Checked by value:
//   (a) a hand-made 2×2×4 case (block 2) whose C is computed by hand in the comment, and a 1×1×4 one
//       with a 4-bit accumulator where the three modes give three different answers;
//   (b) fp8_gemm == fp8_gemm_naive bit for bit (memcmp) for every mode, ragged shapes, the activation /
//       weight scale layouts, every micro-kernel this CPU has, on 1 and 2 threads;
//   (c) fp32_promoted against a float64 sum of the dequantized operands (a derived f32 bound), and
//       against the original f32 inputs (the E4M3 rounding bound);
//   (d) the limited accumulator: error grows with K without promotion, stays small with it;
//   (e) argument errors name the field.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "autograd/rng.h"
#include "autograd/runtime.h"
#include "ops/cpu/fp8_gemm.h"
#include "ops/cpu/fp8_quant.h"
#include "ops/cpu/gemm.h"
#include "ops/fp8.h"

namespace {

using sg::cpu::Fp8Accumulation;
using sg::cpu::Fp8GemmArgs;
using sg::lowp::e4m3_to_f32;
using sg::lowp::f32_to_e4m3;

// Restores the thread count a test changed.
struct ThreadGuard {
  int saved = sg::num_threads();
  ~ThreadGuard() { sg::set_num_threads(saved); }
};

// Operands of one FP8 GEMM: codes and scales in the layouts of ops/cpu/fp8_gemm.h.
struct Fp8Problem {
  int64_t M = 0, N = 0, K = 0, block = 128, a_scale_rows = 1, b_scale_rows = 128;
  std::vector<uint8_t> a, b;
  std::vector<float> sa, sb;
  Fp8Problem(int64_t m, int64_t n, int64_t k) : M(m), N(n), K(k) {}
  int64_t KB() const { return (K + block - 1) / block; }
  Fp8GemmArgs args(float* c, Fp8Accumulation acc) const {
    Fp8GemmArgs g;
    g.a = a.data(), g.a_scale = sa.data(), g.b = b.data(), g.b_scale = sb.data(), g.c = c;
    g.M = M, g.N = N, g.K = K, g.block = block, g.a_scale_rows = a_scale_rows, g.b_scale_rows = b_scale_rows;
    g.accumulation = acc;
    return g;
  }
};

// Random non-zero, non-NaN codes (every magnitude 0x01..0x7E, subnormals included, both signs) and
// random positive scales spread over a few binades.
Fp8Problem random_codes(int64_t M, int64_t N, int64_t K, int64_t a_rows, int64_t b_rows, uint64_t seed) {
  sg::Rng rng(seed);
  Fp8Problem p{M, N, K};
  p.a_scale_rows = a_rows, p.b_scale_rows = b_rows;
  auto code = [&] {
    const uint8_t mag = (uint8_t)(1 + (int)(rng.uniform() * 126) % 126);  // 1..126 = 0x01..0x7E
    return (uint8_t)(rng.uniform() < 0.5 ? mag : mag | 0x80u);
  };
  p.a.resize(M * K), p.b.resize(N * K);
  for (auto& x : p.a) x = code();
  for (auto& x : p.b) x = code();
  p.sa.resize(((M + a_rows - 1) / a_rows) * p.KB());
  p.sb.resize(((N + b_rows - 1) / b_rows) * p.KB());
  for (auto& s : p.sa) s = (float)std::exp2(rng.uniform(-12.0, -4.0));
  for (auto& s : p.sb) s = (float)std::exp2(rng.uniform(-12.0, -4.0));
  return p;
}

// Quantizes f32 x [M, K] as activations (1×128 tiles) and w [N, K] as weights (128×128 blocks).
Fp8Problem quantized(const std::vector<float>& x, const std::vector<float>& w, int64_t M, int64_t N, int64_t K) {
  Fp8Problem p{M, N, K};
  p.a.resize(M * K), p.b.resize(N * K);
  p.sa.resize(M * p.KB()), p.sb.resize(((N + 127) / 128) * p.KB());
  sg::cpu::act_quant_f32(x.data(), M, K, 128, false, p.a.data(), p.sa.data());
  sg::cpu::weight_quant_f32(w.data(), N, K, 128, p.b.data(), p.sb.data());
  return p;
}

// The dequantized terms' float64 sum, and Σ|term|, for element (m, n).
struct RefSum {
  double sum = 0, abs_sum = 0;
};
RefSum dequant_ref(const Fp8Problem& p, int64_t m, int64_t n) {
  RefSum r;
  const int64_t KB = p.KB();
  for (int64_t k = 0; k < p.K; k++) {
    const double sa = p.sa[(m / p.a_scale_rows) * KB + k / p.block], sb = p.sb[(n / p.b_scale_rows) * KB + k / p.block];
    const double t = (double)e4m3_to_f32(p.a[m * p.K + k]) * sa * (double)e4m3_to_f32(p.b[n * p.K + k]) * sb;
    r.sum += t, r.abs_sum += std::fabs(t);
  }
  return r;
}

std::vector<float> random_f32(int64_t n, double lo, double hi, uint64_t seed) {
  sg::Rng rng(seed);
  std::vector<float> v(n);
  for (auto& x : v) x = (float)rng.uniform(lo, hi);
  return v;
}

}  // namespace

TEST_CASE("fp8_gemm: a hand-made 2x2x4 case, block 2") {
  // A = [[1, 2 | 0.5, 1], [0.25, 0 | 4, 1.5]]   B = [[2, 1 | 1, 1], [-0.5, 3 | 2, 0.125]]   (| = K block)
  // s_a (1 row each) = [[2, 0.5], [1, 4]]        s_b (rows 0-1 share, b_scale_rows = block = 2) = [0.25, 8]
  // C00 = (1·2 + 2·1)·2·0.25 + (0.5·1 + 1·1)·0.5·8          = 2 + 6         = 8
  // C01 = (1·-0.5 + 2·3)·2·0.25 + (0.5·2 + 1·0.125)·0.5·8   = 2.75 + 4.5    = 7.25
  // C10 = (0.25·2 + 0·1)·1·0.25 + (4·1 + 1.5·1)·4·8         = 0.125 + 176   = 176.125
  // C11 = (0.25·-0.5 + 0·3)·1·0.25 + (4·2 + 1.5·0.125)·4·8  = -0.03125 + 262 = 261.96875
  const float a[8] = {1, 2, 0.5f, 1, 0.25f, 0, 4, 1.5f}, b[8] = {2, 1, 1, 1, -0.5f, 3, 2, 0.125f};
  Fp8Problem p{2, 2, 4};
  p.block = 2, p.a_scale_rows = 1, p.b_scale_rows = 2;
  for (float x : a) p.a.push_back(f32_to_e4m3(x));
  for (float x : b) p.b.push_back(f32_to_e4m3(x));
  for (int i = 0; i < 8; i++) REQUIRE(e4m3_to_f32(p.a[i]) == a[i]);  // all exact E4M3 values
  for (int i = 0; i < 8; i++) REQUIRE(e4m3_to_f32(p.b[i]) == b[i]);
  p.sa = {2, 0.5f, 1, 4};
  p.sb = {0.25f, 8};
  const float want[4] = {8.0f, 7.25f, 176.125f, 261.96875f};
  for (auto acc : {Fp8Accumulation::fp32_promoted, Fp8Accumulation::limited_promoted, Fp8Accumulation::limited}) {
    // Every partial sum here has at most 14 significant bits, so the limited modes are exact too.
    float c_naive[4], c_fast[4];
    sg::cpu::fp8_gemm_naive(p.args(c_naive, acc));
    sg::cpu::fp8_gemm(p.args(c_fast, acc));
    for (int i = 0; i < 4; i++) {
      CHECK_MESSAGE(c_naive[i] == want[i], sg::cpu::fp8_accumulation_name(acc) << " C[" << i << "]");
      CHECK_MESSAGE(c_fast[i] == want[i], sg::cpu::fp8_accumulation_name(acc) << " C[" << i << "]");
    }
  }
}

TEST_CASE("fp8_gemm: a hand-made 1x1x4 case, block 2, where the three modes differ (4-bit accumulator)") {
  // a = [1, 2, 3, 0.5], b = [448, 448, 1, 1] (all exact E4M3 codes); scales s_a = [1, 2], s_b = [0.5, 4].
  const float av[4] = {1, 2, 3, 0.5f}, bv[4] = {448, 448, 1, 1};
  Fp8Problem p{1, 1, 4};
  p.block = 2, p.a_scale_rows = 1, p.b_scale_rows = 2;
  for (float x : av) p.a.push_back(f32_to_e4m3(x));
  for (float x : bv) p.b.push_back(f32_to_e4m3(x));
  p.sa = {1, 2};
  p.sb = {0.5f, 4};
  float c = 0;
  // block 0: (448 + 896)·1·0.5 = 672; block 1: (3 + 0.5)·2·4 = 28 -> 700
  Fp8GemmArgs g = p.args(&c, Fp8Accumulation::fp32_promoted);
  sg::cpu::fp8_gemm_naive(g);
  CHECK(c == 700.0f);
  sg::cpu::fp8_gemm(g);
  CHECK(c == 700.0f);
  // 4 significant bits: block 0 sum 448 + 896 = 1344 -> 1280 (keeps 0b1010), ·0.5 = 640;
  // block 1: 3 + 0.5 = 3.5 (exact in 4 bits) ·8 = 28 -> 668
  g.accumulation = Fp8Accumulation::limited_promoted, g.accum_bits = 4;
  sg::cpu::fp8_gemm_naive(g);
  CHECK(c == 668.0f);
  // unpromoted, 4 bits: 224 -> 224 + 448 = 672 -> 640; + 24 = 664 -> 640; + 4 = 644 -> 640
  g.accumulation = Fp8Accumulation::limited;
  sg::cpu::fp8_gemm_naive(g);
  CHECK(c == 640.0f);
  sg::cpu::fp8_gemm(g);
  CHECK(c == 640.0f);
}

TEST_CASE("fp8_gemm: the fast version gives the naive loop's bits (modes, shapes, layouts, kernels, threads)") {
  ThreadGuard guard;
  struct Shape {
    int64_t m, n, k;
  };
  const Shape shapes[] = {{1, 1, 1}, {7, 5, 130}, {33, 17, 300}, {64, 96, 256}, {129, 131, 385}};
  struct Layout {
    int64_t a_rows, b_rows;
  };
  const Layout layouts[] = {{1, 128}, {1, 1}, {128, 128}};
  uint64_t seed = 100;
  int compared = 0;
  for (const Shape& s : shapes)
    for (const Layout& l : layouts) {
      const Fp8Problem p = random_codes(s.m, s.n, s.k, l.a_rows, l.b_rows, seed++);
      for (auto acc : {Fp8Accumulation::fp32_promoted, Fp8Accumulation::limited_promoted, Fp8Accumulation::limited}) {
        // The limited modes share the naive arithmetic: the largest shape once is enough for them.
        if (acc != Fp8Accumulation::fp32_promoted && s.m > 64) continue;
        std::vector<float> want(s.m * s.n), got(s.m * s.n);
        sg::cpu::fp8_gemm_naive(p.args(want.data(), acc));
        for (int threads : {1, 2}) {
          sg::set_num_threads(threads);
          for (auto kernel : {sg::cpu::GemmKernel::automatic, sg::cpu::GemmKernel::scalar, sg::cpu::GemmKernel::avx2,
                              sg::cpu::GemmKernel::avx512}) {
            if (!sg::cpu::gemm_kernel_available(kernel)) continue;
            std::fill(got.begin(), got.end(), -7.0f);  // C is overwritten: stale values must not leak in
            if (kernel == sg::cpu::GemmKernel::automatic)
              sg::cpu::fp8_gemm(p.args(got.data(), acc));
            else
              sg::cpu::fp8_gemm_with(kernel, p.args(got.data(), acc));
            CHECK_MESSAGE(std::memcmp(want.data(), got.data(), want.size() * sizeof(float)) == 0,
                          s.m << "x" << s.n << "x" << s.k << " scale_rows " << l.a_rows << "/" << l.b_rows << " "
                              << sg::cpu::fp8_accumulation_name(acc) << " kernel "
                              << sg::cpu::gemm_kernel_name(kernel) << " threads " << threads);
            ++compared;
          }
        }
      }
    }
  CHECK(compared >= 2 * 15);
  // The real layout: quantized activations and weights (codes from act_quant_f32 / weight_quant_f32).
  const int64_t M = 37, N = 150, K = 333;
  const Fp8Problem q = quantized(random_f32(M * K, -3, 3, 7), random_f32(N * K, -0.1, 0.1, 8), M, N, K);
  std::vector<float> want(M * N), got(M * N);
  sg::cpu::fp8_gemm_naive(q.args(want.data(), Fp8Accumulation::fp32_promoted));
  sg::set_num_threads(2);
  sg::cpu::fp8_gemm(q.args(got.data(), Fp8Accumulation::fp32_promoted));
  CHECK(std::memcmp(want.data(), got.data(), want.size() * sizeof(float)) == 0);
}

TEST_CASE("fp8_gemm: fp32_promoted error vs float64 of the dequantized operands and vs the f32 inputs") {
  // Bound vs the dequantized operands. Every term t_k = q_a·q_b·s_a·s_b; the products q_a·q_b are exact.
  // A block of kc ≤ block terms summed in f32 in order: |p̂ − p| ≤ γ(kc−1)·Σ|q_a q_b| (recursive
  // summation, γ(n) = n·u/(1 − n·u), u = 2^-24); the two scale multiplies add 2 roundings: the block's
  // contribution is off by at most γ(block + 1)·Σ_block |t|. Summing the KB promoted blocks in f32 adds
  // γ(KB − 1)·Σ|t| (to first order). So |C − Σ t| ≤ (block + KB)·u·Σ|t|·(1 + 1e-3).
  //
  // Bound vs the original f32 inputs x, w. Each dequantized value is x(1 + δ) with |δ| ≤ 2^-4 (E4M3
  // normals; the rare subnormal-range values are below 2^-6·scale, whose absolute error s·2^-10 is
  // inside the same bound for these inputs), so |Σ x w − Σ x̃ w̃| ≤ (2·2^-4 + 2^-8)·Σ|x||w|, plus the
  // f32 bound above.
  const int64_t M = 24, N = 40, K = 700;  // KB = 6, last block ragged (60)
  const std::vector<float> x = random_f32(M * K, -2, 2, 11), w = random_f32(N * K, -0.05, 0.05, 12);
  const Fp8Problem p = quantized(x, w, M, N, K);
  std::vector<float> c(M * N);
  sg::cpu::fp8_gemm(p.args(c.data(), Fp8Accumulation::fp32_promoted));
  const double u = std::exp2(-24.0);
  double worst_dq = 0, worst_f32 = 0, rms_f32 = 0, rms_ref = 0;
  for (int64_t m = 0; m < M; m++)
    for (int64_t n = 0; n < N; n++) {
      const RefSum r = dequant_ref(p, m, n);
      const double err = std::fabs((double)c[m * N + n] - r.sum);
      const double bound = (double)(p.block + p.KB()) * u * r.abs_sum * (1 + 1e-3);
      REQUIRE(err <= bound);
      worst_dq = std::max(worst_dq, err / bound);
      double exact = 0, abs_xw = 0;
      for (int64_t k = 0; k < K; k++) {
        exact += (double)x[m * K + k] * w[n * K + k];
        abs_xw += std::fabs((double)x[m * K + k] * w[n * K + k]);
      }
      const double err_f32 = std::fabs((double)c[m * N + n] - exact);
      const double bound_f32 = (2 * std::exp2(-4.0) + std::exp2(-8.0)) * abs_xw + bound;
      REQUIRE(err_f32 <= bound_f32);
      worst_f32 = std::max(worst_f32, err_f32 / bound_f32);
      rms_f32 += err_f32 * err_f32, rms_ref += exact * exact;
    }
  MESSAGE("fp32_promoted: worst error / f32 bound (vs dequantized, float64) = " << worst_dq
          << "; worst error / E4M3 bound (vs f32 inputs) = " << worst_f32
          << "; relative RMS error vs f32 inputs = " << std::sqrt(rms_f32 / rms_ref));
  CHECK(worst_dq < 0.5);  // random signs: the f32 error is far below its worst case
}

TEST_CASE("fp8_gemm: a 14-bit accumulator's error grows with K without promotion, not with it") {
  // Positive-mean data (uniform(0, 1) activations and weights): every term is positive, the running
  // sum grows like K, and truncating it to 14 significant bits after every addition loses up to
  // 2^-13 of it each time, always downwards: the relative error of `limited` grows with K. With
  // promotion every 128 terms (limited_promoted), the truncated block sums stay short and the error
  // stays at the level of one block, whatever K.
  const int64_t M = 8, N = 8;
  const Fp8Accumulation modes[3] = {Fp8Accumulation::fp32_promoted, Fp8Accumulation::limited_promoted,
                                    Fp8Accumulation::limited};
  double err[3][3] = {};  // [K index][mode]: mean relative error vs float64 of the dequantized operands
  const int64_t Ks[3] = {128, 1024, 4096};
  for (int ki = 0; ki < 3; ki++) {
    const int64_t K = Ks[ki];
    const Fp8Problem p = quantized(random_f32(M * K, 0, 1, 21 + ki), random_f32(N * K, 0, 1, 31 + ki), M, N, K);
    for (int mi = 0; mi < 3; mi++) {
      std::vector<float> c(M * N);
      sg::cpu::fp8_gemm(p.args(c.data(), modes[mi]));
      double sum = 0;
      for (int64_t m = 0; m < M; m++)
        for (int64_t n = 0; n < N; n++) {
          const double ref = dequant_ref(p, m, n).sum;
          sum += std::fabs((double)c[m * N + n] - ref) / ref;
        }
      err[ki][mi] = sum / (M * N);
    }
    MESSAGE("K=" << K << " mean relative error: fp32_promoted " << err[ki][0] << ", limited_promoted " << err[ki][1]
                 << ", limited " << err[ki][2]);
  }
  // limited: monotone growth with K, and far above fp32_promoted.
  CHECK(err[0][2] < err[1][2]);
  CHECK(err[1][2] < err[2][2]);
  CHECK(err[2][2] > 4 * err[0][2]);
  for (int ki = 0; ki < 3; ki++) CHECK(err[ki][2] > 100 * err[ki][0]);
  // limited_promoted: no growth with K (within 2x of its K = 128 value) and well below limited at K = 4096.
  for (int ki = 1; ki < 3; ki++) CHECK(err[ki][1] < 2 * err[0][1]);
  CHECK(err[2][1] * 4 < err[2][2]);
  // At K = 128 (one block) the two limited modes do the same truncations, up to where the scale goes.
  CHECK(err[0][1] < 2 * err[0][2]);
  // fp32_promoted is at f32 level.
  for (int ki = 0; ki < 3; ki++) CHECK(err[ki][0] < 1e-6);
}

TEST_CASE("fp8_gemm: argument errors name the field") {
  Fp8Problem p = random_codes(2, 2, 4, 1, 128, 5);
  std::vector<float> c(4);
  auto bad = [&](auto edit, const char* field) {
    Fp8GemmArgs g = p.args(c.data(), Fp8Accumulation::fp32_promoted);
    edit(g);
    CHECK_THROWS_WITH_AS(sg::cpu::fp8_gemm(g), doctest::Contains(field), std::invalid_argument);
    CHECK_THROWS_WITH_AS(sg::cpu::fp8_gemm_naive(g), doctest::Contains(field), std::invalid_argument);
  };
  bad([](Fp8GemmArgs& g) { g.M = -1; }, "M=-1");
  bad([](Fp8GemmArgs& g) { g.N = -3; }, "N=-3");
  bad([](Fp8GemmArgs& g) { g.K = -2; }, "K=-2");
  bad([](Fp8GemmArgs& g) { g.a_scale_rows = 3; }, "a_scale_rows");
  bad([](Fp8GemmArgs& g) { g.b_scale_rows = 3; }, "b_scale_rows");
  bad([](Fp8GemmArgs& g) { g.block = 0; }, "block");
  bad([](Fp8GemmArgs& g) { g.c = nullptr; }, "c is null");
  // K = 0: C is all zeros.
  Fp8GemmArgs g = p.args(c.data(), Fp8Accumulation::fp32_promoted);
  g.K = 0;
  std::fill(c.begin(), c.end(), 5.0f);
  sg::cpu::fp8_gemm(g);
  for (float v : c) CHECK(v == 0.0f);
}
