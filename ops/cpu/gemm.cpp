// ops/cpu/gemm.cpp — the CPU GEMM, C = alpha * op(A)·op(B) + beta * C (contract in gemm.h).
//
// What this is: the naive reference (v1), a float64 loop for gradchecks, and the fast float32 path
// (v2) built the way BLIS / GotoBLAS build theirs, written out for a student. What this is not: tuned
// assembly. The micro-kernels are C++ with SIMD intrinsics; the compiler allocates the registers.
//
// ---- Why the naive loop is slow ------------------------------------------------------------------
// For M=N=K=1024 a GEMM does 2·1024³ ≈ 2.1 GFLOP on 3 × 4 MiB of data: every number is reused ~1000
// times. The triple loop re-reads its operands from memory instead of reusing them, and uses one
// float lane of a 16-lane register. The fast path fixes both.
//
// ---- 1. The micro-kernel: a register tile ----------------------------------------------------------
// The AVX-512 kernel keeps a 14×32 block of C in registers: 14 rows × 2 registers of 16 floats = 28
// of the 32 zmm registers. Each step k loads one 32-float row of B (2 registers), broadcasts each of
// the 14 values A[i,k], and issues 28 fused multiply-adds:
//
//     C[i, 0:32] += A[i,k] * B[k, 0:32]      for i in 0..13
//
// 28 FMAs per 2 loads + 14 broadcasts, so the FMA units (2 per core, each 16 lanes wide, 4 cycles of
// latency) stay busy: 28 independent accumulators cover the 2 × 4 = 8 FMAs that must be in flight.
// (Measured alternatives, single-threaded at ~1024³: 6×64, 8×48 and 12×32 are within a few %, 24×16
// is ~10% slower. 14×32 is the pick because our N = 64..512 are multiples of 32, so no edge tiles.)
// The AVX2 kernel is the same idea with 8-float ymm registers and a 6×16 tile (12 of 16 registers).
//
// ---- 2. Packing ----------------------------------------------------------------------------------
// The kernel wants A as "column panels" of 14 rows, stored k-major  (Ap[k][0..13]), and B as "row
// panels" of 32 columns, stored k-major (Bp[k][0..31]), so that it reads both with unit stride. We copy
// ("pack") blocks of A and B into that layout in aligned per-thread buffers before computing. The copy
// also absorbs the transposes (trans_a / trans_b only change how packing reads) and the edge tiles
// (panels are padded with zeros to a whole tile). Packing costs O(MK + KN) against the GEMM's O(MNK):
// negligible for big squares, but 15-25% of the time when M and N are small and K is long (weight
// gradients dW = dYᵀ·X, K = tokens).
//
// ---- 3. Cache blocking (sizes for Zen 5: 48 KiB L1d, 1 MiB L2 per core, 32 MiB shared L3) --------
//   for jc in N by NC:                  B block  [KC, NC] packed -> lives in L3 (KC·NC·4 = 4 MiB)
//     for pc in K by KC:                (K in blocks of at most KC, all of one depth: k_blocks)
//       pack B[pc:pc+KC, jc:jc+NC]
//       for ic in M by MC:              A block  [MC, KC] packed -> lives in L2 (MC·KC·4 = 336 KiB)
//         pack A[ic:ic+MC, pc:pc+KC]
//         for jr in NC by NR:           B micro-panel [KC, 32] (64 KiB), reused by the MC/MR tiles below
//           for ir in MC by MR:         A micro-panel [KC, 14] (28 KiB), streamed from L2
//             micro-kernel: C[ic+ir : +14, jc+jr : +32] += Ap · Bp
// AVX-512: MC = 168 (12 tiles), KC = 512, NC = 2048. Per step k the kernel needs 128 + 56 bytes for 28
// FMAs (14 cycles), which Zen 5's L2 (64 bytes/cycle to L1) supplies easily, so block sizes matter
// little here: a sweep of MC 84..336 × KC 256..512 stayed within ~5% (KC = 512 best: C is read and
// written once per K block, so fewer K blocks mean less C traffic). The first K block applies beta;
// later ones accumulate (beta = 1). The kernels prefetch their C tile before the k loop. The K blocks are
// cut from K alone (k_blocks: an even number of equal blocks), never from the thread count: they fix the
// order of C's sums (section 4).
//
// ---- 4. Threads ----------------------------------------------------------------------------------
// The problem is cut into contiguous pieces, one per thread (sg::parallel_for); each thread runs the
// loops above on its piece with its own packing buffers: nothing shared, nothing synchronised. The cut
// is along M (rows of C), N (columns) or K (depth), whichever adds the least work (choose_split):
// cutting M makes every thread pack all of B, cutting K needs a final sum of partial C's. Small
// problems (under ~1 MFLOP per thread) stay on one thread. Every cut gives C bit for bit as one thread
// does: rows and columns cut at whole register tiles, and depth cuts at the K blocks one thread runs
// and adds the blocks' products into C in the same order (gemm_split_depth). Same inputs, same C, on
// any number of threads.
//
// ---- What to expect (`seekgrad bench gemm`, 2 Zen 5 cores, FMA peak ~225 GFLOP/s per core) -------
// 1024³: naive ~2 GFLOP/s; scalar kernel ~35; avx2 ~100; avx512 ~200 on 1 thread (~88% of peak) and
// ~370-400 on 2 (~80-88%). Linear layers with 2048 tokens: forward and dX 85-95% of peak, dW 65-80%.
#include "ops/cpu/gemm.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>

