// tests/ops/test_fp8.cpp — the low-precision formats of ops/fp8.h (FP8 E4M3 / E5M2, bf16, f16).
// Decoders: all codes against a formula written here (sign · 2^(e−bias) · (1 + m/2^M), subnormals,
// specials). Encoders: against a brute-force nearest-value search over the decoded codes (ties to
// the even code) on a dense set of floats — every interval's ends, exact midpoints (ties) and their
// neighbours, evenly spaced points, the subnormal range, values beyond the largest finite, ±0, ±inf,
// NaN — plus a strided sweep over all f32 bit patterns; and encode(decode(c)) == c for every
// non-NaN code. f16 is also checked against the compiler's _Float16.
//
// The brute-force searches compare distances exactly: for candidates v < w, x is nearer to v iff
// x < (v + w)/2, and the midpoint of two of these values is exact in double.
#include <doctest/doctest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "ops/fp8.h"
#include "tools/cli/commands.h"

namespace {

using namespace sg::lowp;

// They are usable at compile time.
static_assert(e4m3_to_f32(0x7E) == 448.0f && f32_to_e4m3(448.0f) == 0x7E);
static_assert(e5m2_to_f32(0x7B) == 57344.0f && f32_to_e5m2(1e9f) == 0x7C && f32_to_e5m2_sat(1e9f) == 0x7B);
static_assert(f32_to_f16(1.0f) == 0x3C00 && f16_to_f32(0x3C00) == 1.0f && f32_to_bf16(1.0f) == 0x3F80);

uint32_t bits(float x) { return std::bit_cast<uint32_t>(x); }
float from_bits(uint32_t b) { return std::bit_cast<float>(b); }
bool same_float(float a, float b) { return bits(a) == bits(b); }  // distinguishes -0 from +0

// The independent decoder: the textbook formula for a format with E exponent bits, M mantissa bits,
// bias B. `ieee_specials`: the top exponent is inf (m = 0) / NaN (E5M2, f16); otherwise (E4M3 "fn")
// only the all-ones code is NaN and the rest of the top exponent is normal.
double formula(uint32_t code, int E, int M, int B, bool ieee_specials) {
  const int total = 1 + E + M;
  const int s = (code >> (total - 1)) & 1, e = (code >> M) & ((1 << E) - 1), m = code & ((1 << M) - 1);
  const int e_max = (1 << E) - 1;
  double v;
  if (ieee_specials && e == e_max) {
    v = m == 0 ? std::numeric_limits<double>::infinity() : std::numeric_limits<double>::quiet_NaN();
  } else if (!ieee_specials && e == e_max && m == (1 << M) - 1) {
    v = std::numeric_limits<double>::quiet_NaN();
  } else if (e == 0) {
    v = std::ldexp((double)m / (double)(1 << M), 1 - B);
  } else {
    v = std::ldexp(1.0 + (double)m / (double)(1 << M), e - B);
  }
  return s ? -v : v;
}

// Brute force: the code among `codes` (all of one sign) whose value (`value[c]`) is nearest to x,
// ties to the even code. Exact comparisons (see the header).
struct Candidate {
  double value;
  uint32_t code;
};
uint32_t nearest(double x, const std::vector<Candidate>& cands) {
  const Candidate* best = &cands[0];
  for (const Candidate& c : cands) {
    if (c.value == best->value) continue;
    const double mid = (c.value + best->value) / 2;
    const bool c_lower = c.value < best->value;
    const bool nearer = c_lower ? x < mid : x > mid;
    const bool tie = x == mid;
    if (nearer || (tie && (c.code & 1u) == 0)) best = &c;
  }
  return best->code;
}

// Candidates for an FP8 format: all non-negative, non-NaN codes with their formula values; an IEEE
// inf code takes the value 2^(e_max − bias) it would have with an unbounded exponent (IEEE overflow:
// round as if the exponent range were unbounded, then anything beyond the largest finite is inf).
std::vector<Candidate> fp8_candidates(int E, int M, int B, bool ieee_specials, bool inf_candidate) {
  std::vector<Candidate> out;
  for (uint32_t c = 0; c < 128; c++) {
    const double v = formula(c, E, M, B, ieee_specials);
    if (std::isnan(v)) continue;
    if (std::isinf(v)) {
      if (inf_candidate) out.push_back({std::ldexp(1.0, (1 << E) - 1 - B), c});
      continue;
    }
    out.push_back({v, c});
  }
  return out;
}

// The inputs: for each pair of consecutive candidates (a, b): a, its neighbours, 15 evenly spaced
// points, the midpoint and its neighbours, b's lower neighbour; below the smallest subnormal; beyond
// the largest value up to FLT_MAX; f32 subnormals; and a strided sweep over all positive finite f32
// bit patterns. Each is used with both signs.
std::vector<float> dense_inputs(const std::vector<Candidate>& cands) {
  std::vector<double> vals;
  for (const Candidate& c : cands) vals.push_back(c.value);
  std::sort(vals.begin(), vals.end());
  std::vector<float> xs;
  const float inf = std::numeric_limits<float>::infinity();
  for (size_t i = 0; i + 1 < vals.size(); i++) {
    const float a = (float)vals[i], b = (float)vals[i + 1], mid = (float)((vals[i] + vals[i + 1]) / 2);
    REQUIRE((double)mid == (vals[i] + vals[i + 1]) / 2);  // midpoints are exact floats
    xs.insert(xs.end(), {a, std::nextafter(a, inf), std::nextafter(mid, 0.0f), mid, std::nextafter(mid, inf),
                         std::nextafter(b, 0.0f), b});
    for (int k = 1; k <= 15; k++) xs.push_back(a + (b - a) * (float)k / 16.0f);
  }
  const double top = vals.back();
  for (double f = 1.0; f < 3e38 / top; f *= 1.0625) xs.push_back((float)(top * f));
  xs.push_back(std::numeric_limits<float>::max());
  for (int e = -149; e <= -120; e++) xs.push_back(std::ldexp(1.0f, e));  // f32 subnormals and the smallest normals
  xs.push_back(std::numeric_limits<float>::denorm_min());
  for (uint32_t b = 0; b < 0x7F800000u; b += 4099) xs.push_back(from_bits(b));
  return xs;
}

// encode(x) against the brute force, for x and −x, over the dense inputs; plus ±0, ±inf and NaN by
// the rules stated in ops/fp8.h. Returns the number of finite inputs checked.
template <class Enc>
int64_t check_encoder(Enc enc, const std::vector<Candidate>& cands, uint8_t inf_code, uint8_t nan_code) {
  int64_t n = 0, bad = 0;
  for (float x : dense_inputs(cands)) {
    const uint32_t want = nearest((double)x, cands);
    for (float sx : {x, -x}) {
      const uint32_t expect = want | (std::signbit(sx) ? 0x80u : 0u);
      const uint8_t got = enc(sx);
      if (got != expect && bad++ < 10) {
        INFO("x = " << sx << " (bits 0x" << std::hex << bits(sx) << ")");
        CHECK((int)got == (int)expect);
      }
      n++;
    }
  }
  CHECK(bad == 0);
  CHECK(enc(0.0f) == 0x00);
  CHECK(enc(-0.0f) == 0x80);
  CHECK(enc(std::numeric_limits<float>::infinity()) == inf_code);
  CHECK(enc(-std::numeric_limits<float>::infinity()) == (inf_code | 0x80));
  CHECK(enc(std::numeric_limits<float>::quiet_NaN()) == nan_code);
  CHECK(enc(-std::numeric_limits<float>::quiet_NaN()) == (nan_code | 0x80));
  CHECK(enc(from_bits(0x7F800001u)) == nan_code);  // a signalling NaN stays a NaN
  return n;
}

}  // namespace

