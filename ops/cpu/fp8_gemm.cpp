// ops/cpu/fp8_gemm.cpp — the blockwise FP8 GEMM of ops/cpu/fp8_gemm.h.
// Compiled with -ffp-contract=off (CMakeLists.txt): no a·b + c is fused into an FMA behind our back, so
// the naive loop and the fast version round the same operations the same way.
//
// ---- Why the fast version gives the naive loop's bits (fp32_promoted) -----------------------------
// A decoded E4M3 value has a 4-bit significand and lies in [2^-9, 448], so the product of two of them
// has at most 8 significant bits and lies in [2^-18, 2^18]: it is EXACT in f32. The naive block sum
// p = p + round(a·b) is therefore p = round(p + a·b), which is exactly what one FMA computes:
// fma(a, b, p) = round(a·b + p). A register-tile micro-kernel that runs the k loop of ONE K block in
// order (k = k0, k0+1, ...) into a zeroed accumulator per C element computes the same p, bit for bit.
// The promotion c = c + (p · s_a) · s_b is then done with separate multiplies and an add (never an
// FMA), in the naive order. Every C element is computed whole by one thread, so threads change nothing.
// (NaN inputs, code 0x7F, give NaN in both versions, but not necessarily with the same sign bit.)
//
// ---- Layout --------------------------------------------------------------------------------------
// Both operands are decoded once per call (a 256-entry table, in parallel) into f32 panels, k-major
// over the whole of K, zero-padded to whole tiles, in a per-thread buffer that only grows:
//   A: ceil(M/MR) panels [K][MR]: Ap[p][k][i] = dec(a[(p·MR + i)·K + k])
//   B: ceil(N/NR) panels [K][NR]: Bp[p][k][j] = dec(b[(p·NR + j)·K + k])
// The K block kb of a panel is the contiguous slice [k0, k1) of it. C is cut into macro blocks of
// MC rows × NC columns (AVX-512: 168 × 256; the B slice [block][NC] stays in L2), split over the
// threads; inside one:
//   for kb:  for each MR-row panel:  for each NR-column panel:
//              micro-kernel: p[MR][NR] = Σ_{k0 ≤ k < k1} Ap·Bp (FMA, k in order);  C += (p·sa)·sb
// Tiles at the bottom / right edge run on a small local copy of C. Micro-kernels: AVX-512 14×32,
// AVX2 6×16, scalar 4×16, picked at run time as gemm.cpp picks its own.
//
// The limited modes (limited_promoted, limited) stay on the naive arithmetic, rows split over the
// threads: they model a low-precision accumulator for experiments (tools/chapters/ch07_fp8), not a
// path anything runs for speed.
#include "ops/cpu/fp8_gemm.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>
#include <stdexcept>
#include <string>

#include "autograd/runtime.h"
#include "ops/cpu/runtime.h"
#include "ops/fp8.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define SEEKGRAD_FP8_X86_KERNELS 1
#endif

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

// ================================ v2: the fast version =============================================

