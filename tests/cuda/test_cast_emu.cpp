// tests/cuda/test_cast_emu.cpp — the CUDA cast kernel (cuda/kernels/cast.cuh), run in the CPU emulation in both lane
// orders, against the CPU kernel (ops/cpu/elementwise.h, cpu::cast): every ordered pair of the eight element types
// (f32, f64, i32, i64, bf16, f16, f8e4m3, f8e5m2; 56 pairs) from a transposed source, compared BYTE FOR BYTE. Both
// run cast_element::load / store (ops/kernel_abi/cast.h) per element, so anything but the same bytes is a bug in the
// walk (strides, element sizes, the grid). The sources hold the cases that decide a rounding: ties of bf16 and f16
// (to even), E4M3 saturation (464, 1e6, ±inf -> ±448), E5M2 / f16 / bf16 overflow to inf, subnormals, NaN, ±0,
// i64 beyond 2^53, signaling NaNs (made quiet with their payload, the same bits everywhere: cast_element::widen); a
// few of them are also checked against hand-computed codes.
//
// Integer destinations get sources inside their range only: C++ leaves the conversion of NaN or an out-of-range
// value undefined (x86 writes the minimum, a GPU saturates), so no test can ask one answer of it.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "autograd/rng.h"
#include "cuda/cast.h"
#include "cuda/emu/emu.h"
#include "ops/cpu/elementwise.h"
#include "tests/cuda/emu_test_util.h"
#include "tests/test_util.h"

using sg::CastArgs;
using sg::ElemType;
using sg::emu::LaneOrder;
using sg::test::error_of;
using sg::test::emu::NaiveScope;

