// tools/bench/bench_gemm.cpp — `seekgrad bench gemm`: how fast is sg::cpu::gemm_f32 on this machine?
//
// Measures, in one run:
//   1. the FP32 FMA peak for each thread count (sg::cpu::measure_fma_peak_gflops): the ceiling;
//   2. square GEMMs, M = N = K = 256 .. 2048;
//   3. the tiny models' linear layers with T = 2048 tokens, x [T,K], W [N,K], y = x·Wᵀ [T,N]:
//        forward  y  = x · Wᵀ       M=T, N=N, K=K   trans_b
//        dX       dx = dy · W       M=T, N=K, K=N   (no transpose)
//        dW       dW = dyᵀ · x      M=N, N=K, K=T   trans_a
//      for (N, K) in (128,128) (256,256) (512,128) (128,512), the LM head (4096,256) and (256,4096);
//   4. for contrast, on one thread: each micro-kernel the CPU has (scalar, avx2, avx512) at 1024³, and
//      the naive triple loop at 256³ and 512³;
//   5. with --fp8, after the fp32 row of every square and forward case: sg::cpu::fp8_gemm (blockwise
//      FP8, fp32_promoted accumulation; kernel "fp8_<micro-kernel>") on the same M, N, K with A quantized
//      as 1×128 activation tiles and B as 128×128 weight blocks, and the time of act_quant_f32 on A
//      alone ("fp8_quant_a": not part of the GEMM's GFLOP/s); fp8_gemm_naive at 256³ on one thread.
//      The FP8 GEMM decodes its operands to f32 and runs FMA micro-kernels like gemm_f32's, so the
//      same FMA peak is its ceiling (a CPU has no FP8 FMA units).
// Each case: one warm-up call, then repeats until ~0.3 s (at least 3); reports the best time (and the
// median) and GFLOP/s = 2·M·N·K / best time.
//
// What this is not: a correctness check (tests/ops/test_gemm.cpp is).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "autograd/rng.h"
#include "autograd/runtime.h"
#include "ops/cpu/fp8_gemm.h"
#include "ops/cpu/fp8_quant.h"
#include "ops/cpu/gemm.h"
#include "tools/bench/bench.h"