namespace {

// The 256 E4M3 codes decoded, once.
struct E4m3Table {
  float v[256];
  E4m3Table() {
    for (int c = 0; c < 256; c++) v[c] = lowp::e4m3_to_f32((uint8_t)c);
  }
};
const float* e4m3_table() {
  static const E4m3Table table;
  return table.v;
}

// A 64-byte aligned float buffer that only grows (one per calling thread), so repeated calls do not
// allocate. The workers of parallel_for only read and write the caller's buffer.
struct Fp8PanelBuffer {
  float* data = nullptr;
  size_t capacity = 0;  // floats
  float* get(size_t n) {
    if (n > capacity) {
      std::free(data);
      capacity = (n + 15) / 16 * 16;
      data = static_cast<float*>(std::aligned_alloc(64, capacity * sizeof(float)));
      if (!data) throw std::bad_alloc();
    }
    return data;
  }
  ~Fp8PanelBuffer() { std::free(data); }
};

// Decodes `rows` rows of codes [rows, K] into ceil(rows/width) panels [K][width] (zero-padded rows),
// panels [p0, p1) only. Rows are read in runs of 16 k (one cache line of codes per row holds 64).
void decode_panels(const uint8_t* src, int64_t rows, int64_t K, int width, int64_t p0, int64_t p1, float* dst) {
  const float* lut = e4m3_table();
  for (int64_t p = p0; p < p1; p++) {
    float* panel = dst + p * K * width;
    const int64_t r0 = p * width, valid = std::min<int64_t>(width, rows - r0);
    for (int64_t kk = 0; kk < K; kk += 16) {
      const int64_t ke = std::min<int64_t>(K, kk + 16);
      for (int64_t i = 0; i < valid; i++) {
        const uint8_t* row = src + (r0 + i) * K;
        for (int64_t k = kk; k < ke; k++) panel[k * width + i] = lut[row[k]];
      }
      for (int64_t i = valid; i < width; i++)
        for (int64_t k = kk; k < ke; k++) panel[k * width + i] = 0.0f;
    }
  }
}

// Every micro-kernel has the same contract, for one MR×NR tile of C and one K block of kc steps:
//   a: A panel slice [kc][MR], b: B panel slice [kc][NR] (64-byte aligned), c: the tile, row stride ldc
//   p[i][j] = Σ_k a[k][i]·b[k][j]  (k in order, from 0)   then   c[i][j] = c[i][j] + (p[i][j]·sa[i])·sb[j]
using Fp8KernelFn = void (*)(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, const float* sa,
                             const float* sb);

// The portable fallback. With -ffp-contract=off, acc + a·b is a multiply and an add; the product is
// exact, so this is the same rounding as an FMA.
constexpr int kScalarMR = 4, kScalarNR = 16;
void fp8_kernel_scalar_4x16(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, const float* sa,
                            const float* sb) {
  float acc[kScalarMR][kScalarNR] = {};
  for (int64_t k = 0; k < kc; k++) {
    for (int i = 0; i < kScalarMR; i++) {
#pragma omp simd
      for (int j = 0; j < kScalarNR; j++) acc[i][j] = acc[i][j] + a[i] * b[j];
    }
    a += kScalarMR;
    b += kScalarNR;
  }
  for (int i = 0; i < kScalarMR; i++)
    for (int j = 0; j < kScalarNR; j++) c[i * ldc + j] = c[i * ldc + j] + (acc[i][j] * sa[i]) * sb[j];
}

#ifdef SEEKGRAD_FP8_X86_KERNELS
// AVX2 + FMA: a 6×16 tile = 12 ymm accumulators (as gemm.cpp).
constexpr int kAvx2MR = 6, kAvx2NR = 16;
__attribute__((target("avx2,fma"))) void fp8_kernel_avx2_6x16(int64_t kc, const float* a, const float* b, float* c,
                                                                int64_t ldc, const float* sa, const float* sb) {
  __m256 acc[kAvx2MR][2];
#pragma GCC unroll 6
  for (int i = 0; i < kAvx2MR; i++) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
  for (int64_t k = 0; k < kc; k++) {
    const __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
#pragma GCC unroll 6
    for (int i = 0; i < kAvx2MR; i++) {
      const __m256 a_ik = _mm256_broadcast_ss(a + i);
      acc[i][0] = _mm256_fmadd_ps(a_ik, b0, acc[i][0]);  // exact product: = acc + a·b rounded once
      acc[i][1] = _mm256_fmadd_ps(a_ik, b1, acc[i][1]);
    }
    a += kAvx2MR;
    b += kAvx2NR;
  }
  const __m256 sb0 = _mm256_loadu_ps(sb), sb1 = _mm256_loadu_ps(sb + 8);
#pragma GCC unroll 6
  for (int i = 0; i < kAvx2MR; i++) {
    const __m256 sa_i = _mm256_set1_ps(sa[i]);
    float* p = c + i * ldc;
    // The promotion: c + (p·sa)·sb, two multiplies and an add, in the naive order. No FMA here.
    _mm256_storeu_ps(p, _mm256_add_ps(_mm256_loadu_ps(p), _mm256_mul_ps(_mm256_mul_ps(acc[i][0], sa_i), sb0)));
    _mm256_storeu_ps(p + 8, _mm256_add_ps(_mm256_loadu_ps(p + 8), _mm256_mul_ps(_mm256_mul_ps(acc[i][1], sa_i), sb1)));
  }
}

// AVX-512: a 14×32 tile = 28 zmm accumulators (as gemm.cpp).
constexpr int kAvx512MR = 14, kAvx512NR = 32;
__attribute__((target("avx512f"))) void fp8_kernel_avx512_14x32(int64_t kc, const float* a, const float* b, float* c,
                                                                 int64_t ldc, const float* sa, const float* sb) {
  __m512 acc[kAvx512MR][2];
#pragma GCC unroll 14
  for (int i = 0; i < kAvx512MR; i++) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
  for (int64_t k = 0; k < kc; k++) {
    const __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16);
#pragma GCC unroll 14
    for (int i = 0; i < kAvx512MR; i++) {
      const __m512 a_ik = _mm512_set1_ps(a[i]);
      acc[i][0] = _mm512_fmadd_ps(a_ik, b0, acc[i][0]);  // exact product: = acc + a·b rounded once
      acc[i][1] = _mm512_fmadd_ps(a_ik, b1, acc[i][1]);
    }
    a += kAvx512MR;
    b += kAvx512NR;
  }
  const __m512 sb0 = _mm512_loadu_ps(sb), sb1 = _mm512_loadu_ps(sb + 16);
#pragma GCC unroll 14
  for (int i = 0; i < kAvx512MR; i++) {
    const __m512 sa_i = _mm512_set1_ps(sa[i]);
    float* p = c + i * ldc;
    // The promotion: c + (p·sa)·sb, two multiplies and an add, in the naive order. No FMA here.
    _mm512_storeu_ps(p, _mm512_add_ps(_mm512_loadu_ps(p), _mm512_mul_ps(_mm512_mul_ps(acc[i][0], sa_i), sb0)));
    _mm512_storeu_ps(p + 16, _mm512_add_ps(_mm512_loadu_ps(p + 16), _mm512_mul_ps(_mm512_mul_ps(acc[i][1], sa_i), sb1)));
  }
}
#endif  // SEEKGRAD_FP8_X86_KERNELS