#include "autograd/runtime.h"
#include "ops/cpu/runtime.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define SEEKGRAD_X86_KERNELS 1
#elif defined(__SSE__)
#include <xmmintrin.h>
#endif

namespace sg::cpu {

namespace {

void check_gemm_args(const char* op, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, int64_t lda,
                     int64_t ldb, int64_t ldc) {
  auto fail = [&](const std::string& what) {
    throw std::runtime_error(std::string("[") + op + "] " + what + " (M=" + std::to_string(M) +
                             ", N=" + std::to_string(N) + ", K=" + std::to_string(K) +
                             ", trans_a=" + std::to_string(trans_a) + ", trans_b=" + std::to_string(trans_b) + ")");
  };
  auto check_stride = [&](const char* name, int64_t ld, int64_t row) {
    if (ld < std::max<int64_t>(1, row))
      fail(std::string(name) + "=" + std::to_string(ld) + " is shorter than a row of " + std::to_string(row));
  };
  if (M < 0 || N < 0 || K < 0) fail("negative size");
  check_stride("lda", lda, trans_a ? M : K);  // A is stored [K,M] or [M,K]
  check_stride("ldb", ldb, trans_b ? K : N);  // B is stored [N,K] or [K,N]
  check_stride("ldc", ldc, N);
}

// C[M,N] = beta * C, with beta == 0 writing zeros (never reading C). Used when K == 0 or alpha == 0.
template <typename T>
void scale_c(int64_t M, int64_t N, T beta, T* C, int64_t ldc) {
  for (int64_t i = 0; i < M; i++)
    for (int64_t j = 0; j < N; j++) C[i * ldc + j] = beta == T(0) ? T(0) : beta * C[i * ldc + j];
}

}  // namespace

// ================================ v1: the naive reference ========================================

void gemm_f32_naive(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                    int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  check_gemm_args("gemm_f32_naive", trans_a, trans_b, M, N, K, lda, ldb, ldc);
  if (alpha == 0.0f) return scale_c(M, N, beta, C, ldc);  // A and B are not read (see gemm.h)
  for (int64_t i = 0; i < M; i++) {
    for (int64_t j = 0; j < N; j++) {
      float sum = 0.0f;
      for (int64_t k = 0; k < K; k++) {
        float a = trans_a ? A[k * lda + i] : A[i * lda + k];  // op(A)[i,k]
        float b = trans_b ? B[j * ldb + k] : B[k * ldb + j];  // op(B)[k,j]
        sum += a * b;
      }
      C[i * ldc + j] = alpha * sum + (beta == 0.0f ? 0.0f : beta * C[i * ldc + j]);
    }
  }
}

// ================================ float64, for gradchecks =========================================

// i-k-j order: the inner loop runs along a row of C and (untransposed) B, so it walks memory in order.
void gemm_f64(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, double alpha, const double* A,
              int64_t lda, const double* B, int64_t ldb, double beta, double* C, int64_t ldc) {
  check_gemm_args("gemm_f64", trans_a, trans_b, M, N, K, lda, ldb, ldc);
  scale_c(M, N, beta, C, ldc);
  if (alpha == 0.0) return;  // A and B are not read (see gemm.h)
  for (int64_t i = 0; i < M; i++) {
    double* c_row = C + i * ldc;
    for (int64_t k = 0; k < K; k++) {
      double a = alpha * (trans_a ? A[k * lda + i] : A[i * lda + k]);  // alpha * op(A)[i,k]
      if (trans_b) {
        for (int64_t j = 0; j < N; j++) c_row[j] += a * B[j * ldb + k];
      } else {
        const double* b_row = B + k * ldb;
        for (int64_t j = 0; j < N; j++) c_row[j] += a * b_row[j];
      }
    }
  }
}

// ================================ v2: micro-kernels ================================================
//
// Every micro-kernel has the same contract, for one MR×NR tile of C:
//   a: packed A micro-panel [kc][MR]   (MR consecutive floats per k)
//   b: packed B micro-panel [kc][NR]   (NR consecutive floats per k, 64-byte aligned)
//   c: the tile's top-left element in C, row stride ldc
//   c[i,j] = alpha * sum_k a[k][i] * b[k][j] + beta * c[i,j]     (beta == 0: c is not read)

namespace {

using MicroKernelFn = void (*)(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, float alpha,
                               float beta);

// The portable fallback: plain loops over a 4×16 tile held in a local array. `omp simd` asks for the
// j loop to be vectorised as written (at -O3 GCC 12 otherwise unrolls the tile into 64 scalars and
// reassembles them with shuffles: 2.5× slower than -O2).
constexpr int kScalarMR = 4, kScalarNR = 16;
void micro_kernel_scalar_4x16(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, float alpha,
                              float beta) {
  float acc[kScalarMR][kScalarNR] = {};
  for (int64_t k = 0; k < kc; k++) {
    for (int i = 0; i < kScalarMR; i++) {
#pragma omp simd
      for (int j = 0; j < kScalarNR; j++) acc[i][j] += a[i] * b[j];
    }
    a += kScalarMR;
    b += kScalarNR;
  }
  for (int i = 0; i < kScalarMR; i++)
    for (int j = 0; j < kScalarNR; j++) {
      float* p = c + i * ldc + j;
      *p = alpha * acc[i][j] + (beta == 0.0f ? 0.0f : beta * *p);
    }
}

#ifdef SEEKGRAD_X86_KERNELS
// The C tile is read and written only after the k loop. Asking for its cache lines before the loop lets
// them arrive while the FMAs run (for big C, a miss to memory per row would otherwise stall the end).
inline void prefetch_c_row(const float* row, int n) {
  __builtin_prefetch(row, 1, 3);
  __builtin_prefetch(row + n - 1, 1, 3);
}

// AVX2 + FMA: a 6×16 tile = 6 rows × 2 ymm registers (8 floats each) = 12 accumulators.
constexpr int kAvx2MR = 6, kAvx2NR = 16;
__attribute__((target("avx2,fma"))) void micro_kernel_avx2_6x16(int64_t kc, const float* a, const float* b,
                                                                  float* c, int64_t ldc, float alpha, float beta) {
  __m256 acc[kAvx2MR][2];
#pragma GCC unroll 6
  for (int i = 0; i < kAvx2MR; i++) {
    acc[i][0] = acc[i][1] = _mm256_setzero_ps();
    prefetch_c_row(c + i * ldc, kAvx2NR);
  }
  for (int64_t k = 0; k < kc; k++) {
    __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);  // B[k, 0:16]
#pragma GCC unroll 6
    for (int i = 0; i < kAvx2MR; i++) {
      __m256 a_ik = _mm256_broadcast_ss(a + i);  // A[i,k] in all 8 lanes
      acc[i][0] = _mm256_fmadd_ps(a_ik, b0, acc[i][0]);
      acc[i][1] = _mm256_fmadd_ps(a_ik, b1, acc[i][1]);
    }
    a += kAvx2MR;
    b += kAvx2NR;
  }
  const __m256 alpha_v = _mm256_set1_ps(alpha), beta_v = _mm256_set1_ps(beta);
#pragma GCC unroll 6
  for (int i = 0; i < kAvx2MR; i++)
#pragma GCC unroll 2
    for (int v = 0; v < 2; v++) {
      float* p = c + i * ldc + 8 * v;
      __m256 r = _mm256_mul_ps(alpha_v, acc[i][v]);
      if (beta != 0.0f) r = _mm256_fmadd_ps(beta_v, _mm256_loadu_ps(p), r);
      _mm256_storeu_ps(p, r);
    }
}

// AVX-512: a 14×32 tile = 14 rows × 2 zmm registers (16 floats each) = 28 accumulators.
constexpr int kAvx512MR = 14, kAvx512NR = 32;
__attribute__((target("avx512f"))) void micro_kernel_avx512_14x32(int64_t kc, const float* a, const float* b,
                                                                   float* c, int64_t ldc, float alpha, float beta) {
  __m512 acc[kAvx512MR][2];
#pragma GCC unroll 14
  for (int i = 0; i < kAvx512MR; i++) {
    acc[i][0] = acc[i][1] = _mm512_setzero_ps();
    prefetch_c_row(c + i * ldc, kAvx512NR);
  }
  for (int64_t k = 0; k < kc; k++) {
    __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16);  // B[k, 0:32]
#pragma GCC unroll 14
    for (int i = 0; i < kAvx512MR; i++) {
      __m512 a_ik = _mm512_set1_ps(a[i]);  // A[i,k] in all 16 lanes
      acc[i][0] = _mm512_fmadd_ps(a_ik, b0, acc[i][0]);
      acc[i][1] = _mm512_fmadd_ps(a_ik, b1, acc[i][1]);
    }
    a += kAvx512MR;
    b += kAvx512NR;
  }
  const __m512 alpha_v = _mm512_set1_ps(alpha), beta_v = _mm512_set1_ps(beta);
#pragma GCC unroll 14
  for (int i = 0; i < kAvx512MR; i++)
#pragma GCC unroll 2
    for (int v = 0; v < 2; v++) {
      float* p = c + i * ldc + 16 * v;
      __m512 r = _mm512_mul_ps(alpha_v, acc[i][v]);
      if (beta != 0.0f) r = _mm512_fmadd_ps(beta_v, _mm512_loadu_ps(p), r);
      _mm512_storeu_ps(p, r);
    }
}
#endif  // SEEKGRAD_X86_KERNELS

