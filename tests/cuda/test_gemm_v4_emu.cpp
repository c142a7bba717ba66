// tests/cuda/test_gemm_v4_emu.cpp — the tensor-core GEMM (cuda/kernels/gemm.cuh gemm_v4_mma) in the CPU emulation,
// on the emulation's nvcuda::wmma (cuda/emu/wmma.h), in both lane orders; and wmma itself: __float_to_tf32 on
// hand-picked values, the fragments' layouts, and the errors.
//
// What v4 computes in the emulation: A and B rounded to TF32 by __float_to_tf32, then for every C element the
// naive loop's f32 sum over k ascending (mma_sync adds each 8-term group into the accumulator in k order), then
// alpha·sum + beta·c. So it is compared three ways:
//   1. bits: == sg::cpu::gemm_f32_naive on TF32-rounded copies of A and B (the same operations in the same order;
//      the products of TF32 values are exact in f32, so no FMA question arises in the sum; where the compiler may
//      fuse alpha·sum + beta·c differently (__FP_FAST_FMAF) this check becomes check 2);
//   2. the TF32 reference: the same rounded inputs, the sum in double: |got − ref| <= 2 (K + 2) 2^-24
//      (|alpha| Σ|ã b̃| + |beta c|), the rounding bound of a K-term f32 dot product (one rounding per addition,
//      the products exact) plus the scaling and the final addition, doubled for margin as tests/cuda/test_gemm_emu.cpp;
//   3. what TF32 costs: against the plain f32 GEMM on the original inputs. Each input is rounded by at most half
//      a TF32 ulp, 2^-11 relative, so a product by 2·2^-11 + 2^-22; with both sides' f32 sums:
//      |got − f32| <= (2^-10 + 2^-22 + 4 (K + 2) 2^-24) (|alpha| Σ|a b| + |beta c|).
// The GPU's tensor cores sum each 8-term group in their own order and precision (undocumented): there only
// checks 2 and 3 hold (chapter 15 runs them on a GPU).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "autograd/rng.h"
#include "cuda/emu/emu.h"
#include "cuda/emu/wmma.h"
#include "cuda/gemm.h"
#include "ops/cpu/gemm.h"
#include "tests/test_util.h"

using sg::emu::LaneOrder;
using nvcuda::wmma::__float_to_tf32;

