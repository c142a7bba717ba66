// tests/ops/test_fp8_quant.cpp — DeepSeek-V3's fine-grained FP8 quantization (ops/cpu/fp8_quant.h):
// 1×128 activation tiles and 128×128 weight blocks, amax / 448 scales (optionally rounded up to a
// power of two, ue8m0), E4M3 codes. Checked by value: a hand-made tile (its amax, scale and each code,
// ties included), the power-of-two rounding, ragged edges (K = 200, N = 130) against an independent
// loop written here, the 1e-4 amax floor on an all-zero tile, and the round-trip error bound below on
// random inputs spanning many binades. A last case prints (MESSAGE) per-tensor vs per-tile RMS error
// on activations with outlier channels.
//
// The round-trip bound. Let y = x / s and q = RNE_e4m3(y) (no saturation happens: |y| ≤ amax / s = 448).
//   * |y| ≥ 2^-6 (E4M3 normals): y lies in a binade [2^e, 2^(e+1)) whose spacing is 2^(e−3), so
//     |q − y| ≤ 2^(e−4) ≤ 2^-4·|y|, i.e. |x − s·q| ≤ 2^-4·|x| (relative half-ulp of 3 mantissa bits).
//   * |y| < 2^-6 (subnormal range, spacing 2^-9): |q − y| ≤ 2^-10, i.e. |x − s·q| ≤ s·2^-10.
// The f32 division x / s and product s·q each add a relative 2^-24 at most, so the test allows a
// factor (1 + 2^-20) on top of these.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "autograd/rng.h"
#include "ops/cpu/fp8_quant.h"
#include "ops/fp8.h"

namespace {

using sg::lowp::e4m3_to_f32;
using sg::lowp::f32_to_e4m3;

// The reference scale of a tile, written independently: max(amax, 1e-4) / 448, and for ue8m0
// 2^ceil(log2(.)) in double (exact for these f32 values: log2 of a float just above 2^e is
// e + ~1.7e-7, which double resolves).
float ref_scale(float amax, bool ue8m0) {
  const float s = std::max(amax, 1e-4f) / 448.0f;
  return ue8m0 ? (float)std::exp2(std::ceil(std::log2((double)s))) : s;
}

// A random value spread over many binades (2^-20 … 2^5) with a random sign: it exercises the E4M3
// normals, its subnormals and underflow to zero inside one tile.
float spread_value(sg::Rng& rng) {
  const double mag = std::exp2(rng.uniform(-20.0, 5.0));
  return (float)(rng.uniform() < 0.5 ? -mag : mag);
}

// Checks |x − dq| against the bound derived in the header; returns the largest error divided by its
// bound (≤ 1), separately for the normal (rel) and subnormal (abs) ranges.
struct BoundStats {
  double worst_rel = 0, worst_abs = 0;
  int64_t n_normal = 0, n_sub = 0;
};
void check_round_trip(float x, float s, float dq, BoundStats& st) {
  const double err = std::fabs((double)x - (double)dq), slack = 1.0 + std::exp2(-20.0);
  if (std::fabs((double)x / s) >= std::exp2(-6.0)) {
    const double bound = std::exp2(-4.0) * std::fabs((double)x);
    REQUIRE(err <= bound * slack);
    st.worst_rel = std::max(st.worst_rel, err / bound);
    ++st.n_normal;
  } else {
    const double bound = (double)s * std::exp2(-10.0);
    REQUIRE(err <= bound * slack);
    st.worst_abs = std::max(st.worst_abs, err / bound);
    ++st.n_sub;
  }
}

}  // namespace

