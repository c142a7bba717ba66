// tests/cuda/test_gemm_emu.cpp — the CUDA GEMM versions v1–v3 (cuda/kernels/gemm.cuh), run in the CPU
// emulation in both lane orders, against sg::cpu::gemm_f32_naive on random inputs: ragged shapes, every
// transpose, padded leading dimensions, alpha/beta, batches with broadcast operands. (v4, the tensor cores, runs
// in the emulation on cuda/emu/wmma.h: tests/cuda/test_gemm_v4_emu.cpp; chapter 15 also runs it on a GPU.)
//
// Same bits or a tolerance? v1–v3 perform, for every C element, exactly the naive loop's operations in its
// order: sum = 0; sum += a·b for k = 0..K-1; alpha·sum + (beta == 0 ? 0 : beta·c). The tiles' zero padding
// only adds exact +0 terms (0·0 = +0, and sum + 0 = sum since sum is never −0 in round-to-nearest: it starts
// at +0). So the results are the same bits IF the compiler rounds the same operations in both places. g++
// fuses a·b + c into one FMA only when the target has an FMA instruction (-ffp-contract=fast is its default,
// but x86-64 without -mfma has no FMA, and then __FP_FAST_FMAF is undefined): our default build compiles both
// ops/cpu/gemm.cpp and the emulation without FMA, and this file checks bit equality. Where __FP_FAST_FMAF is
// defined (aarch64, -march=native), the two files may fuse differently, and the check becomes the rounding
// bound of a K-term f32 dot product: |got − want| <= 2 (K + 2) 2^-24 (|alpha| Σ_k |a_k b_k| + |beta c|).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "autograd/rng.h"
#include "cuda/emu/emu.h"
#include "cuda/gemm.h"
#include "ops/cpu/gemm.h"
#include "tests/test_util.h"

using sg::emu::LaneOrder;

namespace {

#if defined(__FP_FAST_FMAF)
constexpr bool kExactBits = false;
#else
constexpr bool kExactBits = true;
#endif

struct Version {
  const char* name;
  void (*run)(const sg::GemmArgs&);
};
const Version kVersions[] = {{"gemm_v1_naive", sg::cuda_emu::gemm_v1_naive},
                             {"gemm_v2_smem", sg::cuda_emu::gemm_v2_smem},
                             {"gemm_v3_regtile", sg::cuda_emu::gemm_v3_regtile}};

// `rows` rows of `cols` random values in [-1, 1), stored with row stride ld >= cols; the padding is NaN,
// so a kernel that reads past a row (or past the matrix) shows it.
std::vector<float> random_matrix(int64_t rows, int64_t cols, int64_t ld, uint64_t seed) {
  sg::Rng rng(seed);
  std::vector<float> m((size_t)(rows * ld), NAN);
  for (int64_t r = 0; r < rows; r++)
    for (int64_t c = 0; c < cols; c++) m[r * ld + c] = (float)rng.uniform(-1.0, 1.0);
  return m;
}

// One GEMM problem with host buffers: A, B, and C's initial values (padding NaN), ld = minimum + pad.
struct Problem {
  sg::GemmArgs g{};
  std::vector<float> a, b, c0;
  Problem(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, float beta, int64_t pad, uint64_t seed) {
    const int64_t lda = (trans_a ? M : K) + pad, ldb = (trans_b ? K : N) + pad, ldc = N + pad;
    a = random_matrix(trans_a ? K : M, trans_a ? M : K, lda, seed);
    b = random_matrix(trans_b ? N : K, trans_b ? K : N, ldb, seed + 1);
    c0 = random_matrix(M, N, ldc, seed + 2);
    g = sg::GemmArgs{trans_a, trans_b, M, N, K, alpha, a.data(), lda, b.data(), ldb, beta, nullptr, ldc};
  }
  std::vector<float> naive() const {
    std::vector<float> c = c0;
    sg::cpu::gemm_f32_naive(g.trans_a, g.trans_b, g.M, g.N, g.K, g.alpha, g.A, g.lda, g.B, g.ldb, g.beta, c.data(), g.ldc);
    return c;
  }
  std::vector<float> run(const Version& v) const {
    std::vector<float> c = c0;
    sg::GemmArgs args = g;
    args.C = c.data();
    v.run(args);
    return c;
  }
};

// The rounding bound of C[i,j] (see the top of the file); 0 in the exact build.
double bound(const sg::GemmArgs& g, const float* A, const float* B, const float* c0, int64_t i, int64_t j) {
  if (kExactBits) return 0;
  double s = 0;
  for (int64_t k = 0; k < g.K; k++)
    s += std::abs((double)(g.trans_a ? A[k * g.lda + i] : A[i * g.lda + k]) * (g.trans_b ? B[j * g.ldb + k] : B[k * g.ldb + j]));
  return 2.0 * (g.K + 2) * std::ldexp(1.0, -24) * (std::abs(g.alpha) * s + (g.beta == 0 ? 0.0 : std::abs(g.beta * c0[i * g.ldc + j])));
}

// got == want as bits everywhere (C's padding included: the kernels must not write it), or within the bound.
int64_t mismatches(const sg::GemmArgs& g, const float* A, const float* B, const float* c0, const std::vector<float>& got,
                   const std::vector<float>& want) {
  if (kExactBits) {
    int64_t bad = 0;
    for (size_t e = 0; e < got.size(); e++) bad += std::memcmp(&got[e], &want[e], sizeof(float)) != 0;
    return bad;
  }
  int64_t bad = 0;
  for (int64_t i = 0; i < g.M; i++)
    for (int64_t j = 0; j < g.N; j++) {
      const size_t e = (size_t)(i * g.ldc + j);
      bad += !(std::abs((double)got[e] - want[e]) <= bound(g, A, B, c0, i, j));
    }
  for (int64_t i = 0; i < g.M; i++)   // the padding of each row: untouched NaN
    for (int64_t j = g.N; j < g.ldc && i * g.ldc + j < (int64_t)got.size(); j++) bad += !std::isnan(got[(size_t)(i * g.ldc + j)]);
  return bad;
}

}  // namespace

