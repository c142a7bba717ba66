// tests/ops/test_fp8_gemm.cpp — the blockwise FP8 GEMM (ops/cpu/fp8_gemm.h):
//   * a hand-made case whose three accumulation modes are computed by hand;
//   * fp8_gemm == fp8_gemm_naive bit for bit, every mode, tile and block scale layouts, 1 and 2 threads
//     (today fp8_gemm runs the same per-element loop on split rows, so this guards the thread split and is
//     the contract a packed SIMD version must keep; the other cases check the arithmetic itself);
//   * fp32_promoted against a float64 sum of the dequantized operands, within the f32 accumulation bound;
//   * the limited (unpromoted, 14-bit) accumulator's error grows with K, promotion keeps it flat;
//   * argument errors name the field.
#include <doctest/doctest.h>

#include <array>
#include <cmath>
#include <cstring>
#include <vector>

#include "autograd/rng.h"
#include "autograd/runtime.h"
#include "ops/cpu/fp8_gemm.h"
#include "ops/cpu/fp8_quant.h"
#include "ops/fp8.h"
#include "tests/test_util.h"

using namespace sg;
using cpu::Fp8Accumulation;

namespace {

// Random non-zero operands quantized the DeepSeek way: A in 1×block tiles, B in blocks (or tiles).
struct Operands {
  int64_t M, N, K, block, b_rows;
  std::vector<uint8_t> a, b;
  std::vector<float> sa, sb;
};

Operands make_operands(Rng& rng, int64_t M, int64_t N, int64_t K, int64_t block, bool b_tiles, double mean = 0.0) {
  Operands o{M, N, K, block, b_tiles ? 1 : block, {}, {}, {}, {}};
  std::vector<float> x(M * K), w(N * K);
  for (float& v : x) v = (float)(mean + rng.normal());
  for (float& v : w) v = (float)(mean + 0.1 * rng.normal());
  o.a.resize(M * K), o.b.resize(N * K);
  o.sa.resize(M * cpu::fp8_num_blocks(K, block));
  cpu::act_quant_f32(x.data(), M, K, block, false, o.a.data(), o.sa.data());
  if (b_tiles) {
    o.sb.resize(N * cpu::fp8_num_blocks(K, block));
    cpu::act_quant_f32(w.data(), N, K, block, false, o.b.data(), o.sb.data());
  } else {
    o.sb.resize(cpu::fp8_num_blocks(N, block) * cpu::fp8_num_blocks(K, block));
    cpu::weight_quant_f32(w.data(), N, K, block, o.b.data(), o.sb.data());
  }
  return o;
}

cpu::Fp8GemmArgs args_of(Operands& o, std::vector<float>& c, Fp8Accumulation acc) {
  c.assign(o.M * o.N, -1.0f);
  cpu::Fp8GemmArgs g;
  g.a = o.a.data(), g.a_scale = o.sa.data(), g.b = o.b.data(), g.b_scale = o.sb.data(), g.c = c.data();
  g.M = o.M, g.N = o.N, g.K = o.K, g.block = o.block, g.a_scale_rows = 1, g.b_scale_rows = o.b_rows;
  g.accumulation = acc;
  return g;
}

// Σ_k dq(a)·dq(b) in double, and Σ_k |dq(a)·dq(b)|.
void reference(const Operands& o, int64_t m, int64_t n, double& sum, double& abs_sum) {
  const int64_t KB = cpu::fp8_num_blocks(o.K, o.block);
  sum = abs_sum = 0;
  for (int64_t k = 0; k < o.K; k++) {
    const double a = (double)lowp::e4m3_to_f32(o.a[m * o.K + k]) * o.sa[m * KB + k / o.block];
    const double b = (double)lowp::e4m3_to_f32(o.b[n * o.K + k]) * o.sb[(n / o.b_rows) * KB + k / o.block];
    sum += a * b, abs_sum += std::abs(a * b);
  }
}

}  // namespace

TEST_CASE("fp8_gemm: a hand-made 1x1x4 case, block 2, in all three modes") {
  // a = [1, 2, 3, 0.5], b = [448, 448, 1, 1] (all exact E4M3 codes); scales s_a = [1, 2], s_b = [0.5, 4].
  const float av[4] = {1, 2, 3, 0.5f}, bv[4] = {448, 448, 1, 1};
  uint8_t a[4], b[4];
  for (int i = 0; i < 4; i++) a[i] = lowp::f32_to_e4m3(av[i]), b[i] = lowp::f32_to_e4m3(bv[i]);
  float sa[2] = {1, 2}, sb[2] = {0.5f, 4}, c = 0;
  cpu::Fp8GemmArgs g;
  g.a = a, g.a_scale = sa, g.b = b, g.b_scale = sb, g.c = &c;
  g.M = g.N = 1, g.K = 4, g.block = 2, g.a_scale_rows = 1, g.b_scale_rows = 2;
  // block 0: (448 + 896)·1·0.5 = 672; block 1: (3 + 0.5)·2·4 = 28 -> 700
  cpu::fp8_gemm_naive(g);
  CHECK(c == 700.0f);
  // 4 significant bits: block 0 sum 448 + 896 = 1344 -> 1280 (0b101_0000000 keeps 1010), ·0.5 = 640;
  // block 1: 3 + 0.5 = 3.5 (4 bits: exact) ·8 = 28 -> 668
  g.accumulation = Fp8Accumulation::limited_promoted, g.accum_bits = 4;
  cpu::fp8_gemm_naive(g);
  CHECK(c == 668.0f);
  // unpromoted, 4 bits: 224 -> 224 + 448 = 672 -> 640; + 24 = 664 -> 640; + 4 = 644 -> 640
  g.accumulation = Fp8Accumulation::limited;
  cpu::fp8_gemm_naive(g);
  CHECK(c == 640.0f);
  cpu::fp8_gemm(g);
  CHECK(c == 640.0f);
}