TEST_CASE("fp8_quant: a hand-made 1x128 tile — amax, scale and each code") {
  // amax 3.5 gives scale 3.5 / 448 = 2^-7 exactly, so x / scale = 128·x exactly and the codes follow
  // from the E4M3 table by hand.
  std::vector<float> x(128, 0.5f);  // 0.5 → 64 = 2^6: E = 13, m = 0 → 0x68
  x[0] = -3.5f;                     // the amax: −448 → 0xFE (largest finite, negative)
  x[1] = 1.0f;                      // 128 = 2^7 → E = 14 → 0x70
  x[2] = 0.01f;                     // 1.28 → nearest 1.25 = 1 + 2/8 → E = 7, m = 2 → 0x3A
  x[3] = 1.0625f / 128;             // 1.0625: tie between 1.0 (m = 0, even) and 1.125 → 0x38
  x[4] = 1.1875f / 128;             // 1.1875: tie between 1.125 (m = 1) and 1.25 (m = 2, even) → 0x3A
  x[5] = std::exp2(-16.0f);         // 2^-9: the smallest subnormal → 0x01
  x[6] = 0.0f;                      // → 0x00
  x[7] = -std::exp2(-18.0f);        // 2^-11: below half the smallest subnormal → −0 (0x80)
  x[8] = 3.0f;                      // 384 = 1.5·2^8: E = 15, m = 4 → 0x7C (normal: E4M3 "fn")
  std::vector<uint8_t> codes(128);
  float scale = 0;
  sg::cpu::act_quant_f32(x.data(), 1, 128, 128, false, codes.data(), &scale);
  CHECK(scale == std::exp2(-7.0f));
  const uint8_t want[9] = {0xFE, 0x70, 0x3A, 0x38, 0x3A, 0x01, 0x00, 0x80, 0x7C};
  for (int i = 0; i < 9; ++i) CHECK_MESSAGE(codes[i] == want[i], "element " << i);
  for (int i = 9; i < 128; ++i) CHECK(codes[i] == 0x68);
  std::vector<float> dq(128);
  sg::cpu::act_dequant_f32(codes.data(), &scale, 1, 128, 128, dq.data());
  CHECK(dq[0] == -3.5f);
  CHECK(dq[2] == 1.25f / 128);
  CHECK(dq[3] == 1.0f / 128);
  CHECK(dq[5] == std::exp2(-16.0f));
  CHECK(dq[9] == 0.5f);

  // ue8m0 on the same tile changes nothing (2^-7 is already a power of two); on amax 1.0 it does:
  // 1/448 ≈ 0.00223 lies in (2^-9, 2^-8], so the scale becomes 2^-8 and 1.0 → 256 (0x78) instead of
  // 448 (0x7E) — the top of the E4M3 range is given up for an exponent-only scale.
  float s8 = 0;
  sg::cpu::act_quant_f32(x.data(), 1, 128, 128, true, codes.data(), &s8);
  CHECK(s8 == std::exp2(-7.0f));
  std::vector<float> ones(128, 1.0f);
  sg::cpu::act_quant_f32(ones.data(), 1, 128, 128, true, codes.data(), &s8);
  CHECK(s8 == std::exp2(-8.0f));
  CHECK(codes[0] == 0x78);
  sg::cpu::act_quant_f32(ones.data(), 1, 128, 128, false, codes.data(), &s8);
  CHECK(s8 == 1.0f / 448.0f);
  CHECK(codes[0] == 0x7E);
}

TEST_CASE("fp8_quant: ue8m0 rounds the scale up to a power of two") {
  using sg::cpu::fp8_tile_scale;
  // amax 14 = 448·2^-5: the scale is exactly 2^-5 and stays; one ulp more rounds up to 2^-4.
  CHECK(fp8_tile_scale(14.0f, true) == std::exp2(-5.0f));
  CHECK(fp8_tile_scale(std::nextafter(14.0f, 100.0f), true) == std::exp2(-4.0f));
  CHECK(fp8_tile_scale(13.99f, true) == std::exp2(-5.0f));
  CHECK(fp8_tile_scale(448.0f, true) == 1.0f);
  CHECK(fp8_tile_scale(449.0f, true) == 2.0f);
  CHECK(fp8_tile_scale(0.0f, true) == (float)std::exp2(std::ceil(std::log2(1e-4 / 448))));  // 2^-22
  CHECK(fp8_tile_scale(0.0f, true) == std::exp2(-22.0f));
  sg::Rng rng(11);
  for (int i = 0; i < 20000; ++i) {
    const float amax = (float)std::exp2(rng.uniform(-16.0, 16.0));
    const float s = fp8_tile_scale(amax, true);
    REQUIRE(s == ref_scale(amax, true));
    REQUIRE(s >= ref_scale(amax, false));   // rounded up: codes never saturate
    REQUIRE(s < 2 * ref_scale(amax, false));
    REQUIRE(fp8_tile_scale(amax, false) == ref_scale(amax, false));
  }
}