constexpr int kMaxTile = 14 * 32;  // the largest mr*nr below

// A micro-kernel with its tile shape and the cache block sizes that suit it.
struct MicroKernel {
  const char* name;
  MicroKernelFn fn;
  int mr, nr;           // register tile: C[mr, nr]
  int64_t mc, kc, nc;   // cache blocks: A block [mc, kc] in L2, B block [kc, nc] in L3 (mc % mr == 0, nc % nr == 0)
};

constexpr MicroKernel kScalarKernel{"scalar", micro_kernel_scalar_4x16, kScalarMR, kScalarNR, 128, 256, 2048};
#ifdef SEEKGRAD_X86_KERNELS
constexpr MicroKernel kAvx2Kernel{"avx2", micro_kernel_avx2_6x16, kAvx2MR, kAvx2NR, 144, 384, 2048};
constexpr MicroKernel kAvx512Kernel{"avx512", micro_kernel_avx512_14x32, kAvx512MR, kAvx512NR, 168, 512, 2048};
#endif

static_assert(kScalarKernel.mc % kScalarMR == 0 && kScalarKernel.nc % kScalarNR == 0);
static_assert(kScalarMR * kScalarNR <= kMaxTile);
#ifdef SEEKGRAD_X86_KERNELS
static_assert(kAvx2Kernel.mc % kAvx2MR == 0 && kAvx2Kernel.nc % kAvx2NR == 0);
static_assert(kAvx512Kernel.mc % kAvx512MR == 0 && kAvx512Kernel.nc % kAvx512NR == 0);
static_assert(kAvx2MR * kAvx2NR <= kMaxTile && kAvx512MR * kAvx512NR <= kMaxTile);
#endif

