// tests/cuda/test_fp8_emu.cpp — the CUDA FP8 kernels (cuda/kernels/fp8.cuh), run in the CPU emulation in both
// lane orders, against the CPU kernels (ops/cpu/fp8_quant.h, ops/cpu/fp8_gemm.h) on random inputs. Everything
// is asserted BIT-EQUAL (memcmp) to the CPU naive loops, and for the quantizers to the CPU fast versions too:
//   activation quantization per 1×block tile, ue8m0 off and on, blocks of 128, 200 (more elements than threads)
//   and 32 (fewer), K not a multiple of the block; hand-placed tiles: all zeros (the 1e-4 amax floor), an exact
//   scale 0.125 whose codes are checked by hand at ties (normal and subnormal, ties to even) and at 448;
//   a tile under the floor;
//   weight quantization per block×block block with ragged bottom / right edges and an all-zero corner block;
//   both dequantizations;
//   the FP8 GEMM in all three accumulation modes, both scale layouts, ragged M, N, K, K blocks that are not a
//   multiple of the kernel's 32-wide K slices; and the quantize → GEMM pipeline end to end;
//   argument errors name the kernel.
#include <doctest/doctest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <vector>

#include "autograd/rng.h"
#include "cuda/emu/emu.h"
#include "cuda/fp8.h"
#include "ops/cpu/fp8_gemm.h"
#include "ops/cpu/fp8_quant.h"
#include "ops/cpu/runtime.h"
#include "ops/fp8.h"
#include "tests/test_util.h"
#include "tests/cuda/emu_test_util.h"

using sg::emu::LaneOrder;
using sg::test::error_of;

using sg::test::emu::same_bits;

namespace {

constexpr LaneOrder kOrders[] = {LaneOrder::forward, LaneOrder::reverse};

// Random signed values with magnitudes log-uniform over 10^lo .. 10^hi: tiles whose small entries land on
// E4M3 subnormal codes (|x / scale| < 2^-6) and on zero, as well as on normal codes.
std::vector<float> log_uniform(sg::Rng& rng, int64_t n, double lo, double hi) {
  std::vector<float> v((size_t)n);
  for (float& x : v) x = (float)((rng.uniform() < 0.5 ? -1.0 : 1.0) * std::pow(10.0, rng.uniform(lo, hi)));
  return v;
}

int64_t blocks_of(int64_t n, int64_t block) { return (n + block - 1) / block; }

// Random E4M3 codes, never NaN (magnitudes 0x01..0x7E, subnormals included, both signs), and positive scales.
std::vector<uint8_t> random_codes(sg::Rng& rng, int64_t n) {
  std::vector<uint8_t> c((size_t)n);
  for (uint8_t& x : c) {
    const uint8_t mag = (uint8_t)(1 + rng.randint(126));
    x = rng.uniform() < 0.5 ? mag : (uint8_t)(mag | 0x80u);
  }
  return c;
}
std::vector<float> random_scales(sg::Rng& rng, int64_t n) {
  std::vector<float> s((size_t)n);
  for (float& x : s) x = (float)std::exp2(rng.uniform(-12.0, -4.0));
  return s;
}

struct NaiveScope {
  bool saved = sg::naive_kernels();
  explicit NaiveScope(bool on) { sg::set_naive_kernels(on); }
  ~NaiveScope() { sg::set_naive_kernels(saved); }
};

}  // namespace