TEST_CASE("fp8_quant: ragged tiles — activations K = 200, weights N = 130, K = 200") {
  sg::Rng rng(3);
  const int64_t rows = 3, N = 130, K = 200, B = 128;
  CHECK(sg::cpu::fp8_num_blocks(K, B) == 2);
  CHECK(sg::cpu::fp8_num_blocks(N, B) == 2);
  for (bool ue8m0 : {false, true}) {
    std::vector<float> x(rows * K);
    for (auto& v : x) v = (float)rng.normal();
    x[1 * K + 150] = -40.0f;  // only the second (ragged, 72-wide) tile of row 1 sees it
    std::vector<uint8_t> codes(rows * K);
    std::vector<float> scales(rows * 2), dq(rows * K);
    sg::cpu::act_quant_f32(x.data(), rows, K, B, ue8m0, codes.data(), scales.data());
    sg::cpu::act_dequant_f32(codes.data(), scales.data(), rows, K, B, dq.data());
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t t = 0; t < 2; ++t) {
        float amax = 0;
        for (int64_t k = t * B; k < std::min(K, (t + 1) * B); ++k) amax = std::max(amax, std::fabs(x[r * K + k]));
        const float s = ref_scale(amax, ue8m0);
        REQUIRE(scales[r * 2 + t] == s);
        for (int64_t k = t * B; k < std::min(K, (t + 1) * B); ++k) {
          REQUIRE(codes[r * K + k] == f32_to_e4m3(x[r * K + k] / s));
          REQUIRE(dq[r * K + k] == e4m3_to_f32(codes[r * K + k]) * s);
        }
      }
    CHECK(scales[1 * 2 + 1] == ref_scale(40.0f, ue8m0));
    CHECK(scales[1 * 2 + 0] < ref_scale(10.0f, ue8m0));
  }

  std::vector<float> w(N * K);
  for (auto& v : w) v = (float)(0.02 * rng.normal());
  w[129 * K + 199] = 0.5f;  // the 2×72 corner block
  std::vector<uint8_t> codes(N * K);
  std::vector<float> sinv(4), dq(N * K);
  sg::cpu::weight_quant_f32(w.data(), N, K, B, codes.data(), sinv.data());
  sg::cpu::weight_dequant_f32(codes.data(), sinv.data(), N, K, B, dq.data());
  for (int64_t bn = 0; bn < 2; ++bn)
    for (int64_t bk = 0; bk < 2; ++bk) {
      const int64_t n0 = bn * B, n1 = std::min(N, n0 + B), k0 = bk * B, k1 = std::min(K, k0 + B);
      float amax = 0;
      for (int64_t n = n0; n < n1; ++n)
        for (int64_t k = k0; k < k1; ++k) amax = std::max(amax, std::fabs(w[n * K + k]));
      const float s = ref_scale(amax, false);
      REQUIRE(sinv[bn * 2 + bk] == s);
      for (int64_t n = n0; n < n1; ++n)
        for (int64_t k = k0; k < k1; ++k) {
          REQUIRE(codes[n * K + k] == f32_to_e4m3(w[n * K + k] / s));
          REQUIRE(dq[n * K + k] == e4m3_to_f32(codes[n * K + k]) * s);
        }
    }
  CHECK(sinv[3] == 0.5f / 448.0f);
  CHECK(sinv[0] < 0.2f / 448.0f);  // 0.02·N(0,1) over 16384 values: amax ≈ 0.09
  CHECK(sinv[1] < 0.2f / 448.0f);
  CHECK(sinv[2] < 0.2f / 448.0f);
}