namespace {

#if defined(__FP_FAST_FMAF)
constexpr bool kExactBits = false;
#else
constexpr bool kExactBits = true;
#endif

uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
float from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// `rows` rows of `cols` random values in [-1, 1), row stride ld >= cols, the padding NaN (a read past a row shows).
std::vector<float> random_matrix(int64_t rows, int64_t cols, int64_t ld, uint64_t seed) {
  sg::Rng rng(seed);
  std::vector<float> m((size_t)(rows * ld), NAN);
  for (int64_t r = 0; r < rows; r++)
    for (int64_t c = 0; c < cols; c++) m[r * ld + c] = (float)rng.uniform(-1.0, 1.0);
  return m;
}
std::vector<float> to_tf32(std::vector<float> v) {
  for (float& x : v) x = __float_to_tf32(x);   // NaN padding stays NaN
  return v;
}

// The worst of |got − want| / bound over C, bound = per_term · (|alpha| Σ|a b| + |beta c|) with a and b from
// (A, B) (the original inputs or their TF32 copies); want in double when given as `want_d`, else f32.
struct Errors {
  double worst_ratio = 0, worst_abs = 0;
};
Errors compare(const sg::GemmArgs& g, const float* A, const float* B, const float* c0, const float* got,
               const std::vector<double>& want, double per_term) {
  Errors e;
  for (int64_t i = 0; i < g.M; i++)
    for (int64_t j = 0; j < g.N; j++) {
      double s = 0;
      for (int64_t k = 0; k < g.K; k++)
        s += std::abs((double)(g.trans_a ? A[k * g.lda + i] : A[i * g.lda + k]) * (g.trans_b ? B[j * g.ldb + k] : B[k * g.ldb + j]));
      const double c = g.beta == 0 ? 0.0 : std::abs((double)g.beta * c0[i * g.ldc + j]);
      const double bound = per_term * (std::abs(g.alpha) * s + c) + 1e-300;
      const double err = std::abs((double)got[i * g.ldc + j] - want[(size_t)(i * g.N + j)]);
      e.worst_abs = std::max(e.worst_abs, std::isfinite(got[i * g.ldc + j]) ? err : INFINITY);
      e.worst_ratio = std::max(e.worst_ratio, std::isfinite(got[i * g.ldc + j]) ? err / bound : INFINITY);
    }
  return e;
}

// C = alpha op(A) op(B) + beta C0 in double, [M][N] densely.
std::vector<double> gemm_double(const sg::GemmArgs& g, const float* A, const float* B, const float* c0) {
  std::vector<double> out((size_t)(g.M * g.N));
  for (int64_t i = 0; i < g.M; i++)
    for (int64_t j = 0; j < g.N; j++) {
      double s = 0;
      for (int64_t k = 0; k < g.K; k++)
        s += (double)(g.trans_a ? A[k * g.lda + i] : A[i * g.lda + k]) * (g.trans_b ? B[j * g.ldb + k] : B[k * g.ldb + j]);
      out[(size_t)(i * g.N + j)] = g.alpha * s + (g.beta == 0 ? 0.0 : (double)g.beta * c0[i * g.ldc + j]);
    }
  return out;
}
std::vector<double> dense(const sg::GemmArgs& g, const std::vector<float>& c) {
  std::vector<double> out((size_t)(g.M * g.N));
  for (int64_t i = 0; i < g.M; i++)
    for (int64_t j = 0; j < g.N; j++) out[(size_t)(i * g.N + j)] = c[(size_t)(i * g.ldc + j)];
  return out;
}

double tf32_per_term(int64_t K) { return 2.0 * (K + 2) * std::ldexp(1.0, -24); }
double f32_per_term(int64_t K) { return std::ldexp(1.0, -10) + std::ldexp(1.0, -22) + 4.0 * (K + 2) * std::ldexp(1.0, -24); }

// One problem: host buffers, ld = minimum + pad, and v4's result with the three comparisons.
struct Problem {
  sg::GemmArgs g{};
  std::vector<float> a, b, c0, a32, b32;   // a32/b32: TF32-rounded copies
  Problem(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, float beta, int64_t pad, uint64_t seed) {
    const int64_t lda = (trans_a ? M : K) + pad, ldb = (trans_b ? K : N) + pad, ldc = N + pad;
    a = random_matrix(trans_a ? K : M, trans_a ? M : K, lda, seed);
    b = random_matrix(trans_b ? N : K, trans_b ? K : N, ldb, seed + 1);
    c0 = random_matrix(M, N, ldc, seed + 2);
    a32 = to_tf32(a);
    b32 = to_tf32(b);
    g = sg::GemmArgs{trans_a, trans_b, M, N, K, alpha, a.data(), lda, b.data(), ldb, beta, nullptr, ldc};
  }
  std::vector<float> run_v4() const {
    std::vector<float> c = c0;
    sg::GemmArgs args = g;
    args.C = c.data();
    sg::cuda_emu::gemm_v4_mma(args);
    return c;
  }
  std::vector<float> naive(bool tf32) const {
    std::vector<float> c = c0;
    sg::cpu::gemm_f32_naive(g.trans_a, g.trans_b, g.M, g.N, g.K, g.alpha, tf32 ? a32.data() : g.A, g.lda,
                            tf32 ? b32.data() : g.B, g.ldb, g.beta, c.data(), g.ldc);
    return c;
  }
};

// got == want as bits everywhere, C's padding included (v4 must not write it); in the FMA build, within check 2.
int64_t bit_mismatches(const Problem& p, const std::vector<float>& got, const std::vector<float>& want) {
  if (!kExactBits) {
    const Errors e = compare(p.g, p.a32.data(), p.b32.data(), p.c0.data(), got.data(),
                             gemm_double(p.g, p.a32.data(), p.b32.data(), p.c0.data()), tf32_per_term(p.g.K));
    int64_t bad = e.worst_ratio <= 1 ? 0 : 1;
    for (size_t i = 0; i < got.size(); i++) bad += std::isnan(p.c0[i]) && !std::isnan(got[i]);
    return bad;
  }
  int64_t bad = 0;
  for (size_t e = 0; e < got.size(); e++) bad += std::memcmp(&got[e], &want[e], 4) != 0;
  return bad;
}

// ---- wmma directly: one warp, every layout -----------------------------------------------------------------

using namespace nvcuda;

// D = A·B + C with A col_major (ldm 20), B col_major (ldm 12), C loaded col_major (ldm 16), D stored row_major
// (ldm 20): the layouts v4 does not use. All pointers 32-byte aligned.
__global__ void wmma_layouts_kernel(const float* a, const float* b, const float* c, float* d) {
  wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, wmma::col_major> fa;
  wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, wmma::col_major> fb;
  wmma::fragment<wmma::accumulator, 16, 16, 8, float> fc;
  wmma::load_matrix_sync(fa, a, 20);
  wmma::load_matrix_sync(fb, b, 12);
  wmma::load_matrix_sync(fc, c, 16, wmma::mem_col_major);
  wmma::mma_sync(fc, fa, fb, fc);
  wmma::store_matrix_sync(d, fc, 20, wmma::mem_row_major);
}
// fill_fragment, element-wise scaling through num_elements / x[], and a row-major store.
__global__ void wmma_fill_kernel(float* d) {
  wmma::fragment<wmma::accumulator, 16, 16, 8, float> f;
  wmma::fill_fragment(f, 1.5f);
  for (int e = 0; e < f.num_elements; e++) f.x[e] *= 2.0f;
  wmma::store_matrix_sync(d, f, 16, wmma::mem_row_major);
}
__global__ void wmma_load_kernel(const float* p, unsigned ldm) {
  wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, wmma::row_major> f;
  wmma::load_matrix_sync(f, p, ldm);
}
// Half the warp at a wmma function, the other half at __syncthreads: on the GPU undefined; here stuck.
__global__ void wmma_divergent_kernel(float* d) {
  wmma::fragment<wmma::accumulator, 16, 16, 8, float> f;
  if (threadIdx.x < 16) wmma::fill_fragment(f, 0.0f);
  __syncthreads();
}

}  // namespace