TEST_CASE("cuda emu gemm: v1, v2, v3 equal gemm_f32_naive on ragged shapes, every transpose, both lane orders") {
  // (1,1,1): one partial block; (37,45,19): every tile ragged; (130,70,150): several blocks along M for v1/v2,
  // M over v3's 128-row tile, K over several K tiles of every version with a partial last one.
  struct Shape {
    int64_t M, N, K;
  };
  const Shape shapes[] = {{1, 1, 1}, {37, 45, 19}, {130, 70, 150}};
  uint64_t seed = 100;
  for (const Shape& s : shapes)
    for (int t = 0; t < 4; t++) {
      const bool trans_a = t & 1, trans_b = t & 2;
      CAPTURE(s.M);
      CAPTURE(s.N);
      CAPTURE(s.K);
      CAPTURE(trans_a);
      CAPTURE(trans_b);
      const Problem p(trans_a, trans_b, s.M, s.N, s.K, 1.25f, -0.5f, 3, seed += 10);
      const std::vector<float> want = p.naive();
      for (const Version& v : kVersions)
        for (LaneOrder order : {LaneOrder::forward, LaneOrder::reverse}) {
          CAPTURE(v.name);
          CAPTURE(sg::emu::lane_order_name(order));
          sg::emu::LaneOrderScope scope(order);
          CHECK(mismatches(p.g, p.a.data(), p.b.data(), p.c0.data(), p.run(v), want) == 0);
        }
    }
}