TEST_CASE("fp8_quant: an all-zero tile gets the 1e-4 amax floor") {
  // Row 0: tile 0 all zero, tile 1 random non-zero; the zero tile's scale is 1e-4/448 (finite: no
  // 0/0), its codes are +0 and it dequantizes to exact zeros.
  sg::Rng rng(5);
  std::vector<float> x(256, 0.0f);
  for (int k = 128; k < 256; ++k) x[k] = (float)rng.normal();
  std::vector<uint8_t> codes(256);
  float scales[2];
  sg::cpu::act_quant_f32(x.data(), 1, 256, 128, false, codes.data(), scales);
  CHECK(scales[0] == 1e-4f / 448.0f);
  CHECK(scales[1] > 1e-3f);
  for (int k = 0; k < 128; ++k) REQUIRE(codes[k] == 0x00);
  std::vector<float> dq(256);
  sg::cpu::act_dequant_f32(codes.data(), scales, 1, 256, 128, dq.data());
  for (int k = 0; k < 128; ++k) REQUIRE(dq[k] == 0.0f);
  float w0[4] = {0, 0, 0, 0}, sinv = 0;
  uint8_t wc[4];
  sg::cpu::weight_quant_f32(w0, 2, 2, 128, wc, &sinv);
  CHECK(sinv == 1e-4f / 448.0f);
}

TEST_CASE("fp8_quant: round-trip error within the E4M3 half-ulp bound (random inputs)") {
  sg::Rng rng(7);
  const int64_t rows = 16, K = 1000, B = 128, nb = 8;
  std::vector<float> x(rows * K), scales(rows * nb), dq(rows * K);
  std::vector<uint8_t> codes(rows * K);
  for (bool ue8m0 : {false, true}) {
    for (auto& v : x) v = spread_value(rng);
    sg::cpu::act_quant_f32(x.data(), rows, K, B, ue8m0, codes.data(), scales.data());
    sg::cpu::act_dequant_f32(codes.data(), scales.data(), rows, K, B, dq.data());
    BoundStats st;
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t k = 0; k < K; ++k) check_round_trip(x[r * K + k], scales[r * nb + k / B], dq[r * K + k], st);
    MESSAGE("act_quant ue8m0=" << ue8m0 << ": " << st.n_normal << " normal-range values, worst error / (2^-4|x|) = "
            << st.worst_rel << "; " << st.n_sub << " subnormal-range, worst error / (s·2^-10) = " << st.worst_abs);
    CHECK(st.n_normal > 1000);
    CHECK(st.n_sub > 1000);
    CHECK(st.worst_rel > 0.9);  // the bound is nearly attained: it is the right bound
    CHECK(st.worst_abs > 0.9);
  }
  const int64_t N = 300, KW = 260;
  std::vector<float> w(N * KW), wdq(N * KW), sinv(3 * 3);
  std::vector<uint8_t> wc(N * KW);
  for (auto& v : w) v = spread_value(rng);
  sg::cpu::weight_quant_f32(w.data(), N, KW, B, wc.data(), sinv.data());
  sg::cpu::weight_dequant_f32(wc.data(), sinv.data(), N, KW, B, wdq.data());
  BoundStats st;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t k = 0; k < KW; ++k) check_round_trip(w[n * KW + k], sinv[(n / B) * 3 + k / B], wdq[n * KW + k], st);
  MESSAGE("weight_quant: worst error / (2^-4|x|) = " << st.worst_rel << ", worst / (s·2^-10) = " << st.worst_abs);
  CHECK(st.worst_rel > 0.9);
}