GemmKernel best_kernel() {
  if (cpu_has_avx512()) return GemmKernel::avx512;
  if (cpu_has_avx2_fma()) return GemmKernel::avx2;
  return GemmKernel::scalar;
}

const MicroKernel& micro_kernel(GemmKernel kind) {
  if (kind == GemmKernel::automatic) kind = best_kernel();
  switch (kind) {
    case GemmKernel::avx512:
#ifdef SEEKGRAD_X86_KERNELS
      if (cpu_has_avx512()) return kAvx512Kernel;
#endif
      throw std::runtime_error("[gemm_f32] the avx512 micro-kernel needs a CPU with AVX-512F");
    case GemmKernel::avx2:
#ifdef SEEKGRAD_X86_KERNELS
      if (cpu_has_avx2_fma()) return kAvx2Kernel;
#endif
      throw std::runtime_error("[gemm_f32] the avx2 micro-kernel needs a CPU with AVX2 and FMA");
    case GemmKernel::scalar:
    case GemmKernel::automatic:
      break;
  }
  return kScalarKernel;
}

// ================================ v2: packing =====================================================

// A 64-byte aligned float buffer that only grows: one per thread per operand, reused by every call,
// so the hot path never allocates.
struct PackBuffer {
  float* data = nullptr;
  size_t capacity = 0;  // floats
  float* get(size_t n) {
    if (n > capacity) {
      std::free(data);
      capacity = (n + 15) / 16 * 16;  // aligned_alloc wants a size that is a multiple of the alignment
      data = static_cast<float*>(std::aligned_alloc(64, capacity * sizeof(float)));
      if (!data) throw std::bad_alloc();
    }
    return data;
  }
  ~PackBuffer() { std::free(data); }
};

