// tests/models/test_safetensors.cpp — models/json and models/safetensors: JSON round trips and
// error positions, the reference fixtures (written by the official DeepSeek-V3 code's harness),
// byte-exact write/read round trips, hand-computed bf16/f16 bit patterns, every kind of corrupt
// file, and the atomic write.
#include <doctest/doctest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "autograd/rng.h"
#include "models/json.h"
#include "models/safetensors.h"

#ifndef SEEKGRAD_SOURCE_DIR
#define SEEKGRAD_SOURCE_DIR "."
#endif

namespace fs = std::filesystem;
using sg::Json;
using sg::StDType;
using sg::StTensor;

namespace {

const std::string kFixtures = std::string(SEEKGRAD_SOURCE_DIR) + "/tests/fixtures/tiny_v2lite/";

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE_MESSAGE(in.good(), "cannot open " << path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_text(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), (std::streamsize)bytes.size());
  REQUIRE(out.good());
}

// A fresh directory under the system temp dir, removed with everything in it at scope exit.
struct TempDir {
  fs::path path;
  TempDir() {
    std::random_device rd;
    path = fs::temp_directory_path() /
           ("seekgrad_test_safetensors_" + std::to_string(rd()) + std::to_string(rd()));
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string file(const std::string& name) const { return (path / name).string(); }
};

// The message of the std::runtime_error that `f` throws ("" if it does not throw).
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

#define CHECK_THROWS_CONTAINING(expr, text)                                   \
  do {                                                                        \
    const std::string msg_ = error_of([&] { (void)(expr); });                 \
    CHECK_MESSAGE(msg_.find(text) != std::string::npos,                       \
                  "expected an error containing \"" << (text) << "\", got \"" \
                                                    << msg_ << "\"");         \
  } while (0)

std::string le64(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = (char)(v >> (8 * i));
  return s;
}

// A safetensors file from a header text and `data_bytes` bytes of data (value = index % 251).
std::string make_file(const std::string& header, size_t data_bytes) {
  std::string data(data_bytes, '\0');
  for (size_t i = 0; i < data_bytes; ++i) data[i] = (char)(i % 251);
  return le64(header.size()) + header + data;
}

}  // namespace

// =================================================================================================
// JSON
// =================================================================================================

TEST_CASE("json: numbers keep int64 exactness; doubles read back to the same bits") {
  CHECK(Json::parse("129280").is_int());
  CHECK(Json::parse("129280").get_int() == 129280);
  CHECK(Json::parse("-9223372036854775808").get_int() == INT64_MIN);
  CHECK(Json::parse("9223372036854775807").get_int() == INT64_MAX);
  CHECK(Json::parse("9223372036854775808").is_double());  // beyond int64: nearest double
  CHECK(Json::parse("-0.5").get_double() == -0.5);
  CHECK(Json::parse("1e-6").is_double());
  CHECK(Json::parse("1e-6").get_double() == 1e-6);
  CHECK(Json::parse("1E+2").get_double() == 100.0);
  CHECK(Json::parse("4.0").get_int() == 4);  // Python writes float-valued ints as 4.0
  CHECK(Json::parse("3").get_double() == 3.0);
  CHECK(Json::parse("1e-400").get_double() == 0.0);  // underflow: zero, not an error

  // Python repr() formatting: shortest digits, fixed for exponents in [-4, 16), else scientific.
  CHECK(Json(4.0).dump() == "4.0");
  CHECK(Json(1e-6).dump() == "1e-06");
  CHECK(Json(0.0001).dump() == "0.0001");
  CHECK(Json(1e16).dump() == "1e+16");
  CHECK(Json(1e15).dump() == "1000000000000000.0");
  CHECK(Json(-0.5).dump() == "-0.5");
  CHECK(Json(0.707).dump() == "0.707");
  CHECK(Json(10000.0).dump() == "10000.0");
  CHECK(Json(129280).dump() == "129280");
  for (double d : {0.1, 1.0 / 3.0, 1e-6, 6.02214076e23, 5e-324, 1.7976931348623157e308, -0.0,
                   2.2250738585072014e-308, 0.17401743871138853}) {
    const Json back = Json::parse(Json(d).dump());
    CHECK(back.is_double());
    CHECK(std::bit_cast<uint64_t>(back.get_double()) == std::bit_cast<uint64_t>(d));
  }
}

TEST_CASE("json: strings, escapes, \\u and surrogate pairs") {
  CHECK(Json::parse(R"("a\"b\\c\/d\b\f\n\r\t")").get_string() == "a\"b\\c/d\b\f\n\r\t");
  CHECK(Json::parse(R"("\u00e9")").get_string() == "\xC3\xA9");              // é
  CHECK(Json::parse(R"("\u20AC")").get_string() == "\xE2\x82\xAC");          // €
  CHECK(Json::parse(R"("\ud83d\ude00")").get_string() == "\xF0\x9F\x98\x80");  // U+1F600
  CHECK(Json::parse(R"("\u0000")").get_string() == std::string(1, '\0'));
  CHECK(Json::parse("\"caf\xC3\xA9\"").get_string() == "caf\xC3\xA9");  // raw UTF-8 passes through

  // dump escapes quotes, backslashes and every control character; UTF-8 is written as is.
  const std::string nasty = std::string("q\"b\\n\nt\tc\x01\x1F") + '\0' + "\xC3\xA9";
  CHECK(Json(nasty).dump() == "\"q\\\"b\\\\n\\nt\\tc\\u0001\\u001f\\u0000\xC3\xA9\"");
  CHECK(Json::parse(Json(nasty).dump()).get_string() == nasty);
}