TEST_CASE("cuda emu fp8: activation quantization gives the CPU's codes and scales; dequantization its values") {
  struct Shape {
    int64_t rows, K, block;
  };
  for (Shape sh : {Shape{5, 300, 128}, Shape{3, 300, 200}, Shape{4, 100, 32}}) {
    CAPTURE(sh.K);
    CAPTURE(sh.block);
    sg::Rng rng(10 + sh.block);
    std::vector<float> x = log_uniform(rng, sh.rows * sh.K, -6.0, 2.0);
    const int64_t nb = blocks_of(sh.K, sh.block);
    const bool hand = sh.block == 128;
    if (hand) {
      // row 1, tile 2 (the ragged one): all zeros, so amax is floored at 1e-4.
      for (int64_t k = 256; k < 300; k++) x[1 * 300 + k] = 0.0f;
      // row 2, tile 0: amax 56, so scale = 56/448 = 0.125 exactly (a power of two: ue8m0 keeps it); the
      // other entries stay below 50, then ties at known quotients.
      float* t = &x[2 * 300];
      for (int64_t k = 0; k < 128; k++) t[k] = std::fmod(t[k], 50.0f);
      t[0] = 56.0f;                                   // 448        -> 0x7E
      t[1] = 0.125f * 1.0625f;                        // 1.0625: tie 1 | 1.125, even -> 1.0   = 0x38
      t[2] = -0.125f * 1.1875f;                       // tie 1.125 | 1.25, even -> -1.25       = 0xBA
      t[3] = 0.125f * 1.5f * 0.001953125f;            // 1.5·2^-9: subnormal tie 1 | 2, -> 2   = 0x02
      t[4] = 0.125f * 0.5f * 0.001953125f;            // 0.5·2^-9: tie 0 | 1, even -> +0       = 0x00
      t[5] = -0.125f * 3.0f * 0.001953125f;           // 3·2^-9 exactly                        = 0x83
      t[6] = 0.125f * 432.0f;                         // tie 416 | 448, even -> 448            = 0x7E
      t[7] = 0.125f * 0.0625f;                        // 2^-4: normal, E = 3                   = 0x18
      // row 4, tile 1: every |x| under the floor 1e-4.
      for (int64_t k = 128; k < 256; k++) x[4 * 300 + k] = x[4 * 300 + k] < 0 ? -3e-5f : 7e-5f * (float)(k % 7) / 7.0f;
    }
    for (int ue8m0 = 0; ue8m0 <= 1; ue8m0++) {
      CAPTURE(ue8m0);
      std::vector<uint8_t> codes_naive(x.size()), codes_fast(x.size());
      std::vector<float> scales_naive(sh.rows * nb), scales_fast(sh.rows * nb), dq_naive(x.size());
      sg::cpu::act_quant_f32_naive(x.data(), sh.rows, sh.K, sh.block, ue8m0, codes_naive.data(), scales_naive.data());
      {
        NaiveScope fast(false);
        sg::cpu::act_quant_f32(x.data(), sh.rows, sh.K, sh.block, ue8m0, codes_fast.data(), scales_fast.data());
      }
      REQUIRE(same_bits(codes_naive, codes_fast));
      REQUIRE(same_bits(scales_naive, scales_fast));
      sg::cpu::act_dequant_f32_naive(codes_naive.data(), scales_naive.data(), sh.rows, sh.K, sh.block, dq_naive.data());
      for (LaneOrder order : kOrders) {
        CAPTURE(sg::emu::lane_order_name(order));
        sg::emu::LaneOrderScope scope(order);
        std::vector<uint8_t> codes(x.size(), 0x7F);
        std::vector<float> scales(sh.rows * nb, NAN), dq(x.size(), NAN);
        sg::cuda_emu::act_quant_f32({x.data(), sh.rows, sh.K, sh.block, ue8m0, codes.data(), scales.data()});
        CHECK(same_bits(codes, codes_naive));
        CHECK(same_bits(scales, scales_naive));
        sg::cuda_emu::act_dequant_f32({codes.data(), scales.data(), sh.rows, sh.K, sh.block, dq.data()});
        CHECK(same_bits(dq, dq_naive));
        if (hand) {
          CHECK(scales[1 * nb + 2] == sg::cpu::fp8_tile_scale(1e-4f, ue8m0));  // the floor
          for (int64_t k = 256; k < 300; k++) CHECK(codes[300 + k] == 0x00);
          CHECK(scales[2 * nb + 0] == 0.125f);
          const uint8_t want[8] = {0x7E, 0x38, 0xBA, 0x02, 0x00, 0x83, 0x7E, 0x18};
          for (int k = 0; k < 8; k++) CHECK(codes[2 * 300 + k] == want[k]);
          CHECK(scales[4 * nb + 1] == sg::cpu::fp8_tile_scale(1e-4f, ue8m0));
          if (ue8m0)  // every scale a power of two
            for (float s : scales) CHECK((std::bit_cast<uint32_t>(s) & 0x007FFFFFu) == 0u);
        }
      }
    }
  }
}