TEST_CASE("fp8 e4m3: all 256 codes decode to the formula's values") {
  int n_nan = 0;
  for (uint32_t c = 0; c < 256; c++) {
    const double want = formula(c, 4, 3, 7, false);
    const float got = e4m3_to_f32((uint8_t)c);
    INFO("code 0x" << std::hex << c);
    if (std::isnan(want)) {
      CHECK(std::isnan(got));
      CHECK(std::signbit(got) == (c >= 128));
      n_nan++;
      continue;
    }
    CHECK((double)got == want);
    CHECK(std::signbit(got) == (c >= 128));  // −0 for 0x80
    CHECK(same_float(sg::cli::fp8_e4m3_to_f32((uint8_t)c), got));  // the import's decoder is this one
  }
  CHECK(n_nan == 2);
  CHECK(e4m3_to_f32(0x7E) == 448.0f);
  CHECK(e4m3_to_f32(0x01) == std::ldexp(1.0f, -9));
  CHECK(e4m3_to_f32(0x07) == 7 * std::ldexp(1.0f, -9));  // the largest subnormal
  CHECK(e4m3_to_f32(0x08) == std::ldexp(1.0f, -6));      // the smallest normal
  CHECK(e4m3_to_f32(0x78) == 256.0f);                    // E = 15 is a normal exponent here
  CHECK(same_float(e4m3_to_f32(0x80), -0.0f));
}