// Both operands are packed the same way. A block of X with `rows` rows (mc rows of op(A), or nc columns
// of op(B)) and kc values of k becomes ceil(rows/width) micro-panels of `width` (= mr for A, nr for B)
// values per k, k-major, so the micro-kernel reads one contiguous run of `width` floats per step:
//
//     dst[p*kc*width + k*width + i] = X(p*width + i, k)      (zero where p*width + i >= rows)
//
// The source stores X(r, k) either k-major at src[k*ld + r] (A transposed, B as is): packing copies
// runs of `width` floats; or r-major at src[r*ld + k] (A as is, B transposed): packing transposes,
// 4×4 floats at a time through SSE registers (every x86-64 CPU has them). A last group of 4 rows that
// would run past `width` is moved back to end at `width` (rewriting a few values with the same numbers).
#if defined(__SSE__)
// d[r*d_ld + c] = s[c*s_ld + r] for a 4×4 block.
inline void transpose4x4(float* d, int64_t d_ld, const float* s, int64_t s_ld) {
  __m128 r0 = _mm_loadu_ps(s), r1 = _mm_loadu_ps(s + s_ld), r2 = _mm_loadu_ps(s + 2 * s_ld),
         r3 = _mm_loadu_ps(s + 3 * s_ld);
  _MM_TRANSPOSE4_PS(r0, r1, r2, r3);
  _mm_storeu_ps(d, r0), _mm_storeu_ps(d + d_ld, r1), _mm_storeu_ps(d + 2 * d_ld, r2), _mm_storeu_ps(d + 3 * d_ld, r3);
}
#else
inline void transpose4x4(float* d, int64_t d_ld, const float* s, int64_t s_ld) {
  for (int r = 0; r < 4; r++)
    for (int c = 0; c < 4; c++) d[r * d_ld + c] = s[c * s_ld + r];
}
#endif

void pack_block(bool k_major, const float* src, int64_t ld, int64_t rows, int64_t kc, int width, float* dst) {
  for (int64_t p0 = 0; p0 < rows; p0 += width) {
    const int64_t valid = std::min<int64_t>(width, rows - p0);  // < width only in the last panel
    float* panel = dst + p0 * kc;
    if (k_major) {
      for (int64_t k = 0; k < kc; k++) {
        std::memcpy(panel + k * width, src + k * ld + p0, valid * sizeof(float));
        if (valid < width) std::memset(panel + k * width + valid, 0, (width - valid) * sizeof(float));
      }
    } else if (valid == width) {
      int64_t k = 0;
      for (; k + 4 <= kc; k += 4)
        for (int64_t i = 0; i < width; i += 4) {
          const int64_t i4 = std::min<int64_t>(i, width - 4);
          transpose4x4(panel + k * width + i4, width, src + (p0 + i4) * ld + k, ld);
        }
      for (; k < kc; k++)
        for (int64_t i = 0; i < width; i++) panel[k * width + i] = src[(p0 + i) * ld + k];
    } else {
      for (int64_t i = 0; i < width; i++)
        for (int64_t k = 0; k < kc; k++) panel[k * width + i] = i < valid ? src[(p0 + i) * ld + k] : 0.0f;
    }
  }
}

// Pack op(A)[0:mc, 0:kc] (A points at its top-left) into micro-panels [kc][mr]. A stored [K,M]
// (trans_a) is k-major; stored [M,K] it is not.
void pack_a(bool trans_a, int64_t mc, int64_t kc, const float* A, int64_t lda, int mr, float* Ap) {
  pack_block(trans_a, A, lda, mc, kc, mr, Ap);
}

// Pack op(B)[0:kc, 0:nc] (B points at its top-left) into micro-panels [kc][nr]. B stored [K,N] is
// k-major; stored [N,K] (trans_b) it is not.
void pack_b(bool trans_b, int64_t kc, int64_t nc, const float* B, int64_t ldb, int nr, float* Bp) {
  pack_block(!trans_b, B, ldb, nc, kc, nr, Bp);
}

// Pointer to op(X)[row, col] for X stored row-major with stride ld (transposed: X is stored [col, row]).
const float* element(bool trans, const float* X, int64_t ld, int64_t row, int64_t col) {
  return trans ? X + col * ld + row : X + row * ld + col;
}

// ================================ v2: the blocked loops (one thread) ===============================

// The K blocks of a GEMM: `count` blocks of equal depth (to within 1), each at most kc, block b covering
// k in [begin(b), begin(b + 1)). They depend on K and the micro-kernel only. The count is even (when over
// 1) so that two threads splitting along K get the same work (gemm_split_depth); K = 600 with kc = 512 is
// two blocks of 300, not 512 + 88.
struct KBlocks {
  int64_t K, count;
  int64_t begin(int64_t b) const { return K * b / count; }
};

KBlocks k_blocks(const MicroKernel& uk, int64_t K) {
  int64_t count = std::max<int64_t>(1, (K + uk.kc - 1) / uk.kc);
  if (count > 1 && count % 2 == 1) count++;
  return {K, count};
}