TEST_CASE("json: objects keep insertion order; compact and pretty round trips") {
  const std::string text = R"({"z":1,"a":[1,2.5,"x",null,true,false],"m":{"k":{},"l":[]}})";
  const Json j = Json::parse(text, "t.json");
  CHECK(j.dump() == text);
  REQUIRE(j.items().size() == 3);
  CHECK(j.items()[0].first == "z");
  CHECK(j.items()[1].first == "a");
  CHECK(j.items()[2].first == "m");
  CHECK(j.at("a").size() == 6);
  CHECK(j.at("a")[1].get_double() == 2.5);
  CHECK(j.at("a")[3].is_null());
  CHECK(j.contains("m"));
  CHECK_FALSE(j.contains("q"));
  CHECK(j.find("q") == nullptr);
  CHECK(j.at("m").at("k").is_object());

  const std::string pretty = j.dump(2);
  CHECK(pretty ==
        "{\n  \"z\": 1,\n  \"a\": [\n    1,\n    2.5,\n    \"x\",\n    null,\n    true,\n"
        "    false\n  ],\n  \"m\": {\n    \"k\": {},\n    \"l\": []\n  }\n}");
  CHECK(Json::parse(pretty) == j);
  CHECK(Json::parse(" \r\n\t" + text + " \n ") == j);  // surrounding whitespace is fine

  // Equality ignores member order but not number kinds.
  CHECK(Json::parse(R"({"a":1,"b":2})") == Json::parse(R"({"b":2,"a":1})"));
  CHECK_FALSE(Json::parse("1") == Json::parse("1.0"));

  // Building values in code.
  Json built;
  built.set("name", "tiny");
  built.set("dims", Json::Array{Json(128), Json(512)});
  built.set("name", "tinier");  // replaces in place
  CHECK(built.dump() == R"({"name":"tinier","dims":[128,512]})");
  CHECK_THROWS_CONTAINING(Json(Json::Object{{"a", 1}, {"a", 2}}), "duplicate key 'a'");
}

TEST_CASE("json: the fixture config.json parses, and dump(2) rewrites it byte for byte") {
  const std::string text = read_text(kFixtures + "config.json");
  const Json config = Json::parse(text, "config.json");
  CHECK(config.at("kv_lora_rank").get_int() == 32);
  CHECK(config.at("rms_norm_eps").get_double() == 1e-6);
  CHECK(config.at("q_lora_rank").is_null());
  CHECK(config.at("rope_scaling").at("factor").get_double() == 4.0);
  CHECK(config.at("rope_scaling").at("type").get_string() == "yarn");
  CHECK(config.at("architectures")[0].get_string() == "DeepseekV3ForCausalLM");
  CHECK(config.dump(2) == text);  // same layout as Python's json.dump(indent=2)
  CHECK(Json::parse(config.dump()) == config);
}

TEST_CASE("json: parse errors name the source, line, column and what was expected") {
  const std::string text = "{\n  \"a\": 1,\n  \"b\" 2\n}";
  CHECK(error_of([&] { Json::parse(text, "cfg.json"); }) ==
        "[json] cfg.json:3:7: expected ':' after the key 'b', found '2'");

  CHECK_THROWS_CONTAINING(Json::parse("[1,2", "t"), "t:1:5: expected ',' or ']'");
  CHECK_THROWS_CONTAINING(Json::parse("[1,2", "t"), "found end of input");
  CHECK_THROWS_CONTAINING(Json::parse("{\"a\":1,}", "t"), "t:1:8: expected a string key after ','");
  CHECK_THROWS_CONTAINING(Json::parse("{\"a\":1 \"b\":2}", "t"), "t:1:8: expected ',' or '}'");
  CHECK_THROWS_CONTAINING(Json::parse("", "t"), "t:1:1: expected a value");
  CHECK_THROWS_CONTAINING(Json::parse("tru", "t"), "expected a value (object, array, string, "
                                                   "number, true, false or null), found 'tru'");
  CHECK_THROWS_CONTAINING(Json::parse("{} x", "t"), "t:1:4: expected end of input");
  CHECK_THROWS_CONTAINING(Json::parse("\"abc", "t"), "expected '\"' to close the string started "
                                                     "at line 1, column 1");
  CHECK_THROWS_CONTAINING(Json::parse("\"a\nb\"", "t"), "control characters must be escaped");
  CHECK_THROWS_CONTAINING(Json::parse(R"("\q")", "t"), "t:1:3: expected an escape");
  CHECK_THROWS_CONTAINING(Json::parse(R"("\u12G4")", "t"), "expected 4 hex digits after \\u");
  CHECK_THROWS_CONTAINING(Json::parse(R"("\ud83d")", "t"),
                          "expected a \\uDC00-\\uDFFF low surrogate");
  CHECK_THROWS_CONTAINING(Json::parse(R"("\ud83d\u0041")", "t"), "found \\u0041");
  CHECK_THROWS_CONTAINING(Json::parse(R"("\ude00")", "t"), "t:1:2: unexpected low surrogate");
  CHECK_THROWS_CONTAINING(Json::parse("012", "t"), "after a leading 0");
  CHECK_THROWS_CONTAINING(Json::parse("1.", "t"), "expected a digit after '.'");
  CHECK_THROWS_CONTAINING(Json::parse("1e+", "t"), "expected a digit in the exponent");
  CHECK_THROWS_CONTAINING(Json::parse("-", "t"), "expected a digit");
  CHECK_THROWS_CONTAINING(Json::parse("1e400", "t"), "out of the range of a double");
  CHECK_THROWS_CONTAINING(Json::parse("{\"k\":1,\n\"k\":2}", "t"), "t:2:1: duplicate key 'k'");
  CHECK_THROWS_CONTAINING(Json::parse(std::string(1000, '['), "t"), "nesting deeper than 256");

  // Accessor errors name the source and where the value was.
  const Json j = Json::parse("{\n  \"a\": 1}", "cfg.json");
  CHECK(error_of([&] { j.at("x"); }) ==
        "[json] cfg.json: missing key 'x' (object at line 1, column 1)");
  CHECK(error_of([&] { j.at("a").get_string(); }) ==
        "[json] cfg.json: expected a string but found integer 1 (at line 2, column 8)");
  CHECK_THROWS_CONTAINING(Json::parse("[1]", "t").at(3),
                          "index 3 is out of range for an array of 1");
  CHECK_THROWS_CONTAINING(Json::parse("2.5", "t").get_int(),
                          "expected an integer but found number 2.5");
  CHECK_THROWS_CONTAINING(Json::parse("[]", "t").at("k"), "expected an object with key 'k'");
}

