// tools/chapters/ch15_gpu_kernels.cpp — Chapter 15: GPU kernels, told through the matrix multiply. Read
// ch15_gpu_kernels.md beside this file.
//
// The four CUDA GEMM versions of cuda/kernels/gemm.cuh (v1 naive, v2 shared-memory tiles, v3 register tiles,
// v4 tensor cores), in three measurements:
//   1. the analysis: from each version's tiling (cuda/gemm.h GemmTiling) the work per thread, the global-memory
//      loads per C element and per block, shared-memory reads per FMA and the arithmetic intensity;
//   2. the emulation (cuda/emu, any machine): v1–v4 on the CPU in both lane orders at a small ragged size,
//      against sg::cpu::gemm_f32_naive (for v4 on TF32-rounded inputs: cuda/emu/wmma.h, and within the TF32
//      bound of the plain f32 GEMM), with the barriers and fiber switches the emulator counted;
//   3. the GPU, when there is one (sg::cuda::available()): every version checked against the CPU on a ragged
//      transposed problem, then timed at 1024³..4096³ in TFLOP/s against the device's FP32 and TF32 peaks.
//
//   build/bin/ch15_gpu_kernels [--sizes 1024,2048,4096]
//
// What it is not: a tuned GEMM (cuBLAS reaches ~90% of peak; these are the first steps of the way there).
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "autograd/rng.h"
#include "cuda/cuda_backend.h"
#include "cuda/emu/emu.h"
#include "cuda/emu/wmma.h"
#include "cuda/gemm.h"
#include "ops/cpu/gemm.h"
#include "tools/chapters/chapter_check.h"

using namespace sg;

