// tests/ops/gemm_check.h — what the GEMM tests share (tests/ops/test_gemm*.cpp): test shapes with strides,
// transposes and alpha/beta, seeded operands, the naive loop as reference, a tolerance, and
// check_micro_kernel, every check one micro-kernel must pass. The scalar kernel runs on every CPU
// (test_gemm.cpp); avx2 and avx512 are in files of their own (test_gemm_avx2.cpp, test_gemm_avx512.cpp)
// so that on a CPU without them their CTest entry reports "Skipped", not "Passed".
// What this is not: a test by itself (no TEST_CASE here).
#pragma once
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "autograd/rng.h"
#include "ops/cpu/gemm.h"
#include "ops/cpu/runtime.h"

namespace sg::test::gemm {

using sg::cpu::GemmKernel;

struct GemmShape {
  int64_t m, n, k;
  bool trans_a, trans_b;
  int64_t pad_a = 0, pad_b = 0, pad_c = 0;  // extra floats at the end of each stored row
  float alpha = 1.0f, beta = 0.0f;
};

inline std::string describe(const GemmShape& s) {
  return "m=" + std::to_string(s.m) + " n=" + std::to_string(s.n) + " k=" + std::to_string(s.k) +
         " trans_a=" + std::to_string(s.trans_a) + " trans_b=" + std::to_string(s.trans_b) +
         " pads=" + std::to_string(s.pad_a) + "," + std::to_string(s.pad_b) + "," + std::to_string(s.pad_c) +
         " alpha=" + std::to_string(s.alpha) + " beta=" + std::to_string(s.beta);
}

// Stored operands for a shape: A is [M,K] or [K,M], B is [K,N] or [N,K], C is [M,N]; rows padded.
struct GemmData {
  int64_t lda, ldb, ldc;
  std::vector<float> a, b, c;
  GemmData(const GemmShape& s, uint64_t seed) {
    lda = (s.trans_a ? s.m : s.k) + s.pad_a;
    ldb = (s.trans_b ? s.k : s.n) + s.pad_b;
    ldc = s.n + s.pad_c;
    a.resize((s.trans_a ? s.k : s.m) * lda);
    b.resize((s.trans_b ? s.n : s.k) * ldb);
    c.resize(s.m * ldc);
    sg::Rng rng(seed);
    for (float& x : a) x = (float)rng.uniform(-1, 1);
    for (float& x : b) x = (float)rng.uniform(-1, 1);
    for (float& x : c) x = (float)rng.uniform(-1, 1);
  }
};

// C after gemm_f32_with(kernel, ...), or after gemm_f32_naive(...) when `naive`, on a copy of d.c.
inline std::vector<float> run_gemm(const GemmShape& s, const GemmData& d, bool naive, GemmKernel kernel) {
  std::vector<float> c = d.c;
  if (naive)
    sg::cpu::gemm_f32_naive(s.trans_a, s.trans_b, s.m, s.n, s.k, s.alpha, d.a.data(), d.lda, d.b.data(), d.ldb,
                            s.beta, c.data(), d.ldc);
  else
    sg::cpu::gemm_f32_with(kernel, s.trans_a, s.trans_b, s.m, s.n, s.k, s.alpha, d.a.data(), d.lda, d.b.data(),
                           d.ldb, s.beta, c.data(), d.ldc);
  return c;
}

// |x - y| <= tol on C's M×N elements, and the padding between rows untouched.
inline void check_close(const GemmShape& s, const GemmData& d, const std::vector<float>& got,
                        const std::vector<float>& want, double tol) {
  int64_t bad = 0;
  double worst = 0;
  for (int64_t i = 0; i < s.m; i++)
    for (int64_t j = 0; j < d.ldc; j++) {
      const int64_t at = i * d.ldc + j;
      const double err = std::fabs((double)got[at] - (double)want[at]);
      if (j >= s.n ? got[at] != d.c[at] : !(err <= tol)) bad++;
      if (j < s.n && !(err <= worst)) worst = err;
    }
  INFO(describe(s), " worst error ", worst, " tolerance ", tol);
  CHECK(bad == 0);
}

// Inputs are uniform(-1,1): each product is at most 1 in size, so float rounding in a K-term sum stays
// well under K * 2^-22 (kernels sum in different orders, with and without fused multiply-add).
inline double tolerance(const GemmShape& s) {
  return (std::fabs(s.alpha) * (s.k + 1) + std::fabs(s.beta)) * 4e-7 + 1e-6;
}

inline std::vector<GemmShape> test_shapes() {
  std::vector<GemmShape> shapes;
  const int64_t sizes[][3] = {{1, 1, 1},   {37, 53, 19},  {14, 32, 1},   {15, 33, 7},    {13, 31, 385},
                              {6, 16, 16}, {100, 70, 90}, {3, 200, 5},   {200, 3, 5},    {29, 97, 400},
                              {64, 64, 64}, {1, 77, 33},  {45, 1, 100},  {171, 130, 41}};
  for (auto& mnk : sizes)
    for (int t = 0; t < 4; t++) shapes.push_back({mnk[0], mnk[1], mnk[2], (t & 1) != 0, (t & 2) != 0});
  // Row strides larger than the rows, alpha/beta away from 1/0.
  shapes.push_back({37, 53, 19, false, false, 3, 5, 7, 0.5f, 0.0f});
  shapes.push_back({37, 53, 19, true, true, 1, 2, 3, -1.5f, 1.0f});
  shapes.push_back({50, 41, 23, true, false, 9, 0, 4, 2.0f, -0.75f});
  shapes.push_back({50, 41, 23, false, true, 0, 6, 1, 1.0f, 0.5f});
  // More than one cache block (ops/cpu/gemm.cpp §3) along K and M (K > KC = 512, M > MC = 168), and
  // along N (N > NC = 2048, on one thread: under 1 MFLOP per thread).
  shapes.push_back({300, 90, 800, false, true, 0, 0, 0, 1.0f, 1.0f});
  shapes.push_back({180, 270, 1100, true, false, 2, 3, 4, 0.25f, 2.0f});
  shapes.push_back({5, 4200, 20, false, false, 0, 0, 0, 1.0f, 0.5f});
  return shapes;
}

// Everything one micro-kernel must do: match the naive loop on every test shape, give the exact
// integer results of a 2x2 product by hand, overwrite NaN when beta = 0 (full and edge tiles) and
// give zeros for K = 0.
inline void check_micro_kernel(GemmKernel kernel) {
  INFO("kernel ", sg::cpu::gemm_kernel_name(kernel));
  uint64_t seed = 1;
  for (const GemmShape& s : test_shapes()) {
    GemmData d(s, seed++);
    check_close(s, d, run_gemm(s, d, false, kernel), run_gemm(s, d, true, kernel), tolerance(s));
  }

  // A = [[1,2],[3,4]], B = [[5,6],[7,8]]: A·B = [[19,22],[43,50]]; with trans_a Aᵀ·B = [[26,30],[38,44]].
  const float A[4] = {1, 2, 3, 4}, B[4] = {5, 6, 7, 8};
  float C[4];
  sg::cpu::gemm_f32_with(kernel, false, false, 2, 2, 2, 1.0f, A, 2, B, 2, 0.0f, C, 2);
  CHECK(std::vector<float>(C, C + 4) == std::vector<float>{19, 22, 43, 50});
  sg::cpu::gemm_f32_with(kernel, true, false, 2, 2, 2, 1.0f, A, 2, B, 2, 0.0f, C, 2);
  CHECK(std::vector<float>(C, C + 4) == std::vector<float>{26, 30, 38, 44});

  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (int64_t m : {5, 40}) {  // 40×40 covers full tiles, 5×5 only edge tiles
    GemmShape s{m, m, 17, false, false};
    GemmData d(s, 7);
    std::vector<float> c(m * m, nan);
    sg::cpu::gemm_f32_with(kernel, false, false, m, m, 17, 1.0f, d.a.data(), d.lda, d.b.data(), d.ldb, 0.0f,
                           c.data(), m);
    const std::vector<float> want = run_gemm(s, d, true, kernel);  // naive, beta = 0
    int64_t bad = 0;
    for (int64_t i = 0; i < m * m; i++) bad += !(std::fabs(c[i] - want[i]) <= tolerance(s));
    CHECK(bad == 0);

    std::fill(c.begin(), c.end(), nan);  // K = 0, beta = 0: zeros
    sg::cpu::gemm_f32_with(kernel, false, false, m, m, 0, 1.0f, d.a.data(), 1, d.b.data(), m, 0.0f, c.data(), m);
    int64_t nonzero = 0;
    for (float x : c) nonzero += !(x == 0.0f);
    CHECK(nonzero == 0);
  }
}

}  // namespace sg::test::gemm