TEST_CASE("cuda emu wmma: __float_to_tf32 rounds to nearest, ties away from zero (cvt.rna.tf32.f32)") {
  struct Case {
    uint32_t in, out;
    const char* what;
  };
  const Case cases[] = {
      {0x3f800000u, 0x3f800000u, "1 is TF32"},
      {0x3f800fffu, 0x3f800000u, "just under half a TF32 ulp above 1: down"},
      {0x3f801000u, 0x3f802000u, "1 + 2^-11, a tie: away from zero (ties to even would give 1)"},
      {0xbf801000u, 0xbf802000u, "-(1 + 2^-11): away from zero, to -(1 + 2^-10)"},
      {0x3f803000u, 0x3f804000u, "1 + 3·2^-11, a tie above an odd mantissa: away (= even here)"},
      {0x3f801001u, 0x3f802000u, "just over a tie: up"},
      {0x3fffffffu, 0x40000000u, "2 - 2^-23: rounds up into the next exponent, 2"},
      {0x3ffff000u, 0x40000000u, "2 - 2^-11, a tie at the top of the binade: 2"},
      {0x7f7fe000u, 0x7f7fe000u, "the largest TF32 stays"},
      {0x7f7fefffu, 0x7f7fe000u, "under the largest TF32 + half an ulp: down"},
      {0x7f7ff000u, 0x7f800000u, "the largest TF32 + half an ulp, a tie: infinity"},
      {0x7f7fffffu, 0x7f800000u, "FLT_MAX: infinity"},
      {0x00000000u, 0x00000000u, "+0"},
      {0x80000000u, 0x80000000u, "-0 keeps its sign"},
      {0x00000001u, 0x00000000u, "the smallest subnormal: +0"},
      {0x00000fffu, 0x00000000u, "a subnormal under half a TF32 ulp: +0"},
      {0x00001000u, 0x00002000u, "a subnormal tie: away, to the smallest TF32 subnormal"},
      {0x80001000u, 0x80002000u, "a negative subnormal tie: away"},
      {0x007ff000u, 0x00800000u, "the largest subnormal tie: up into FLT_MIN"},
      {0x7f800000u, 0x7f800000u, "+infinity"},
      {0xff800000u, 0xff800000u, "-infinity"},
      {0x7fc00000u, 0x7fc00000u, "the quiet NaN"},
      {0x7fffffffu, 0x7fffe000u, "CUDA's canonical NaN: its low 13 bits cleared, still a NaN"},
      {0x7f800001u, 0x7fc00000u, "a NaN with payload in the low 13 bits only: stays NaN (quiet), not infinity"},
      {0xff801234u, 0xffc00000u, "the same with the sign: -NaN"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.what);
    CHECK(bits(__float_to_tf32(from_bits(c.in))) == c.out);
  }
  // A sweep against an independent statement of the rounding: x = m · 2^(e−10) with m = x / 2^(e−10),
  // e = x's exponent (at least −126, the subnormals' grid), rounded by std::round (half away from zero).
  sg::Rng rng(2024);
  int64_t bad = 0;
  for (int i = 0; i < 200000; i++) {
    const uint32_t u = (uint32_t)(rng.next_u64() >> 32);
    const float x = from_bits(u);
    if (!std::isfinite(x)) continue;
    int e;
    std::frexp((double)x, &e);   // x = f · 2^e, f in [0.5, 1): the leading bit is 2^(e−1)
    const int lead = std::max(e - 1, -126);
    const double ulp = std::ldexp(1.0, lead - 10);
    const double want = std::round((double)x / ulp) * ulp;   // exact in double
    const float got = __float_to_tf32(x);
    const double max_tf32 = std::ldexp(2.0 - std::ldexp(1.0, -10), 127);
    const bool ok = (std::abs(want) > max_tf32 ? std::isinf(got) : (double)got == want) && (bits(got) & 0x1fffu) == 0 &&
                    std::signbit(got) == std::signbit(x);
    bad += !ok;
  }
  CHECK(bad == 0);
}