TEST_CASE("json: NaN and Infinity read and write as Python's json module does") {
  const Json j = Json::parse("[NaN, Infinity, -Infinity]");
  CHECK(std::isnan(j[0].get_double()));
  CHECK(j[1].get_double() == INFINITY);
  CHECK(j[2].get_double() == -INFINITY);
  CHECK(j.dump() == "[NaN,Infinity,-Infinity]");
  CHECK(Json::parse(j.dump()) == j);
}

// =================================================================================================
// bf16 / f16
// =================================================================================================

namespace {
float f32_from_bits(uint32_t b) { return std::bit_cast<float>(b); }
}  // namespace

TEST_CASE("bf16/f16: hand-computed bit patterns") {
  // 1.0 = 0x3F800000; f16: exponent 15, mantissa 0.
  CHECK(sg::f32_to_bf16(1.0f) == 0x3F80);
  CHECK(sg::f32_to_f16(1.0f) == 0x3C00);
  // -2.5 = -1.25 * 2^1 = 0xC0200000; f16: sign 1, exponent 16, mantissa 0.25*1024 = 0x100.
  CHECK(sg::f32_to_bf16(-2.5f) == 0xC020);
  CHECK(sg::f32_to_f16(-2.5f) == 0xC100);
  // 65504 = f16 max (0x7BFF). In bf16 (0x477FE000) the dropped bits 0xE000 round up to 65536.
  CHECK(sg::f32_to_f16(65504.0f) == 0x7BFF);
  CHECK(sg::f32_to_bf16(65504.0f) == 0x4780);
  CHECK(sg::bf16_to_f32(0x4780) == 65536.0f);
  // 65520 is exactly halfway between 65504 (odd mantissa 0x3FF) and 2^16: ties to even -> inf.
  CHECK(sg::f32_to_f16(65520.0f) == 0x7C00);
  CHECK(sg::f32_to_f16(65519.0f) == 0x7BFF);
  // Smallest subnormals: f16 2^-24 -> 0x0001; bf16 2^-133 = f32 bits 0x00010000 -> 0x0001.
  CHECK(sg::f32_to_f16(std::ldexp(1.0f, -24)) == 0x0001);
  CHECK(sg::f16_to_f32(0x0001) == std::ldexp(1.0f, -24));
  CHECK(sg::f16_to_f32(0x03FF) == std::ldexp(1023.0f, -24));  // largest subnormal
  CHECK(sg::f16_to_f32(0x0400) == std::ldexp(1.0f, -14));     // smallest normal
  CHECK(sg::f32_to_bf16(std::ldexp(1.0f, -133)) == 0x0001);
  CHECK(sg::bf16_to_f32(0x0001) == std::ldexp(1.0f, -133));
  // Subnormal ties: 2^-25 is halfway between 0 and 2^-24 -> 0 (even); 1.5*2^-24 -> 2 (even);
  // a hair above 2^-25 -> 1.
  CHECK(sg::f32_to_f16(std::ldexp(1.0f, -25)) == 0x0000);
  CHECK(sg::f32_to_f16(std::ldexp(3.0f, -25)) == 0x0002);
  CHECK(sg::f32_to_f16(std::ldexp(1.0f, -25) * 1.0000001f) == 0x0001);
  CHECK(sg::f32_to_f16(std::ldexp(1.0f, -26)) == 0x0000);
  CHECK(sg::f32_to_f16(-std::ldexp(1.0f, -26)) == 0x8000);  // keeps the sign of zero
  // Rounding up from the largest subnormal carries into the smallest normal.
  CHECK(sg::f32_to_f16(std::ldexp(1023.5f, -24)) == 0x0400);
  // Normal ties: 1 + 2^-11 is halfway between 1 and 1 + 2^-10 -> 1 (even mantissa);
  // 1 + 3*2^-11 is halfway between 1+2^-10 (odd) and 1+2^-9 -> 1+2^-9.
  CHECK(sg::f32_to_f16(1.0f + std::ldexp(1.0f, -11)) == 0x3C00);
  CHECK(sg::f32_to_f16(1.0f + std::ldexp(3.0f, -11)) == 0x3C02);
  CHECK(sg::f32_to_bf16(f32_from_bits(0x3F808000)) == 0x3F80);  // 1 + 2^-8: tie, 0x3F80 even
  CHECK(sg::f32_to_bf16(f32_from_bits(0x3F818000)) == 0x3F82);  // 1 + 3*2^-8: tie, to even
  CHECK(sg::f32_to_bf16(f32_from_bits(0x3F808001)) == 0x3F81);  // just above the tie
  // Largest finite f32 rounds to inf in bf16 (its dropped bits are above half).
  CHECK(sg::f32_to_bf16(f32_from_bits(0x7F7FFFFF)) == 0x7F80);
  // Infinities.
  CHECK(sg::f32_to_bf16(INFINITY) == 0x7F80);
  CHECK(sg::f32_to_bf16(-INFINITY) == 0xFF80);
  CHECK(sg::f32_to_f16(INFINITY) == 0x7C00);
  CHECK(sg::f32_to_f16(-INFINITY) == 0xFC00);
  CHECK(sg::f32_to_f16(1e10f) == 0x7C00);
  CHECK(sg::f16_to_f32(0x7C00) == INFINITY);
  CHECK(sg::bf16_to_f32(0xFF80) == -INFINITY);
  // NaN stays NaN: the default quiet NaN 0x7FC00000 maps to 0x7FC0 / 0x7E00; a signalling NaN whose
  // payload sits only in the dropped bits must not turn into inf.
  CHECK(sg::f32_to_bf16(f32_from_bits(0x7FC00000)) == 0x7FC0);
  CHECK(sg::f32_to_f16(f32_from_bits(0x7FC00000)) == 0x7E00);
  CHECK(sg::f32_to_bf16(f32_from_bits(0x7F800001)) == 0x7FC0);
  CHECK(sg::f32_to_f16(f32_from_bits(0x7F800001)) == 0x7E00);
  CHECK(sg::f32_to_bf16(f32_from_bits(0xFFC00000)) == 0xFFC0);  // sign kept
  CHECK(std::isnan(sg::f16_to_f32(0x7E00)));
  CHECK(std::isnan(sg::bf16_to_f32(0x7FC0)));
  // Signed zero.
  CHECK(sg::f32_to_f16(-0.0f) == 0x8000);
  CHECK(sg::f32_to_bf16(-0.0f) == 0x8000);
  CHECK(std::signbit(sg::f16_to_f32(0x8000)));
}

