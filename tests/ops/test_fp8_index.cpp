// tests/ops/test_fp8_index.cpp — the FP8 lightning-indexer score (ops/cpu/fp8_index.h, the official
// fp8_index kernel): score[s,t] = Σ_h w[s,h] · ReLU(Σ_tiles q_scale·k_scale·Σ_d e4m3(q)·e4m3(k)).
//   * a hand-made case (one head exactly zeroed by the ReLU, scales that are powers of two) by value;
//   * random codes and scales, D = 8 (one tile), 128, 256 (two tiles) and 200 (a ragged second tile),
//     against an independent double loop over the DEQUANTIZED values (act_dequant_f32): equal within f32
//     rounding (the E4M3 products are exact in f32; the f32 sums of D terms are off by ≤ D·2^-24 relative
//     to Σ|terms|, so the test allows 1e-6 · Σ_h |w_h| Σ_d |q_d k_d|).
//   * ue8m0 (power-of-two) scales: the kernel's order of products equals the official one bit for bit.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "autograd/rng.h"
#include "ops/cpu/fp8_index.h"
#include "ops/cpu/fp8_quant.h"
#include "ops/fp8.h"

using namespace sg;

TEST_CASE("fp8_index: a hand-made case by value") {
  // S = 1, H = 2, D = 2, T = 2; E4M3 values chosen exact: 1, 2, 0.5, -1.
  const uint8_t one = lowp::f32_to_e4m3(1.0f), two = lowp::f32_to_e4m3(2.0f), half = lowp::f32_to_e4m3(0.5f),
                minus = lowp::f32_to_e4m3(-1.0f);
  REQUIRE(lowp::e4m3_to_f32(half) == 0.5f);
  const uint8_t q[4] = {one, two, minus, minus};  // head 0 = (1, 2), head 1 = (−1, −1)
  const float qs[2] = {0.5f, 4.0f};
  const float w[2] = {3.0f, 10.0f};
  const uint8_t k[4] = {two, half, one, one};  // key 0 = (2, 0.5), key 1 = (1, 1)
  const float ks[2] = {0.25f, 2.0f};
  float out[2];
  cpu::fp8_index_scores_f32(q, qs, w, k, ks, 1, 2, 2, 2, 128, out);
  // key 0: head 0 dot = 2 + 1 = 3, · 0.5 · 0.25 = 0.375, · w 3 = 1.125; head 1 dot = −2.5 → ReLU 0
  CHECK(out[0] == 1.125f);
  // key 1: head 0 dot = 3 · 0.5 · 2 = 3 → 9; head 1 dot = −2 → 0
  CHECK(out[1] == 9.0f);
}

TEST_CASE("fp8_index: random codes against a double loop over the dequantized values") {
  Rng rng(5);
  for (int64_t D : {8, 128, 200, 256}) {
    for (bool ue8m0 : {false, true}) {
      CAPTURE(D);
      CAPTURE(ue8m0);
      const int64_t S = 3, H = 4, T = 7, block = 128, nb = cpu::fp8_num_blocks(D, block);
      // quantize random values (some channels 30× larger, as outliers), so scales differ per tile
      std::vector<float> qx(S * H * D), kx(T * D), w(S * H);
      for (auto& v : qx) v = (float)rng.normal() * (rng.uniform() < 0.05 ? 30.0f : 1.0f);
      for (auto& v : kx) v = (float)rng.normal();
      for (auto& v : w) v = (float)rng.normal();
      std::vector<uint8_t> qc(qx.size()), kc(kx.size());
      std::vector<float> qs(S * H * nb), ks(T * nb);
      cpu::act_quant_f32(qx.data(), S * H, D, block, ue8m0, qc.data(), qs.data());
      cpu::act_quant_f32(kx.data(), T, D, block, ue8m0, kc.data(), ks.data());
      std::vector<float> out(S * T);
      cpu::fp8_index_scores_f32(qc.data(), qs.data(), w.data(), kc.data(), ks.data(), S, H, D, T, block, out.data());
      std::vector<float> qd(qx.size()), kd(kx.size());
      cpu::act_dequant_f32(qc.data(), qs.data(), S * H, D, block, qd.data());
      cpu::act_dequant_f32(kc.data(), ks.data(), T, D, block, kd.data());
      int64_t positive = 0;
      for (int64_t s = 0; s < S; s++)
        for (int64_t t = 0; t < T; t++) {
          double want = 0, mag = 0;
          for (int64_t h = 0; h < H; h++) {
            double dot = 0, adot = 0;
            for (int64_t d = 0; d < D; d++) {
              dot += (double)qd[(s * H + h) * D + d] * (double)kd[t * D + d];
              adot += std::abs((double)qd[(s * H + h) * D + d] * (double)kd[t * D + d]);
            }
            want += (double)w[s * H + h] * std::max(dot, 0.0);
            mag += std::abs((double)w[s * H + h]) * adot;
            positive += dot > 0;
          }
          CHECK(std::abs((double)out[s * T + t] - want) <= 1e-6 * mag + 1e-30);
        }
      CHECK(positive > 0);  // the ReLU lets some through
      CHECK(positive < S * T * H);
      if (ue8m0 && nb == 1) {
        // The official order k_scale · Σ_h (w · q_scale) · ReLU(dot): identical bits with power-of-two scales.
        for (int64_t s = 0; s < S; s++)
          for (int64_t t = 0; t < T; t++) {
            float acc = 0;
            for (int64_t h = 0; h < H; h++) {
              float dot = 0;
              for (int64_t d = 0; d < D; d++)
                dot += lowp::e4m3_to_f32(qc[(s * H + h) * D + d]) * lowp::e4m3_to_f32(kc[t * D + d]);
              acc += (w[s * H + h] * qs[s * H + h]) * std::max(dot, 0.0f);
            }
            CHECK(out[s * T + t] == acc * ks[t]);
          }
      }
    }
  }
}
