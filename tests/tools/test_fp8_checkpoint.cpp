// tests/tools/test_fp8_checkpoint.cpp — FP8 checkpoints in the HF DeepSeek-V3 layout (models/transformer.h
// load_model_dir / save_model_dir, `seekgrad import` / `export --fp8`):
//   * save -> load keeps every FP8 linear's E4M3 codes and weight_scale_inv bit for bit, config.json gets
//     quantization_config, and the reloaded model gives the same logits bit for bit (it runs on the codes);
//   * fp8_weights "dequant" (--fp8 dequant) loads w = code · scale_inv per 128×128 block, exactly;
//   * the FP8 model's logits stay within a few percent of the f32 model it was quantized from;
//   * a missing, mis-shaped or non-positive scale tensor, an FP8 norm, or a non-square block is a named error;
//   * export --fp8 quantize -> import keeps FP8 by default; import --fp8 dequant gives F32.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "autograd/node.h"
#include "models/fp8_model.h"
#include "models/json.h"
#include "models/safetensors.h"
#include "models/transformer.h"
#include "ops/fp8_linear.h"
#include "tests/data/temp_dir.h"
#include "tests/test_util.h"
#include "tools/cli/commands.h"
#include "tools/cli/logits.h"

using namespace sg;
using sg::data::testing::slurp;
using sg::data::testing::spit;
using sg::data::testing::TempDir;
using sg::test::error_of;

namespace {

const std::string kFixture = std::string(SEEKGRAD_SOURCE_DIR) + "/tests/fixtures/tiny_v2lite";

Tensor tokens_2x9() {
  return Tensor::from_vector(std::vector<int64_t>{5, 17, 300, 2, 9, 41, 77, 8, 100, 1, 2, 3, 4, 5, 6, 7, 8, 9}, {2, 9});
}

double rel_error(const Tensor& a, const Tensor& b) {
  std::vector<double> x = a.to_f64_vector(), y = b.to_f64_vector();
  double num = 0, den = 0;
  for (size_t i = 0; i < x.size(); i++) num += (x[i] - y[i]) * (x[i] - y[i]), den += y[i] * y[i];
  return std::sqrt(num / den);
}

bool same_bits(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape() || a.dtype() != b.dtype()) return false;
  std::vector<double> x = a.to_f64_vector(), y = b.to_f64_vector();
  return std::memcmp(x.data(), y.data(), x.size() * sizeof(double)) == 0;
}

// The fixture with its FP8 linears quantized (128×128 blocks), saved to dir.
Transformer quantized_fixture(const std::string& dir) {
  Transformer m = load_model_dir(kFixture);
  REQUIRE(quantize_fp8_linears(m) > 0);
  save_model_dir(m, dir);
  return m;
}

// The safetensors entries of dir/model.safetensors, rewritten by `edit`.
template <class F>
void rewrite_weights(const std::string& dir, F edit) {
  SafeTensorsFile f = read_safetensors(dir + "/model.safetensors");
  std::vector<StTensor> ts = f.tensors;
  edit(ts);
  write_safetensors(dir + "/model.safetensors", ts, {{"format", "pt"}});
}

}  // namespace