struct Fp8Kernel {
  const char* name;
  Fp8KernelFn fn;
  int mr, nr;
  int64_t mc_panels, nc_panels;  // macro block: mc_panels·mr rows × nc_panels·nr columns
};

constexpr int kMaxMR = 14, kMaxNR = 32, kMaxNC = 512;  // kMaxNC: the most columns of a macro block
constexpr Fp8Kernel kScalarFp8{"scalar", fp8_kernel_scalar_4x16, kScalarMR, kScalarNR, 32, 16};
static_assert(kScalarFp8.nc_panels * kScalarNR <= kMaxNC);
#ifdef SEEKGRAD_FP8_X86_KERNELS
constexpr Fp8Kernel kAvx2Fp8{"avx2", fp8_kernel_avx2_6x16, kAvx2MR, kAvx2NR, 24, 16};
constexpr Fp8Kernel kAvx512Fp8{"avx512", fp8_kernel_avx512_14x32, kAvx512MR, kAvx512NR, 12, 8};
static_assert(kAvx2Fp8.nc_panels * kAvx2NR <= kMaxNC && kAvx512Fp8.nc_panels * kAvx512NR <= kMaxNC);
#endif

const Fp8Kernel& fp8_kernel(GemmKernel kind) {
  if (kind == GemmKernel::automatic)
    kind = cpu_has_avx512() ? GemmKernel::avx512 : cpu_has_avx2_fma() ? GemmKernel::avx2 : GemmKernel::scalar;
  switch (kind) {
    case GemmKernel::avx512:
#ifdef SEEKGRAD_FP8_X86_KERNELS
      if (cpu_has_avx512()) return kAvx512Fp8;
#endif
      throw std::runtime_error("[fp8_gemm] the avx512 micro-kernel needs a CPU with AVX-512F");
    case GemmKernel::avx2:
#ifdef SEEKGRAD_FP8_X86_KERNELS
      if (cpu_has_avx2_fma()) return kAvx2Fp8;
#endif
      throw std::runtime_error("[fp8_gemm] the avx2 micro-kernel needs a CPU with AVX2 and FMA");
    case GemmKernel::scalar:
    case GemmKernel::automatic: break;
  }
  return kScalarFp8;
}

