// tests/models/test_weights_integrity.cpp — a model directory whose weights hold NaN or Inf is refused on load,
// naming the tensor and the element (models/weights.cpp load_parameters), instead of evaluating to NaN later.
#include <doctest/doctest.h>

#include "tests/test_util.h"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <functional>
#include <limits>

#include "models/fp8_model.h"
#include "models/safetensors.h"
#include "models/transformer.h"
#include "tests/data/temp_dir.h"

using namespace sg;
using sg::test::contains;
using sg::test::error_of;
using sg::data::testing::TempDir;

namespace {

ModelArgs small_args() {
  ModelArgs a;
  a.vocab_size = 32;
  a.dim = 32;
  a.inter_dim = 64;
  a.moe_inter_dim = 16;
  a.n_layers = 2;
  a.n_dense_layers = 1;
  a.n_heads = 2;
  a.n_routed_experts = 4;
  a.n_shared_experts = 1;
  a.n_activated_experts = 2;
  a.q_lora_rank = 16;
  a.kv_lora_rank = 16;
  a.qk_nope_head_dim = 8;
  a.qk_rope_head_dim = 4;
  a.v_head_dim = 8;
  a.max_seq_len = 32;
  a.original_seq_len = 32;
  return a;
}

// Rewrites DIR/model.safetensors with element `index` of tensor `name` changed by `poke`.
void poke_tensor(const std::string& dir, const std::string& name, size_t index, const std::function<void(StTensor&, size_t)>& poke) {
  const std::string path = dir + "/model.safetensors";
  SafeTensorsFile f = read_safetensors(path);
  bool found = false;
  for (StTensor& t : f.tensors)
    if (t.name == name) poke(t, index), found = true;
  REQUIRE_MESSAGE(found, name);
  write_safetensors(path, f.tensors, f.metadata);
}

void set_f32(StTensor& t, size_t i, float v) {
  REQUIRE(t.dtype == StDType::F32);
  std::memcpy(t.bytes.data() + i * 4, &v, 4);
}

}  // namespace

TEST_CASE("model dir integrity: NaN or Inf in a weight is an error naming the tensor and the element") {
  TempDir tmp("weights_nan");
  Rng rng(1);
  Transformer m(small_args(), rng);
  const std::string dir = tmp.file("model");
  save_model_dir(m, dir);
  load_model_dir(dir);  // a clean directory loads

  poke_tensor(dir, "model.layers.1.mlp.experts.2.up_proj.weight", 17,
              [](StTensor& t, size_t i) { set_f32(t, i, std::numeric_limits<float>::quiet_NaN()); });
  std::string e = error_of([&] { load_model_dir(dir); });
  INFO(e);
  CHECK(contains(e, dir + "/model.safetensors"));
  CHECK(contains(e, "tensor 'model.layers.1.mlp.experts.2.up_proj.weight'"));
  CHECK(contains(e, "holds NaN at element 17"));

  save_model_dir(m, dir);
  poke_tensor(dir, "model.norm.weight", 3, [](StTensor& t, size_t i) { set_f32(t, i, -INFINITY); });
  e = error_of([&] { load_model_dir(dir); });
  INFO(e);
  CHECK(contains(e, "tensor 'model.norm.weight'"));
  CHECK(contains(e, "holds -inf at element 3"));
}

TEST_CASE("model dir integrity: an FP8 weight code that is NaN (0x7f/0xff in E4M3) or a NaN scale is named") {
  TempDir tmp("weights_fp8_nan");
  Rng rng(2);
  Transformer m(small_args(), rng);
  REQUIRE(quantize_fp8_linears(m) > 0);
  const std::string dir = tmp.file("model");
  save_model_dir(m, dir);
  SafeTensorsFile f = read_safetensors(dir + "/model.safetensors");
  REQUIRE(f.get("model.layers.0.self_attn.o_proj.weight").dtype == StDType::F8_E4M3);
  load_model_dir(dir);

  poke_tensor(dir, "model.layers.0.self_attn.o_proj.weight", 5, [](StTensor& t, size_t i) { t.bytes[i] = 0xff; });
  std::string e = error_of([&] { load_model_dir(dir); });
  INFO(e);
  CHECK(contains(e, "tensor 'model.layers.0.self_attn.o_proj.weight'"));
  CHECK(contains(e, "NaN at element 5"));

  save_model_dir(m, dir);
  poke_tensor(dir, "model.layers.0.self_attn.o_proj.weight_scale_inv", 0,
              [](StTensor& t, size_t i) { set_f32(t, i, std::numeric_limits<float>::quiet_NaN()); });
  e = error_of([&] { load_model_dir(dir); });
  INFO(e);
  CHECK(contains(e, "model.layers.0.self_attn.o_proj.weight_scale_inv"));
  CHECK(contains(e, "NaN"));
}