namespace {
bool is_nan16(uint16_t h, bool bf16) {
  return bf16 ? ((h & 0x7F80) == 0x7F80 && (h & 0x7F)) : ((h & 0x7C00) == 0x7C00 && (h & 0x3FF));
}

// Checks that h = round(x) is a nearest 16-bit value to x and, on a tie, the even one.
void check_nearest_even(float x, bool bf16) {
  const auto to16 = bf16 ? sg::f32_to_bf16 : sg::f32_to_f16;
  const auto to32 = bf16 ? sg::bf16_to_f32 : sg::f16_to_f32;
  const uint16_t h = to16(x), mag = h & 0x7FFF, sign = h & 0x8000;
  const uint16_t inf = bf16 ? 0x7F80 : 0x7C00;
  if (std::isnan(x)) {
    CHECK(is_nan16(h, bf16));
    return;
  }
  REQUIRE(std::signbit(x) == (sign != 0));
  const double xd = x;
  if (mag == inf) {  // x must be at least halfway from the largest finite value to 2^(emax+1)
    const double max = to32(inf - 1), next = std::ldexp(1.0, bf16 ? 128 : 16);
    CHECK(std::fabs(xd) >= (max + next) / 2);
    return;
  }
  const double err = std::fabs(xd - (double)to32(h));
  for (int step : {-1, 1}) {
    const int n = mag + step;
    if (n < 0 || n >= inf) continue;
    const double err_n = std::fabs(xd - (double)to32((uint16_t)(sign | n)));
    CHECK(err <= err_n);
    if (err == err_n) CHECK((mag & 1) == 0);
  }
}
}  // namespace

TEST_CASE("bf16/f16: all 65536 patterns round trip; random f32 round to the nearest even") {
  for (uint32_t i = 0; i < 65536; ++i) {
    const uint16_t h = (uint16_t)i;
    if (is_nan16(h, false)) {
      CHECK(is_nan16(sg::f32_to_f16(sg::f16_to_f32(h)), false));
    } else if (sg::f32_to_f16(sg::f16_to_f32(h)) != h) {
      FAIL("f16 pattern " << i << " does not round trip");
    }
    if (is_nan16(h, true)) {
      CHECK(is_nan16(sg::f32_to_bf16(sg::bf16_to_f32(h)), true));
    } else if (sg::f32_to_bf16(sg::bf16_to_f32(h)) != h) {
      FAIL("bf16 pattern " << i << " does not round trip");
    }
  }
  // Random bit patterns cover every exponent; random values near 1 and near the f16 subnormal
  // range exercise the rounding of ordinary numbers.
  sg::Rng rng(7);
  for (int i = 0; i < 20000; ++i) {
    const float x = f32_from_bits((uint32_t)rng.next_u64());
    check_nearest_even(x, true);
    check_nearest_even(x, false);
    check_nearest_even((float)rng.uniform(-4.0, 4.0), false);
    check_nearest_even((float)rng.uniform(-4.0, 4.0), true);
    check_nearest_even((float)std::ldexp(rng.uniform(-1.0, 1.0), -14), false);
  }
}

// =================================================================================================
// safetensors: the fixtures
// =================================================================================================