TEST_CASE("fp8 e5m2: all 256 codes decode to the formula's values") {
  int n_nan = 0, n_inf = 0;
  for (uint32_t c = 0; c < 256; c++) {
    const double want = formula(c, 5, 2, 15, true);
    const float got = e5m2_to_f32((uint8_t)c);
    INFO("code 0x" << std::hex << c);
    CHECK(std::signbit(got) == (c >= 128));
    if (std::isnan(want)) {
      CHECK(std::isnan(got));
      n_nan++;
      continue;
    }
    if (std::isinf(want)) n_inf++;
    CHECK((double)got == want);
  }
  CHECK(n_nan == 6);
  CHECK(n_inf == 2);
  CHECK(e5m2_to_f32(0x7B) == 57344.0f);
  CHECK(e5m2_to_f32(0x01) == std::ldexp(1.0f, -16));
  CHECK(e5m2_to_f32(0x04) == std::ldexp(1.0f, -14));
  CHECK(e5m2_to_f32(0x7C) == std::numeric_limits<float>::infinity());
  CHECK(e5m2_to_f32(0xFC) == -std::numeric_limits<float>::infinity());
  // E5M2 is the top byte of an f16: the same value.
  for (uint32_t c = 0; c < 256; c++)
    if (!std::isnan(e5m2_to_f32((uint8_t)c))) CHECK(same_float(e5m2_to_f32((uint8_t)c), f16_to_f32((uint16_t)(c << 8))));
}

TEST_CASE("fp8 e4m3: encode is the nearest value, ties to even, saturating at ±448") {
  const std::vector<Candidate> cands = fp8_candidates(4, 3, 7, false, false);
  REQUIRE(cands.size() == 127);  // 0x00 .. 0x7E
  const int64_t n = check_encoder(f32_to_e4m3, cands, 0x7E, 0x7F);
  MESSAGE("e4m3: " << n << " inputs against the brute force");
  for (uint32_t c = 0; c < 256; c++)
    if ((c & 0x7F) != 0x7F) CHECK(f32_to_e4m3(e4m3_to_f32((uint8_t)c)) == c);
  // Hand-made cases of the rules.
  CHECK(f32_to_e4m3(464.0f) == 0x7E);  // the would-be midpoint to 480: saturates, never NaN
  CHECK(f32_to_e4m3(1e30f) == 0x7E);
  CHECK(f32_to_e4m3(-1e30f) == 0xFE);
  CHECK(f32_to_e4m3(std::ldexp(1.0f, -10)) == 0x00);         // half the smallest subnormal: tie to 0
  CHECK(f32_to_e4m3(std::ldexp(3.0f, -10)) == 0x02);         // 1.5 · 2^-9: tie to the even 2 · 2^-9
  CHECK(f32_to_e4m3(std::ldexp(1.0f, -6) * 1.0625f) == 0x08);  // tie between 0x08 and 0x09 → 0x08
  CHECK(f32_to_e4m3(std::ldexp(1.0f, -6) * 1.1875f) == 0x0A);  // tie between 0x09 and 0x0A → 0x0A
  CHECK(f32_to_e4m3(std::ldexp(7.5f, -9)) == 0x08);   // 7.5 · 2^-9 (above the largest subnormal): tie → 8 · 2^-9
  CHECK(f32_to_e4m3(-std::ldexp(1.0f, -12)) == 0x80);  // −0
}

TEST_CASE("fp8 e5m2: encode is the nearest value, ties to even, IEEE overflow to inf") {
  const std::vector<Candidate> cands = fp8_candidates(5, 2, 15, true, true);
  REQUIRE(cands.size() == 125);  // 0x00 .. 0x7B and inf
  const int64_t n = check_encoder(f32_to_e5m2, cands, 0x7C, 0x7F);
  MESSAGE("e5m2: " << n << " inputs against the brute force");
  for (uint32_t c = 0; c < 256; c++)
    if (!std::isnan(e5m2_to_f32((uint8_t)c))) CHECK(f32_to_e5m2(e5m2_to_f32((uint8_t)c)) == c);
  CHECK(f32_to_e5m2(std::nextafter(61440.0f, 0.0f)) == 0x7B);
  CHECK(f32_to_e5m2(61440.0f) == 0x7C);  // the midpoint to 2^16: tie to the even code, inf
  CHECK(f32_to_e5m2(-61440.0f) == 0xFC);
  CHECK(f32_to_e5m2(std::ldexp(1.0f, -17)) == 0x00);  // half the smallest subnormal
  CHECK(f32_to_e5m2(std::ldexp(3.0f, -18)) == 0x01);  // three quarters of it
  for (uint32_t c = 0; c < 256; c++) {  // NaN codes: decode to a NaN that encodes back to NaN
    const float v = e5m2_to_f32((uint8_t)c);
    if (std::isnan(v)) CHECK(std::isnan(e5m2_to_f32(f32_to_e5m2(v))));
  }
}