// The five loops of section 3, for the whole of the (sub)problem this thread was given: rows and columns
// of C as passed, K blocks [b0, b1) of kb (A and B point at k = 0). Block b0 applies beta, the later ones
// add to C, one rounding each: C = round(C + op(A)_b·op(B)_b) when alpha == 1.
void gemm_blocked(const MicroKernel& uk, bool trans_a, bool trans_b, int64_t M, int64_t N, const KBlocks& kb,
                  int64_t b0, int64_t b1, float alpha, const float* A, int64_t lda, const float* B, int64_t ldb,
                  float beta, float* C, int64_t ldc) {
  static thread_local PackBuffer a_buffer, b_buffer;
  const int mr = uk.mr, nr = uk.nr;
  float* Ap = a_buffer.get(uk.mc * uk.kc);                       // [mc/mr][kc][mr]
  float* Bp = b_buffer.get((std::min(uk.nc, N) + nr) * uk.kc);   // [nc/nr][kc][nr]
  alignas(64) float edge[kMaxTile];                              // scratch for partial tiles

  for (int64_t jc = 0; jc < N; jc += uk.nc) {
    const int64_t nc = std::min(uk.nc, N - jc);
    for (int64_t b = b0; b < b1; b++) {
      const int64_t pc = kb.begin(b), kc = kb.begin(b + 1) - pc;
      const float beta_block = b == b0 ? beta : 1.0f;  // later K blocks add to what the first wrote
      pack_b(trans_b, kc, nc, element(trans_b, B, ldb, pc, jc), ldb, nr, Bp);
      for (int64_t ic = 0; ic < M; ic += uk.mc) {
        const int64_t mc = std::min(uk.mc, M - ic);
        pack_a(trans_a, mc, kc, element(trans_a, A, lda, ic, pc), lda, mr, Ap);
        for (int64_t jr = 0; jr < nc; jr += nr) {
          const int64_t cols = std::min<int64_t>(nr, nc - jr);
          for (int64_t ir = 0; ir < mc; ir += mr) {
            const int64_t rows = std::min<int64_t>(mr, mc - ir);
            const float* a_panel = Ap + ir * kc;
            const float* b_panel = Bp + jr * kc;
            float* c = C + (ic + ir) * ldc + jc + jr;
            if (rows == mr && cols == nr) {
              uk.fn(kc, a_panel, b_panel, c, ldc, alpha, beta_block);
            } else {  // edge tile: compute the full tile into scratch, then merge the valid part
              uk.fn(kc, a_panel, b_panel, edge, nr, 1.0f, 0.0f);
              for (int64_t i = 0; i < rows; i++)
                for (int64_t j = 0; j < cols; j++) {
                  float* p = c + i * ldc + j;
                  *p = alpha * edge[i * nr + j] + (beta_block == 0.0f ? 0.0f : beta_block * *p);
                }
            }
          }
        }
      }
    }
  }
}

// Below this many flops per thread, a second thread costs more (waking it, splitting) than it saves.
constexpr double kMinFlopsPerThread = 1e6;

// How a GEMM is cut across threads. Each way adds work that one thread alone would not do:
//   rows    (M): every thread packs all of op(B)              (threads-1)·K·N floats
//   columns (N): every thread packs all of op(A)              (threads-1)·M·K floats
//   depth   (K): the K blocks that thread 0 does not run go   ~(1-1/threads)·blocks·M·N floats,
//                through partial C's, added at the end        written and read
// The cheapest wins. Depth wins for weight gradients dW = dYᵀ·X (M, N = model dims, K = tokens).
// None of the three changes a single bit of C (gemm_split_depth says why depth does not): the split is
// free to depend on the number of threads.
enum class Split { rows, cols, depth };

// Depth needs alpha == 1 (gemm_split_depth says why) and K blocks that share out evenly: a multiple of
// the thread count, or enough of them (3 per thread) that the last uneven share costs little.
Split choose_split(const MicroKernel& uk, int threads, int64_t M, int64_t N, int64_t K, float alpha) {
  const int64_t blocks = k_blocks(uk, K).count;
  const double rows = (double)K * N, cols = (double)M * K;
  const double depth = 2.0 * (blocks - blocks / threads) * M * N;
  const bool even_shares = blocks % threads == 0 || blocks >= 3 * threads;
  if (alpha == 1.0f && even_shares && depth < std::min(rows, cols)) return Split::depth;
  return rows <= cols ? Split::rows : Split::cols;
}

// dst[0:n] += src[0:n]: one rounding per element, round(dst + src), as in the micro-kernels' C update
void add_to(float* dst, const float* src, int64_t n) {
  int64_t j = 0;
#if defined(__SSE__)
  for (; j + 4 <= n; j += 4) _mm_storeu_ps(dst + j, _mm_add_ps(_mm_loadu_ps(dst + j), _mm_loadu_ps(src + j)));
#endif
  for (; j < n; j++) dst[j] += src[j];
}