TEST_CASE("cuda emu fp8: weight quantization per block gives the CPU's codes and scales; dequantization its values") {
  struct Shape {
    int64_t N, K, block;
  };
  for (Shape sh : {Shape{130, 300, 128}, Shape{70, 100, 64}}) {
    CAPTURE(sh.block);
    sg::Rng rng(20 + sh.block);
    std::vector<float> w = log_uniform(rng, sh.N * sh.K, -5.0, 1.0);
    // The bottom-right ragged block all zeros: the 1e-4 floor.
    const int64_t n0 = (sh.N - 1) / sh.block * sh.block, k0 = (sh.K - 1) / sh.block * sh.block;
    for (int64_t n = n0; n < sh.N; n++)
      for (int64_t k = k0; k < sh.K; k++) w[n * sh.K + k] = 0.0f;
    const int64_t nbn = blocks_of(sh.N, sh.block), nbk = blocks_of(sh.K, sh.block);
    std::vector<uint8_t> codes_naive(w.size()), codes_fast(w.size());
    std::vector<float> s_naive(nbn * nbk), s_fast(nbn * nbk), dq_naive(w.size());
    sg::cpu::weight_quant_f32_naive(w.data(), sh.N, sh.K, sh.block, codes_naive.data(), s_naive.data());
    {
      NaiveScope fast(false);
      sg::cpu::weight_quant_f32(w.data(), sh.N, sh.K, sh.block, codes_fast.data(), s_fast.data());
    }
    REQUIRE(same_bits(codes_naive, codes_fast));
    REQUIRE(same_bits(s_naive, s_fast));
    sg::cpu::weight_dequant_f32_naive(codes_naive.data(), s_naive.data(), sh.N, sh.K, sh.block, dq_naive.data());
    for (LaneOrder order : kOrders) {
      CAPTURE(sg::emu::lane_order_name(order));
      sg::emu::LaneOrderScope scope(order);
      std::vector<uint8_t> codes(w.size(), 0x7F);
      std::vector<float> s(nbn * nbk, NAN), dq(w.size(), NAN);
      sg::cuda_emu::weight_quant_f32({w.data(), sh.N, sh.K, sh.block, codes.data(), s.data()});
      CHECK(same_bits(codes, codes_naive));
      CHECK(same_bits(s, s_naive));
      CHECK(s.back() == sg::cpu::fp8_tile_scale(0.0f, false));
      sg::cuda_emu::weight_dequant_f32({codes.data(), s.data(), sh.N, sh.K, sh.block, dq.data()});
      CHECK(same_bits(dq, dq_naive));
    }
  }
}

TEST_CASE("cuda emu fp8: the blockwise FP8 GEMM gives the CPU naive loop's bits in every accumulation mode") {
  struct Shape {
    int64_t M, N, K, block, a_rows, b_rows;
  };
  const Shape shapes[] = {
      {20, 40, 300, 128, 1, 128},  // activations × weights, K ragged (128 + 128 + 44)
      {20, 40, 300, 128, 128, 1},  // the other scale layouts
      {17, 33, 100, 48, 1, 48},    // K blocks of 48: 32 + 16 wide slices, the last block 4 wide
  };
  using sg::Fp8Accumulation;
  for (const Shape& sh : shapes) {
    CAPTURE(sh.block);
    CAPTURE(sh.a_rows);
    sg::Rng rng(30 + sh.block + sh.a_rows);
    const int64_t KB = blocks_of(sh.K, sh.block);
    const std::vector<uint8_t> a = random_codes(rng, sh.M * sh.K), b = random_codes(rng, sh.N * sh.K);
    const std::vector<float> sa = random_scales(rng, blocks_of(sh.M, sh.a_rows) * KB);
    const std::vector<float> sb = random_scales(rng, blocks_of(sh.N, sh.b_rows) * KB);
    std::vector<float> promoted;
    for (Fp8Accumulation acc : {Fp8Accumulation::fp32_promoted, Fp8Accumulation::limited_promoted, Fp8Accumulation::limited}) {
      CAPTURE(sg::cpu::fp8_accumulation_name(acc));
      sg::Fp8GemmArgs g;
      g.a = a.data(), g.a_scale = sa.data(), g.b = b.data(), g.b_scale = sb.data();
      g.M = sh.M, g.N = sh.N, g.K = sh.K, g.block = sh.block, g.a_scale_rows = sh.a_rows, g.b_scale_rows = sh.b_rows;
      g.accumulation = acc;
      g.accum_bits = acc == Fp8Accumulation::limited ? 10 : 14;
      std::vector<float> want(sh.M * sh.N, NAN);
      g.c = want.data();
      sg::cpu::fp8_gemm_naive(g);
      if (acc == Fp8Accumulation::fp32_promoted) promoted = want;
      else CHECK(!same_bits(want, promoted));  // the mode changes the numbers, so the comparison below sees it
      for (LaneOrder order : kOrders) {
        CAPTURE(sg::emu::lane_order_name(order));
        sg::emu::LaneOrderScope scope(order);
        std::vector<float> c(sh.M * sh.N, NAN);
        g.c = c.data();
        sg::cuda_emu::fp8_gemm(g);
        CHECK(same_bits(c, want));
      }
    }
  }
}