TEST_CASE("fp8 e5m2 saturating: nearest finite value, ±inf → ±57344") {
  const std::vector<Candidate> cands = fp8_candidates(5, 2, 15, true, false);
  REQUIRE(cands.size() == 124);
  const int64_t n = check_encoder(f32_to_e5m2_sat, cands, 0x7B, 0x7F);
  MESSAGE("e5m2 saturating: " << n << " inputs against the brute force");
  CHECK(f32_to_e5m2_sat(61440.0f) == 0x7B);
  CHECK(f32_to_e5m2_sat(-1e38f) == 0xFB);
}

// ---- bf16 / f16 ------------------------------------------------------------------------------------

namespace {

// The positive finite values of a 16-bit format, sorted (codes are monotone in value), with the
// IEEE overflow candidate 2^(e_max − bias) for the inf code; nearest() by binary search between the
// two neighbours of x — the same exact midpoint rule as above.
struct Table16 {
  std::vector<double> value;  // value[c] for codes 0 .. inf code
  uint32_t nearest(double x) const {
    const size_t hi = std::upper_bound(value.begin(), value.end(), x) - value.begin();
    if (hi == 0) return 0;
    if (hi == value.size()) return (uint32_t)hi - 1;
    const size_t lo = hi - 1;
    const double mid = (value[lo] + value[hi]) / 2;
    if (x < mid) return (uint32_t)lo;
    if (x > mid) return (uint32_t)hi;
    return (lo & 1u) ? (uint32_t)hi : (uint32_t)lo;
  }
};

Table16 table16(int E, int M, int B) {
  Table16 t;
  const uint32_t inf_code = ((1u << E) - 1u) << M;
  for (uint32_t c = 0; c < inf_code; c++) t.value.push_back(formula(c, E, M, B, true));
  t.value.push_back(std::ldexp(1.0, (1 << E) - 1 - B));  // inf, as an unbounded exponent would put it
  return t;
}

// All 65536 codes: decode by the formula, round trip for non-NaN codes, NaN stays a quiet NaN with
// its sign; then every midpoint between consecutive values (ties to the even code) and its two
// neighbours, both signs; then a strided sweep of all finite f32 against the table.
template <class Enc, class Dec>
void check_16bit(Enc enc, Dec dec, int E, int M, int B, uint16_t quiet_bit) {
  const Table16 t = table16(E, M, B);
  const uint32_t inf_code = ((1u << E) - 1u) << M;
  int64_t n_nan = 0, bad = 0;
  for (uint32_t c = 0; c < 65536; c++) {
    const float v = dec((uint16_t)c);
    const double want = formula(c, E, M, B, true);
    if (std::isnan(want)) {
      n_nan++;
      const bool ok = std::isnan(v) && std::signbit(v) == (c >= 0x8000) && enc(v) == (c | quiet_bit);
      if (!ok && bad++ < 10) CHECK_MESSAGE(ok, "NaN code 0x" << std::hex << c);
      continue;
    }
    const bool ok = (double)v == want && std::signbit(v) == (c >= 0x8000) && enc(v) == c;
    if (!ok && bad++ < 10) CHECK_MESSAGE(ok, "code 0x" << std::hex << c);
  }
  CHECK(n_nan == 2 * ((1 << M) - 1));
  const float inf = std::numeric_limits<float>::infinity();
  int64_t n_ties = 0;
  for (uint32_t c = 0; c < inf_code; c++) {  // c and c + 1 (the last pair: largest finite and inf)
    const double mid_d = (t.value[c] + t.value[c + 1]) / 2;
    const float mid = (float)mid_d;
    REQUIRE((double)mid == mid_d);
    const uint32_t even = (c & 1u) ? c + 1 : c;
    for (float s : {1.0f, -1.0f}) {
      const uint32_t sgn = s < 0 ? 0x8000u : 0u;
      const bool ok = enc(s * mid) == (even | sgn) && enc(s * std::nextafter(mid, 0.0f)) == (c | sgn) &&
                      enc(s * std::nextafter(mid, inf)) == ((c + 1) | sgn);
      if (!ok && bad++ < 10) CHECK_MESSAGE(ok, "tie between codes 0x" << std::hex << c << " and 0x" << c + 1);
      n_ties++;
    }
  }
  int64_t n_sweep = 0;
  for (uint32_t b = 0; b < 0x7F800000u; b += 251) {
    const float x = from_bits(b);
    const uint32_t want = t.nearest((double)x);
    const bool ok = enc(x) == want && enc(-x) == (want | 0x8000u);
    if (!ok && bad++ < 10) CHECK_MESSAGE(ok, "x bits 0x" << std::hex << b);
    n_sweep += 2;
  }
  CHECK(bad == 0);
  CHECK(enc(inf) == inf_code);
  CHECK(enc(-inf) == (inf_code | 0x8000u));
  CHECK(enc(std::numeric_limits<float>::max()) == inf_code);
  CHECK(enc(0.0f) == 0);
  CHECK(enc(-0.0f) == 0x8000);
  CHECK(same_float(dec(0x8000), -0.0f));
  MESSAGE(n_ties << " constructed ties (x3 with their neighbours), " << n_sweep << " swept floats");
}

}  // namespace