namespace {

constexpr ElemType kTypes[] = {ElemType::f32,  ElemType::f64, ElemType::i32,    ElemType::i64,
                               ElemType::bf16, ElemType::f16, ElemType::f8e4m3, ElemType::f8e5m2};
std::string type_name(ElemType t) {
  static const char* names[] = {"f32", "f64", "i32", "i64", "bf16", "f16", "f8e4m3", "f8e5m2"};
  return names[(int)t];
}
size_t type_size(ElemType t) {
  switch (t) {
    case ElemType::f64:
    case ElemType::i64: return 8;
    case ElemType::f32:
    case ElemType::i32: return 4;
    case ElemType::bf16:
    case ElemType::f16: return 2;
    default: return 1;
  }
}
bool is_int(ElemType t) { return t == ElemType::i32 || t == ElemType::i64; }

float f32_of(uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// The f32 values that decide a rounding somewhere (see the file comment).
std::vector<float> special_f32() {
  return {NAN, -NAN, INFINITY, -INFINITY, 0.0f, -0.0f, f32_of(0x7F800001u), f32_of(0xFFA00000u),  // signaling NaNs
          f32_of(0x3F808000u), f32_of(0x3F818000u), f32_of(0x3F808001u), f32_of(0xBF818000u),  // bf16 ties / just above
          1.0f + 0x1p-11f, 1.0f + 3 * 0x1p-11f, -(1.0f + 0x1p-11f), 65504.0f, 65519.0f, 65520.0f,  // f16 ties, overflow
          448.0f, 464.0f, 465.0f, -500.0f, 1e6f, 0x1p-9f, 0x1p-10f, 3 * 0x1p-10f,                 // E4M3
          57344.0f, 61439.0f, 61440.0f, 0x1p-16f, 0x1p-17f,                                          // E5M2
          1e-40f, 3e38f, -3.3895314e38f, 16777217.0f, 5e-8f, 2.9802322e-8f};
}

// n elements of type t as bytes from `seed`: the specials first (for the float types), then random values over
// many magnitudes (random codes for the storage formats; all 256 codes first for FP8).
std::vector<uint8_t> make_source(ElemType t, int64_t n, uint64_t seed) {
  sg::Rng rng(seed);
  std::vector<uint8_t> bytes((size_t)n * type_size(t));
  void* p = bytes.data();
  const std::vector<float> sp = special_f32();
  for (int64_t i = 0; i < n; i++) {
    const double mag = std::ldexp(rng.uniform(1.0, 2.0), (int)rng.uniform(-30, 20)) * (rng.uniform(0, 1) < 0.5 ? -1 : 1);
    switch (t) {
      case ElemType::f32: static_cast<float*>(p)[i] = i < (int64_t)sp.size() ? sp[i] : (float)mag; break;
      case ElemType::f64: {
        // f32 ties in double (1 + 2^-24 rounds to 1, a hair more rounds up), beyond f32's range, then wide randoms.
        const double specials[] = {1.0 + 0x1p-24, 1.0 + 0x1p-24 + 0x1p-40, 1e300, -1e300, 1e-320, 0.1, -0.0};
        static_cast<double*>(p)[i] = i < 7 ? specials[i] : i < 7 + (int64_t)sp.size() ? (double)sp[i - 7] : mag * (1 + 1e-12 * i);
        break;
      }
      case ElemType::i32: {
        const int32_t specials[] = {INT32_MIN, INT32_MAX, 16777217, -16777219, 0, -1, 448, 464};
        static_cast<int32_t*>(p)[i] = i < 8 ? specials[i] : (int32_t)(uint32_t)(rng.next_u64() >> (32 + i % 24));
        break;
      }
      case ElemType::i64: {
        const int64_t specials[] = {(1LL << 53) + 1, -(1LL << 53) - 3, INT64_MIN, (1LL << 62) + 12345, 0, -7, 1LL << 40};
        static_cast<int64_t*>(p)[i] = i < 7 ? specials[i] : (int64_t)(rng.next_u64() >> (i % 60));
        break;
      }
      case ElemType::bf16:
      case ElemType::f16: static_cast<uint16_t*>(p)[i] = (uint16_t)rng.next_u64(); break;
      default: static_cast<uint8_t*>(p)[i] = i < 256 ? (uint8_t)i : (uint8_t)rng.next_u64(); break;
    }
  }
  return bytes;
}

// For an integer destination: every element outside its range (or NaN / inf) replaced by an in-range value.
void keep_in_range(std::vector<uint8_t>& bytes, ElemType src, ElemType dst) {
  const double limit = dst == ElemType::i32 ? 2147483648.0 : 9223372036854775808.0;
  const int64_t n = (int64_t)(bytes.size() / type_size(src));
  for (int64_t i = 0; i < n; i++) {
    const double v = sg::cast_element::load(bytes.data(), i, src);
    if (!(std::abs(v) < limit)) sg::cast_element::store(bytes.data(), i, src, (double)(i % 301) - 150.5);
  }
}

std::vector<uint8_t> run_cpu(ElemType src_type, ElemType dst_type, const std::vector<int64_t>& shape,
                             const std::vector<uint8_t>& src, const std::vector<int64_t>& strides, int64_t n) {
  std::vector<uint8_t> dst((size_t)n * type_size(dst_type), 0xAB);
  sg::cpu::cast(src_type, shape, src.data(), strides, dst_type, dst.data());
  return dst;
}

std::vector<uint8_t> run_emu(ElemType src_type, ElemType dst_type, const std::vector<int64_t>& shape,
                             const std::vector<uint8_t>& src, const std::vector<int64_t>& strides, int64_t n) {
  std::vector<uint8_t> dst((size_t)n * type_size(dst_type), 0xCD);
  CastArgs a{};
  a.src_type = src_type;
  a.dst_type = dst_type;
  a.ndim = (int32_t)shape.size();
  for (size_t d = 0; d < shape.size(); d++) a.shape[d] = shape[d], a.src_strides[d] = strides[d];
  a.src = src.data();
  a.dst = dst.data();
  sg::cuda_emu::cast(a);
  return dst;
}

// One contiguous 1-D cast on both backends; returns the CPU's bytes after checking the emulation agrees.
template <class D, class S> std::vector<D> cast_1d(ElemType src_type, ElemType dst_type, const std::vector<S>& x) {
  const int64_t n = (int64_t)x.size();
  std::vector<uint8_t> src(x.size() * sizeof(S));
  std::memcpy(src.data(), x.data(), src.size());
  const std::vector<uint8_t> cpu = run_cpu(src_type, dst_type, {n}, src, {1}, n);
  CHECK(run_emu(src_type, dst_type, {n}, src, {1}, n) == cpu);
  std::vector<D> out(x.size());
  std::memcpy(out.data(), cpu.data(), cpu.size());
  return out;
}

}  // namespace

TEST_CASE("cuda emu cast: every pair of the eight types, transposed source, the CPU kernel's bytes in both lane orders") {
  // dst (17, 23) = 391 elements, two blocks of 256 (the second partly idle); src a (23, 17) buffer read transposed.
  const std::vector<int64_t> shape = {17, 23}, strides = {1, 17};
  const int64_t n = 17 * 23;
  int pairs = 0;
  for (ElemType s : kTypes) {
    for (ElemType d : kTypes) {
      if (s == d) continue;
      CAPTURE(type_name(s));
      CAPTURE(type_name(d));
      std::vector<uint8_t> src = make_source(s, n, 1000 + 10 * (int)s + (int)d);
      if (is_int(d)) keep_in_range(src, s, d);
      std::vector<uint8_t> want;
      {
        NaiveScope naive(true);
        want = run_cpu(s, d, shape, src, strides, n);
      }
      {
        NaiveScope naive(false);
        CHECK(run_cpu(s, d, shape, src, strides, n) == want);  // threads split the rows: the same bytes
      }
      // The walk by hand for one element: dst[5, 19] = src[5 + 19 · 17].
      std::vector<uint8_t> one(type_size(d));
      sg::cast_element::store(one.data(), 0, d, sg::cast_element::load(src.data(), 5 + 19 * 17, s));
      CHECK(std::memcmp(one.data(), want.data() + (5 * 23 + 19) * type_size(d), type_size(d)) == 0);
      for (LaneOrder order : {LaneOrder::forward, LaneOrder::reverse}) {
        CAPTURE(sg::emu::lane_order_name(order));
        sg::emu::LaneOrderScope scope(order);
        CHECK(run_emu(s, d, shape, src, strides, n) == want);
        CHECK(sg::emu::last_launch().blocks == 2);
      }
      pairs++;
    }
  }
  CHECK(pairs == 56);
}

TEST_CASE("cuda emu cast: rounding to nearest even, saturation, overflow and NaN, by hand, on both backends") {
  using F = std::vector<float>;
  // bf16: ties go to the even code; NaN stays a (quiet) NaN.
  CHECK(cast_1d<uint16_t>(ElemType::f32, ElemType::bf16, F{f32_of(0x3F808000u), f32_of(0x3F818000u), f32_of(0x3F808001u),
                                                           f32_of(0x7FC00000u), -INFINITY, 3.4e38f}) ==
        std::vector<uint16_t>{0x3F80, 0x3F82, 0x3F81, 0x7FC0, 0xFF80, 0x7F80});
  // f16: ties to even, 65520 (the midpoint to 2^16) overflows to inf, 65519 does not; 2^-25 (half the smallest
  // subnormal) ties to 0.
  CHECK(cast_1d<uint16_t>(ElemType::f32, ElemType::f16, F{1.0f + 0x1p-11f, 1.0f + 3 * 0x1p-11f, 65520.0f, 65519.0f,
                                                          0x1p-25f, -0.0f}) ==
        std::vector<uint16_t>{0x3C00, 0x3C02, 0x7C00, 0x7BFF, 0x0000, 0x8000});
  // E4M3 saturates: 464 (the midpoint to 480) and beyond, and ±inf, give ±448; NaN stays NaN; 2^-10 ties to 0,
  // 3·2^-10 to 2·2^-9.
  CHECK(cast_1d<uint8_t>(ElemType::f32, ElemType::f8e4m3, F{448.0f, 464.0f, 1e6f, -INFINITY, NAN, 0x1p-10f, 3 * 0x1p-10f}) ==
        std::vector<uint8_t>{0x7E, 0x7E, 0x7E, 0xFE, 0x7F, 0x00, 0x02});
  // E5M2 overflows to inf from 61440 on (IEEE), 57344 is its largest finite value.
  CHECK(cast_1d<uint8_t>(ElemType::f32, ElemType::f8e5m2, F{57344.0f, 61439.0f, 61440.0f, -INFINITY}) ==
        std::vector<uint8_t>{0x7B, 0x7B, 0x7C, 0xFC});
  // And back: the decoders are exact.
  CHECK(cast_1d<float>(ElemType::f8e4m3, ElemType::f32, std::vector<uint8_t>{0x7E, 0x01, 0xFE, 0x38}) == F{448.0f, 0x1p-9f, -448.0f, 1.0f});
  CHECK(cast_1d<float>(ElemType::bf16, ElemType::f32, std::vector<uint16_t>{0x3F82, 0xFF80}) == F{1.015625f, -INFINITY});
  CHECK(cast_1d<float>(ElemType::f16, ElemType::f32, std::vector<uint16_t>{0x3C02, 0x0001}) == F{1.001953125f, 0x1p-24f});
  // A signaling NaN is made quiet, sign and payload kept (what the hardware conversions through double do on x86).
  CHECK(cast_1d<uint32_t>(ElemType::bf16, ElemType::f32, std::vector<uint16_t>{0x7F81, 0xFF81}) ==
        std::vector<uint32_t>{0x7FC10000u, 0xFFC10000u});
  CHECK(cast_1d<uint16_t>(ElemType::f32, ElemType::bf16, F{f32_of(0x7F800001u), f32_of(0xFFA00000u)}) ==
        std::vector<uint16_t>{0x7FC0, 0xFFE0});
  // Integers: toward zero; through double, so an i64 beyond 2^53 rounds there first (2^53 + 1 -> 2^53).
  CHECK(cast_1d<int32_t>(ElemType::f32, ElemType::i32, F{-2.7f, 2.7f, -0.5f, 1e9f}) == std::vector<int32_t>{-2, 2, 0, 1000000000});
  CHECK(cast_1d<float>(ElemType::i64, ElemType::f32, std::vector<int64_t>{(1LL << 53) + 1, -3}) == F{0x1p53f, -3.0f});
  CHECK(cast_1d<float>(ElemType::i32, ElemType::f32, std::vector<int32_t>{16777217, 16777219}) == F{16777216.0f, 16777220.0f});
  CHECK(cast_1d<int64_t>(ElemType::f64, ElemType::i64, std::vector<double>{-1e15 - 0.5, 4.9}) == std::vector<int64_t>{-1000000000000000LL, 4});
}

TEST_CASE("cuda emu cast: one element (ndim 0), an empty shape, and bad arguments") {
  const float x = -1.5f;
  uint16_t h = 0;
  CastArgs a{};
  a.src_type = ElemType::f32;
  a.dst_type = ElemType::bf16;
  a.ndim = 0;
  a.src = &x;
  a.dst = &h;
  sg::cuda_emu::cast(a);
  CHECK(h == 0xBFC0);
  a.ndim = 2;
  a.shape[0] = 3;
  a.shape[1] = 0;
  h = 7;
  sg::cuda_emu::cast(a);  // no elements: nothing written
  CHECK(h == 7);
  a.ndim = 9;
  CHECK(error_of([&] { sg::cuda_emu::cast(a); }) == "[cuda] cast: ndim 9 is outside [0, 8]");
  a.ndim = 0;
  a.dst_type = (ElemType)8;
  CHECK(error_of([&] { sg::cuda_emu::cast(a); }) == "[cuda] cast: unknown element type (codes 0 -> 8)");
}
