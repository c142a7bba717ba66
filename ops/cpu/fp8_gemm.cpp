// ops/cpu/fp8_gemm.cpp — the blockwise FP8 GEMM of ops/cpu/fp8_gemm.h.
// Compiled with -ffp-contract=off (CMakeLists.txt): no a·b + c is fused into an FMA behind our back, so
// the naive loop and the fast version round the same operations the same way.
#include "ops/cpu/fp8_gemm.h"

#include <stdexcept>
#include <string>

#include "autograd/runtime.h"
#include "ops/cpu/runtime.h"
#include "ops/fp8.h"

namespace sg::cpu {

const char* fp8_accumulation_name(Fp8Accumulation a) {
  switch (a) {
    case Fp8Accumulation::fp32_promoted: return "fp32_promoted";
    case Fp8Accumulation::limited_promoted: return "limited_promoted";
    case Fp8Accumulation::limited: return "limited";
  }
  return "?";
}

void check_fp8_gemm_args(const char* fn, const Fp8GemmArgs& g) {
  auto bad = [&](const std::string& what) { throw std::invalid_argument(std::string(fn) + ": " + what); };
  if (g.M < 0 || g.N < 0 || g.K < 0)
    bad("negative size M=" + std::to_string(g.M) + " N=" + std::to_string(g.N) + " K=" + std::to_string(g.K));
  if (g.block < 1) bad("block must be >= 1, got " + std::to_string(g.block));
  if (g.a_scale_rows != 1 && g.a_scale_rows != g.block)
    bad("a_scale_rows must be 1 or block (" + std::to_string(g.block) + "), got " + std::to_string(g.a_scale_rows));
  if (g.b_scale_rows != 1 && g.b_scale_rows != g.block)
    bad("b_scale_rows must be 1 or block (" + std::to_string(g.block) + "), got " + std::to_string(g.b_scale_rows));
  if (g.accum_bits < 1) bad("accum_bits must be >= 1, got " + std::to_string(g.accum_bits));
  if (g.M > 0 && g.N > 0 && !g.c) bad("c is null");
  if (g.M > 0 && g.N > 0 && g.K > 0 && (!g.a || !g.b || !g.a_scale || !g.b_scale)) bad("an operand or scale pointer is null");
}

// One output element, in exactly the order the header writes the sums.
static float fp8_dot_naive(const Fp8GemmArgs& g, int64_t m, int64_t n) {
  const int64_t KB = (g.K + g.block - 1) / g.block;
  const uint8_t* a = g.a + m * g.K;
  const uint8_t* b = g.b + n * g.K;
  const float* sa = g.a_scale + (m / g.a_scale_rows) * KB;
  const float* sb = g.b_scale + (n / g.b_scale_rows) * KB;
  float c = 0.0f;
  for (int64_t kb = 0; kb < KB; kb++) {
    const int64_t k0 = kb * g.block, k1 = k0 + g.block < g.K ? k0 + g.block : g.K;
    if (g.accumulation == Fp8Accumulation::limited) {
      const float s = sa[kb] * sb[kb];
      for (int64_t k = k0; k < k1; k++) {
        const float prod = lowp::e4m3_to_f32(a[k]) * lowp::e4m3_to_f32(b[k]);
        c = lowp::truncate_to_bits(c + prod * s, g.accum_bits);
      }
      continue;
    }
    float p = 0.0f;
    for (int64_t k = k0; k < k1; k++) {
      p = p + lowp::e4m3_to_f32(a[k]) * lowp::e4m3_to_f32(b[k]);
      if (g.accumulation == Fp8Accumulation::limited_promoted) p = lowp::truncate_to_bits(p, g.accum_bits);
    }
    c = c + (p * sa[kb]) * sb[kb];
  }
  return c;
}

void fp8_gemm_naive(const Fp8GemmArgs& g) {
  check_fp8_gemm_args("fp8_gemm_naive", g);
  for (int64_t m = 0; m < g.M; m++)
    for (int64_t n = 0; n < g.N; n++) g.c[m * g.N + n] = fp8_dot_naive(g, m, n);
}

// Rows split over the thread pool (disjoint outputs: deterministic), each element the naive arithmetic.
void fp8_gemm(const Fp8GemmArgs& g) {
  check_fp8_gemm_args("fp8_gemm", g);
  if (naive_kernels()) return fp8_gemm_naive(g);
  parallel_for(g.M, 1, [&](int64_t m0, int64_t m1) {
    for (int64_t m = m0; m < m1; m++)
      for (int64_t n = 0; n < g.N; n++) g.c[m * g.N + n] = fp8_dot_naive(g, m, n);
  });
}

}  // namespace sg::cpu