TEST_CASE("cuda emu fp8: quantize then GEMM, end to end, equals the CPU pipeline") {
  const int64_t M = 20, N = 40, K = 300, KB = 3;
  sg::Rng rng(40);
  std::vector<float> x((size_t)(M * K)), w((size_t)(N * K));
  for (float& v : x) v = (float)rng.normal(0.0, 1.0);
  for (float& v : w) v = (float)rng.normal(0.0, 0.05);
  std::vector<uint8_t> qa(x.size()), qb(w.size()), qa_cpu(x.size()), qb_cpu(w.size());
  std::vector<float> sa(M * KB), sb(KB), sa_cpu(M * KB), sb_cpu(KB), c(M * N), c_cpu(M * N);
  sg::cpu::act_quant_f32_naive(x.data(), M, K, 128, true, qa_cpu.data(), sa_cpu.data());
  sg::cpu::weight_quant_f32_naive(w.data(), N, K, 128, qb_cpu.data(), sb_cpu.data());
  sg::Fp8GemmArgs g;
  g.a = qa_cpu.data(), g.a_scale = sa_cpu.data(), g.b = qb_cpu.data(), g.b_scale = sb_cpu.data(), g.c = c_cpu.data();
  g.M = M, g.N = N, g.K = K;
  sg::cpu::fp8_gemm_naive(g);
  sg::cuda_emu::act_quant_f32({x.data(), M, K, 128, 1, qa.data(), sa.data()});
  sg::cuda_emu::weight_quant_f32({w.data(), N, K, 128, qb.data(), sb.data()});
  g.a = qa.data(), g.a_scale = sa.data(), g.b = qb.data(), g.b_scale = sb.data(), g.c = c.data();
  sg::cuda_emu::fp8_gemm(g);
  CHECK(same_bits(c, c_cpu));
}

TEST_CASE("cuda emu fp8: bad arguments name the kernel") {
  float f = 1;
  uint8_t q = 0;
  CHECK(error_of([&] { sg::cuda_emu::act_quant_f32({&f, -1, 4, 128, 0, &q, &f}); }).find("[cuda] act_quant_f32: need non-negative") == 0);
  CHECK(error_of([&] { sg::cuda_emu::act_quant_f32({&f, 1, 4, 0, 0, &q, &f}); }).find("[cuda] act_quant_f32") == 0);
  CHECK(error_of([&] { sg::cuda_emu::act_quant_f32({nullptr, 1, 4, 128, 0, &q, &f}); }).find("[cuda] act_quant_f32: x, codes") == 0);
  CHECK(error_of([&] { sg::cuda_emu::weight_quant_f32({&f, 3, -4, 128, &q, &f}); }).find("[cuda] weight_quant_f32") == 0);
  CHECK(error_of([&] { sg::cuda_emu::act_dequant_f32({&q, &f, 1, 1, 0, &f}); }).find("[cuda] act_dequant_f32") == 0);
  CHECK(error_of([&] { sg::cuda_emu::weight_dequant_f32({&q, nullptr, 1, 1, 128, &f}); }).find("[cuda] weight_dequant_f32") == 0);
  sg::Fp8GemmArgs g;
  g.a = &q, g.b = &q, g.a_scale = &f, g.b_scale = &f, g.c = &f, g.M = 1, g.N = 1, g.K = 1;
  g.a_scale_rows = 3;
  CHECK(error_of([&] { sg::cuda_emu::fp8_gemm(g); }).find("[cuda] fp8_gemm: a_scale_rows must be 1 or block") == 0);
  g.a_scale_rows = 1, g.M = -2;
  CHECK(error_of([&] { sg::cuda_emu::fp8_gemm(g); }).find("[cuda] fp8_gemm: negative size M=-2") == 0);
  g.M = 1, g.c = nullptr;
  CHECK(error_of([&] { sg::cuda_emu::fp8_gemm(g); }).find("[cuda] fp8_gemm: c is null") == 0);
  g.c = &f, g.accum_bits = 0;
  CHECK(error_of([&] { sg::cuda_emu::fp8_gemm(g); }).find("[cuda] fp8_gemm: accum_bits") == 0);
}
