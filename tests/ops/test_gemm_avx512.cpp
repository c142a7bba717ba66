// tests/ops/test_gemm_avx512.cpp — the avx512 GEMM micro-kernel (AVX-512F, 16 floats per register) passes every check
// of tests/ops/gemm_check.h: the naive loop on every test shape, a product by hand, NaN in C with
// beta = 0, K = 0. A file of its own: on a CPU without AVX-512F (or with SEEKGRAD_TEST_PRETEND_NO=avx512)
// its one test case declares itself skipped, so the CTest entry ops/test_gemm_avx512 reports "Skipped".
#include <doctest/doctest.h>

#include "tests/ops/gemm_check.h"
#include "tests/test_util.h"

using sg::cpu::GemmKernel;

TEST_CASE("gemm_f32: avx512 micro-kernel matches the naive loop, by hand, over NaN and with K = 0") {
  if (!sg::cpu::gemm_kernel_available(GemmKernel::avx512)) SEEKGRAD_SKIP("this CPU has no AVX-512F");
  if (sg::test::pretend_missing("avx512"))
    SEEKGRAD_SKIP("SEEKGRAD_TEST_PRETEND_NO=avx512: acting as a CPU without AVX-512F");
  sg::test::gemm::check_micro_kernel(GemmKernel::avx512);
}