TEST_CASE("fp8_gemm: the same bits as fp8_gemm_naive, every mode, both B layouts, 1 and 2 threads") {
  Rng rng(21);
  const int prev = num_threads();
  for (auto [M, N, K] : std::vector<std::array<int64_t, 3>>{{1, 1, 1}, {7, 5, 130}, {33, 17, 300}, {64, 40, 256}})
    for (bool b_tiles : {false, true})
      for (Fp8Accumulation acc : {Fp8Accumulation::fp32_promoted, Fp8Accumulation::limited_promoted, Fp8Accumulation::limited}) {
        const char* mode = cpu::fp8_accumulation_name(acc);
        CAPTURE(M);
        CAPTURE(N);
        CAPTURE(K);
        CAPTURE(b_tiles);
        CAPTURE(mode);
        Operands o = make_operands(rng, M, N, K, 128, b_tiles);
        std::vector<float> want, got;
        cpu::fp8_gemm_naive(args_of(o, want, acc));
        for (int threads : {1, 2}) {
          set_num_threads(threads);
          cpu::fp8_gemm(args_of(o, got, acc));
          CHECK(std::memcmp(want.data(), got.data(), want.size() * sizeof(float)) == 0);
        }
      }
  set_num_threads(prev);
}

TEST_CASE("fp8_gemm: fp32_promoted vs float64 within the f32 accumulation bound; limited error grows with K") {
  Rng rng(4);
  // Products of E4M3 values are exact in f32; each block sum of ≤ 128 terms and each promotion (two
  // products and an add) round with relative 2^-24 of the running |sum| ≤ Σ|t|: |err| ≤ (block + 3·KB)·2^-24·Σ|t|.
  Operands o = make_operands(rng, 9, 11, 1000, 128, false);
  std::vector<float> c;
  cpu::fp8_gemm(args_of(o, c, Fp8Accumulation::fp32_promoted));
  const int64_t KB = cpu::fp8_num_blocks(o.K, o.block);
  for (int64_t m = 0; m < o.M; m++)
    for (int64_t n = 0; n < o.N; n++) {
      double sum, abs_sum;
      reference(o, m, n, sum, abs_sum);
      REQUIRE(std::abs(c[m * o.N + n] - sum) <= (o.block + 3 * KB) * std::ldexp(abs_sum, -24));
    }
  // Positive-mean data (sums grow with K): the 14-bit accumulator without promotion loses more as K grows.
  std::vector<double> err_limited, err_promoted;
  for (int64_t K : {128, 1024, 4096}) {
    Operands p = make_operands(rng, 4, 4, K, 128, false, /*mean=*/1.0);
    double el = 0, ep = 0;
    for (Fp8Accumulation acc : {Fp8Accumulation::limited, Fp8Accumulation::limited_promoted}) {
      cpu::fp8_gemm(args_of(p, c, acc));
      for (int64_t m = 0; m < 4; m++)
        for (int64_t n = 0; n < 4; n++) {
          double sum, abs_sum;
          reference(p, m, n, sum, abs_sum);
          (acc == Fp8Accumulation::limited ? el : ep) += std::abs(c[m * 4 + n] - sum) / std::abs(sum) / 16;
        }
    }
    MESSAGE("K " << K << ": mean relative error limited " << el << ", limited_promoted " << ep);
    err_limited.push_back(el), err_promoted.push_back(ep);
  }
  CHECK(err_limited[1] > 2 * err_limited[0]);
  CHECK(err_limited[2] > 2 * err_limited[1]);
  CHECK(err_limited[2] > 10 * err_promoted[2]);
  CHECK(err_promoted[2] < 2 * err_promoted[0]);  // promotion every 128 keeps it flat in K
}

TEST_CASE("fp8_gemm: argument errors name the field") {
  cpu::Fp8GemmArgs g;
  g.M = -1;
  CHECK(test::error_of([&] { cpu::fp8_gemm(g); }).find("negative size M=-1") != std::string::npos);
  g.M = 1, g.b_scale_rows = 3;
  CHECK(test::error_of([&] { cpu::fp8_gemm(g); }).find("b_scale_rows must be 1 or block") != std::string::npos);
}