TEST_CASE("cuda emu wmma: every layout loads, multiplies and stores whole tiles; misuse is a named error") {
  alignas(32) float a[8 * 20], b[16 * 12], c[16 * 16], d[16 * 20];
  sg::Rng rng(9);
  for (float& x : a) x = __float_to_tf32((float)rng.uniform(-1.0, 1.0));
  for (float& x : b) x = __float_to_tf32((float)rng.uniform(-1.0, 1.0));
  for (float& x : c) x = (float)rng.uniform(-1.0, 1.0);
  // A[i,k] = a[k·20 + i] (col_major), B[k,j] = b[j·12 + k], C[i,j] = c[j·16 + i]; D[i,j] at d[i·20 + j]
  float want[16][16];
  for (int i = 0; i < 16; i++)
    for (int j = 0; j < 16; j++) {
      float s = c[j * 16 + i];
      for (int k = 0; k < 8; k++) s = s + a[k * 20 + i] * b[j * 12 + k];   // exact products: no FMA question
      want[i][j] = s;
    }
  for (LaneOrder order : {LaneOrder::forward, LaneOrder::reverse}) {
    CAPTURE(sg::emu::lane_order_name(order));
    sg::emu::LaneOrderScope scope(order);
    std::fill(std::begin(d), std::end(d), NAN);
    sg::emu::launch("wmma_layouts", dim3(1), dim3(32), wmma_layouts_kernel, (const float*)a, (const float*)b, (const float*)c, (float*)d);
    int64_t bad = 0, padding = 0;
    for (int i = 0; i < 16; i++) {
      for (int j = 0; j < 16; j++) bad += bits(d[i * 20 + j]) != bits(want[i][j]);
      for (int j = 16; j < 20; j++) padding += !std::isnan(d[i * 20 + j]);
    }
    CHECK(bad == 0);
    CHECK(padding == 0);
    CHECK(sg::emu::last_launch().warp_exchanges == 5);   // each wmma call meets the warp once
  }
  {  // an operand that was never rounded is read as TF32 by dropping its low 13 bits
    alignas(32) float a2[8 * 20];
    for (int e = 0; e < 8 * 20; e++) a2[e] = from_bits(bits(a[e]) | 0x1fffu);
    sg::emu::launch("wmma_layouts", dim3(1), dim3(32), wmma_layouts_kernel, (const float*)a2, (const float*)b, (const float*)c, (float*)d);
    int64_t bad = 0;
    for (int i = 0; i < 16; i++)
      for (int j = 0; j < 16; j++) bad += bits(d[i * 20 + j]) != bits(want[i][j]);
    CHECK(bad == 0);
  }
  sg::emu::launch("wmma_fill", dim3(1), dim3(64), wmma_fill_kernel, (float*)c);
  for (float x : c) REQUIRE(x == 3.0f);
  CHECK(wmma::fragment<wmma::accumulator, 16, 16, 8, float>::num_elements == 256);
  CHECK(wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, wmma::row_major>::num_elements == 128);
  CHECK(sg::test::error_of([&] { sg::emu::launch("wmma_load", dim3(1), dim3(32), wmma_load_kernel, (const float*)(a + 1), 8u); }) ==
        "[cuda emu] wmma_load: wmma::load_matrix_sync: the tile pointer is not 32-byte aligned (CUDA requires 256 bits)");
  CHECK(sg::test::error_of([&] { sg::emu::launch("wmma_load", dim3(1), dim3(32), wmma_load_kernel, (const float*)a, 6u); }) ==
        "[cuda emu] wmma_load: wmma::load_matrix_sync: ldm=6 is not a multiple of 4 floats of at least 8");
  CHECK(sg::test::error_of([&] { sg::emu::launch("wmma_divergent", dim3(1), dim3(32), wmma_divergent_kernel, (float*)d); })
            .find("[cuda emu] wmma_divergent: block (0, 0, 0) is stuck") == 0);
}