namespace {

// RMS errors of one outlier experiment (see the test case below).
struct OutlierErrors {
  double scale_tensor, rms_x;
  double rms_tensor, rms_tile;              // the ordinary channels, all tiles
  double rms_tensor_clean, rms_tile_clean;  // the ordinary channels in tiles without an outlier channel
  double rms_tensor_all, rms_tile_all;      // every element, outliers included
};
OutlierErrors outlier_experiment(double magnitude) {
  sg::Rng rng(13);
  const int64_t T = 64, C = 1024, B = 128;
  std::vector<float> x(T * C);
  auto outlier = [](int64_t c) { return c == 3 || c == 4 || c == 517; };
  for (int64_t t = 0; t < T; ++t)
    for (int64_t c = 0; c < C; ++c) x[t * C + c] = (float)(outlier(c) ? magnitude * rng.normal() : rng.normal());
  std::vector<uint8_t> codes(T * C);
  std::vector<float> dq_tensor(T * C), dq_tile(T * C), scales(T * (C / B));
  float s_tensor = 0;
  // Per-tensor: the whole tensor as a single tile of one row.
  sg::cpu::act_quant_f32(x.data(), 1, T * C, T * C, false, codes.data(), &s_tensor);
  sg::cpu::act_dequant_f32(codes.data(), &s_tensor, 1, T * C, T * C, dq_tensor.data());
  sg::cpu::act_quant_f32(x.data(), T, C, B, false, codes.data(), scales.data());
  sg::cpu::act_dequant_f32(codes.data(), scales.data(), T, C, B, dq_tile.data());
  double se_tensor = 0, se_tile = 0, se_tensor_clean = 0, se_tile_clean = 0, se_tensor_all = 0, se_tile_all = 0;
  double ss = 0;
  int64_t n = 0, n_clean = 0;
  auto clean_tile = [](int64_t c) { return c / 128 != 0 && c / 128 != 4; };
  for (int64_t t = 0; t < T; ++t)
    for (int64_t c = 0; c < C; ++c) {
      const int64_t i = t * C + c;
      const double e1 = (double)x[i] - dq_tensor[i], e2 = (double)x[i] - dq_tile[i];
      se_tensor_all += e1 * e1;
      se_tile_all += e2 * e2;
      if (outlier(c)) continue;
      se_tensor += e1 * e1;
      se_tile += e2 * e2;
      if (clean_tile(c)) {
        se_tensor_clean += e1 * e1;
        se_tile_clean += e2 * e2;
        ++n_clean;
      }
      ss += (double)x[i] * x[i];
      ++n;
    }
  return {s_tensor,
          std::sqrt(ss / n),
          std::sqrt(se_tensor / n),
          std::sqrt(se_tile / n),
          std::sqrt(se_tensor_clean / n_clean),
          std::sqrt(se_tile_clean / n_clean),
          std::sqrt(se_tensor_all / (T * C)),
          std::sqrt(se_tile_all / (T * C))};
}

}  // namespace

TEST_CASE("fp8_quant: outlier channels — per-tensor scale vs 1x128 tiles (RMS error)") {
  // Activations [64 tokens, 1024 channels], N(0,1), except three outlier channels (3 and 4 in tile 0,
  // 517 in tile 4) of size magnitude·N(0,1). One per-tensor scale (act_quant over the whole tensor as a
  // single tile) must cover the outliers, which pushes the ordinary values down the E4M3 range; 1×128
  // tiles confine that to the two tiles per token that hold an outlier channel. E4M3 spans 2^-9 … 448
  // (normals from 2^-6), so while magnitude stays below ~448·2^6/4 the ordinary values remain E4M3
  // normals and keep their 2^-4 relative error either way; beyond it they fall into the subnormals
  // (absolute error s·2^-10, growing with the outliers) or to zero, and the tiles win by far.
  for (double magnitude : {1e2, 1e3, 1e4, 1e5}) {
    const OutlierErrors e = outlier_experiment(magnitude);
    MESSAGE("outliers ~" << magnitude << "·N(0,1): per-tensor scale " << e.scale_tensor
            << "; RMS error on the ordinary channels (RMS value " << e.rms_x << "): per-tensor " << e.rms_tensor
            << ", 1x128 tiles " << e.rms_tile << " (ratio " << e.rms_tensor / e.rms_tile << "); in the 6 outlier-free tiles: "
            << e.rms_tensor_clean << " vs " << e.rms_tile_clean << " (ratio " << e.rms_tensor_clean / e.rms_tile_clean
            << "); all elements: per-tensor " << e.rms_tensor_all << ", tiles " << e.rms_tile_all << " (ratio "
            << e.rms_tensor_all / e.rms_tile_all << ")");
    CHECK(e.rms_tile <= e.rms_tensor * 1.05);
    CHECK(e.rms_tile_all < e.rms_tensor_all);
    if (magnitude >= 1e4) CHECK(e.rms_tile_clean * 1.3 < e.rms_tensor_clean);
    if (magnitude >= 1e5) {
      CHECK(e.rms_tile * 4 < e.rms_tensor);
      CHECK(e.rms_tile_clean * 10 < e.rms_tensor_clean);
    }
  }
}
