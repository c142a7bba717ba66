// tests/ops/test_gemm.cpp — sg::cpu::gemm_f32 (every micro-kernel this CPU has) against the naive loop,
// gemm_f64 against a direct formula, and the contract's edge cases (beta = 0 over NaN, K = 0, strides,
// transposes, threads).
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "autograd/rng.h"
#include "autograd/runtime.h"
#include "ops/cpu/gemm.h"
#include "ops/cpu/runtime.h"

using sg::cpu::GemmKernel;

namespace {

struct GemmShape {
  int64_t m, n, k;
  bool trans_a, trans_b;
  int64_t pad_a = 0, pad_b = 0, pad_c = 0;  // extra floats at the end of each stored row
  float alpha = 1.0f, beta = 0.0f;
};

std::string describe(const GemmShape& s) {
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
std::vector<float> run_gemm(const GemmShape& s, const GemmData& d, bool naive, GemmKernel kernel) {
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
void check_close(const GemmShape& s, const GemmData& d, const std::vector<float>& got,
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
double tolerance(const GemmShape& s) {
  return (std::fabs(s.alpha) * (s.k + 1) + std::fabs(s.beta)) * 4e-7 + 1e-6;
}

std::vector<GemmShape> test_shapes() {
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

std::vector<GemmKernel> available_kernels() {
  std::vector<GemmKernel> kernels;
  for (GemmKernel k : {GemmKernel::scalar, GemmKernel::avx2, GemmKernel::avx512})
    if (sg::cpu::gemm_kernel_available(k)) kernels.push_back(k);
  return kernels;
}

void check_kernel_against_naive(GemmKernel kernel) {
  uint64_t seed = 1;
  for (const GemmShape& s : test_shapes()) {
    GemmData d(s, seed++);
    check_close(s, d, run_gemm(s, d, false, kernel), run_gemm(s, d, true, kernel), tolerance(s));
  }
}

}  // namespace

TEST_CASE("gemm_f32: scalar micro-kernel matches the naive loop") { check_kernel_against_naive(GemmKernel::scalar); }

TEST_CASE("gemm_f32: avx2 micro-kernel matches the naive loop") {
  if (!sg::cpu::gemm_kernel_available(GemmKernel::avx2)) {
    MESSAGE("this CPU has no AVX2+FMA: skipped");
    return;
  }
  check_kernel_against_naive(GemmKernel::avx2);
}

TEST_CASE("gemm_f32: avx512 micro-kernel matches the naive loop") {
  if (!sg::cpu::gemm_kernel_available(GemmKernel::avx512)) {
    MESSAGE("this CPU has no AVX-512: skipped");
    return;
  }
  check_kernel_against_naive(GemmKernel::avx512);
}

TEST_CASE("gemm_f32: automatic picks the widest kernel the CPU has, missing kernels and short strides throw") {
  const char* best = sg::cpu::gemm_kernel_name(GemmKernel::automatic);
  if (sg::cpu_has_avx512())
    CHECK(std::string(best) == "avx512");
  else if (sg::cpu_has_avx2_fma())
    CHECK(std::string(best) == "avx2");
  else
    CHECK(std::string(best) == "scalar");
  float a = 1, b = 1, c = 0;
  if (!sg::cpu::gemm_kernel_available(GemmKernel::avx512))
    CHECK_THROWS(sg::cpu::gemm_f32_with(GemmKernel::avx512, false, false, 1, 1, 1, 1, &a, 1, &b, 1, 0, &c, 1));
  CHECK_THROWS(sg::cpu::gemm_f32(false, false, 2, 2, 2, 1, &a, 1, &b, 2, 0, &c, 2));  // lda < K
}

TEST_CASE("gemm_f32: a 2x2 product by hand, every kernel and the naive switch") {
  // A = [[1,2],[3,4]], B = [[5,6],[7,8]]: A·B = [[19,22],[43,50]]; with trans_a Aᵀ·B = [[26,30],[38,44]].
  const float A[4] = {1, 2, 3, 4}, B[4] = {5, 6, 7, 8};
  for (GemmKernel kernel : available_kernels()) {
    float C[4];
    sg::cpu::gemm_f32_with(kernel, false, false, 2, 2, 2, 1.0f, A, 2, B, 2, 0.0f, C, 2);
    CHECK(std::vector<float>(C, C + 4) == std::vector<float>{19, 22, 43, 50});
    sg::cpu::gemm_f32_with(kernel, true, false, 2, 2, 2, 1.0f, A, 2, B, 2, 0.0f, C, 2);
    CHECK(std::vector<float>(C, C + 4) == std::vector<float>{26, 30, 38, 44});
  }
  const bool was_naive = sg::naive_kernels();
  sg::set_naive_kernels(true);
  float C[4] = {1, 1, 1, 1};
  sg::cpu::gemm_f32(false, true, 2, 2, 2, 2.0f, A, 2, B, 2, 1.0f, C, 2);  // 2·A·Bᵀ + C, A·Bᵀ = [[17,23],[39,53]]
  sg::set_naive_kernels(was_naive);
  CHECK(std::vector<float>(C, C + 4) == std::vector<float>{35, 47, 79, 107});
}

TEST_CASE("gemm_f32: beta = 0 overwrites NaN in C, K = 0 and alpha = 0 give beta * C") {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (GemmKernel kernel : available_kernels()) {
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
      for (float x : c) CHECK(x == 0.0f);
    }
  }
  float c[3] = {1, 2, 3};  // K = 0, beta = 2: C doubles, A and B are never read
  sg::cpu::gemm_f32(false, false, 1, 3, 0, 1.0f, nullptr, 1, nullptr, 3, 2.0f, c, 3);
  CHECK(std::vector<float>(c, c + 3) == std::vector<float>{2, 4, 6});
  float a[2] = {nan, nan}, b[2] = {1, 1};  // alpha = 0: A and B are not read, by every version
  sg::cpu::gemm_f32(false, false, 1, 1, 2, 0.0f, a, 2, b, 1, 0.5f, c, 3);
  CHECK(c[0] == 1);
  sg::cpu::gemm_f32_naive(false, false, 1, 1, 2, 0.0f, a, 2, b, 1, 0.5f, c, 3);
  CHECK(c[0] == 0.5f);
  double a64[2] = {(double)nan, (double)nan}, b64[2] = {1, 1}, c64 = 3;
  sg::cpu::gemm_f64(false, false, 1, 1, 2, 0.0, a64, 2, b64, 1, 0.5, &c64, 1);
  CHECK(c64 == 1.5);
}

TEST_CASE("gemm_f32: 2 and 3 threads give the single-thread result, for every way of splitting") {
  const int saved = sg::num_threads();
  // Large enough to be given several threads; split along M (rows), N (columns) and K (depth: M and N
  // small, K long, as in dW = dYᵀ·X), the last with beta != 0 so the partial sums must not re-apply it.
  for (GemmShape s : {GemmShape{301, 64, 200, false, true}, GemmShape{40, 517, 300, true, false},
                      GemmShape{128, 100, 1100, true, false, 0, 0, 0, 1.5f, 0.5f}}) {
    GemmData d(s, 11);
    sg::set_num_threads(1);
    const std::vector<float> one = run_gemm(s, d, false, GemmKernel::automatic);
    check_close(s, d, one, run_gemm(s, d, true, GemmKernel::automatic), tolerance(s));
    for (int threads : {2, 3}) {
      sg::set_num_threads(threads);
      check_close(s, d, run_gemm(s, d, false, GemmKernel::automatic), one, tolerance(s));
    }
  }
  sg::set_num_threads(saved);
}

TEST_CASE("gemm_f64 matches the direct formula alpha * sum_k op(A)(i,k) op(B)(k,j) + beta * C(i,j)") {
  sg::Rng rng(3);
  for (int t = 0; t < 4; t++) {
    const bool trans_a = t & 1, trans_b = t & 2;
    const int64_t M = 7, N = 5, K = 9, lda = (trans_a ? M : K) + 2, ldb = (trans_b ? K : N) + 1, ldc = N + 3;
    std::vector<double> A((trans_a ? K : M) * lda), B((trans_b ? N : K) * ldb), C(M * ldc);
    for (double& x : A) x = rng.uniform(-1, 1);
    for (double& x : B) x = rng.uniform(-1, 1);
    for (double& x : C) x = rng.uniform(-1, 1);
    std::vector<double> got = C;
    const double alpha = 1.25, beta = t == 0 ? 0.0 : -0.5;
    sg::cpu::gemm_f64(trans_a, trans_b, M, N, K, alpha, A.data(), lda, B.data(), ldb, beta, got.data(), ldc);
    for (int64_t i = 0; i < M; i++)
      for (int64_t j = 0; j < N; j++) {
        long double sum = 0;
        for (int64_t k = 0; k < K; k++)
          sum += (long double)(trans_a ? A[k * lda + i] : A[i * lda + k]) * (trans_b ? B[j * ldb + k] : B[k * ldb + j]);
        const double want = (double)(alpha * sum + beta * C[i * ldc + j]);
        CHECK(got[i * ldc + j] == doctest::Approx(want).epsilon(1e-13));
      }
    for (int64_t i = 0; i < M; i++)  // the padding between rows is untouched
      for (int64_t j = N; j < ldc; j++) CHECK(got[i * ldc + j] == C[i * ldc + j]);
  }
  std::vector<double> c(4, std::numeric_limits<double>::quiet_NaN());  // beta = 0 overwrites NaN
  const double a[2] = {1, 2}, b[2] = {3, 4};
  sg::cpu::gemm_f64(false, false, 2, 2, 1, 1.0, a, 1, b, 2, 0.0, c.data(), 2);
  CHECK(std::vector<double>(c.data(), c.data() + 4) == std::vector<double>{3, 4, 6, 8});
}

TEST_CASE("measure_fma_peak_gflops returns a plausible figure") {
  const double one = sg::cpu::measure_fma_peak_gflops(1, 0.02);
  CHECK(one > 0.5);     // even a scalar loop on a slow CPU does more than 0.5 GFLOP/s
  CHECK(one < 1.0e4);   // and no core does 10 TFLOP/s of FP32 FMA
}