TEST_CASE("bf16: all 65536 codes, ties to even, overflow to inf, NaN quiet") {
  check_16bit(f32_to_bf16, bf16_to_f32, 8, 7, 127, 0x0040);
  CHECK(f32_to_bf16(65504.0f) == 0x4780);
  CHECK(f32_to_bf16(1.00390625f) == 0x3F80);  // 1 + 2^-8: the tie between 1 and 1 + 2^-7 → 1
  CHECK(f32_to_bf16(1.01171875f) == 0x3F82);  // 1 + 3 · 2^-8: tie → the even 1 + 2^-6
  CHECK(f32_to_bf16(from_bits(0x7F7F8000u)) == 0x7F80);  // the tie above the largest finite → inf
  CHECK(f32_to_bf16(from_bits(0x7F7F7FFFu)) == 0x7F7F);
  CHECK(f32_to_bf16(from_bits(0x00008000u)) == 0x0000);  // f32 subnormal tie to 0
  CHECK(f32_to_bf16(from_bits(0x00018000u)) == 0x0002);
}

TEST_CASE("f16: all 65536 codes, ties to even, overflow to inf, NaN quiet; against _Float16") {
  check_16bit(f32_to_f16, f16_to_f32, 5, 10, 15, 0x0200);
  CHECK(f32_to_f16(65504.0f) == 0x7BFF);
  CHECK(f32_to_f16(std::nextafter(65520.0f, 0.0f)) == 0x7BFF);
  CHECK(f32_to_f16(65520.0f) == 0x7C00);
  CHECK(f32_to_f16(std::ldexp(1.0f, -25)) == 0x0000);  // half the smallest subnormal: tie to 0
  CHECK(f32_to_f16(std::ldexp(3.0f, -26)) == 0x0001);
  CHECK(f32_to_f16(std::ldexp(1.0f, -14) - std::ldexp(1.0f, -25)) == 0x0400);  // carries into the smallest normal
#if defined(__FLT16_MAX__)
  // The compiler's own conversion (libgcc / F16C, RNE) as a second reference, over a strided sweep of
  // all f32 bit patterns (NaN payloads aside: both must give a NaN).
  int64_t n = 0, bad = 0;
  for (uint64_t b = 0; b < 0x100000000ull; b += 1021) {
    const float x = from_bits((uint32_t)b);
    const _Float16 h = (_Float16)x;
    uint16_t hb;
    std::memcpy(&hb, &h, 2);
    const uint16_t ours = f32_to_f16(x);
    const bool ok = std::isnan(x) ? ((ours & 0x7C00u) == 0x7C00u && (ours & 0x3FFu) && (hb & 0x7C00u) == 0x7C00u && (hb & 0x3FFu))
                                  : ours == hb;
    if (!ok && bad++ < 10) CHECK_MESSAGE(ok, "x bits 0x" << std::hex << b << ": ours 0x" << ours << ", _Float16 0x" << hb);
    const float back = (float)h;  // and the decoder against the compiler's widening
    if (!std::isnan(x) && !same_float(back, f16_to_f32(ours)) && bad++ < 10) CHECK_MESSAGE(false, "decode 0x" << std::hex << ours);
    n++;
  }
  CHECK(bad == 0);
  MESSAGE(n << " floats against _Float16");
#else
  MESSAGE("no _Float16 on this compiler: the brute-force table is the only reference");
#endif
}