namespace sg::bench {

namespace {

struct GemmCase {
  const char* label;  // what the shape is in the model ("square", "forward", "dX", "dW")
  int64_t m, n, k;
  bool trans_a, trans_b;
};

struct Timing {
  double best_ms, median_ms;
};

// Times fn() after one warm-up call: repeats until min_seconds have passed (at least 3 times).
Timing time_it(const std::function<void()>& fn, double min_seconds) {
  fn();
  std::vector<double> ms;
  double total = 0;
  while (ms.size() < 3 || total < min_seconds) {
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    ms.push_back(s * 1e3);
    total += s;
  }
  std::sort(ms.begin(), ms.end());
  return {ms.front(), ms[ms.size() / 2]};
}

const char* trans_name(const GemmCase& c) {
  if (c.trans_a) return c.trans_b ? "TT" : "TN";
  return c.trans_b ? "NT" : "NN";
}

void print_header() {
  std::printf("%-8s %-11s %6s %6s %6s %5s %7s %10s %10s %8s %11s %6s\n", "case", "kernel", "m", "n", "k", "trans",
              "threads", "ms", "median_ms", "gflops", "peak_gflops", "%peak");
}

void print_result(bool json, const GemmCase& c, const char* kernel, int threads, const Timing& t, double peak) {
  const double gflops = 2.0 * c.m * c.n * c.k / (t.best_ms * 1e-3) * 1e-9;
  if (json) {
    std::printf(
        "{\"bench\":\"gemm\",\"case\":\"%s\",\"kernel\":\"%s\",\"m\":%lld,\"n\":%lld,\"k\":%lld,"
        "\"trans_a\":%s,\"trans_b\":%s,\"threads\":%d,\"ms\":%.4f,\"median_ms\":%.4f,\"gflops\":%.2f,"
        "\"peak_gflops\":%.2f}\n",
        c.label, kernel, (long long)c.m, (long long)c.n, (long long)c.k, c.trans_a ? "true" : "false",
        c.trans_b ? "true" : "false", threads, t.best_ms, t.median_ms, gflops, peak);
  } else {
    std::printf("%-8s %-11s %6lld %6lld %6lld %5s %7d %10.3f %10.3f %8.1f %11.1f %5.1f%%\n", c.label, kernel,
                (long long)c.m, (long long)c.n, (long long)c.k, trans_name(c), threads, t.best_ms, t.median_ms,
                gflops, peak, 100.0 * gflops / peak);
  }
  std::fflush(stdout);
}

// Operands for one case, filled with uniform(-1, 1) values.
struct GemmOperands {
  std::vector<float> a, b, c;
  explicit GemmOperands(const GemmCase& gc) : a(gc.m * gc.k), b(gc.k * gc.n), c(gc.m * gc.n) {
    Rng rng(1234);
    for (float& x : a) x = (float)rng.uniform(-1, 1);
    for (float& x : b) x = (float)rng.uniform(-1, 1);
  }
  // Row strides of the stored matrices: A is [M,K] or [K,M], B is [K,N] or [N,K].
  int64_t lda(const GemmCase& gc) const { return gc.trans_a ? gc.m : gc.k; }
  int64_t ldb(const GemmCase& gc) const { return gc.trans_b ? gc.k : gc.n; }
};

// The FP8 operands of one case: A [M,K] as activations (1×128 tiles), B [N,K] as weights (128×128
// blocks), from uniform(-1, 1) values; C [M,N].
struct Fp8Operands {
  int64_t m, n, k;
  std::vector<float> x;  // A in f32, kept to time its quantization
  std::vector<uint8_t> a, b;
  std::vector<float> sa, sb, c;
  explicit Fp8Operands(const GemmCase& gc)
      : m(gc.m), n(gc.n), k(gc.k), x(gc.m * gc.k), a(gc.m * gc.k), b(gc.n * gc.k),
        sa(gc.m * cpu::fp8_num_blocks(gc.k, 128)),
        sb(cpu::fp8_num_blocks(gc.n, 128) * cpu::fp8_num_blocks(gc.k, 128)), c(gc.m * gc.n) {
    Rng rng(4321);
    for (float& v : x) v = (float)rng.uniform(-1, 1);
    std::vector<float> w(n * k);
    for (float& v : w) v = (float)rng.uniform(-1, 1);
    quantize_a();
    cpu::weight_quant_f32(w.data(), n, k, 128, b.data(), sb.data());
  }
  void quantize_a() { cpu::act_quant_f32(x.data(), m, k, 128, false, a.data(), sa.data()); }
  cpu::Fp8GemmArgs args() {
    cpu::Fp8GemmArgs g;
    g.a = a.data(), g.a_scale = sa.data(), g.b = b.data(), g.b_scale = sb.data(), g.c = c.data();
    g.M = m, g.N = n, g.K = k;  // block 128, a_scale_rows 1, b_scale_rows 128, fp32_promoted
    return g;
  }
};

// The FP8 rows of one case at one thread count: the GEMM, then A's quantization time (act_quant_f32
// splits rows over the same threads; under SEEKGRAD_NAIVE=1 it is the single-threaded plain loop).
void bench_fp8_case(bool json, const GemmCase& fp32_case, Fp8Operands& op, int threads, double peak,
                    double min_seconds) {
  GemmCase gc = fp32_case;  // the FP8 GEMM contracts A [M,K] with B [N,K]: NT
  gc.trans_a = false, gc.trans_b = true;
  static const std::string kernel = std::string("fp8_") + cpu::fp8_gemm_kernel_name(cpu::GemmKernel::automatic);
  const Timing t = time_it([&] { cpu::fp8_gemm(op.args()); }, min_seconds);
  print_result(json, gc, kernel.c_str(), threads, t, peak);
  const Timing q = time_it([&] { op.quantize_a(); }, min_seconds / 2);
  if (json) {
    std::printf(
        "{\"bench\":\"gemm\",\"case\":\"%s\",\"kernel\":\"fp8_quant_a\",\"m\":%lld,\"n\":%lld,\"k\":%lld,"
        "\"threads\":%d,\"ms\":%.4f,\"median_ms\":%.4f,\"gemm_ms\":%.4f}\n",
        gc.label, (long long)gc.m, (long long)gc.n, (long long)gc.k, threads, q.best_ms, q.median_ms, t.best_ms);
  } else {
    std::printf("%-8s %-11s %6lld %6s %6lld %5s %7d %10.3f %10.3f %8s %11s %6s  (%.0f%% of the fp8 GEMM time)\n",
                gc.label, "fp8_quant_a", (long long)gc.m, "-", (long long)gc.k, "-", threads, q.best_ms, q.median_ms, "-",
                "-", "-", 100.0 * q.best_ms / t.best_ms);
  }
  std::fflush(stdout);
}

}  // namespace

int bench_gemm(const GemmBenchOptions& options) {
  const double min_seconds = options.quick ? 0.05 : 0.3;
  const int saved_threads = num_threads();

  // 1. The ceiling, per thread count.
  std::vector<double> peak(options.threads.size());
  for (size_t i = 0; i < options.threads.size(); i++) {
    peak[i] = cpu::measure_fma_peak_gflops(options.threads[i], options.quick ? 0.1 : 0.3);
    if (options.json)
      std::printf("{\"bench\":\"fma_peak\",\"threads\":%d,\"gflops\":%.2f}\n", options.threads[i], peak[i]);
  }
  const char* kernel = cpu::gemm_kernel_name(cpu::GemmKernel::automatic);
  if (!options.json) {
    std::printf("gemm_f32 (micro-kernel: %s). FMA peak:", kernel);
    for (size_t i = 0; i < options.threads.size(); i++)
      std::printf("  %d thread%s %.1f GFLOP/s", options.threads[i], options.threads[i] == 1 ? "" : "s", peak[i]);
    std::printf("\n");
    if (options.fp8)
      std::printf("fp8_%s rows: fp8_gemm (E4M3 codes, 1x128 / 128x128 scales, fp32_promoted): decoded to f32 and run on "
                  "FMA micro-kernels, so %%peak is against the same FMA peak.\n",
                  cpu::fp8_gemm_kernel_name(cpu::GemmKernel::automatic));
    std::printf("\n");
    print_header();
  }

  // 2 + 3. The cases.
  std::vector<GemmCase> cases;
  for (int64_t s : options.square_sizes)
    if (!options.quick || s <= 1024) cases.push_back({"square", s, s, s, false, false});
  const int64_t T = 2048;
  const std::vector<std::pair<int64_t, int64_t>> linear_nk = {{128, 128}, {256, 256},  {512, 128},
                                                              {128, 512}, {4096, 256}, {256, 4096}};
  for (auto [n, k] : linear_nk) {
    cases.push_back({"forward", T, n, k, false, true});
    cases.push_back({"dX", T, k, n, false, false});
    cases.push_back({"dW", n, k, T, true, false});
  }
  for (const GemmCase& gc : cases) {
    GemmOperands op(gc);
    const bool fp8_case = options.fp8 && (std::string(gc.label) == "square" || std::string(gc.label) == "forward");
    std::vector<Fp8Operands> fp8_op;
    if (fp8_case) fp8_op.emplace_back(gc);
    for (size_t i = 0; i < options.threads.size(); i++) {
      set_num_threads(options.threads[i]);
      const Timing t = time_it(
          [&] {
            cpu::gemm_f32_with(cpu::GemmKernel::automatic, gc.trans_a, gc.trans_b, gc.m, gc.n, gc.k, 1.0f,
                               op.a.data(), op.lda(gc), op.b.data(), op.ldb(gc), 0.0f, op.c.data(), gc.n);
          },
          min_seconds);
      print_result(options.json, gc, kernel, options.threads[i], t, peak[i]);
      if (fp8_case) bench_fp8_case(options.json, gc, fp8_op[0], options.threads[i], peak[i], min_seconds);
    }
  }

  // 4. One thread, each micro-kernel this CPU has, then the naive loop: what SIMD width and blocking buy.
  const auto one = std::find(options.threads.begin(), options.threads.end(), 1);
  const double peak_1 = one != options.threads.end() ? peak[one - options.threads.begin()]
                                                     : cpu::measure_fma_peak_gflops(1, 0.1);
  set_num_threads(1);
  const int64_t s = options.quick ? 512 : 1024;
  GemmCase square{"square", s, s, s, false, false};
  GemmOperands op(square);
  for (cpu::GemmKernel k : {cpu::GemmKernel::scalar, cpu::GemmKernel::avx2, cpu::GemmKernel::avx512}) {
    if (!cpu::gemm_kernel_available(k)) continue;
    const Timing t = time_it(
        [&] {
          cpu::gemm_f32_with(k, false, false, s, s, s, 1.0f, op.a.data(), s, op.b.data(), s, 0.0f, op.c.data(), s);
        },
        min_seconds);
    print_result(options.json, square, cpu::gemm_kernel_name(k), 1, t, peak_1);
  }
  for (int64_t n : {256, 512}) {
    if (options.quick && n > 256) break;
    GemmCase gc{"square", n, n, n, false, false};
    GemmOperands naive_op(gc);
    const Timing t = time_it(
        [&] {
          cpu::gemm_f32_naive(false, false, n, n, n, 1.0f, naive_op.a.data(), n, naive_op.b.data(), n, 0.0f,
                              naive_op.c.data(), n);
        },
        min_seconds);
    print_result(options.json, gc, "naive", 1, t, peak_1);
  }
  if (options.fp8) {
    GemmCase gc{"square", 256, 256, 256, false, true};
    Fp8Operands fp8_op(gc);
    const Timing t = time_it([&] { cpu::fp8_gemm_naive(fp8_op.args()); }, min_seconds);
    print_result(options.json, gc, "fp8_naive", 1, t, peak_1);
  }
  set_num_threads(saved_threads);
  return 0;
}

}  // namespace sg::bench