TEST_CASE("cuda emu gemm: v4 (tensor cores, TF32) equals the naive loop on TF32 inputs; ragged, every transpose, both orders") {
  // (1,1,1): one partial block; (37,45,19): every tile ragged, K not a multiple of 16 or 8; (130,140,40):
  // 2 × 2 blocks of 128 × 128, each ragged on its far side, K over 3 K tiles with a partial last one.
  struct Shape {
    int64_t M, N, K;
  };
  const Shape shapes[] = {{1, 1, 1}, {37, 45, 19}, {130, 140, 40}};
  uint64_t seed = 300;
  double worst_tf32 = 0, worst_f32 = 0, worst_abs_tf32 = 0, worst_abs_f32 = 0;
  for (const Shape& s : shapes)
    for (int t = 0; t < 4; t++) {
      const bool trans_a = t & 1, trans_b = t & 2;
      CAPTURE(s.M);
      CAPTURE(s.N);
      CAPTURE(s.K);
      CAPTURE(trans_a);
      CAPTURE(trans_b);
      const Problem p(trans_a, trans_b, s.M, s.N, s.K, 1.25f, -0.5f, 3, seed += 10);
      const std::vector<float> want = p.naive(true), plain = p.naive(false);
      const std::vector<double> ref_tf32 = gemm_double(p.g, p.a32.data(), p.b32.data(), p.c0.data());
      std::vector<float> first;
      for (LaneOrder order : {LaneOrder::forward, LaneOrder::reverse}) {
        CAPTURE(sg::emu::lane_order_name(order));
        sg::emu::LaneOrderScope scope(order);
        const std::vector<float> got = p.run_v4();
        CHECK(sg::emu::last_launch().kernel == "gemm_v4_mma");
        CHECK(bit_mismatches(p, got, want) == 0);
        const Errors e2 = compare(p.g, p.a32.data(), p.b32.data(), p.c0.data(), got.data(), ref_tf32, tf32_per_term(s.K));
        const Errors e3 = compare(p.g, p.a.data(), p.b.data(), p.c0.data(), got.data(), dense(p.g, plain), f32_per_term(s.K));
        CHECK(e2.worst_ratio <= 1);
        CHECK(e3.worst_ratio <= 1);
        worst_tf32 = std::max(worst_tf32, e2.worst_ratio);
        worst_f32 = std::max(worst_f32, e3.worst_ratio);
        worst_abs_tf32 = std::max(worst_abs_tf32, e2.worst_abs);
        worst_abs_f32 = std::max(worst_abs_f32, e3.worst_abs);
        if (first.empty()) first = got;
        else CHECK(std::memcmp(first.data(), got.data(), got.size() * 4) == 0);   // the two orders: same bits
      }
      if (s.K >= 19) {   // TF32 really rounded: most elements differ from the f32 GEMM's
        const std::vector<float> got = p.run_v4();
        int64_t differ = 0;
        for (int64_t i = 0; i < s.M; i++)
          for (int64_t j = 0; j < s.N; j++) differ += got[i * p.g.ldc + j] != plain[i * p.g.ldc + j];
        CHECK(differ > s.M * s.N / 2);
      }
    }
  MESSAGE("v4 emulated: max |err| / bound vs the TF32 double reference " << worst_tf32 << " (max |err| " << worst_abs_tf32
                                                                          << "), vs the f32 GEMM " << worst_f32
                                                                          << " (max |err| " << worst_abs_f32 << ")");
}