// Split::depth, with the same numbers as one thread. One thread (gemm_blocked) runs K in blocks (k_blocks)
// and updates C after each: C = A_0·B_0 + beta·C, then C = round(C + A_b·B_b) for b = 1, 2, ... in order
// (alpha == 1, so a micro-kernel's update is one rounding). The threads split those same blocks: thread t
// takes a contiguous run of them. Thread 0's run starts at block 0, so it goes straight into C. Every
// other block b goes into its own partial product P_b = A_b·B_b (beta = 0: stored as computed), and the
// end adds P_b into C in block order: round(C + P_b), the very sum one thread does. So the result does
// not depend on the number of threads — only on K, kc and the micro-kernel (alpha != 1 is never split
// this way: the micro-kernels' alpha·acc + C is not the same rounding as a separate multiply and add).
void gemm_split_depth(const MicroKernel& uk, int threads, bool trans_a, bool trans_b, int64_t M, int64_t N,
                      int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
                      int64_t ldc) {
  static thread_local PackBuffer partial_buffer;
  const KBlocks kb = k_blocks(uk, K);
  const int64_t blocks = kb.count;
  const int64_t direct = blocks / threads;  // thread 0's run: blocks [0, direct) straight into C
  float* partial = partial_buffer.get((blocks - direct) * M * N);  // P_b at partial + (b - direct)·M·N
  parallel_for(threads, 1, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; t++) {
      const int64_t b0 = blocks * t / threads, b1 = blocks * (t + 1) / threads;
      if (t == 0) {
        gemm_blocked(uk, trans_a, trans_b, M, N, kb, 0, b1, 1.0f, A, lda, B, ldb, beta, C, ldc);
        continue;
      }
      for (int64_t b = b0; b < b1; b++)
        gemm_blocked(uk, trans_a, trans_b, M, N, kb, b, b + 1, 1.0f, A, lda, B, ldb, 0.0f,
                     partial + (b - direct) * M * N, N);
    }
  });
  parallel_for(M, std::max<int64_t>(1, 16384 / N), [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; i++)
      for (int64_t b = direct; b < blocks; b++) add_to(C + i * ldc, partial + (b - direct) * M * N + i * N, N);
  });
}

}  // namespace

// ================================ v2: the threaded driver ==========================================

const char* gemm_kernel_name(GemmKernel kernel) {
  if (kernel == GemmKernel::automatic) kernel = best_kernel();
  switch (kernel) {
    case GemmKernel::avx512: return "avx512";
    case GemmKernel::avx2: return "avx2";
    case GemmKernel::scalar:
    case GemmKernel::automatic: break;
  }
  return "scalar";
}

bool gemm_kernel_available(GemmKernel kernel) {
  switch (kernel) {
    case GemmKernel::avx512: return cpu_has_avx512();
    case GemmKernel::avx2: return cpu_has_avx2_fma();
    case GemmKernel::scalar:
    case GemmKernel::automatic: break;
  }
  return true;
}

void gemm_f32_with(GemmKernel kernel, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                   const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  check_gemm_args("gemm_f32", trans_a, trans_b, M, N, K, lda, ldb, ldc);
  const MicroKernel& uk = micro_kernel(kernel);
  if (M == 0 || N == 0) return;
  if (K == 0 || alpha == 0.0f) return scale_c(M, N, beta, C, ldc);  // op(A)·op(B) contributes nothing

  const int threads = (int)std::clamp(2.0 * M * N * K / kMinFlopsPerThread, 1.0, (double)num_threads());
  const KBlocks kb = k_blocks(uk, K);
  if (threads == 1) return gemm_blocked(uk, trans_a, trans_b, M, N, kb, 0, kb.count, alpha, A, lda, B, ldb, beta, C, ldc);
  const Split split = choose_split(uk, threads, M, N, K, alpha);
  if (split == Split::depth) return gemm_split_depth(uk, threads, trans_a, trans_b, M, N, K, A, lda, B, ldb, beta, C, ldc);

  // Split::rows or Split::cols: whole register tiles, a contiguous run of them per thread.
  const bool rows = split == Split::rows;
  const int64_t tile = rows ? uk.mr : uk.nr;
  const int64_t n_tiles = ((rows ? M : N) + tile - 1) / tile;
  parallel_for(n_tiles, std::max<int64_t>(1, n_tiles / threads), [&](int64_t t0, int64_t t1) {
    if (rows) {  // rows [r0, r1) of C and op(A)
      const int64_t r0 = t0 * tile, r1 = std::min(M, t1 * tile);
      gemm_blocked(uk, trans_a, trans_b, r1 - r0, N, kb, 0, kb.count, alpha, element(trans_a, A, lda, r0, 0), lda, B, ldb, beta,
                   C + r0 * ldc, ldc);
    } else {  // columns [c0, c1) of C and op(B)
      const int64_t c0 = t0 * tile, c1 = std::min(N, t1 * tile);
      gemm_blocked(uk, trans_a, trans_b, M, c1 - c0, kb, 0, kb.count, alpha, A, lda, element(trans_b, B, ldb, 0, c0), ldb, beta,
                   C + c0, ldc);
    }
  });
}