TEST_CASE("safetensors: reads the fixture model with the shapes config.json implies") {
  const Json config = Json::parse(read_text(kFixtures + "config.json"), "config.json");
  const sg::SafeTensorsFile f = sg::read_safetensors(kFixtures + "model.safetensors");

  const int64_t dim = config.at("hidden_size").get_int();            // 128
  const int64_t vocab = config.at("vocab_size").get_int();           // 512
  const int64_t n_layers = config.at("num_hidden_layers").get_int();  // 3
  const int64_t n_dense = config.at("first_k_dense_replace").get_int();
  const int64_t n_heads = config.at("num_attention_heads").get_int();
  const int64_t kv_lora_rank = config.at("kv_lora_rank").get_int();
  const int64_t qk_nope = config.at("qk_nope_head_dim").get_int();
  const int64_t qk_rope = config.at("qk_rope_head_dim").get_int();
  const int64_t v_head = config.at("v_head_dim").get_int();
  const int64_t n_routed = config.at("n_routed_experts").get_int();
  const int64_t moe_inter = config.at("moe_intermediate_size").get_int();
  const int64_t n_shared = config.at("n_shared_experts").get_int();
  const int64_t inter = config.at("intermediate_size").get_int();

  // embed + norm + lm_head; per layer 5 attention + 2 norms; dense MLP 3; MoE gate, experts,
  // shared experts.
  const int64_t expected_count = 3 + n_layers * 7 + n_dense * 3 +
                                 (n_layers - n_dense) * (1 + 3 * n_routed + 3);
  CHECK(f.tensors.size() == (size_t)expected_count);
  CHECK(f.tensors.size() == 131);
  CHECK(f.metadata == std::map<std::string, std::string>{{"format", "pt"}});
  CHECK(f.path == kFixtures + "model.safetensors");

  using Shape = std::vector<int64_t>;
  CHECK(f.get("model.embed_tokens.weight").shape == Shape{vocab, dim});
  CHECK(f.get("model.embed_tokens.weight").shape == Shape{512, 128});
  CHECK(f.get("lm_head.weight").shape == Shape{vocab, dim});
  CHECK(f.get("model.norm.weight").shape == Shape{dim});
  for (int64_t l = 0; l < n_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    CAPTURE(p);
    CHECK(f.get(p + "self_attn.kv_a_proj_with_mqa.weight").shape ==
          Shape{kv_lora_rank + qk_rope, dim});  // [48,128]
    CHECK(f.get(p + "self_attn.kv_a_layernorm.weight").shape == Shape{kv_lora_rank});
    CHECK(f.get(p + "self_attn.kv_b_proj.weight").shape ==
          Shape{n_heads * (qk_nope + v_head), kv_lora_rank});
    CHECK(f.get(p + "self_attn.q_proj.weight").shape == Shape{n_heads * (qk_nope + qk_rope), dim});
    CHECK(f.get(p + "self_attn.o_proj.weight").shape == Shape{dim, n_heads * v_head});
    if (l < n_dense) {
      CHECK(f.get(p + "mlp.gate_proj.weight").shape == Shape{inter, dim});
    } else {
      CHECK(f.get(p + "mlp.gate.weight").shape == Shape{n_routed, dim});
      CHECK(f.get(p + "mlp.experts." + std::to_string(n_routed - 1) + ".down_proj.weight").shape ==
            Shape{dim, moe_inter});
      CHECK(f.get(p + "mlp.shared_experts.up_proj.weight").shape ==
            Shape{n_shared * moe_inter, dim});
    }
  }
  CHECK(f.get("model.layers.0.self_attn.kv_a_proj_with_mqa.weight").shape == Shape{48, 128});
  for (const StTensor& t : f.tensors) {
    CHECK(t.dtype == StDType::F32);
    CHECK(t.bytes.size() == (size_t)t.numel() * 4);
  }

  // Values, against numbers Python's struct module read from the same file.
  const std::vector<float> embed = sg::to_f32(f.get("model.embed_tokens.weight"));
  CHECK(embed[0] == -0.1117185652256012f);
  CHECK(embed[1] == -0.49659010767936707f);
  CHECK(embed[2] == 0.16307370364665985f);
  double sum = 0.0;
  for (float v : embed) sum += v;
  CHECK(sum == doctest::Approx(27.11200206490321).epsilon(1e-12));
  CHECK(sg::to_f32(f.get("model.norm.weight"))[2] == 1.1460989713668823f);

  // A misspelt name lists the closest ones.
  const std::string msg = error_of([&] { f.get("model.layers.0.self_attn.q_proj.weigth"); });
  CHECK(msg.find("[safetensors] " + kFixtures + "model.safetensors: no tensor named "
                 "'model.layers.0.self_attn.q_proj.weigth' (131 tensors; closest names: "
                 "'model.layers.0.self_attn.q_proj.weight'") == 0);
  CHECK_FALSE(f.contains("model.layers.3.self_attn.q_proj.weight"));
  CHECK(f.contains("model.layers.2.self_attn.q_proj.weight"));
}

TEST_CASE("safetensors: reads the fixture reference outputs; shapes agree with meta.json") {
  const sg::SafeTensorsFile f = sg::read_safetensors(kFixtures + "reference.safetensors");
  const Json meta = Json::parse(read_text(kFixtures + "meta.json"), "meta.json");
  using Shape = std::vector<int64_t>;
  CHECK(f.get("logits").shape == Shape{2, 24, 512});
  CHECK(f.get("logits").dtype == StDType::F32);
  CHECK(f.get("rope.cos").shape == Shape{24, 8});
  CHECK(f.get("rope.sin").shape == Shape{24, 8});
  CHECK(f.metadata.at("variant") == "v3");

  const auto& expected = meta.at("reference_tensors").items();
  CHECK(f.tensors.size() == expected.size());
  for (const auto& [name, shape_json] : expected) {
    CAPTURE(name);
    Shape shape;
    for (const Json& d : shape_json.elements()) shape.push_back(d.get_int());
    CHECK(f.get(name).shape == shape);
  }

  // The stored input tokens are the ones in tokens.json.
  const StTensor& tokens = f.get("tokens");
  CHECK(tokens.dtype == StDType::I64);
  const std::vector<int64_t> ids = sg::to_i64(tokens);
  const Json tokens_json = Json::parse(read_text(kFixtures + "tokens.json"), "tokens.json");
  std::vector<int64_t> from_json;
  for (const Json& row : tokens_json.elements())
    for (const Json& id : row.elements()) from_json.push_back(id.get_int());
  CHECK(ids == from_json);
  CHECK(ids.size() == 48);
  CHECK(ids[0] == 317);
  CHECK(sg::to_f32(tokens)[0] == 317.0f);
}