TEST_CASE("cuda emu gemm: v4 with beta = 0 never reads C, alpha = 0 never reads A or B, K = 0 gives beta·C") {
  const std::vector<float> nans(64 * 64, NAN);
  for (LaneOrder order : {LaneOrder::forward, LaneOrder::reverse}) {
    CAPTURE(sg::emu::lane_order_name(order));
    sg::emu::LaneOrderScope scope(order);
    {
      Problem p(false, true, 33, 40, 20, 0.75f, 0.0f, 1, 7);
      for (int64_t i = 0; i < 33; i++)
        for (int64_t j = 0; j < 40; j++) p.c0[i * p.g.ldc + j] = NAN;
      const std::vector<float> got = p.run_v4();
      int64_t nan_count = 0;
      for (int64_t i = 0; i < 33; i++)
        for (int64_t j = 0; j < 40; j++) nan_count += std::isnan(got[i * p.g.ldc + j]);
      CHECK(nan_count == 0);
      CHECK(bit_mismatches(p, got, p.naive(true)) == 0);
    }
    {
      Problem p(true, false, 33, 40, 20, 0.0f, -1.5f, 0, 8);
      p.g.A = nans.data();
      p.g.B = nans.data();
      const std::vector<float> got = p.run_v4();
      CHECK(sg::emu::last_launch().kernel == "gemm_scale_c");
      for (int64_t e = 0; e < 33 * 40; e++) REQUIRE(got[e] == -1.5f * p.c0[e]);
    }
    {
      Problem p(false, false, 20, 33, 0, 2.0f, 0.5f, 2, 9);
      CHECK(bit_mismatches(p, p.run_v4(), p.naive(true)) == 0);
    }
  }
}