void gemm_f32(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
              const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (naive_kernels()) return gemm_f32_naive(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  gemm_f32_with(GemmKernel::automatic, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

// ================================ the machine's FMA peak ===========================================

namespace {

// Each loop runs `iters` rounds of 12 independent FMA chains (acc = acc*x + y) on registers and
// returns a value derived from the accumulators so the compiler cannot drop the work. 12 chains are
// more than the 2 FMA units × 4 cycles of latency need. Returns flops done (2 per lane per FMA).
constexpr int kPeakChains = 12;

#ifdef SEEKGRAD_X86_KERNELS
__attribute__((target("avx512f"))) double fma_loop_avx512(int64_t iters, float* sink) {
  __m512 acc[kPeakChains];
  for (int i = 0; i < kPeakChains; i++) acc[i] = _mm512_set1_ps(0.01f * i);
  const __m512 x = _mm512_set1_ps(0.999999f), y = _mm512_set1_ps(1e-7f);
  for (int64_t it = 0; it < iters; it++) {
#pragma GCC unroll 12
    for (int i = 0; i < kPeakChains; i++) acc[i] = _mm512_fmadd_ps(acc[i], x, y);
  }
  for (int i = 1; i < kPeakChains; i++) acc[0] = _mm512_add_ps(acc[0], acc[i]);
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, acc[0]);
  *sink = lanes[0];
  return 2.0 * 16 * kPeakChains * (double)iters;
}

__attribute__((target("avx2,fma"))) double fma_loop_avx2(int64_t iters, float* sink) {
  __m256 acc[kPeakChains];
  for (int i = 0; i < kPeakChains; i++) acc[i] = _mm256_set1_ps(0.01f * i);
  const __m256 x = _mm256_set1_ps(0.999999f), y = _mm256_set1_ps(1e-7f);
  for (int64_t it = 0; it < iters; it++) {
#pragma GCC unroll 12
    for (int i = 0; i < kPeakChains; i++) acc[i] = _mm256_fmadd_ps(acc[i], x, y);
  }
  for (int i = 1; i < kPeakChains; i++) acc[0] = _mm256_add_ps(acc[0], acc[i]);
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, acc[0]);
  *sink = lanes[0];
  return 2.0 * 8 * kPeakChains * (double)iters;
}
#endif

// Portable: a multiply and an add per chain step, counted as one 2-flop FMA.
double fma_loop_scalar(int64_t iters, float* sink) {
  float acc[kPeakChains];
  for (int i = 0; i < kPeakChains; i++) acc[i] = 0.01f * i;
  const float x = 0.999999f, y = 1e-7f;
  for (int64_t it = 0; it < iters; it++)
    for (int i = 0; i < kPeakChains; i++) acc[i] = acc[i] * x + y;
  for (int i = 1; i < kPeakChains; i++) acc[0] += acc[i];
  *sink = acc[0];
  return 2.0 * kPeakChains * (double)iters;
}

double fma_loop(int64_t iters, float* sink) {
#ifdef SEEKGRAD_X86_KERNELS
  if (cpu_has_avx512()) return fma_loop_avx512(iters, sink);
  if (cpu_has_avx2_fma()) return fma_loop_avx2(iters, sink);
#endif
  return fma_loop_scalar(iters, sink);
}

volatile float peak_sink = 0;  // where the loops' results go, so that they are computed

// GFLOP/s of `threads` threads each running fma_loop(iters), timed around the whole parallel_for.
double time_fma_loops(int threads, int64_t iters, double* seconds_taken) {
  float sinks[256] = {};
  double flops[256] = {};
  const auto t0 = std::chrono::steady_clock::now();
  parallel_for(threads, 1, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; t++) flops[t] = fma_loop(iters, &sinks[t]);
  });
  *seconds_taken = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  double total = 0;
  for (int t = 0; t < threads; t++) {
    total += flops[t];
    peak_sink = peak_sink + sinks[t];
  }
  return total / *seconds_taken * 1e-9;
}

}  // namespace

double measure_fma_peak_gflops(int threads, double seconds) {
  threads = std::clamp(threads, 1, 256);
  const int saved_threads = num_threads();
  set_num_threads(threads);
  // Calibrate: time a short run (it also wakes the threads), then size 10 runs to fill `seconds` and
  // keep the best: on a busy machine, the run that nothing interrupted.
  constexpr int kRuns = 10;
  double taken = 0;
  int64_t iters = 100000;
  time_fma_loops(threads, iters, &taken);
  iters = std::max<int64_t>(1000, (int64_t)(iters * (seconds / kRuns) / std::max(taken, 1e-6)));
  double best = 0;
  for (int rep = 0; rep < kRuns; rep++) best = std::max(best, time_fma_loops(threads, iters, &taken));
  set_num_threads(saved_threads);
  return best;
}

}  // namespace sg::cpu
