// tools/bench/bench.h — the benchmarks behind `seekgrad bench ...`.
//
// Each benchmark measures the machine's own ceiling in the same run (e.g. the FMA peak for GEMM), so
// every figure is printed next to the fraction of that ceiling it reaches. Output is an aligned table
// for people, or with json=true one JSON object per line per result (for scripts and plots).
//
// What this is not: a test. Benchmarks assert nothing; tests/ops/ checks the values.
#pragma once
#include <cstdint>
#include <vector>

namespace sg::bench {

struct GemmBenchOptions {
  bool json = false;                                          // one JSON object per line instead of a table
  std::vector<int> threads = {1, 2};                          // each case runs at each thread count
  std::vector<int64_t> square_sizes = {256, 512, 1024, 2048};  // M = N = K
  bool quick = false;                                         // shorter timing, no squares above 1024
  bool fp8 = false;  // also sg::cpu::fp8_gemm (blockwise FP8, ops/cpu/fp8_gemm.h) on the square and forward shapes
};

// sg::cpu::gemm_f32 in GFLOP/s: the FMA peak per thread count, square sizes, the tiny models'
// linear layers (forward, dX, dW), and the naive loop for contrast. With fp8: fp8_gemm rows after the
// square and forward fp32 rows (the FP8 GEMM's contract is y = x·Wᵀ only), the act_quant_f32 time of A
// separately, and fp8_gemm_naive at 256³. Returns 0 (a process exit code).
int bench_gemm(const GemmBenchOptions& options);

}  // namespace sg::bench