TEST_CASE("cuda emu gemm: beta = 0 never reads C, alpha = 0 never reads A or B, K = 0 gives beta·C") {
  const std::vector<float> nans(64 * 64, NAN);
  for (const Version& v : kVersions)
    for (LaneOrder order : {LaneOrder::forward, LaneOrder::reverse}) {
      CAPTURE(v.name);
      CAPTURE(sg::emu::lane_order_name(order));
      sg::emu::LaneOrderScope scope(order);
      {  // beta == 0 over a C full of NaN: no NaN comes out, and the naive loop's numbers do
        Problem p(false, true, 33, 40, 20, 0.75f, 0.0f, 1, 7);
        for (int64_t i = 0; i < 33; i++)
          for (int64_t j = 0; j < 40; j++) p.c0[i * p.g.ldc + j] = NAN;
        const std::vector<float> got = p.run(v);
        int64_t nan_count = 0;
        for (int64_t i = 0; i < 33; i++)
          for (int64_t j = 0; j < 40; j++) nan_count += std::isnan(got[i * p.g.ldc + j]);
        CHECK(nan_count == 0);
        CHECK(mismatches(p.g, p.a.data(), p.b.data(), p.c0.data(), got, p.naive()) == 0);
      }
      {  // alpha == 0 with A and B all NaN: C = beta·C exactly, A and B untouched
        Problem p(true, false, 33, 40, 20, 0.0f, -1.5f, 0, 8);
        p.g.A = nans.data();
        p.g.B = nans.data();
        const std::vector<float> got = p.run(v);
        CHECK(sg::emu::last_launch().kernel == "gemm_scale_c");
        for (int64_t e = 0; e < 33 * 40; e++) REQUIRE(got[e] == -1.5f * p.c0[e]);
      }
      {  // K == 0: alpha·0 + beta·C, as the naive loop
        Problem p(false, false, 20, 33, 0, 2.0f, 0.5f, 2, 9);
        CHECK(mismatches(p.g, p.a.data(), p.b.data(), p.c0.data(), p.run(v), p.naive()) == 0);
      }
    }
}

TEST_CASE("cuda emu gemm: batches with a broadcast operand equal a loop of gemm_f32_naive") {
  // batch 3 of C[40,50] = A[40,24] · op(B): once with A broadcast (stride_a 0: one weight against a batch of
  // inputs), once with B broadcast and transposed; C's batches have a gap of 7 floats (NaN) between them.
  const int64_t M = 40, N = 50, K = 24, batch = 3;
  for (int variant = 0; variant < 2; variant++) {
    CAPTURE(variant);
    const bool trans_b = variant == 1;
    const int64_t lda = K + 1, ldb = (trans_b ? K : N) + 2, ldc = N + 1;
    const int64_t a_rows = M, b_rows = trans_b ? N : K;
    const int64_t stride_a = variant == 0 ? 0 : a_rows * lda, stride_b = variant == 1 ? 0 : b_rows * ldb;
    const int64_t stride_c = M * ldc + 7;
    const std::vector<float> a = random_matrix((variant == 0 ? 1 : batch) * a_rows, K, lda, 31 + variant);
    const std::vector<float> b = random_matrix((variant == 1 ? 1 : batch) * b_rows, trans_b ? K : N, ldb, 41 + variant);
    std::vector<float> c0((size_t)(batch * stride_c), NAN);
    for (int64_t bi = 0; bi < batch; bi++) {
      const std::vector<float> cb = random_matrix(M, N, ldc, 51 + variant + 10 * bi);
      std::copy(cb.begin(), cb.end(), c0.begin() + bi * stride_c);
    }
    std::vector<float> want = c0;
    for (int64_t bi = 0; bi < batch; bi++)
      sg::cpu::gemm_f32_naive(false, trans_b, M, N, K, 0.5f, a.data() + bi * stride_a, lda, b.data() + bi * stride_b, ldb,
                              2.0f, want.data() + bi * stride_c, ldc);
    for (const Version& v : kVersions)
      for (LaneOrder order : {LaneOrder::forward, LaneOrder::reverse}) {
        CAPTURE(v.name);
        CAPTURE(sg::emu::lane_order_name(order));
        sg::emu::LaneOrderScope scope(order);
        std::vector<float> got = c0;
        sg::GemmArgs g{false, trans_b, M, N, K, 0.5f, a.data(), lda, b.data(), ldb, 2.0f, got.data(), ldc};
        g.batch = batch;
        g.stride_a = stride_a;
        g.stride_b = stride_b;
        g.stride_c = stride_c;
        v.run(g);
        CHECK(sg::emu::last_launch().kernel == v.name);
        int64_t bad = 0;
        for (int64_t bi = 0; bi < batch; bi++) {
          sg::GemmArgs gb = g;   // one batch item, for the comparison's bound
          gb.A += bi * stride_a;
          gb.B += bi * stride_b;
          std::vector<float> got_b(got.begin() + bi * stride_c, got.begin() + bi * stride_c + M * ldc);
          std::vector<float> want_b(want.begin() + bi * stride_c, want.begin() + bi * stride_c + M * ldc);
          bad += mismatches(gb, gb.A, gb.B, c0.data() + bi * stride_c, got_b, want_b);
        }
        CHECK(bad == 0);
        int64_t touched = 0;   // the gaps between C's batches and past the last one are never written
        for (size_t e = 0; e < got.size(); e++) touched += std::memcmp(&got[e], &want[e], 4) != 0 && std::isnan(c0[e]);
        CHECK(touched == 0);
      }
  }
}

