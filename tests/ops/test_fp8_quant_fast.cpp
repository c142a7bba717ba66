// tests/ops/test_fp8_quant_fast.cpp — the fast FP8 quantization kernels of ops/cpu/fp8_quant.h give
// the same bits as their plain loops (<name>_naive): the branch-free encoder f32_to_e4m3_fast against
// lowp::f32_to_e4m3 on every tie between consecutive codes ± 1 and 2 ulp, every code's value ± 1 ulp,
// the f32 subnormals and the E4M3 subnormal range densely, the saturation boundary, ±inf, NaN and a
// strided sweep over all 2^32 bit patterns; then act/weight quant and dequant memcmp'd against the
// naive loops on ragged shapes, ue8m0 on and off, blocks 128 / 32 / 7, with NaN, ±inf, zero tiles and
// values spanning many binades, on 1 and 2 threads.
#include <doctest/doctest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <ios>
#include <limits>
#include <random>
#include <vector>

#include "autograd/runtime.h"
#include "ops/cpu/fp8_quant.h"
#include "ops/fp8.h"

namespace {

using sg::cpu::f32_to_e4m3_fast;
using sg::lowp::e4m3_to_f32;
using sg::lowp::f32_to_e4m3;

struct ThreadGuard {
  int saved = sg::num_threads();
  ~ThreadGuard() { sg::set_num_threads(saved); }
};

// Counts mismatches of the fast encoder on x and -x (and remembers the first).
struct EncCheck {
  int64_t checked = 0, bad = 0;
  uint32_t first_bad = 0;
  void operator()(float x) {
    for (float y : {x, -x}) {
      ++checked;
      if (f32_to_e4m3_fast(y) != f32_to_e4m3(y)) {
        if (bad++ == 0) first_bad = std::bit_cast<uint32_t>(y);
      }
    }
  }
  void bits(uint32_t b) { (*this)(std::bit_cast<float>(b)); }
};

}  // namespace

TEST_CASE("fp8_quant_fast: f32_to_e4m3_fast == lowp::f32_to_e4m3 (ties, ulps, subnormals, saturation)") {
  EncCheck chk;
  // Every code's value ± 2 ulp, and every midpoint between consecutive codes ± 2 ulp (the ties:
  // the midpoint of two E4M3 values is exact in f32).
  for (int c = 0; c < 0x7E; ++c) {
    const float lo = e4m3_to_f32((uint8_t)c), hi = e4m3_to_f32((uint8_t)(c + 1));
    const float mid = (lo + hi) * 0.5f;
    REQUIRE(mid - lo == hi - mid);  // the tie is exact
    for (float v : {lo, mid}) {
      const uint32_t b = std::bit_cast<uint32_t>(v);
      for (int d = -2; d <= 2; ++d)
        if ((int64_t)b + d >= 0) chk.bits(b + (uint32_t)d);
    }
  }
  // Saturation: 448 ± ulps, the would-be tie to 480 (464) ± ulps, f32 max, inf, NaNs.
  for (float v : {448.0f, 464.0f, 480.0f, 1e30f, std::numeric_limits<float>::max()}) {
    const uint32_t b = std::bit_cast<uint32_t>(v);
    for (int d = -3; d <= 3; ++d) chk.bits(b + (uint32_t)d);
  }
  chk(std::numeric_limits<float>::infinity());
  for (uint32_t b : {0x7F800001u, 0x7FC00000u, 0x7FFFFFFFu, 0x7FA00000u}) chk.bits(b);
  // All f32 subnormals' low end densely, then the whole E4M3 subnormal range |x| < 2^-6 (and up to
  // 2^-5) strided by 7 bit patterns, then a stride-977 sweep over every bit pattern.
  for (uint32_t b = 0; b < (1u << 20); ++b) chk.bits(b);
  for (uint32_t b = 0x3A800000u; b < 0x3D000000u; b += 7) chk.bits(b);  // [2^-10, 2^-5)
  for (uint64_t b = 0; b < (1ull << 32); b += 977) chk.bits((uint32_t)b);
  MESSAGE("f32_to_e4m3_fast checked on " << chk.checked << " values");
  CHECK(chk.bad == 0);
  if (chk.bad) MESSAGE("first mismatch at bits 0x" << std::hex << chk.first_bad);
}

