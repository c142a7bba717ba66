// ops/cpu/fp8_index.cpp — the FP8 index-score loop of ops/cpu/fp8_index.h.
#include "ops/cpu/fp8_index.h"

#include <algorithm>
#include <array>
#include <stdexcept>
#include <string>
#include <vector>

#include "ops/cpu/fp8_quant.h"
#include "ops/fp8.h"

namespace sg::cpu {

namespace {

// e4m3_to_f32 of every code, once (the decode is exact: a lookup gives the same numbers).
const std::array<float, 256>& e4m3_table() {
  static const std::array<float, 256> table = [] {
    std::array<float, 256> t{};
    for (int c = 0; c < 256; ++c) t[c] = lowp::e4m3_to_f32((uint8_t)c);
    return t;
  }();
  return table;
}

}  // namespace

void fp8_index_scores_f32(const uint8_t* q_codes, const float* q_scales, const float* weights,
                          const uint8_t* k_codes, const float* k_scales, int64_t S, int64_t H, int64_t D,
                          int64_t T, int64_t block, float* scores) {
  if (S < 0 || H < 0 || D < 1 || T < 0 || block < 1)
    throw std::invalid_argument("fp8_index_scores_f32: need S, H, T >= 0 and D, block >= 1, got S " + std::to_string(S) +
                                ", H " + std::to_string(H) + ", D " + std::to_string(D) + ", T " + std::to_string(T) +
                                ", block " + std::to_string(block));
  const std::array<float, 256>& e4m3 = e4m3_table();
  const int64_t nb = fp8_num_blocks(D, block);
  // The keys decoded once per call and transposed, kT [D, T], so that the innermost loop runs over keys
  // (contiguous, independent sums: it vectorizes) while each key's dot still adds d = d0, d0+1, ... in
  // order — the same arithmetic as one sequential f32 dot per (s, h, t).
  std::vector<float> kT(D * T), q(D), dot(T), logit(T);
  for (int64_t t = 0; t < T; ++t)
    for (int64_t d = 0; d < D; ++d) kT[d * T + t] = e4m3[k_codes[t * D + d]];
  for (int64_t s = 0; s < S; ++s) {
    float* out = scores + s * T;
    for (int64_t t = 0; t < T; ++t) out[t] = 0.0f;
    for (int64_t h = 0; h < H; ++h) {
      const uint8_t* qc = q_codes + (s * H + h) * D;
      const float* qs = q_scales + (s * H + h) * nb;
      const float w = weights[s * H + h];
      for (int64_t d = 0; d < D; ++d) q[d] = e4m3[qc[d]];
      for (int64_t t = 0; t < T; ++t) logit[t] = 0.0f;
      for (int64_t b = 0; b < nb; ++b) {
        const int64_t d0 = b * block, d1 = std::min(D, d0 + block);
        for (int64_t t = 0; t < T; ++t) dot[t] = 0.0f;
        for (int64_t d = d0; d < d1; ++d) {
          const float qd = q[d];
          const float* kd = kT.data() + d * T;
          for (int64_t t = 0; t < T; ++t) dot[t] += qd * kd[t];
        }
        for (int64_t t = 0; t < T; ++t) logit[t] += qs[b] * k_scales[t * nb + b] * dot[t];
      }
      for (int64_t t = 0; t < T; ++t) out[t] += w * std::max(logit[t], 0.0f);
    }
  }
}

}  // namespace sg::cpu