TEST_CASE("safetensors: rewriting the fixtures reproduces them byte for byte") {
  TempDir dir;
  for (const char* name : {"model.safetensors", "reference.safetensors"}) {
    CAPTURE(name);
    const sg::SafeTensorsFile f = sg::read_safetensors(kFixtures + name);
    sg::write_safetensors(dir.file(name), f.tensors, f.metadata);
    CHECK(read_text(dir.file(name)) == read_text(kFixtures + name));
  }
}

// =================================================================================================
// safetensors: write -> read
// =================================================================================================

namespace {
std::vector<StTensor> every_dtype() {
  std::vector<StTensor> ts;
  const float f[6] = {1.0f, -2.5f, 65504.0f, 1e-6f, -0.0f, 3.14159265f};
  ts.push_back(sg::from_f32("w.f32", {2, 3}, f));
  ts.push_back(sg::from_f32("w.f64", {3, 2}, f, StDType::F64));
  ts.push_back(sg::from_f32("w.f16", {6}, f, StDType::F16));
  ts.push_back(sg::from_f32("w.bf16", {1, 6}, f, StDType::BF16));
  const int64_t ints[4] = {-3, 0, 1, 127};
  ts.push_back(sg::from_i64("i.i64", {4}, ints));
  ts.push_back(sg::from_i64("i.i32", {2, 2}, ints, StDType::I32));
  ts.push_back(sg::from_i64("i.i16", {4}, ints, StDType::I16));
  ts.push_back(sg::from_i64("i.i8", {4}, ints, StDType::I8));
  const int64_t small[4] = {0, 1, 1, 0};
  ts.push_back(sg::from_i64("i.u8", {4}, small, StDType::U8));
  ts.push_back(sg::from_i64("mask", {2, 2}, small, StDType::BOOL));
  ts.push_back(StTensor{"fp8.e4m3", StDType::F8_E4M3, {2, 2}, {0x38, 0xB8, 0x7E, 0x01}});
  ts.push_back(StTensor{"fp8.e5m2", StDType::F8_E5M2, {3}, {0x3C, 0x7B, 0xFC}});
  ts.push_back(sg::from_f32("scalar", {}, f));       // shape [] = one element
  ts.push_back(sg::from_f32("empty", {0, 3}, f));    // no elements, data_offsets [x,x]
  ts.push_back(sg::from_f32("a.z.last", {1}, f + 5));  // given order is kept (not sorted)
  return ts;
}
}  // namespace

TEST_CASE("safetensors: write -> read round trip of every dtype, byte for byte, with metadata") {
  TempDir dir;
  const std::vector<StTensor> ts = every_dtype();
  const std::map<std::string, std::string> metadata = {
      {"format", "pt"}, {"note", "quotes \" backslash \\ newline \n tab \t caf\xC3\xA9"}};
  const std::string path = dir.file("all.safetensors");
  sg::write_safetensors(path, ts, metadata);

  const sg::SafeTensorsFile f = sg::read_safetensors(path);
  REQUIRE(f.tensors.size() == ts.size());
  for (size_t i = 0; i < ts.size(); ++i) {
    CAPTURE(ts[i].name);
    CHECK(f.tensors[i].name == ts[i].name);
    CHECK(f.tensors[i].dtype == ts[i].dtype);
    CHECK(f.tensors[i].shape == ts[i].shape);
    CHECK(f.tensors[i].bytes == ts[i].bytes);
  }
  CHECK(f.metadata == metadata);
  CHECK(f.get("scalar").numel() == 1);
  CHECK(f.get("empty").bytes.empty());

  // Layout: 8-byte length, header padded with spaces to a multiple of 8, then exactly the data.
  const std::string bytes = read_text(path);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | (uint8_t)bytes[i];
  CHECK(n % 8 == 0);
  size_t data_bytes = 0;
  for (const auto& t : ts) data_bytes += t.bytes.size();
  CHECK(bytes.size() == 8 + n + data_bytes);
  const std::string header = bytes.substr(8, n);
  CHECK(header.rfind(R"({"w.f32":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},)", 0) == 0);
  CHECK(header.find(R"("__metadata__":{"format":"pt","note":)") != std::string::npos);
  const size_t last = header.find_last_not_of(' ');
  CHECK(header[last] == '}');
  CHECK(n - 1 - last < 8);

  // Writing what was read gives the same file.
  sg::write_safetensors(dir.file("again.safetensors"), f.tensors, f.metadata);
  CHECK(read_text(dir.file("again.safetensors")) == bytes);

  // No metadata: no "__metadata__" key at all.
  sg::write_safetensors(dir.file("nometa.safetensors"), {ts[0]});
  CHECK(read_text(dir.file("nometa.safetensors")).find("__metadata__") == std::string::npos);
  CHECK(sg::read_safetensors(dir.file("nometa.safetensors")).metadata.empty());
  // No tensors at all is a valid file too.
  sg::write_safetensors(dir.file("none.safetensors"), {});
  CHECK(sg::read_safetensors(dir.file("none.safetensors")).tensors.empty());
}