namespace {

std::vector<float> make_input(int64_t n, uint32_t seed) {
  std::mt19937 g(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::uniform_int_distribution<int> ex(-30, 12), pick(0, 199);
  std::vector<float> x(n);
  for (int64_t i = 0; i < n; ++i) {
    x[i] = std::ldexp(nd(g), ex(g));
    const int p = pick(g);
    if (p == 0) x[i] = std::numeric_limits<float>::quiet_NaN();
    if (p == 1) x[i] = -std::numeric_limits<float>::infinity();
    if (p == 2) x[i] = 0.0f;
  }
  // A stretch of zeros (an all-zero tile where K ≥ 128) and a stretch of tiny values.
  for (int64_t i = 0; i < std::min<int64_t>(n, 200); ++i) x[i] = 0.0f;
  for (int64_t i = 200; i < std::min<int64_t>(n, 400); ++i) x[i] = std::ldexp(nd(g), -40);
  return x;
}

}  // namespace

TEST_CASE("fp8_quant_fast: act/weight quant and dequant give the naive loops' bits on 1 and 2 threads") {
  ThreadGuard guard;
  const int64_t rows_list[] = {1, 3, 33, 130};
  const int64_t k_list[] = {1, 5, 127, 128, 129, 300, 513};
  const int64_t blocks[] = {128, 32, 7};
  int cases = 0;
  for (int threads : {1, 2}) {
    sg::set_num_threads(threads);
    for (int64_t rows : rows_list)
      for (int64_t K : k_list)
        for (int64_t block : blocks) {
          const std::vector<float> x = make_input(rows * K, (uint32_t)(rows * 1000 + K + block));
          const int64_t nb = sg::cpu::fp8_num_blocks(K, block), nbn = sg::cpu::fp8_num_blocks(rows, block);
          for (bool ue8m0 : {false, true}) {
            std::vector<uint8_t> c0(rows * K), c1(rows * K, 0xAA);
            std::vector<float> s0(rows * nb), s1(rows * nb, -1.0f);
            sg::cpu::act_quant_f32_naive(x.data(), rows, K, block, ue8m0, c0.data(), s0.data());
            sg::cpu::act_quant_f32(x.data(), rows, K, block, ue8m0, c1.data(), s1.data());
            CHECK(std::memcmp(c0.data(), c1.data(), c0.size()) == 0);
            CHECK(std::memcmp(s0.data(), s1.data(), s0.size() * sizeof(float)) == 0);
            std::vector<float> d0(rows * K), d1(rows * K, -1.0f);
            sg::cpu::act_dequant_f32_naive(c0.data(), s0.data(), rows, K, block, d0.data());
            sg::cpu::act_dequant_f32(c0.data(), s0.data(), rows, K, block, d1.data());
            CHECK(std::memcmp(d0.data(), d1.data(), d0.size() * sizeof(float)) == 0);
            ++cases;
          }
          std::vector<uint8_t> w0(rows * K), w1(rows * K, 0xAA);
          std::vector<float> ws0(nbn * nb), ws1(nbn * nb, -1.0f);
          sg::cpu::weight_quant_f32_naive(x.data(), rows, K, block, w0.data(), ws0.data());
          sg::cpu::weight_quant_f32(x.data(), rows, K, block, w1.data(), ws1.data());
          CHECK(std::memcmp(w0.data(), w1.data(), w0.size()) == 0);
          CHECK(std::memcmp(ws0.data(), ws1.data(), ws0.size() * sizeof(float)) == 0);
          std::vector<float> d0(rows * K), d1(rows * K, -1.0f);
          sg::cpu::weight_dequant_f32_naive(w0.data(), ws0.data(), rows, K, block, d0.data());
          sg::cpu::weight_dequant_f32(w0.data(), ws0.data(), rows, K, block, d1.data());
          CHECK(std::memcmp(d0.data(), d1.data(), d0.size() * sizeof(float)) == 0);
        }
  }
  CHECK(cases == 2 * 4 * 7 * 3 * 2);
}