// One macro block of C: rows of A panels [ip0, ip1), columns of B panels [jp0, jp1), all K blocks.
void fp8_macro_block(const Fp8Kernel& uk, const Fp8GemmArgs& g, const float* Ap, const float* Bp, int64_t ip0,
                     int64_t ip1, int64_t jp0, int64_t jp1) {
  const int mr = uk.mr, nr = uk.nr;
  const int64_t KB = (g.K + g.block - 1) / g.block;
  const int64_t m_begin = ip0 * mr, m_end = std::min(g.M, ip1 * mr);
  const int64_t n_begin = jp0 * nr, n_end = std::min(g.N, jp1 * nr);
  for (int64_t m = m_begin; m < m_end; m++) std::memset(g.c + m * g.N + n_begin, 0, (n_end - n_begin) * sizeof(float));
  // The scales of this K block: sa per row panel, sb for all the block's columns (once per kb: the
  // integer divisions are not free at one tile per 128·MR·NR FMAs).
  alignas(64) float sa[kMaxMR], sb_block[kMaxNC], tile[kMaxMR * kMaxNR];
  for (int64_t kb = 0; kb < KB; kb++) {
    const int64_t k0 = kb * g.block, kc = std::min(g.block, g.K - k0);
    for (int64_t j = 0; j < (jp1 - jp0) * nr; j++)
      sb_block[j] = n_begin + j < g.N ? g.b_scale[((n_begin + j) / g.b_scale_rows) * KB + kb] : 0.0f;
    for (int64_t ip = ip0; ip < ip1; ip++) {
      const int64_t m0 = ip * mr, mv = std::min<int64_t>(mr, g.M - m0);
      for (int i = 0; i < mr; i++) sa[i] = i < mv ? g.a_scale[((m0 + i) / g.a_scale_rows) * KB + kb] : 0.0f;
      const float* a = Ap + ip * g.K * mr + k0 * mr;
      for (int64_t jp = jp0; jp < jp1; jp++) {
        const int64_t n0 = jp * nr, nv = std::min<int64_t>(nr, g.N - n0);
        const float* sb = sb_block + (n0 - n_begin);
        const float* b = Bp + jp * g.K * nr + k0 * nr;
        float* c = g.c + m0 * g.N + n0;
        if (mv == mr && nv == nr) {
          uk.fn(kc, a, b, c, g.N, sa, sb);
        } else {  // edge tile: on a local copy of the valid part of C
          for (int64_t i = 0; i < mr; i++)
            for (int64_t j = 0; j < nr; j++) tile[i * nr + j] = i < mv && j < nv ? c[i * g.N + j] : 0.0f;
          uk.fn(kc, a, b, tile, nr, sa, sb);
          for (int64_t i = 0; i < mv; i++)
            for (int64_t j = 0; j < nv; j++) c[i * g.N + j] = tile[i * nr + j];
        }
      }
    }
  }
}

