// ops/cpu/fp8_quant.cpp — the fine-grained FP8 quantization loops of ops/cpu/fp8_quant.h.
#include "ops/cpu/fp8_quant.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <stdexcept>
#include <string>

#include "autograd/runtime.h"
#include "ops/cpu/runtime.h"
#include "ops/fp8.h"

namespace sg::cpu {

namespace {

constexpr float kE4M3Max = 448.0f;
constexpr float kAmaxFloor = 1e-4f;

void check_dims(const char* fn, int64_t a, int64_t b, int64_t block) {
  if (a < 0 || b < 0 || block < 1)
    throw std::invalid_argument(std::string(fn) + ": need non-negative sizes and block >= 1, got [" +
                                std::to_string(a) + ", " + std::to_string(b) + "] with block " +
                                std::to_string(block));
}

}  // namespace

// n / block rounded up without forming n + block - 1, which overflows for n near INT64_MAX.
int64_t fp8_num_blocks(int64_t n, int64_t block) {
  check_dims("fp8_num_blocks", n, 0, block);
  return n / block + (n % block != 0);
}

float fp8_tile_scale(float amax, bool ue8m0) {
  const float s = std::max(amax, kAmaxFloor) / kE4M3Max;  // ≥ 2.2e-7: a normal f32
  if (!ue8m0) return s;
  // 2^ceil(log2 s): s = 1.f · 2^e; a power of two (f = 0) is itself, anything else rounds up to 2^(e+1).
  // Exact on the bits — a float log2 can round a value just above a power of two down onto it.
  const uint32_t b = std::bit_cast<uint32_t>(s);
  const uint32_t exp_bits = b & 0x7F800000u;
  if ((b & 0x007FFFFFu) == 0u) return s;
  return std::bit_cast<float>(exp_bits + 0x00800000u);
}

void act_quant_f32_naive(const float* x, int64_t rows, int64_t K, int64_t block, bool ue8m0, uint8_t* codes,
                   float* scales) {
  check_dims("act_quant_f32", rows, K, block);
  const int64_t nb = fp8_num_blocks(K, block);
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * K;
    uint8_t* cr = codes + r * K;
    for (int64_t t = 0; t < nb; ++t) {
      const int64_t k0 = t * block, k1 = std::min(K, k0 + block);
      float amax = 0.0f;
      for (int64_t k = k0; k < k1; ++k) amax = std::max(amax, std::fabs(xr[k]));
      const float s = fp8_tile_scale(amax, ue8m0);
      scales[r * nb + t] = s;
      for (int64_t k = k0; k < k1; ++k) cr[k] = lowp::f32_to_e4m3(xr[k] / s);
    }
  }
}

void act_dequant_f32_naive(const uint8_t* codes, const float* scales, int64_t rows, int64_t K, int64_t block,
                     float* out) {
  check_dims("act_dequant_f32", rows, K, block);
  const int64_t nb = fp8_num_blocks(K, block);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t k = 0; k < K; ++k)
      out[r * K + k] = lowp::e4m3_to_f32(codes[r * K + k]) * scales[r * nb + k / block];
}

void weight_quant_f32_naive(const float* w, int64_t N, int64_t K, int64_t block, uint8_t* codes,
                      float* scale_inv) {
  check_dims("weight_quant_f32", N, K, block);
  const int64_t nbn = fp8_num_blocks(N, block), nbk = fp8_num_blocks(K, block);
  for (int64_t bn = 0; bn < nbn; ++bn) {
    const int64_t n0 = bn * block, n1 = std::min(N, n0 + block);
    for (int64_t bk = 0; bk < nbk; ++bk) {
      const int64_t k0 = bk * block, k1 = std::min(K, k0 + block);
      float amax = 0.0f;
      for (int64_t n = n0; n < n1; ++n)
        for (int64_t k = k0; k < k1; ++k) amax = std::max(amax, std::fabs(w[n * K + k]));
      const float s = fp8_tile_scale(amax, false);
      scale_inv[bn * nbk + bk] = s;
      for (int64_t n = n0; n < n1; ++n)
        for (int64_t k = k0; k < k1; ++k) codes[n * K + k] = lowp::f32_to_e4m3(w[n * K + k] / s);
    }
  }
}

void weight_dequant_f32_naive(const uint8_t* codes, const float* scale_inv, int64_t N, int64_t K, int64_t block,
                        float* out) {
  check_dims("weight_dequant_f32", N, K, block);
  const int64_t nbk = fp8_num_blocks(K, block);
  for (int64_t n = 0; n < N; ++n) {
    const float* srow = scale_inv + (n / block) * nbk;
    for (int64_t k = 0; k < K; ++k) out[n * K + k] = lowp::e4m3_to_f32(codes[n * K + k]) * srow[k / block];
  }
}