TEST_CASE("safetensors: to_f32 / to_i64 / from_f32 / from_i64") {
  const std::vector<StTensor> ts = every_dtype();
  auto get = [&](const std::string& name) -> const StTensor& {
    for (const auto& t : ts)
      if (t.name == name) return t;
    FAIL("no " << name);
    return ts[0];
  };
  CHECK(sg::to_f32(get("w.f32")) == std::vector<float>{1.0f, -2.5f, 65504.0f, 1e-6f, -0.0f,
                                                        3.14159265f});
  CHECK(sg::to_f64(get("w.f64"))[5] == (double)3.14159265f);
  const std::vector<float> h = sg::to_f32(get("w.f16"));
  CHECK(h[0] == 1.0f);
  CHECK(h[1] == -2.5f);
  CHECK(h[2] == 65504.0f);
  CHECK(h[3] == sg::f16_to_f32(sg::f32_to_f16(1e-6f)));  // an f16 subnormal
  CHECK(h[5] == 3.140625f);                                // 3.14159265 to 10 mantissa bits
  const std::vector<float> b = sg::to_f32(get("w.bf16"));
  CHECK(b[2] == 65536.0f);
  CHECK(b[5] == 3.140625f);  // 0x4049 (3.14159265 = 0x40490FDB rounds down)
  CHECK(sg::to_i64(get("i.i8")) == std::vector<int64_t>{-3, 0, 1, 127});
  CHECK(sg::to_i64(get("i.i32")) == std::vector<int64_t>{-3, 0, 1, 127});
  CHECK(sg::to_i64(get("i.i16")) == std::vector<int64_t>{-3, 0, 1, 127});
  CHECK(sg::to_f32(get("i.i64")) == std::vector<float>{-3, 0, 1, 127});
  CHECK(sg::to_i64(get("mask")) == std::vector<int64_t>{0, 1, 1, 0});
  CHECK(sg::to_f32(get("i.u8")) == std::vector<float>{0, 1, 1, 0});
  CHECK(get("mask").bytes == std::vector<uint8_t>{0, 1, 1, 0});

  CHECK_THROWS_CONTAINING(sg::to_i64(get("w.f32")),
                          "to_i64: tensor 'w.f32' is F32, not an integer");
  CHECK_THROWS_CONTAINING(sg::to_f32(get("fp8.e4m3")), "tensor 'fp8.e4m3' is F8_E4M3; FP8 needs");
  const int64_t big[2] = {1, 300};
  CHECK_THROWS_CONTAINING(sg::from_i64("x", {2}, big, StDType::U8),
                          "tensor 'x': value 300 at index 1 does not fit in U8");
  CHECK_THROWS_CONTAINING(sg::from_i64("x", {2}, big, StDType::BOOL), "does not fit in BOOL");
  const float one = 1.0f;
  CHECK_THROWS_CONTAINING(sg::from_f32("x", {1}, &one, StDType::I32), "cannot store as I32");
  CHECK_THROWS_CONTAINING(sg::from_f32("x", {-1}, &one), "has a negative dimension");
  StTensor bad = get("w.f32");
  bad.bytes.pop_back();
  CHECK_THROWS_CONTAINING(sg::to_f32(bad), "shape [2,3] F32 needs 24 bytes but it holds 23");
}

// =================================================================================================
// safetensors: corrupt files
// =================================================================================================

TEST_CASE("safetensors: every kind of corruption is detected with a message naming it") {
  TempDir dir;
  const std::string good_path = dir.file("good.safetensors");
  const float f[6] = {1, 2, 3, 4, 5, 6};
  const int64_t ints[2] = {7, 8};
  sg::write_safetensors(good_path, {sg::from_f32("a", {2, 3}, f), sg::from_i64("b", {2}, ints)});
  const std::string good = read_text(good_path);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | (uint8_t)good[i];
  REQUIRE(good.size() == 8 + n + 24 + 16);

  const std::string path = dir.file("bad.safetensors");
  auto read_bytes = [&](const std::string& bytes) {
    write_text(path, bytes);
    return error_of([&] { sg::read_safetensors(path); });
  };
  auto expect = [&](const std::string& bytes, const std::string& text) {
    const std::string msg = read_bytes(bytes);
    CHECK_MESSAGE(msg.find(text) != std::string::npos,
                  "expected \"" << text << "\", got \"" << msg << "\"");
    CHECK_MESSAGE(msg.rfind("[safetensors] " + path + ": ", 0) == 0, "no path in: " << msg);
  };

  // Truncated at several points.
  for (size_t cut : {0, 1, 7})
    expect(good.substr(0, cut), "file is " + std::to_string(cut) +
                                    " bytes, too short for the 8-byte header length");
  for (size_t cut : {(size_t)8, (size_t)20, (size_t)(8 + n - 1)})
    expect(good.substr(0, cut), "header length " + std::to_string(n) +
                                    " (the uint64 at bytes 0-7) is larger than the rest of the "
                                    "file (" + std::to_string(cut - 8) + " bytes)");
  expect(good.substr(0, 8 + n), "file is " + std::to_string(8 + n) +
                                    " bytes but tensor 'a' ends at byte " +
                                    std::to_string(8 + n + 24));
  expect(good.substr(0, 8 + n + 30), "but tensor 'b' ends at byte " + std::to_string(8 + n + 40));
  expect(good.substr(0, good.size() - 1), "file is " + std::to_string(good.size() - 1) +
                                              " bytes but tensor 'b' ends at byte " +
                                              std::to_string(good.size()));
  expect(good + "xyz", "3 unexplained trailing bytes");
  CHECK(read_bytes(good).empty());  // the untouched file still reads

  // Header length corrupted: huge, or shorter than the JSON.
  expect(le64(~0ull) + good.substr(8), "header length 18446744073709551615");
  expect(le64(n - 8) + good.substr(8), "invalid JSON header");
  expect(le64(n - 8) + good.substr(8), "[json] " + path + " (header):1:");

  // Bad JSON, bad dtype, bad entries.
  std::string bad_json = good;
  bad_json[9] = 'x';  // {"a":... -> {xa":...
  expect(bad_json, "invalid JSON header (file bytes [8," + std::to_string(8 + n) + ")");
  expect(bad_json, "(header):1:2: expected a string key or '}', found 'xa'");
  std::string bad_dtype = good;
  bad_dtype.replace(bad_dtype.find("F32"), 3, "F31");
  expect(bad_dtype, "tensor 'a': unknown dtype 'F31' (known: F64 F32 F16 BF16 I64");
  expect(make_file("[1,2]", 0), "the header is a JSON array, expected an object");
  expect(make_file(R"({"a":{"dtype":"F32","data_offsets":[0,4]}})", 4),
         "tensor 'a': missing \"shape\"");
  expect(make_file(R"({"a":[1]})", 0), "tensor 'a': entry is a array");
  expect(make_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0]}})", 4),
         "tensor 'a': data_offsets [0] must be two non-negative integers");
  expect(make_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}})", 4),
         "must be two non-negative integers");
  expect(make_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}})", 4),
         "tensor 'a': data_offsets [4,0] end before they begin");
  expect(make_file(R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4),
         "tensor 'a': shape [-1] has a negative dimension");
  expect(make_file(R"({"a":{"dtype":"F32","shape":["2"],"data_offsets":[0,4]}})", 4),
         "tensor 'a': [json]");
  expect(make_file(R"({"__metadata__":{"step":3}})", 0), "__metadata__['step'] is a integer");

  // Offsets that disagree with the shape, overlap, leave holes or run past the end.
  expect(make_file(R"({"x":{"dtype":"F32","shape":[2,3],"data_offsets":[0,20]}})", 20),
         "tensor 'x': shape [2,3] F32 needs 24 bytes but data_offsets span 20");
  expect(make_file(R"({"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},)"
                   R"("b":{"dtype":"I64","shape":[2],"data_offsets":[16,32]}})", 32),
         "tensors 'a' (data_offsets [0,24]) and 'b' (data_offsets [16,32]) overlap");
  expect(make_file(R"({"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},)"
                   R"("b":{"dtype":"I64","shape":[2],"data_offsets":[32,48]}})", 48),
         "bytes [24,32) of the data buffer belong to no tensor (the gap before 'b')");
  expect(make_file(R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[4,8]}})", 8),
         "bytes [0,4) of the data buffer belong to no tensor");
  const std::string far = R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},)"
                          R"("b":{"dtype":"U8","shape":[4],"data_offsets":[4,8]}})";
  expect(make_file(far, 6), "but tensor 'b' ends at byte " + std::to_string(8 + far.size() + 8));

  // Header order need not be offset order (Python writes sorted names; any order is valid).
  const std::string swapped = R"({"b":{"dtype":"U8","shape":[2],"data_offsets":[4,6]},)"
                              R"("a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}})";
  write_text(path, make_file(swapped, 6));
  const sg::SafeTensorsFile any_order = sg::read_safetensors(path);
  CHECK(any_order.tensors[0].name == "b");
  CHECK(any_order.get("b").bytes == std::vector<uint8_t>{4, 5});
  CHECK(any_order.get("a").bytes == std::vector<uint8_t>{0, 1, 2, 3});

  CHECK_THROWS_CONTAINING(sg::read_safetensors(dir.file("missing.safetensors")),
                          "missing.safetensors: cannot read the file");
}