TEST_CASE("FP8 checkpoint: save -> load keeps codes and scales bit for bit and gives the same logits") {
  TempDir tmp("fp8_ckpt");
  Transformer f32 = load_model_dir(kFixture);
  Transformer q = quantized_fixture(tmp.file("q"));
  const int64_t n = count_fp8_weights(q);
  CHECK(n == (int64_t)fp8_linears(q).size());

  // On disk: F8_E4M3 weights, F32 weight_scale_inv of the block grid, a quantization_config.
  SafeTensorsFile f = read_safetensors(tmp.file("q/model.safetensors"));
  const StTensor* w = f.find("model.layers.0.self_attn.kv_b_proj.weight");
  const StTensor* s = f.find("model.layers.0.self_attn.kv_b_proj.weight_scale_inv");
  REQUIRE(w);
  REQUIRE(s);
  CHECK(w->dtype == StDType::F8_E4M3);
  CHECK(s->dtype == StDType::F32);
  CHECK(s->shape == std::vector<int64_t>{(w->shape[0] + 127) / 128, (w->shape[1] + 127) / 128});
  CHECK(f.find("model.embed_tokens.weight")->dtype == StDType::F32);  // not quantized
  CHECK(f.find("lm_head.weight")->dtype == StDType::F32);
  CHECK(f.find("model.layers.1.mlp.gate.weight")->dtype == StDType::F32);
  Json config = Json::parse(slurp(tmp.file("q/config.json")));
  const Json* qc = config.find("quantization_config");
  REQUIRE(qc);
  CHECK(qc->at("quant_method").get_string() == "fp8");
  CHECK(qc->at("fmt").get_string() == "e4m3");
  CHECK(qc->at("weight_block_size")[0].get_int() == 128);

  Transformer back = load_model_dir(tmp.file("q"));
  CHECK(count_fp8_weights(back) == n);
  auto lq = fp8_linears(q), lb = fp8_linears(back);
  for (size_t i = 0; i < lq.size(); i++) {
    CAPTURE(lq[i].first);
    REQUIRE(lb[i].second->is_fp8_weight());
    CHECK(std::memcmp(lq[i].second->weight.fp8_codes(), lb[i].second->weight.fp8_codes(), lq[i].second->weight.numel()) == 0);
    CHECK(same_bits(lq[i].second->scale, lb[i].second->scale));
  }
  NoGradGuard ng;
  const Tensor x = tokens_2x9();
  const Tensor y_f32 = f32.forward(x), y_q = q.forward(x), y_back = back.forward(x);
  CHECK(same_bits(y_q, y_back));
  const double err = rel_error(y_q, y_f32);
  MESSAGE("FP8 fixture logits vs f32: relative error " << err);
  CHECK(err > 0.0);   // really quantized
  CHECK(err < 0.15);  // measured 0.093 on this random-init fixture (E4M3 weights and activations)

  // fp8_weights dequant: f32 weights = code · scale_inv, exactly; logits within float noise of the
  // f32 model holding those weights, and close to the FP8 run.
  Transformer deq = load_model_dir(tmp.file("q"), DType::f32, "dequant");
  CHECK(count_fp8_weights(deq) == 0);
  auto ld = fp8_linears(deq);
  for (size_t i = 0; i < lq.size(); i++) {
    CAPTURE(lq[i].first);
    CHECK(ld[i].second->weight.dtype() == DType::f32);
    CHECK(same_bits(ld[i].second->weight, lq[i].second->dense_weight()));
  }
  const Tensor y_deq = deq.forward(x);
  CHECK(rel_error(y_deq, y_q) < 0.08);
  CHECK(rel_error(y_deq, y_f32) < rel_error(y_q, y_f32));  // weight-only rounding loses less

  // The config key does the same as the override.
  config.set("fp8_weights", "dequant");
  spit(tmp.file("q/config.json"), config.dump(2));
  CHECK(count_fp8_weights(*std::make_unique<Transformer>(load_model_dir(tmp.file("q")))) == 0);
  CHECK(count_fp8_weights(*std::make_unique<Transformer>(load_model_dir(tmp.file("q"), DType::f32, "native"))) == n);
}

TEST_CASE("FP8 checkpoint: inconsistent scales, FP8 non-linears and bad block sizes are named errors") {
  TempDir tmp("fp8_ckpt_err");
  quantized_fixture(tmp.file("q"));
  const std::string W = "model.layers.0.self_attn.o_proj.weight";
  auto fresh = [&] {
    std::filesystem::remove_all(tmp.file("b"));
    std::filesystem::copy(tmp.file("q"), tmp.file("b"));
  };
  // Missing scale.
  fresh();
  rewrite_weights(tmp.file("b"), [&](std::vector<StTensor>& ts) { std::erase_if(ts, [&](const StTensor& t) { return t.name == W + "_scale_inv"; }); });
  std::string e = error_of([&] { load_model_dir(tmp.file("b")); });
  CHECK(e.find(W + "_scale_inv") != std::string::npos);
  CHECK(e.find("model.safetensors") != std::string::npos);
  // Mis-shaped scale (a block row missing: a truncated grid).
  fresh();
  rewrite_weights(tmp.file("b"), [&](std::vector<StTensor>& ts) {
    for (StTensor& t : ts)
      if (t.name == W + "_scale_inv") {
        REQUIRE(t.shape.size() == 2);
        t.shape[1] += 1;
        t.bytes.resize(t.bytes.size() + t.shape[0] * 4, 0);
      }
  });
  e = error_of([&] { load_model_dir(tmp.file("b")); });
  CHECK(e.find(W + "_scale_inv") != std::string::npos);
  CHECK(e.find("shape") != std::string::npos);
  // A zero / negative scale.
  fresh();
  rewrite_weights(tmp.file("b"), [&](std::vector<StTensor>& ts) {
    for (StTensor& t : ts)
      if (t.name == W + "_scale_inv") {
        const float neg = -1.0f;
        std::memcpy(t.bytes.data(), &neg, 4);
      }
  });
  e = error_of([&] { load_model_dir(tmp.file("b")); });
  CHECK(e.find("layers.0.attn.wo.weight_scale_inv") != std::string::npos);
  CHECK(e.find("positive") != std::string::npos);
  // An FP8 norm weight.
  fresh();
  rewrite_weights(tmp.file("b"), [&](std::vector<StTensor>& ts) {
    for (StTensor& t : ts)
      if (t.name == "model.norm.weight") {
        t.dtype = StDType::F8_E4M3;
        t.bytes.assign(t.bytes.size() / 4, 0x38);
      }
  });
  e = error_of([&] { load_model_dir(tmp.file("b")); });
  CHECK(e.find("model.norm.weight") != std::string::npos);
  CHECK(e.find("F8_E4M3") != std::string::npos);
  // A non-square block size.
  fresh();
  Json config = Json::parse(slurp(tmp.file("b/config.json")));
  Json qc = config.at("quantization_config");
  qc.set("weight_block_size", Json(Json::Array{Json(128), Json(64)}));
  config.set("quantization_config", qc);
  spit(tmp.file("b/config.json"), config.dump(2));
  e = error_of([&] { load_model_dir(tmp.file("b")); });
  CHECK(e.find("weight_block_size") != std::string::npos);
  CHECK(e.find("config.json") != std::string::npos);
  // A bad fp8_weights value names the key.
  fresh();
  config = Json::parse(slurp(tmp.file("b/config.json")));
  config.set("fp8_weights", "sometimes");
  spit(tmp.file("b/config.json"), config.dump(2));
  e = error_of([&] { load_model_dir(tmp.file("b")); });
  CHECK(e.find("fp8_weights") != std::string::npos);
}