// ---- the fast paths: same bits, rows (or 128-row weight block rows) split over sg::parallel_for ----
namespace {

// max |x| over [x, x + n) with 8 independent accumulators (the compiler keeps them in one SIMD
// register). Same value as the plain loop: a max of non-negative, non-NaN floats does not depend on
// the order, and std::max(acc, NaN) keeps acc, in every lane as in the plain loop.
float amax_of(const float* x, int64_t n) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t k = 0;
  for (; k + 8 <= n; k += 8)
    for (int j = 0; j < 8; ++j) acc[j] = std::max(acc[j], std::fabs(x[k + j]));
  float m = 0.0f;
  for (; k < n; ++k) m = std::max(m, std::fabs(x[k]));
  for (int j = 0; j < 8; ++j) m = std::max(m, acc[j]);
  return m;
}

void encode_tile(const float* x, int64_t n, float s, uint8_t* c) {
  for (int64_t k = 0; k < n; ++k) c[k] = f32_to_e4m3_fast(x[k] / s);
}

// The 256 decoded E4M3 values (lowp::e4m3_to_f32 of each code).
struct E4M3Table {
  float v[256];
  E4M3Table() {
    for (int i = 0; i < 256; ++i) v[i] = lowp::e4m3_to_f32((uint8_t)i);
  }
};
const E4M3Table& e4m3_table() {
  static const E4M3Table t;
  return t;
}

int64_t rows_grain(int64_t K) { return std::max<int64_t>(1, 16384 / std::max<int64_t>(K, 1)); }

}  // namespace

void act_quant_f32(const float* x, int64_t rows, int64_t K, int64_t block, bool ue8m0, uint8_t* codes,
                   float* scales) {
  if (naive_kernels()) return act_quant_f32_naive(x, rows, K, block, ue8m0, codes, scales);
  check_dims("act_quant_f32", rows, K, block);
  const int64_t nb = fp8_num_blocks(K, block);
  parallel_for(rows, rows_grain(K), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* xr = x + r * K;
      uint8_t* cr = codes + r * K;
      for (int64_t t = 0; t < nb; ++t) {
        const int64_t k0 = t * block, k1 = std::min(K, k0 + block);
        const float s = fp8_tile_scale(amax_of(xr + k0, k1 - k0), ue8m0);
        scales[r * nb + t] = s;
        encode_tile(xr + k0, k1 - k0, s, cr + k0);
      }
    }
  });
}

void act_dequant_f32(const uint8_t* codes, const float* scales, int64_t rows, int64_t K, int64_t block,
                     float* out) {
  if (naive_kernels()) return act_dequant_f32_naive(codes, scales, rows, K, block, out);
  check_dims("act_dequant_f32", rows, K, block);
  const int64_t nb = fp8_num_blocks(K, block);
  const float* tab = e4m3_table().v;
  parallel_for(rows, rows_grain(K), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r)
      for (int64_t t = 0; t < nb; ++t) {
        const int64_t k0 = t * block, k1 = std::min(K, k0 + block);
        const float s = scales[r * nb + t];
        for (int64_t k = k0; k < k1; ++k) out[r * K + k] = tab[codes[r * K + k]] * s;
      }
  });
}

void weight_quant_f32(const float* w, int64_t N, int64_t K, int64_t block, uint8_t* codes,
                      float* scale_inv) {
  if (naive_kernels()) return weight_quant_f32_naive(w, N, K, block, codes, scale_inv);
  check_dims("weight_quant_f32", N, K, block);
  const int64_t nbn = fp8_num_blocks(N, block), nbk = fp8_num_blocks(K, block);
  parallel_for(nbn, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t bn = b0; bn < b1; ++bn) {
      const int64_t n0 = bn * block, n1 = std::min(N, n0 + block);
      for (int64_t bk = 0; bk < nbk; ++bk) {
        const int64_t k0 = bk * block, k1 = std::min(K, k0 + block);
        float amax = 0.0f;
        for (int64_t n = n0; n < n1; ++n) amax = std::max(amax, amax_of(w + n * K + k0, k1 - k0));
        const float s = fp8_tile_scale(amax, false);
        scale_inv[bn * nbk + bk] = s;
        for (int64_t n = n0; n < n1; ++n) encode_tile(w + n * K + k0, k1 - k0, s, codes + n * K + k0);
      }
    }
  });
}

void weight_dequant_f32(const uint8_t* codes, const float* scale_inv, int64_t N, int64_t K, int64_t block,
                        float* out) {
  if (naive_kernels()) return weight_dequant_f32_naive(codes, scale_inv, N, K, block, out);
  check_dims("weight_dequant_f32", N, K, block);
  const int64_t nbk = fp8_num_blocks(K, block);
  const float* tab = e4m3_table().v;
  parallel_for(N, rows_grain(K), [&](int64_t r0, int64_t r1) {
    for (int64_t n = r0; n < r1; ++n) {
      const float* srow = scale_inv + (n / block) * nbk;
      for (int64_t t = 0; t < nbk; ++t) {
        const int64_t k0 = t * block, k1 = std::min(K, k0 + block);
        const float s = srow[t];
        for (int64_t k = k0; k < k1; ++k) out[n * K + k] = tab[codes[n * K + k]] * s;
      }
    }
  });
}

}  // namespace sg::cpu