TEST_CASE("cuda emu gemm: the launches the emulator counts follow from each version's tiling") {
  // C[130, 70], K = 150. Every lane of v2/v3 passes every barrier, so a block costs threads × (barriers + 1)
  // fiber switches; v1 has no barrier (one switch per lane).
  const int64_t M = 130, N = 70, K = 150;
  const Problem p(false, false, M, N, K, 1.0f, 0.0f, 0, 5);
  auto blocks = [&](const sg::GemmTiling& t) { return ((M + t.block_m - 1) / t.block_m) * ((N + t.block_n - 1) / t.block_n); };
  for (const Version& v : kVersions) {
    CAPTURE(v.name);
    p.run(v);
    const sg::emu::LaunchStats& s = sg::emu::last_launch();
    const sg::GemmTiling& t = v.run == sg::cuda_emu::gemm_v1_naive ? sg::kGemmV1Tiling
                              : v.run == sg::cuda_emu::gemm_v2_smem ? sg::kGemmV2Tiling
                                                                    : sg::kGemmV3Tiling;
    const int64_t k_tiles = t.reuses_tiles ? (K + t.block_k - 1) / t.block_k : 0;
    CHECK(s.kernel == v.name);
    CHECK(s.blocks == blocks(t));
    CHECK(s.threads_per_block == t.threads);
    CHECK(s.barriers == blocks(t) * 2 * k_tiles);
    CHECK(s.switches == blocks(t) * t.threads * (2 * k_tiles + 1));
    CHECK(s.warp_exchanges == 0);
  }
}

TEST_CASE("cuda emu gemm: gemm() runs v3 (tf32 runs v4: tests/cuda/test_gemm_v4_emu.cpp)") {
  Problem p(true, true, 9, 11, 13, 1.0f, 1.0f, 0, 77);
  const std::vector<float> want = p.naive();
  std::vector<float> got = p.c0;
  sg::GemmArgs g = p.g;
  g.C = got.data();
  sg::cuda_emu::gemm(g);
  CHECK(sg::emu::last_launch().kernel == "gemm_v3_regtile");
  CHECK(mismatches(g, p.a.data(), p.b.data(), p.c0.data(), got, want) == 0);
}

TEST_CASE("cuda emu gemm: bad arguments are named errors") {
  Problem p(false, false, 4, 5, 6, 1.0f, 0.0f, 0, 3);
  std::vector<float> c = p.c0;
  sg::GemmArgs g = p.g;
  g.C = c.data();
  sg::GemmArgs short_lda = g;
  short_lda.lda = 5;
  CHECK(sg::test::error_of([&] { sg::cuda_emu::gemm_v2_smem(short_lda); }) ==
        "[cuda] gemm_v2_smem: lda=5 is shorter than a row of 6 (M=4, N=5, K=6, trans_a=0, trans_b=0, batch=1)");
  sg::GemmArgs negative = g;
  negative.M = -1;
  CHECK(sg::test::error_of([&] { sg::cuda_emu::gemm_v1_naive(negative); }).find("[cuda] gemm_v1_naive: negative size") == 0);
  sg::GemmArgs overlap = g;
  overlap.batch = 2;
  overlap.stride_c = 5;   // the second C would start inside the first
  CHECK(sg::test::error_of([&] { sg::cuda_emu::gemm_v3_regtile(overlap); }).find("[cuda] gemm_v3_regtile: stride_c=5 makes C's batches overlap") == 0);
  sg::GemmArgs empty = g;   // M = 0: nothing to do, nothing launched, no error
  empty.M = 0;
  CHECK(sg::test::error_of([&] { sg::cuda_emu::gemm_v3_regtile(empty); }) == "");
}