TEST_CASE("cuda emu gemm: v4 batches with a broadcast operand equal a loop of the naive GEMM on TF32 inputs") {
  const int64_t M = 40, N = 50, K = 24, batch = 3;
  for (int variant = 0; variant < 2; variant++) {
    CAPTURE(variant);
    const bool trans_b = variant == 1;
    const int64_t lda = K + 1, ldb = (trans_b ? K : N) + 2, ldc = N + 1;
    const int64_t a_rows = M, b_rows = trans_b ? N : K;
    const int64_t stride_a = variant == 0 ? 0 : a_rows * lda, stride_b = variant == 1 ? 0 : b_rows * ldb;
    const int64_t stride_c = M * ldc + 7;
    const std::vector<float> a = random_matrix((variant == 0 ? 1 : batch) * a_rows, K, lda, 61 + variant);
    const std::vector<float> b = random_matrix((variant == 1 ? 1 : batch) * b_rows, trans_b ? K : N, ldb, 71 + variant);
    const std::vector<float> a32 = to_tf32(a), b32 = to_tf32(b);
    std::vector<float> c0((size_t)(batch * stride_c), NAN);
    for (int64_t bi = 0; bi < batch; bi++) {
      const std::vector<float> cb = random_matrix(M, N, ldc, 81 + variant + 10 * bi);
      std::copy(cb.begin(), cb.end(), c0.begin() + bi * stride_c);
    }
    std::vector<float> want = c0;
    for (int64_t bi = 0; bi < batch; bi++)
      sg::cpu::gemm_f32_naive(false, trans_b, M, N, K, 0.5f, a32.data() + bi * stride_a, lda, b32.data() + bi * stride_b,
                              ldb, 2.0f, want.data() + bi * stride_c, ldc);
    for (LaneOrder order : {LaneOrder::forward, LaneOrder::reverse}) {
      CAPTURE(sg::emu::lane_order_name(order));
      sg::emu::LaneOrderScope scope(order);
      std::vector<float> got = c0;
      sg::GemmArgs g{false, trans_b, M, N, K, 0.5f, a.data(), lda, b.data(), ldb, 2.0f, got.data(), ldc};
      g.batch = batch;
      g.stride_a = stride_a;
      g.stride_b = stride_b;
      g.stride_c = stride_c;
      sg::cuda_emu::gemm_v4_mma(g);
      int64_t bad = 0;
      for (int64_t bi = 0; bi < batch; bi++) {
        sg::GemmArgs gb = g;
        gb.batch = 1;
        gb.A = a32.data() + bi * stride_a;
        gb.B = b32.data() + bi * stride_b;
        const std::vector<float> got_b(got.begin() + bi * stride_c, got.begin() + bi * stride_c + M * ldc);
        const std::vector<float> c0_b(c0.begin() + bi * stride_c, c0.begin() + bi * stride_c + M * ldc);
        if (kExactBits) {
          for (int64_t e = 0; e < M * ldc; e++) bad += bits(got_b[e]) != bits(want[bi * stride_c + e]) && !std::isnan(want[bi * stride_c + e]);
        } else {
          const Errors e = compare(gb, gb.A, gb.B, c0_b.data(), got_b.data(), gemm_double(gb, gb.A, gb.B, c0_b.data()), tf32_per_term(K));
          bad += e.worst_ratio > 1;
        }
      }
      CHECK(bad == 0);
      int64_t touched = 0;   // the gaps between C's batches, and every row's padding, are never written
      for (size_t e = 0; e < got.size(); e++) touched += std::isnan(c0[e]) && !std::isnan(got[e]);
      CHECK(touched == 0);
    }
  }
}

TEST_CASE("cuda emu gemm: v4's launch counts follow from its tiling; gemm() with tf32 runs v4") {
  // C[130, 140], K = 40: 2 × 2 blocks of 256 threads = 8 warps, 3 K tiles of 16. Per block: 2 barriers per K
  // tile; per warp, each wmma call and __syncwarp one meeting: 8 fill_fragment + per K tile 2 × (4 + 2 loads +
  // 8 mma_sync) + per accumulator (8) a store and 2 __syncwarp.
  const int64_t M = 130, N = 140, K = 40, k_tiles = 3, blocks = 4, warps = 8;
  const Problem p(false, false, M, N, K, 1.0f, 0.0f, 0, 5);
  p.run_v4();
  const sg::emu::LaunchStats& s = sg::emu::last_launch();
  CHECK(s.kernel == "gemm_v4_mma");
  CHECK(s.blocks == blocks);
  CHECK(s.threads_per_block == sg::kGemmV4Tiling.threads);
  CHECK(s.barriers == blocks * 2 * k_tiles);
  CHECK(s.warp_exchanges == blocks * warps * (8 + k_tiles * 2 * (4 + 2 + 8) + 8 * 3));

  Problem q(true, true, 9, 11, 13, 1.0f, 1.0f, 0, 77);
  std::vector<float> got = q.c0;
  sg::GemmArgs g = q.g;
  g.C = got.data();
  g.precision = sg::GemmPrecision::tf32;
  sg::cuda_emu::gemm(g);
  CHECK(sg::emu::last_launch().kernel == "gemm_v4_mma");
  CHECK(bit_mismatches(q, got, q.naive(true)) == 0);
}

TEST_CASE("cuda emu gemm: v4's bad arguments are named errors") {
  Problem p(false, false, 4, 5, 6, 1.0f, 0.0f, 0, 3);
  std::vector<float> c = p.c0;
  sg::GemmArgs g = p.g;
  g.C = c.data();
  g.ldb = 4;
  CHECK(sg::test::error_of([&] { sg::cuda_emu::gemm_v4_mma(g); }) ==
        "[cuda] gemm_v4_mma: ldb=4 is shorter than a row of 5 (M=4, N=5, K=6, trans_a=0, trans_b=0, batch=1)");
}