// =================================================================================================
// safetensors: atomic write
// =================================================================================================

TEST_CASE("safetensors: the write is atomic and leaves no .tmp or partial file behind") {
  TempDir dir;
  const std::vector<StTensor> ts = every_dtype();
  const std::string path = dir.file("m.safetensors");

  sg::write_safetensors(path, ts);
  CHECK(fs::exists(path));
  CHECK_FALSE(fs::exists(path + ".tmp"));
  const std::string first = read_text(path);

  // Overwriting replaces the file; a stale .tmp from a crashed run is simply overwritten.
  write_text(path + ".tmp", "garbage from a crashed writer");
  sg::write_safetensors(path, {ts[0]});
  CHECK_FALSE(fs::exists(path + ".tmp"));
  CHECK(sg::read_safetensors(path).tensors.size() == 1);
  sg::write_safetensors(path, ts);
  CHECK(read_text(path) == first);

  // A missing directory: a clear error, nothing created.
  const std::string nowhere = dir.file("no_such_dir/m.safetensors");
  CHECK_THROWS_CONTAINING(sg::write_safetensors(nowhere, ts),
                          "[safetensors] " + nowhere + ": cannot create '" + nowhere + ".tmp'");
  CHECK_FALSE(fs::exists(dir.file("no_such_dir")));

  // Invalid tensors: rejected before anything is written; the existing file is untouched.
  StTensor short_bytes = ts[0];
  short_bytes.bytes.resize(5);
  CHECK_THROWS_CONTAINING(
      sg::write_safetensors(path, {short_bytes}),
      "cannot write tensor 'w.f32': shape [2,3] F32 needs 24 bytes but it holds 5");
  CHECK_THROWS_CONTAINING(sg::write_safetensors(path, {ts[0], ts[0]}),
                          "cannot write tensor 'w.f32': the name appears twice");
  StTensor unnamed = ts[0];
  unnamed.name = "";
  CHECK_THROWS_CONTAINING(sg::write_safetensors(path, {unnamed}), "a tensor with an empty name");
  StTensor reserved = ts[0];
  reserved.name = "__metadata__";
  CHECK_THROWS_CONTAINING(sg::write_safetensors(path, {reserved}), "reserved for metadata");
  CHECK(read_text(path) == first);
  CHECK_FALSE(fs::exists(path + ".tmp"));

  // The rename fails (the target is a directory): the error says so and the .tmp is removed.
  const std::string dir_target = dir.file("a_directory");
  fs::create_directory(dir_target);
  CHECK_THROWS_CONTAINING(sg::write_safetensors(dir_target, ts),
                          "cannot rename '" + dir_target + ".tmp' to '" + dir_target + "'");
  CHECK_FALSE(fs::exists(dir_target + ".tmp"));
  CHECK(fs::is_directory(dir_target));
}