namespace {

// g++ fuses a·b + c into an FMA only where the target has one (__FP_FAST_FMAF); without, the emulated kernels
// and the CPU's naive loop round the same operations in the same order and agree to the bit (gemm.cuh says why).
#if defined(__FP_FAST_FMAF)
constexpr bool kExactBits = false;
#else
constexpr bool kExactBits = true;
#endif

const GemmTiling* const kTilings[] = {&kGemmV1Tiling, &kGemmV2Tiling, &kGemmV3Tiling, &kGemmV4Tiling};

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// ---- 1. the analysis ------------------------------------------------------------------------------------------

// Global-memory floats one block loads for a K-deep product: per K step a block_m × block_k tile of op(A) and a
// block_k × block_n tile of op(B); v1 shares nothing, so each of its threads loads its own 2K.
double block_loads(const GemmTiling& t, int64_t K) {
  if (!t.reuses_tiles) return (double)t.threads * 2.0 * K;
  return (double)ceil_div(K, t.block_k) * ((double)t.block_m * t.block_k + (double)t.block_k * t.block_n);
}
double loads_per_c(const GemmTiling& t, int64_t K) {
  const double c_per_block = t.reuses_tiles ? (double)t.block_m * t.block_n : (double)t.threads;
  return block_loads(t, K) / c_per_block;
}
// Shared-memory floats read per FMA: an owner of a reuse_m × reuse_n tile reads reuse_m + reuse_n operands
// per k for reuse_m·reuse_n FMAs (v1 reads shared memory never; it reads 2 floats of global memory per FMA).
double smem_per_fma(const GemmTiling& t) {
  return t.reuses_tiles ? (double)(t.reuse_m + t.reuse_n) / ((double)t.reuse_m * t.reuse_n) : 0.0;
}

// ---- 2. the emulation -----------------------------------------------------------------------------------------

std::vector<float> random_matrix(int64_t n, uint64_t seed) {
  Rng rng(seed);
  std::vector<float> v((size_t)n);
  for (float& x : v) x = (float)rng.uniform(-1.0, 1.0);
  return v;
}

// max over C of |got − want| / bound, bound = the rounding of a K-term f32 dot product with inputs rounded to
// `input_bits` of mantissa (23: f32, 10: TF32): (2·2^-(input_bits+1) + 2 (K + 2) 2^-24)·(|alpha| Σ|a||b| + |beta c|),
// with Σ|a||b| from `abs_ab` (= |A|·|B|, computed by the caller). <= 1 means within the bound.
double worst_error_ratio(const std::vector<float>& got, const std::vector<float>& want, const std::vector<float>& abs_ab,
                         const std::vector<float>& c0, float alpha, float beta, int64_t K, int input_bits) {
  const double input = input_bits >= 23 ? 0.0 : 2.0 * std::ldexp(1.0, -(input_bits + 1));
  const double per_term = input + 2.0 * (K + 2) * std::ldexp(1.0, -24);
  double worst = 0;
  for (size_t e = 0; e < got.size(); e++) {
    const double bound = per_term * (std::abs(alpha) * abs_ab[e] + std::abs(beta * c0[e])) + 1e-30;
    worst = std::max(worst, std::isfinite(got[e]) ? std::abs((double)got[e] - want[e]) / bound : INFINITY);
  }
  return worst;
}

std::vector<float> abs_product(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, const std::vector<float>& a,
                               int64_t lda, const std::vector<float>& b, int64_t ldb) {
  std::vector<float> abs_a(a.size()), abs_b(b.size()), out((size_t)(M * N));
  for (size_t i = 0; i < a.size(); i++) abs_a[i] = std::abs(a[i]);
  for (size_t i = 0; i < b.size(); i++) abs_b[i] = std::abs(b[i]);
  cpu::gemm_f32(trans_a, trans_b, M, N, K, 1.0f, abs_a.data(), lda, abs_b.data(), ldb, 0.0f, out.data(), N);
  return out;
}

// ---- 3. the GPU -------------------------------------------------------------------------------------------------

struct DeviceBuffer {
  float* ptr = nullptr;
  explicit DeviceBuffer(size_t n) : ptr(static_cast<float*>(cuda::device_malloc(n * sizeof(float)))) {}
  ~DeviceBuffer() { cuda::device_free(ptr); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
};

// Peak throughputs from SMs × clock × work per SM per clock (NVIDIA's architecture whitepapers): FP32 FMA lanes
// per SM (64 on sm_80, 128 on sm_86..sm_90), 2 flops each; dense TF32 tensor flops per SM per clock
// (1024 on sm_80, 256 on sm_86/89, 2048 on sm_90). 0 = not in this table.
double fp32_peak_tflops(const cuda::DeviceProperties& p) {
  const int lanes = (p.major == 8 && p.minor == 0) || p.major < 8 ? 64 : 128;
  return (double)p.sm_count * p.clock_khz * 1e3 * lanes * 2 / 1e12;
}
double tf32_peak_tflops(const cuda::DeviceProperties& p) {
  const int per_sm = p.major == 8 && p.minor == 0 ? 1024 : p.major == 8 ? 256 : p.major == 9 ? 2048 : 0;
  return (double)p.sm_count * p.clock_khz * 1e3 * per_sm / 1e12;
}

// Milliseconds per call of `launch`: one warm-up, then as many calls as fit in ~0.2 s (1..20), each timed as a
// whole by std::chrono between two synchronize() calls (the launch returns before the kernel ends).
double time_ms(const std::function<void()>& launch) {
  using clock = std::chrono::steady_clock;
  launch();
  cuda::synchronize();
  auto t0 = clock::now();
  launch();
  cuda::synchronize();
  const double first = std::chrono::duration<double, std::milli>(clock::now() - t0).count();
  const int reps = std::clamp((int)(200.0 / std::max(first, 1e-3)), 1, 20);
  t0 = clock::now();
  for (int r = 0; r < reps; r++) launch();
  cuda::synchronize();
  return std::chrono::duration<double, std::milli>(clock::now() - t0).count() / reps;
}

std::vector<int64_t> parse_sizes(const std::string& s) {
  std::vector<int64_t> sizes;
  size_t pos = 0;
  while (pos < s.size()) {
    const size_t next = s.find(',', pos);
    sizes.push_back(std::stoll(s.substr(pos, next - pos)));
    if (next == std::string::npos) break;
    pos = next + 1;
  }
  return sizes;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Chapter 15: GPU kernels (the CUDA GEMM in four versions: traffic, emulation, GPU timings)"};
  std::string sizes_arg = "1024,2048,4096";
  app.add_option("--sizes", sizes_arg, "square GPU sizes to time, comma separated");
  CLI11_PARSE(app, argc, argv);
  const std::vector<int64_t> sizes = parse_sizes(sizes_arg);
  chapter::Checks checks;

  // ---- 1 ----
  const int64_t Ka = 4096;
  std::printf("Chapter 15 — GPU kernels: the matrix multiply in four versions\n\n");
  std::printf("1. Work and global-memory traffic from each version's tiling (M = N = K = %lld)\n\n", (long long)Ka);
  std::printf("  %-16s %9s %7s %7s %10s %12s %9s %12s %10s %9s %9s\n", "version", "C tile", "threads", "C/thr",
              "FMA/thr", "loads/C", "B/C", "MB/block", "smem/FMA", "FLOP/B", "H100 roof");
  const char* formulas[] = {"2K", "2K/32", "2K/128", "2K/128"};
  std::vector<double> intensity;
  for (int v = 0; v < 4; v++) {
    const GemmTiling& t = *kTilings[v];
    const double lc = loads_per_c(t, Ka), bytes_c = 4 * lc, ai = 2.0 * Ka / bytes_c;
    intensity.push_back(ai);
    // The roofline of an H100 SXM (published: 3.35 TB/s HBM3, 67 TFLOP/s FP32, 495 TF32 dense) if every load
    // the kernel issues went to DRAM: min(peak, FLOP/B × bandwidth). Caches make v1/v2 do better than this.
    const double roof = std::min(v == 3 ? 495.0 : 67.0, ai * 3.35);
    char tile[32], loads[32];
    std::snprintf(tile, sizeof tile, "%dx%d", t.block_m, t.block_n);
    std::snprintf(loads, sizeof loads, "%s=%.0f", formulas[v], lc);
    std::printf("  %-16s %9s %7d %7d %10lld %12s %9.0f %12.3f %10.4g %9.4g %9.3g\n", t.name, tile, t.threads,
                t.thread_m * t.thread_n, (long long)t.thread_m * t.thread_n * Ka, loads, bytes_c,
                block_loads(t, Ka) * 4 / 1e6, smem_per_fma(t), ai, roof);
  }
  std::printf("  (loads/C: floats of A and B loaded from global memory per C element; B/C = 4 × that; MB/block: bytes one\n"
              "   block loads; smem/FMA: shared-memory floats read per FMA (v1 reads 2 floats of GLOBAL memory per FMA);\n"
              "   FLOP/B = 2K / (B/C); H100 roof = min(peak, FLOP/B × 3.35 TB/s) in TFLOP/s, as if every load went to DRAM)\n\n");
  checks.near("v1 bytes per C element = 2K·4", 4 * loads_per_c(kGemmV1Tiling, Ka), 2.0 * Ka * 4, 0);
  checks.near("v2 bytes per C element = (K·2/32)·4", 4 * loads_per_c(kGemmV2Tiling, Ka), Ka * 2.0 / 32 * 4, 0);
  checks.near("v3 bytes per C element = (K·2/128)·4", 4 * loads_per_c(kGemmV3Tiling, Ka), Ka * 2.0 / 128 * 4, 0);
  checks.near("v4 bytes per C element = v3's", 4 * loads_per_c(kGemmV4Tiling, Ka), 4 * loads_per_c(kGemmV3Tiling, Ka), 0);
  checks.near("FLOP/byte v1 (= 1/4)", intensity[0], 0.25, 0);
  checks.near("FLOP/byte v2 (= 32·32 / (2·64))", intensity[1], 8, 0);
  checks.near("FLOP/byte v3 (= 128·128 / (2·256))", intensity[2], 32, 0);
  checks.near("v2 shared reads per FMA", smem_per_fma(kGemmV2Tiling), 2, 0);
  checks.near("v3 shared reads per FMA (16 per 64)", smem_per_fma(kGemmV3Tiling), 0.25, 0);
  std::printf("\n");

  // ---- 2 ----
  const int64_t M = 130, N = 70, K = 150;
  const float alpha = 1.0f, beta = 0.5f;
  std::printf("2. The emulation: C[%lld,%lld] = A·B + 0.5·C, K = %lld, on the CPU (cuda/emu), against gemm_f32_naive\n\n",
              (long long)M, (long long)N, (long long)K);
  const std::vector<float> a = random_matrix(M * K, 1), b = random_matrix(K * N, 2), c0 = random_matrix(M * N, 3);
  std::vector<float> want = c0;
  cpu::gemm_f32_naive(false, false, M, N, K, alpha, a.data(), K, b.data(), N, beta, want.data(), N);
  const std::vector<float> abs_ab = abs_product(false, false, M, N, K, a, K, b, N);
  // v4's reference: the same naive loop on A and B rounded to TF32 as v4 rounds them (wmma::__float_to_tf32).
  std::vector<float> a32 = a, b32 = b, want_tf32 = c0;
  for (float& x : a32) x = nvcuda::wmma::__float_to_tf32(x);
  for (float& x : b32) x = nvcuda::wmma::__float_to_tf32(x);
  cpu::gemm_f32_naive(false, false, M, N, K, alpha, a32.data(), K, b32.data(), N, beta, want_tf32.data(), N);
  void (*const emu_versions[])(const GemmArgs&) = {cuda_emu::gemm_v1_naive, cuda_emu::gemm_v2_smem, cuda_emu::gemm_v3_regtile,
                                                   cuda_emu::gemm_v4_mma};
  std::printf("  %-16s %7s %8s %9s %10s %9s %9s %16s\n", "version", "blocks", "threads", "barriers", "switches",
              "fwd ms", "rev ms", kExactBits ? "== CPU bits" : "err/bound");
  bool all_match = true, orders_agree = true, counts_follow = true, v4_counts_follow = false;
  double v4_ratio_f32 = INFINITY, v4_max_err_f32 = 0;
  for (int v = 0; v < 4; v++) {
    const GemmTiling& t = *kTilings[v];
    std::vector<float> got[2];
    double ms[2];
    emu::LaunchStats stats;
    for (int o = 0; o < 2; o++) {
      emu::LaneOrderScope scope(o == 0 ? emu::LaneOrder::forward : emu::LaneOrder::reverse);
      got[o] = c0;
      const auto t0 = std::chrono::steady_clock::now();
      emu_versions[v](GemmArgs{false, false, M, N, K, alpha, a.data(), K, b.data(), N, beta, got[o].data(), N});
      ms[o] = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      if (o == 0) stats = emu::last_launch();
    }
    // v4 against the naive loop on its TF32 inputs: the same f32 sums (the TF32 products are exact), so the
    // same bits, or the f32 bound where g++ fuses (the bound's Σ|a||b| from the unrounded inputs: 2^-10 larger
    // at most, covered by the bound's doubling).
    const std::vector<float>& ref = v == 3 ? want_tf32 : want;
    const bool same = std::memcmp(got[0].data(), ref.data(), ref.size() * 4) == 0;
    const double ratio = worst_error_ratio(got[0], ref, abs_ab, c0, alpha, beta, K, 23);
    all_match = all_match && (kExactBits ? same : ratio <= 1);
    orders_agree = orders_agree && std::memcmp(got[0].data(), got[1].data(), want.size() * 4) == 0;
    const int64_t blocks = ceil_div(M, t.block_m) * ceil_div(N, t.block_n);
    const int64_t k_tiles = t.reuses_tiles ? ceil_div(K, t.block_k) : 0;
    if (v < 3) {
      counts_follow = counts_follow && stats.blocks == blocks && stats.barriers == blocks * 2 * k_tiles &&
                      stats.switches == blocks * t.threads * (2 * k_tiles + 1);
    } else {
      // v4's warps also meet at each wmma call and __syncwarp (cuda/emu/wmma.h), once per warp: 8 fill_fragment,
      // per K tile 2 × (4 + 2 loads + 8 mma_sync), per accumulator a store between two __syncwarp.
      const int64_t warps = t.threads / 32, meetings = 8 + k_tiles * 2 * (4 + 2 + 8) + 8 * 3;
      v4_counts_follow = stats.blocks == blocks && stats.barriers == blocks * 2 * k_tiles &&
                         stats.warp_exchanges == blocks * warps * meetings &&
                         stats.switches == blocks * t.threads * (2 * k_tiles + meetings + 1);
      // What TF32 costs: v4 against the plain f32 loop, within the TF32 bound (inputs rounded by 2^-11 each,
      // the f32 sums of both sides: K doubled as in section 3).
      v4_ratio_f32 = worst_error_ratio(got[0], want, abs_ab, c0, alpha, beta, 2 * K, 10);
      for (size_t e = 0; e < want.size(); e++) v4_max_err_f32 = std::max(v4_max_err_f32, (double)std::abs(got[0][e] - want[e]));
    }
    char result[32];
    if (kExactBits) std::snprintf(result, sizeof result, "%s", same ? "yes" : "NO");
    else std::snprintf(result, sizeof result, "%.3g", ratio);
    std::printf("  %-16s %7lld %8lld %9lld %10lld %9.1f %9.1f %16s\n", t.name, (long long)stats.blocks,
                (long long)stats.threads_per_block, (long long)stats.barriers, (long long)stats.switches, ms[0], ms[1],
                result);
  }
  std::printf("  (v4 against gemm_f32_naive on its TF32-rounded inputs. barriers: __syncthreads openings summed over\n"
              "   blocks = blocks × 2 per K tile; switches: fiber switches = blocks × threads × (barriers per block + 1),\n"
              "   plus for v4 one per lane at each of its warp meetings; v1 has no barrier: one switch per lane)\n");
  std::printf("  gemm_v4_mma vs the plain f32 gemm_f32_naive: max |err| %.3g, max |err| / TF32 bound %.3g (<= 1 passes)\n\n",
              v4_max_err_f32, v4_ratio_f32);
  checks.that(kExactBits ? "v1, v2, v3 emulated == CPU naive, same bits; v4 == CPU naive on TF32 inputs"
                         : "v1, v2, v3 (v4 on TF32 inputs) emulated within the f32 bound",
              all_match);
  checks.that("forward and reverse lane orders give the same bits", orders_agree);
  checks.that("barriers and switches follow from the tiling", counts_follow);
  checks.that("v4's barriers, warp meetings and switches follow from its tiling", v4_counts_follow);
  checks.at_most("v4 emulated vs the f32 CPU GEMM, err / TF32 bound", v4_ratio_f32, 1);
  std::printf("\n");

  // ---- 3 ----
  std::printf("3. On the GPU\n\n");
  if (!cuda::available()) {
    std::printf("  no CUDA device here (%s): the GPU timings are skipped; sections 1 and 2 are the analysis.\n",
#if defined(SEEKGRAD_HAS_CUDA)
                "the build has the CUDA backend, the machine has no device"
#else
                "this build has no CUDA backend; configure with -DSEEKGRAD_CUDA=ON"
#endif
    );
    return checks.exit_code();
  }
  const cuda::DeviceProperties dev = cuda::device_properties(0);
  const double fp32_peak = fp32_peak_tflops(dev), tf32_peak = tf32_peak_tflops(dev);
  std::printf("  %s: compute capability %d.%d, %d SMs at %.0f MHz, %.1f GiB; peak FP32 %.1f TFLOP/s, TF32 %s TFLOP/s\n\n",
              dev.name.c_str(), dev.major, dev.minor, dev.sm_count, dev.clock_khz / 1e3, dev.memory_bytes / 1073741824.0,
              fp32_peak, tf32_peak > 0 ? std::to_string((int)tf32_peak).c_str() : "(not in the table)");
  void (*const gpu_versions[])(const GemmArgs&) = {cuda::gemm_v1_naive, cuda::gemm_v2_smem, cuda::gemm_v3_regtile,
                                                   cuda::gemm_v4_mma};
  const bool has_tf32 = dev.major >= 8;

  {  // correctness: a ragged, doubly transposed problem with alpha and beta, every version against the CPU
    const int64_t m = 1000, n = 1030, k = 1020;   // A stored [k, m], B stored [n, k]
    const float ga = 0.5f, gb = 0.25f;
    const std::vector<float> ha = random_matrix(k * m, 11), hb = random_matrix(n * k, 12), hc = random_matrix(m * n, 13);
    std::vector<float> ref = hc;
    cpu::gemm_f32(true, true, m, n, k, ga, ha.data(), m, hb.data(), k, gb, ref.data(), n);
    const std::vector<float> bound_ab = abs_product(true, true, m, n, k, ha, m, hb, k);
    DeviceBuffer da(ha.size()), db(hb.size()), dc(hc.size());
    cuda::copy_host_to_device(da.ptr, ha.data(), ha.size() * 4);
    cuda::copy_host_to_device(db.ptr, hb.data(), hb.size() * 4);
    std::printf("  C[%lld,%lld] = 0.5·Aᵀ·Bᵀ + 0.25·C, K = %lld, vs the CPU (max |err| / rounding bound; <= 1 passes):\n",
                (long long)m, (long long)n, (long long)k);
    for (int v = 0; v < 4; v++) {
      if (v == 3 && !has_tf32) continue;
      cuda::copy_host_to_device(dc.ptr, hc.data(), hc.size() * 4);
      gpu_versions[v](GemmArgs{true, true, m, n, k, ga, da.ptr, m, db.ptr, k, gb, dc.ptr, n});
      cuda::synchronize();
      std::vector<float> got(hc.size());
      cuda::copy_device_to_host(got.data(), dc.ptr, got.size() * 4);
      // the CPU reference is f32 too: the bound is doubled to cover both sides' rounding
      const double ratio = worst_error_ratio(got, ref, bound_ab, hc, ga, gb, 2 * k, v == 3 ? 10 : 23);
      std::printf("    %-16s %.3g\n", kTilings[v]->name, ratio);
      checks.at_most(std::string(kTilings[v]->name) + " on the GPU vs CPU, err / bound", ratio, 1);
    }
    std::printf("\n");
  }

  std::printf("  %6s", "size");
  for (int v = 0; v < 4; v++) std::printf(" %22s", kTilings[v]->name);
  std::printf("\n");
  std::vector<double> last_tflops(4, 0);
  for (int64_t s : sizes) {
    const std::vector<float> ha = random_matrix(s * s, 21), hb = random_matrix(s * s, 22);
    DeviceBuffer da(ha.size()), db(hb.size()), dc(ha.size());
    cuda::copy_host_to_device(da.ptr, ha.data(), ha.size() * 4);
    cuda::copy_host_to_device(db.ptr, hb.data(), hb.size() * 4);
    std::printf("  %6lld", (long long)s);
    for (int v = 0; v < 4; v++) {
      if (v == 3 && !has_tf32) {
        std::printf(" %22s", "(needs sm_80)");
        continue;
      }
      const GemmArgs g{false, false, s, s, s, 1.0f, da.ptr, s, db.ptr, s, 0.0f, dc.ptr, s};
      const double ms = time_ms([&] { gpu_versions[v](g); });
      const double tflops = 2.0 * s * s * s / (ms * 1e-3) / 1e12;
      const double peak = v == 3 ? tf32_peak : fp32_peak;
      char cell[48];
      if (peak > 0) std::snprintf(cell, sizeof cell, "%.2f TF/s %4.1f%%", tflops, 100 * tflops / peak);
      else std::snprintf(cell, sizeof cell, "%.2f TF/s", tflops);
      std::printf(" %22s", cell);
      last_tflops[v] = tflops;
    }
    std::printf("\n");
  }
  std::printf("  (TFLOP/s = 2·size³ / time; %% of the FP32 peak for v1–v3, of the TF32 peak for v4)\n\n");
  checks.at_least("v3 / v1 speed at the largest size", last_tflops[2] / last_tflops[0], 1);
  return checks.exit_code();
}