void fp8_gemm_promoted(const Fp8Kernel& uk, const Fp8GemmArgs& g) {
  if (g.M == 0 || g.N == 0) return;
  if (g.K == 0) {
    std::memset(g.c, 0, g.M * g.N * sizeof(float));
    return;
  }
  const int64_t a_panels = (g.M + uk.mr - 1) / uk.mr, b_panels = (g.N + uk.nr - 1) / uk.nr;
  // One buffer for both: A's panels, then B's from a 64-byte boundary (the kernels load B aligned).
  const size_t a_floats = (size_t)(a_panels * uk.mr * g.K), a_floats_aligned = (a_floats + 15) / 16 * 16;
  thread_local Fp8PanelBuffer buffer;
  float* Ap = buffer.get(a_floats_aligned + (size_t)(b_panels * uk.nr * g.K));
  float* Bp = Ap + a_floats_aligned;
  const int64_t decode_grain = std::max<int64_t>(1, 8192 / std::max<int64_t>(1, g.K));
  parallel_for(a_panels, decode_grain, [&](int64_t p0, int64_t p1) { decode_panels(g.a, g.M, g.K, uk.mr, p0, p1, Ap); });
  parallel_for(b_panels, decode_grain, [&](int64_t p0, int64_t p1) { decode_panels(g.b, g.N, g.K, uk.nr, p0, p1, Bp); });

  // Macro blocks: at most mc_panels × nc_panels, cut evenly (37 row panels make blocks of 10, 9, 9, 9,
  // not 12, 12, 12, 1), and at least 4 per thread when there are enough row panels, so that the
  // contiguous runs parallel_for hands out are balanced. Every C element is still computed whole in
  // one block, so the cut does not change a bit.
  const int64_t threads = num_threads();
  int64_t row_blocks = (a_panels + uk.mc_panels - 1) / uk.mc_panels;
  const int64_t col_blocks = (b_panels + uk.nc_panels - 1) / uk.nc_panels;
  while (threads > 1 && row_blocks * col_blocks < 4 * threads && row_blocks < a_panels) row_blocks++;
  // Small problems (under ~2 MFLOP per thread) stay on one thread: parallel_for's grain.
  const double flops_per_block = 2.0 * g.M * g.N * g.K / (double)(row_blocks * col_blocks);
  const int64_t grain = std::max<int64_t>(1, (int64_t)(2e6 / std::max(1.0, flops_per_block)));
  parallel_for(row_blocks * col_blocks, grain, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; t++) {
      const int64_t rb = t / col_blocks, cb = t % col_blocks;
      fp8_macro_block(uk, g, Ap, Bp, a_panels * rb / row_blocks, a_panels * (rb + 1) / row_blocks,
                      b_panels * cb / col_blocks, b_panels * (cb + 1) / col_blocks);
    }
  });
}

// The limited modes: the naive arithmetic, rows split over the threads (each C element whole in one).
void fp8_gemm_rows_naive(const Fp8GemmArgs& g) {
  parallel_for(g.M, 1, [&](int64_t m0, int64_t m1) {
    for (int64_t m = m0; m < m1; m++)
      for (int64_t n = 0; n < g.N; n++) g.c[m * g.N + n] = fp8_dot_naive(g, m, n);
  });
}

}  // namespace

const char* fp8_gemm_kernel_name(GemmKernel kernel) { return fp8_kernel(kernel).name; }

void fp8_gemm_with(GemmKernel kernel, const Fp8GemmArgs& g) {
  check_fp8_gemm_args("fp8_gemm", g);
  const Fp8Kernel& uk = fp8_kernel(kernel);
  if (g.accumulation != Fp8Accumulation::fp32_promoted) return fp8_gemm_rows_naive(g);
  fp8_gemm_promoted(uk, g);
}

void fp8_gemm(const Fp8GemmArgs& g) {
  check_fp8_gemm_args("fp8_gemm", g);
  if (naive_kernels()) return fp8_gemm_naive(g);
  fp8_gemm_with(GemmKernel::automatic, g);
}

}  // namespace sg::cpu
