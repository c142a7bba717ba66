// tests/models/test_config.cpp — the ModelArgs field table (models/config.h, model_arg_fields()) and
// every reader and writer that loops over it:
//   * the table: names and HF keys unique, each entry's member set for its type and distinct;
//   * ModelArgs -> HF config.json -> ModelArgs gives back a model with EVERY field changed from the
//     defaults (and the defaults, and a model without YaRN);
//   * a YAML `model:` section with every key of the table lands in every field;
//   * per entry: the YAML, the official-JSON and the HF readers each read its key (the round trip gives
//     its value back, and a list where a scalar belongs is an error naming exactly that key).
#include <doctest/doctest.h>

#include <set>
#include <string>

#include "models/config.h"
#include "models/json.h"
#include "tests/test_util.h"
#include "train/config_yaml.h"

using namespace sg;
using sg::test::error_of;

namespace {

// Every field differs from ModelArgs{} (checked below), and the whole is valid: YaRN active
// (original_seq_len < max_seq_len), a V3.2 indexer (index_topk > 0 with q-LoRA), grouped sigmoid routing
// with the gate bias, GQA heads, two MTP modules. A new ModelArgs field needs a changed value here.
ModelArgs every_field_changed() {
  ModelArgs a;
  a.max_batch_size = 3;
  a.max_seq_len = 256;
  a.vocab_size = 300;
  a.dim = 64;
  a.inter_dim = 96;
  a.moe_inter_dim = 48;
  a.n_layers = 3;
  a.n_dense_layers = 2;
  a.n_heads = 4;
  a.n_kv_heads = 2;
  a.n_routed_experts = 8;
  a.n_shared_experts = 1;
  a.n_activated_experts = 3;
  a.n_expert_groups = 4;
  a.n_limited_groups = 2;
  a.score_func = "sigmoid";
  a.route_scale = 2.5;
  a.gate_bias = true;
  a.q_lora_rank = 24;
  a.kv_lora_rank = 16;
  a.qk_nope_head_dim = 12;
  a.qk_rope_head_dim = 8;
  a.v_head_dim = 20;
  a.original_seq_len = 64;
  a.rope_theta = 50000.0;
  a.rope_factor = 4.0;
  a.beta_fast = 16;
  a.beta_slow = 2;
  a.mscale = 0.707;
  a.rms_norm_eps = 1e-5;
  a.index_n_heads = 2;
  a.index_head_dim = 16;
  a.index_topk = 32;
  a.index_fp8 = false;
  a.scale_fmt = "ue8m0";
  a.n_mtp_modules = 2;
  a.fp8 = true;
  a.fp8_weights = "dequant";
  return a;
}

std::string value_of(const ModelArgs& a, const ModelArgField& f) { return model_arg_to_string(a, f); }

// The JSON value `f` has in `a`, as the official ModelArgs JSON writes it.
Json official_json_value(const ModelArgs& a, const ModelArgField& f) {
  switch (f.type) {
    case ArgType::i64: return Json(a.*f.i64);
    case ArgType::f64: return Json(a.*f.f64);
    case ArgType::boolean: return Json(a.*f.boolean);
    case ArgType::string: return Json(a.*f.string);
  }
  return Json();
}

// c[hf] (hf may be "rope_scaling.key"); nullptr when absent.
const Json* hf_value(const Json& c, const std::string& hf) {
  size_t dot = hf.find('.');
  if (dot == std::string::npos) return c.find(hf);
  const Json* parent = c.find(hf.substr(0, dot));
  return parent ? parent->find(hf.substr(dot + 1)) : nullptr;
}
void set_hf_value(Json& c, const std::string& hf, Json v) {
  size_t dot = hf.find('.');
  if (dot == std::string::npos) c.set(hf, std::move(v));
  else c.at(hf.substr(0, dot)).set(hf.substr(dot + 1), std::move(v));
}

// The YAML text of a config whose model section has every key of the table, from `a`; `bad` names one
// key to give a list instead of its value.
std::string yaml_of(const ModelArgs& a, const std::string& bad = "") {
  std::string y = "model:\n";
  for (const ModelArgField& f : model_arg_fields()) y += std::string("  ") + f.name + ": " + (f.name == bad ? "[1, 2]" : value_of(a, f)) + "\n";
  return y + "train:\n  steps: 4\n  warmup_steps: 1\n";
}

ModelArgs hf_round_trip(const ModelArgs& a) {
  Json c = Json::parse(model_args_to_hf_config(a).dump(2), "config.json");
  return model_args_from_hf_config(c, "config.json");
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("config table: each field once, its member set for its type, all members distinct") {
  const std::vector<ModelArgField>& fields = model_arg_fields();
  std::set<std::string> names, hf_keys;
  const ModelArgs changed = every_field_changed(), defaults;
  REQUIRE_NOTHROW(changed.validate("every_field_changed"));
  for (const ModelArgField& f : fields) {
    CAPTURE(f.name);
    CHECK(names.insert(f.name).second);
    if (f.hf) CHECK(hf_keys.insert(f.hf).second);
    CHECK((f.hf == nullptr) == (f.hf_form == HfForm::none));
    CHECK((f.i64 != nullptr) == (f.type == ArgType::i64));
    CHECK((f.f64 != nullptr) == (f.type == ArgType::f64));
    CHECK((f.boolean != nullptr) == (f.type == ArgType::boolean));
    CHECK((f.string != nullptr) == (f.type == ArgType::string));
    CHECK(find_model_arg_field(f.name) == &f);
    // the test's model differs here from the defaults, so a reader that skipped this key would show it
    CHECK(value_of(changed, f) != value_of(defaults, f));
    // copying this one field through the table changes exactly this field
    ModelArgs one = defaults;
    switch (f.type) {
      case ArgType::i64: one.*f.i64 = changed.*f.i64; break;
      case ArgType::f64: one.*f.f64 = changed.*f.f64; break;
      case ArgType::boolean: one.*f.boolean = changed.*f.boolean; break;
      case ArgType::string: one.*f.string = changed.*f.string; break;
    }
    for (const ModelArgField& g : fields) CHECK_MESSAGE((value_of(one, g) == value_of(defaults, g)) == (&g != &f), g.name);
  }
  CHECK(fields.size() == 38);
  CHECK(find_model_arg_field("dimm") == nullptr);
  CHECK(std::string(find_model_arg_field("dim")->hf) == "hidden_size");
  CHECK(std::string(find_model_arg_field("n_limited_groups")->hf) == "topk_group");
  CHECK(std::string(find_model_arg_field("rope_factor")->hf) == "rope_scaling.factor");
  CHECK(value_of(changed, *find_model_arg_field("mscale")) == "0.707");
  CHECK(value_of(changed, *find_model_arg_field("rms_norm_eps")) == "1e-05");
}

TEST_CASE("config: ModelArgs -> config.json -> ModelArgs gives back every field") {
  const ModelArgs a = every_field_changed();
  const Json c = model_args_to_hf_config(a);
  ModelArgs expected = a;
  expected.max_batch_size = ModelArgs{}.max_batch_size;  // not an HF key (HfForm::none)
  expected.fp8 = false;                                  // a training setting, not an HF key
  CHECK(hf_round_trip(a) == expected);
  // the keys, under their HF names and values
  CHECK(c.at("hidden_size").get_int() == 64);
  CHECK(c.at("num_hidden_layers").get_int() == 3);
  CHECK(c.at("moe_intermediate_size").get_int() == 48);
  CHECK(c.at("n_group").get_int() == 4);
  CHECK(c.at("topk_group").get_int() == 2);
  CHECK(c.at("scoring_func").get_string() == "sigmoid");
  CHECK(c.at("norm_topk_prob").get_bool());
  CHECK(c.at("routed_scaling_factor").get_double() == 2.5);
  CHECK(c.at("topk_method").get_string() == "noaux_tc");
  CHECK(c.at("num_key_value_heads").get_int() == 2);
  CHECK(c.at("num_nextn_predict_layers").get_int() == 2);
  CHECK(c.at("model_type").get_string() == "deepseek_v32");
  CHECK(c.at("rope_scaling").at("type").get_string() == "yarn");
  CHECK(c.at("rope_scaling").at("original_max_position_embeddings").get_int() == 64);
  CHECK(c.at("rope_scaling").at("mscale_all_dim").get_double() == 0.707);
  CHECK(c.at("index_topk").get_int() == 32);
  for (const ModelArgField& f : model_arg_fields()) {
    CAPTURE(f.name);
    CHECK((hf_value(c, f.hf ? f.hf : "") != nullptr) == (f.hf != nullptr));
  }

  // the defaults (V2-Lite-like: YaRN on, no indexer, n_kv_heads 0 written as num_attention_heads)
  const ModelArgs d;
  CHECK(hf_round_trip(d) == d);
  CHECK(model_args_to_hf_config(d).at("num_key_value_heads").get_int() == d.n_heads);
  CHECK(model_args_to_hf_config(d).at("q_lora_rank").is_null());
  CHECK(model_args_to_hf_config(d).find("index_topk") == nullptr);
  // no YaRN: rope_scaling null, original_seq_len comes back as max_seq_len
  ModelArgs plain = d;
  plain.max_seq_len = plain.original_seq_len = 2048;
  CHECK(model_args_to_hf_config(plain).at("rope_scaling").is_null());
  CHECK(hf_round_trip(plain) == plain);
  // group-limited routing without a bias
  ModelArgs grouped = a;
  grouped.gate_bias = false;
  CHECK(model_args_to_hf_config(grouped).at("topk_method").get_string() == "group_limited_greedy");
  CHECK(hf_round_trip(grouped).gate_bias == false);
}

TEST_CASE("config: a YAML model section with every key of the table fills every field") {
  const ModelArgs a = every_field_changed();
  PretrainConfig cfg = parse_pretrain_config(yaml_of(a), "every.yaml");
  CHECK(cfg.model == a);
  // a choice outside the list names the key and the choices
  std::string y = yaml_of(a);
  y.replace(y.find("score_func: sigmoid"), 19, "score_func: relu");
  CHECK(error_of([&] { parse_pretrain_config(y, "every.yaml"); }) ==
        "[config] every.yaml: model.score_func must be 'softmax' or 'sigmoid', got 'relu'");
}

TEST_CASE("config: every table entry is read by the YAML, the official-JSON and the HF readers") {
  const ModelArgs a = every_field_changed(), defaults;
  const ModelArgs from_yaml = parse_pretrain_config(yaml_of(a), "every.yaml").model;
  const Json hf = Json::parse(model_args_to_hf_config(a).dump(2), "config.json");
  const ModelArgs from_hf = model_args_from_hf_config(hf, "config.json");
  Json official = Json::object();
  for (const ModelArgField& f : model_arg_fields())
    if (f.official) official.set(f.name, official_json_value(a, f));
  const ModelArgs from_official = model_args_from_official_json(official, "model_args.json");

  for (const ModelArgField& f : model_arg_fields()) {
    CAPTURE(f.name);
    const std::string want = value_of(a, f);
    REQUIRE(want != value_of(defaults, f));
    // YAML: the value lands; a list instead names model.<name>
    CHECK(value_of(from_yaml, f) == want);
    CHECK(contains(error_of([&] { parse_pretrain_config(yaml_of(a, f.name), "every.yaml"); }),
                   std::string("[config] every.yaml: model.") + f.name + " must be "));
    // HF config.json: the value lands (max_batch_size has no key: the default); a list names the HF key
    if (f.hf) {
      CHECK(value_of(from_hf, f) == want);
      Json bad = hf;
      set_hf_value(bad, f.hf, Json::array());
      CHECK(error_of([&] { model_args_from_hf_config(bad, "config.json"); }) ==
            std::string("[config] config.json: ") + f.hf + " must be " +
                (f.type == ArgType::f64       ? "a number"
                 : f.type == ArgType::i64     ? "an integer"
                 : f.type == ArgType::boolean && f.hf_form == HfForm::plain ? "true or false"
                                              : "a string") +
                ", got array");
    } else {
      CHECK(value_of(from_hf, f) == value_of(defaults, f));
    }
    // the official ModelArgs JSON: its fields land; ours are not accepted there
    if (f.official) {
      CHECK(value_of(from_official, f) == want);
      Json bad = official;
      bad.set(f.name, Json::array());
      CHECK(contains(error_of([&] { model_args_from_official_json(bad, "model_args.json"); }),
                     std::string("[config] model_args.json: ") + f.name + " must be "));
    } else {
      Json extra = official;
      extra.set(f.name, official_json_value(a, f));
      CHECK(error_of([&] { model_args_from_official_json(extra, "model_args.json"); }) ==
            std::string("[config] model_args.json: ") + f.name + " is not a known ModelArgs field");
    }
  }
  // unknown keys: each reader names the file and the key
  Json unknown = hf;
  unknown.set("hidden_sizee", Json(1));
  CHECK(error_of([&] { model_args_from_hf_config(unknown, "config.json"); }) ==
        "[config] config.json: hidden_sizee is not a known DeepSeek-V3 config key");
  Json unknown_rope = hf;
  unknown_rope.at("rope_scaling").set("factorr", Json(1.0));
  CHECK(error_of([&] { model_args_from_hf_config(unknown_rope, "config.json"); }) ==
        "[config] config.json: rope_scaling.factorr is not a known key");
  std::string y = yaml_of(a);
  y.replace(y.find("  dim:"), 6, "  dimm:");
  CHECK(error_of([&] { parse_pretrain_config(y, "every.yaml"); }) == "[config] every.yaml: key 'model.dimm' is not a known key");
}

// ONE validator (ModelArgs::validate) for every way a ModelArgs is made: each field's range from the table is
// enforced by the HF reader exactly as by the YAML reader — a 0 or negative eps / theta / scale, a negative count —
// and a number that does not fit a 64-bit integer is named, not wrapped to INT64_MIN.
TEST_CASE("config: the field ranges hold for config.json as for YAML; out-of-range integers are named") {
  const ModelArgs a = every_field_changed();
  const Json hf = Json::parse(model_args_to_hf_config(a).dump(2), "config.json");
  int checked = 0;
  for (const ModelArgField& f : model_arg_fields()) {
    if (!f.hf || f.range == ArgRange::any || f.hf_form != HfForm::plain) continue;
    if (f.type != ArgType::i64 && f.type != ArgType::f64) continue;
    CAPTURE(f.name);
    const double bad = f.range == ArgRange::positive ? 0.0 : -1.0;
    Json j = hf;
    set_hf_value(j, f.hf, f.type == ArgType::i64 ? Json((int64_t)bad) : Json(bad));
    const std::string err = error_of([&] { model_args_from_hf_config(j, "config.json"); });
    CHECK_MESSAGE(contains(err, "[config] config.json: "), err);
    CHECK_MESSAGE(contains(err, f.name), err);
    CHECK_MESSAGE((contains(err, "must be positive") || contains(err, "must be >= 0") || contains(err, "must be a positive") ||
                   contains(err, "must be a nonnegative") || contains(err, "must be in")),
                  err);
    checked++;
  }
  CHECK(checked >= 20);
  Json j = hf;
  j.set("rms_norm_eps", Json(-1e-6));
  CHECK(error_of([&] { model_args_from_hf_config(j, "config.json"); }) ==
        "[config] config.json: rms_norm_eps must be a positive finite number, got -1e-06");
  j = hf;
  j.set("routed_scaling_factor", Json(-2.5));
  CHECK(error_of([&] { model_args_from_hf_config(j, "config.json"); }) ==
        "[config] config.json: route_scale (HF routed_scaling_factor) must be a positive finite number, got -2.5");
  j = hf;
  j.set("hidden_size", Json(1e30));
  CHECK(error_of([&] { model_args_from_hf_config(j, "config.json"); }) ==
        "[config] config.json: hidden_size = 1e+30 does not fit a 64-bit integer");
  // YaRN's correction range needs beta_fast >= beta_slow >= 1.
  j = hf;
  if (j.find("rope_scaling")) {
    j.at("rope_scaling").set("beta_slow", Json(int64_t(0)));
    CHECK(contains(error_of([&] { model_args_from_hf_config(j, "config.json"); }), "beta_fast >= beta_slow >= 1"));
  }
}

TEST_CASE("config: HF-only forms: null counts, num_key_value_heads, topk_method") {
  Json c = model_args_to_hf_config(every_field_changed());
  c.set("q_lora_rank", Json());
  c.set("index_topk", Json(0));  // (the indexer needs q-LoRA)
  CHECK(model_args_from_hf_config(c, "config.json").q_lora_rank == 0);
  c.set("num_key_value_heads", Json(4));  // = num_attention_heads: plain MHA
  CHECK(model_args_from_hf_config(c, "config.json").n_kv_heads == 0);
  c.set("num_key_value_heads", Json(3));
  CHECK(error_of([&] { model_args_from_hf_config(c, "config.json"); }) == "[config] config.json: n_kv_heads must divide n_heads=4");
  c.set("num_key_value_heads", Json(4));
  c.set("topk_method", Json("best"));
  CHECK(contains(error_of([&] { model_args_from_hf_config(c, "config.json"); }), "topk_method must be greedy"));
  c.set("topk_method", Json("greedy"));
  CHECK(model_args_from_hf_config(c, "config.json").gate_bias == false);
}

TEST_CASE("config: the indexer's FP8 keys: index_fp8 absent = true, scale_fmt from quantization_config") {
  // A V3.2 config.json has no index_fp8 (the official indexer is FP8) and its scale_fmt inside
  // quantization_config; the official default of scale_fmt is None ("").
  ModelArgs v32 = every_field_changed();
  v32.index_fp8 = true;
  v32.scale_fmt = "";
  Json c = model_args_to_hf_config(v32);
  CHECK(c.find("index_fp8") == nullptr);  // written only when false
  CHECK(c.find("scale_fmt") == nullptr);  // written only when set
  ModelArgs back = model_args_from_hf_config(c, "config.json");
  CHECK(back.index_fp8);
  CHECK(back.scale_fmt == "");
  Json q = Json::object();
  q.set("quant_method", Json("fp8"));
  q.set("scale_fmt", Json("ue8m0"));
  c.set("quantization_config", q);
  CHECK(model_args_from_hf_config(c, "config.json").scale_fmt == "ue8m0");
  c.set("scale_fmt", Json());  // a top-level key wins; null = None
  CHECK(model_args_from_hf_config(c, "config.json").scale_fmt == "");
  c.set("scale_fmt", Json("e8m0"));
  CHECK(error_of([&] { model_args_from_hf_config(c, "config.json"); }) ==
        "[config] config.json: scale_fmt must be \"ue8m0\" or empty (plain amax/448 scales), got \"e8m0\"");
  // fp32 indexer: written as false and read back
  v32.index_fp8 = false;
  CHECK(model_args_to_hf_config(v32).at("index_fp8").get_bool() == false);
  CHECK(hf_round_trip(v32).index_fp8 == false);
  // the fp8 indexer rotates by H_{d_I}: d_I must be a power of two
  ModelArgs odd = every_field_changed();
  odd.index_head_dim = 24;
  CHECK_NOTHROW(odd.validate("odd"));  // fp32 indexer
  odd.index_fp8 = true;
  CHECK(contains(error_of([&] { odd.validate("odd"); }), "index_head_dim must be a power of two for the fp8 indexer"));
  // the official ModelArgs JSON carries scale_fmt (null or "ue8m0")
  Json official = Json::object();
  official.set("scale_fmt", Json());
  CHECK(model_args_from_official_json(official, "model_args.json").scale_fmt == "");
  official.set("scale_fmt", Json("ue8m0"));
  CHECK(model_args_from_official_json(official, "model_args.json").scale_fmt == "ue8m0");
}
