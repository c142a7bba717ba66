// tests/ops/test_gemm.cpp — sg::cpu::gemm_f32 with the scalar micro-kernel (every CPU has it) against the
// naive loop, the automatic pick, the SEEKGRAD_NAIVE switch, gemm_f64 against a direct formula, and the
// contract's edge cases (beta = 0 over NaN, K = 0, alpha = 0, strides, transposes, threads).
// The avx2 and avx512 micro-kernels: tests/ops/test_gemm_avx2.cpp, test_gemm_avx512.cpp (skipped on a CPU
// without them).
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "autograd/runtime.h"
#include "ops/cpu/runtime.h"
#include "tests/ops/gemm_check.h"

using sg::cpu::GemmKernel;
using namespace sg::test::gemm;

TEST_CASE("gemm_f32: scalar micro-kernel matches the naive loop, by hand, over NaN and with K = 0") {
  check_micro_kernel(GemmKernel::scalar);
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
  if (!sg::cpu::gemm_kernel_available(GemmKernel::avx2))
    CHECK_THROWS(sg::cpu::gemm_f32_with(GemmKernel::avx2, false, false, 1, 1, 1, 1, &a, 1, &b, 1, 0, &c, 1));
  if (!sg::cpu::gemm_kernel_available(GemmKernel::avx512))
    CHECK_THROWS(sg::cpu::gemm_f32_with(GemmKernel::avx512, false, false, 1, 1, 1, 1, &a, 1, &b, 1, 0, &c, 1));
  CHECK_THROWS(sg::cpu::gemm_f32(false, false, 2, 2, 2, 1, &a, 1, &b, 2, 0, &c, 2));  // lda < K
}

TEST_CASE("gemm_f32: the naive switch (SEEKGRAD_NAIVE) takes the plain loop, a 2x2 product by hand") {
  // A = [[1,2],[3,4]], B = [[5,6],[7,8]]: A·Bᵀ = [[17,23],[39,53]].
  const float A[4] = {1, 2, 3, 4}, B[4] = {5, 6, 7, 8};
  const bool was_naive = sg::naive_kernels();
  sg::set_naive_kernels(true);
  float C[4] = {1, 1, 1, 1};
  sg::cpu::gemm_f32(false, true, 2, 2, 2, 2.0f, A, 2, B, 2, 1.0f, C, 2);  // 2·A·Bᵀ + C
  sg::set_naive_kernels(was_naive);
  CHECK(std::vector<float>(C, C + 4) == std::vector<float>{35, 47, 79, 107});
}

TEST_CASE("gemm_f32: K = 0 and alpha = 0 give beta * C without reading A or B") {
  const float nan = std::numeric_limits<float>::quiet_NaN();
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

// Its speed is a benchmark's business (tools/bench/bench_gemm.cpp); here only what does not depend on
// the clock: a finite positive figure, and the caller's thread count restored.
TEST_CASE("measure_fma_peak_gflops: a finite positive figure, num_threads restored") {
  const int saved = sg::num_threads();
  sg::set_num_threads(1);
  const double one = sg::cpu::measure_fma_peak_gflops(2, 0.01);
  CHECK(sg::num_threads() == 1);
  sg::set_num_threads(saved);
  CHECK(std::isfinite(one));
  CHECK(one > 0);
}