TEST_CASE("FP8 checkpoint: export --fp8 quantize -> import keeps FP8; import --fp8 dequant gives F32; export --fp8 dequant") {
  TempDir tmp("fp8_cli");
  cli::export_hf_model(kFixture, tmp.file("hf"), "", nullptr, "quantize");
  Transformer hf = load_model_dir(tmp.file("hf"));
  const int64_t n = count_fp8_weights(hf);
  CHECK(n == (int64_t)fp8_linears(hf).size());

  cli::ImportResult r = cli::import_hf_model(tmp.file("hf"), tmp.file("proj"), "native", nullptr);
  CHECK(r.n_fp8_kept == n);
  CHECK(r.n_fp8_dequantized == 0);
  Transformer proj = load_model_dir(tmp.file("proj"));
  CHECK(count_fp8_weights(proj) == n);
  NoGradGuard ng;
  const Tensor x = tokens_2x9();
  CHECK(same_bits(proj.forward(x), hf.forward(x)));

  cli::ImportResult rd = cli::import_hf_model(tmp.file("hf"), tmp.file("proj_f32"), "dequant", nullptr);
  CHECK(rd.n_fp8_dequantized == n);
  Transformer pd = load_model_dir(tmp.file("proj_f32"));
  CHECK(count_fp8_weights(pd) == 0);
  SafeTensorsFile f = read_safetensors(tmp.file("proj_f32/model.safetensors"));
  for (const StTensor& t : f.tensors) {
    CAPTURE(t.name);
    CHECK(t.dtype == StDType::F32);
    CHECK(!t.name.ends_with("_scale_inv"));
  }
  CHECK(!Json::parse(slurp(tmp.file("proj_f32/config.json"))).contains("quantization_config"));
  // Same weights as --fp8 dequant at load time.
  Transformer ld = load_model_dir(tmp.file("hf"), DType::f32, "dequant");
  CHECK(same_bits(pd.forward(x), ld.forward(x)));

  cli::export_hf_model(tmp.file("proj"), tmp.file("hf_f32"), "", nullptr, "dequant");
  CHECK(count_fp8_weights(*std::make_unique<Transformer>(load_model_dir(tmp.file("hf_f32")))) == 0);
  CHECK(error_of([&] { cli::export_hf_model(tmp.file("proj"), tmp.file("x"), "", nullptr, "fp4"); }).find("--fp8") !=
        std::string::npos);
}

TEST_CASE("FP8 checkpoint: seekgrad logits runs an FP8 dir natively, or dequantized with --fp8 dequant") {
  TempDir tmp("fp8_logits");
  Transformer q = quantized_fixture(tmp.file("q"));
  spit(tmp.file("tokens.json"), "[[5, 17, 300, 2, 9, 41, 77, 8, 100]]");
  REQUIRE(run_logits(tmp.file("q"), tmp.file("tokens.json"), tmp.file("native.safetensors"), false) == 0);
  REQUIRE(run_logits(tmp.file("q"), tmp.file("tokens.json"), tmp.file("dequant.safetensors"), false, "dequant") == 0);
  REQUIRE(run_logits(tmp.file("q"), tmp.file("tokens.json"), tmp.file("decode.safetensors"), true) == 0);
  std::vector<float> a = to_f32(*read_safetensors(tmp.file("native.safetensors")).find("logits"));
  std::vector<float> b = to_f32(*read_safetensors(tmp.file("dequant.safetensors")).find("logits"));
  std::vector<float> c = to_f32(*read_safetensors(tmp.file("decode.safetensors")).find("logits"));
  NoGradGuard ng;
  Tensor x = Tensor::from_vector(std::vector<int64_t>{5, 17, 300, 2, 9, 41, 77, 8, 100}, {1, 9});
  CHECK(q.forward(x).to_f32_vector() == a);  // native = the FP8 model's forward
  double num = 0, den = 0, dec = 0;
  for (size_t i = 0; i < a.size(); i++)
    num += (a[i] - b[i]) * (a[i] - b[i]), den += a[i] * a[i], dec = std::max(dec, (double)std::abs(a[i] - c[i]));
  CHECK(num > 0);                         // dequant is a different computation
  CHECK(std::sqrt(num / den) < 0.08);
  CHECK(dec < 1e-3);                      // decode through the KV cache agrees with the full forward
  MESSAGE("FP8 native vs dequant logits: relative " << std::sqrt(num / den) << "; decode vs full max |diff| " << dec);
}
