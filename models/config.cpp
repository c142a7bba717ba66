// models/config.cpp — see config.h.
#include "models/config.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <set>
#include <sstream>
#include <stdexcept>

#include "models/json.h"

namespace sg {

double ModelArgs::softmax_scale() const {
  double scale = 1.0 / std::sqrt((double)qk_head_dim());
  if (yarn_active()) {
    double m = 0.1 * mscale * std::log(rope_factor) + 1.0;
    scale *= m * m;
  }
  return scale;
}

[[noreturn]] static void config_error(const std::string& source, const std::string& key, const std::string& what) {
  throw std::runtime_error("[config] " + source + ": " + key + " " + what);
}

void ModelArgs::validate(const std::string& src) const {
  // ONE set of rules for every way a ModelArgs is made (a YAML config, an HF config.json, the official
  // ModelArgs JSON, code): first each field's own range from the field table, then the rules between fields.
  for (const ModelArgField& f : model_arg_fields()) {
    if (f.range == ArgRange::any) continue;
    const bool pos = f.range == ArgRange::positive;
    // the key as both spellings name it: "route_scale (HF routed_scaling_factor)"
    const std::string key = f.hf && std::string(f.hf) != f.name ? std::string(f.name) + " (HF " + f.hf + ")" : f.name;
    if (f.type == ArgType::i64) {
      const int64_t v = this->*f.i64;
      if (pos ? v <= 0 : v < 0)
        config_error(src, key, std::string(pos ? "must be positive" : "must be >= 0") + ", got " + std::to_string(v));
    } else if (f.type == ArgType::f64) {
      const double v = this->*f.f64;
      if (!std::isfinite(v) || (pos ? !(v > 0) : !(v >= 0)))
        config_error(src, key, std::string(pos ? "must be a positive" : "must be a nonnegative") +
                                      " finite number, got " + model_arg_to_string(*this, f));
    }
  }
  auto positive = [&](const char* key, int64_t v) {
    if (v <= 0) config_error(src, key, "must be positive, got " + std::to_string(v));
  };
  positive("vocab_size", vocab_size);
  positive("dim", dim);
  positive("n_layers", n_layers);
  positive("n_heads", n_heads);
  positive("max_seq_len", max_seq_len);
  positive("qk_rope_head_dim", qk_rope_head_dim);
  positive("v_head_dim", v_head_dim);
  if (qk_rope_head_dim % 2) config_error(src, "qk_rope_head_dim", "must be even (RoPE rotates pairs), got " + std::to_string(qk_rope_head_dim));
  if (n_dense_layers < 0 || n_dense_layers > n_layers)
    config_error(src, "n_dense_layers", "must be in [0, n_layers=" + std::to_string(n_layers) + "], got " + std::to_string(n_dense_layers));
  if (n_dense_layers < n_layers) {
    positive("n_routed_experts", n_routed_experts);
    positive("n_activated_experts", n_activated_experts);
    positive("moe_inter_dim", moe_inter_dim);
    if (n_activated_experts > n_routed_experts)
      config_error(src, "n_activated_experts", "(" + std::to_string(n_activated_experts) + ") exceeds n_routed_experts (" +
                                                  std::to_string(n_routed_experts) + ")");
    positive("n_expert_groups", n_expert_groups);
    if (n_routed_experts % n_expert_groups)
      config_error(src, "n_expert_groups", "(" + std::to_string(n_expert_groups) + ") must divide n_routed_experts (" +
                                               std::to_string(n_routed_experts) + ")");
    if (n_limited_groups < 1 || n_limited_groups > n_expert_groups)
      config_error(src, "n_limited_groups", "must be in [1, n_expert_groups=" + std::to_string(n_expert_groups) + "]");
    if (n_expert_groups > 1 && n_limited_groups * (n_routed_experts / n_expert_groups) < n_activated_experts)
      config_error(src, "n_limited_groups", "keeps fewer experts than n_activated_experts");
  }
  if (n_dense_layers > 0) positive("inter_dim", inter_dim);
  if (score_func != "softmax" && score_func != "sigmoid")
    config_error(src, "score_func", "must be \"softmax\" or \"sigmoid\", got \"" + score_func + "\"");
  if (q_lora_rank < 0) config_error(src, "q_lora_rank", "must be >= 0");
  positive("kv_lora_rank", kv_lora_rank);
  if (qk_nope_head_dim < 0) config_error(src, "qk_nope_head_dim", "must be >= 0");
  if (n_kv_heads < 0 || (n_kv_heads > 0 && n_heads % n_kv_heads))
    config_error(src, "n_kv_heads", "must divide n_heads=" + std::to_string(n_heads));
  if (yarn_active() && rope_factor <= 0) config_error(src, "rope_factor", "must be positive");
  // YaRN's correction range: beta_fast rotations mark where interpolation starts, beta_slow where it ends
  // (log(max_seq_len / (beta · 2π)) needs beta > 0), so beta_fast >= beta_slow >= 1.
  if (yarn_active() && !(beta_slow >= 1 && beta_fast >= beta_slow))
    config_error(src, "beta_fast", "and beta_slow must satisfy beta_fast >= beta_slow >= 1 (YaRN's correction range), got " +
                                       std::to_string(beta_fast) + " and " + std::to_string(beta_slow));
  if (index_topk > 0) {
    positive("index_n_heads", index_n_heads);
    positive("index_head_dim", index_head_dim);
    if (q_lora_rank <= 0) config_error(src, "index_topk", "needs q_lora_rank > 0 (the indexer reads the shared q latent)");
    if (index_head_dim < qk_rope_head_dim) config_error(src, "index_head_dim", "must be >= qk_rope_head_dim");
    if (index_fp8 && (index_head_dim & (index_head_dim - 1)) != 0)
      config_error(src, "index_head_dim", "must be a power of two for the fp8 indexer (its Hadamard rotation), got " +
                                              std::to_string(index_head_dim) + "; or set index_fp8 false");
  }
  if (scale_fmt != "" && scale_fmt != "ue8m0")
    config_error(src, "scale_fmt", "must be \"ue8m0\" or empty (plain amax/448 scales), got \"" + scale_fmt + "\"");
  if (fp8_weights != "native" && fp8_weights != "dequant")
    config_error(src, "fp8_weights", "must be \"native\" or \"dequant\", got \"" + fp8_weights + "\"");
  if (n_mtp_modules < 0) config_error(src, "n_mtp_modules", "must be >= 0");
}

// ---- the field table ------------------------------------------------------------------------------

namespace {

bool yarn_written(const ModelArgs& a) { return a.yarn_active(); }
bool indexer_written(const ModelArgs& a) { return a.index_topk > 0; }
bool index_fp8_written(const ModelArgs& a) { return a.index_topk > 0 && !a.index_fp8; }  // absent = true
bool scale_fmt_written(const ModelArgs& a) { return !a.scale_fmt.empty(); }              // absent = ""
bool fp8_weights_written(const ModelArgs& a) { return a.fp8_weights != "native"; }       // absent = native

ModelArgField int_field(const char* name, int64_t ModelArgs::*m, ArgRange r, bool official, const char* hf,
                        HfForm form = HfForm::plain, bool (*when)(const ModelArgs&) = nullptr) {
  ModelArgField f{name, ArgType::i64, r, official, hf, form};
  f.i64 = m;
  f.hf_written = when;
  return f;
}
ModelArgField num_field(const char* name, double ModelArgs::*m, ArgRange r, bool official, const char* hf,
                        bool (*when)(const ModelArgs&) = nullptr) {
  ModelArgField f{name, ArgType::f64, r, official, hf, HfForm::plain};
  f.f64 = m;
  f.hf_written = when;
  return f;
}

}  // namespace

const std::vector<ModelArgField>& model_arg_fields() {
  using A = ModelArgs;
  constexpr auto pos = ArgRange::positive, nonneg = ArgRange::nonnegative;
  constexpr bool official = true, ours = false;  // ours: not in the official ModelArgs
  static const std::vector<ModelArgField> fields = [&] {
    std::vector<ModelArgField> t;
    //                  name                   member                  range   official  HF config.json key
    t.push_back(int_field("max_batch_size",     &A::max_batch_size,     pos,    official, nullptr, HfForm::none));
    t.push_back(int_field("max_seq_len",        &A::max_seq_len,        pos,    official, "max_position_embeddings"));
    t.push_back(int_field("vocab_size",         &A::vocab_size,         pos,    official, "vocab_size"));
    t.push_back(int_field("dim",                &A::dim,                pos,    official, "hidden_size"));
    t.push_back(int_field("inter_dim",          &A::inter_dim,          pos,    official, "intermediate_size"));
    t.push_back(int_field("moe_inter_dim",      &A::moe_inter_dim,      pos,    official, "moe_intermediate_size"));
    t.push_back(int_field("n_layers",           &A::n_layers,           pos,    official, "num_hidden_layers"));
    t.push_back(int_field("n_dense_layers",     &A::n_dense_layers,     nonneg, official, "first_k_dense_replace"));
    t.push_back(int_field("n_heads",            &A::n_heads,            pos,    official, "num_attention_heads"));
    t.push_back(int_field("n_kv_heads",         &A::n_kv_heads,         nonneg, ours,     "num_key_value_heads", HfForm::derived));
    t.push_back(int_field("n_routed_experts",   &A::n_routed_experts,   nonneg, official, "n_routed_experts", HfForm::null_is_zero));
    t.push_back(int_field("n_shared_experts",   &A::n_shared_experts,   nonneg, official, "n_shared_experts", HfForm::null_is_zero));
    t.push_back(int_field("n_activated_experts", &A::n_activated_experts, nonneg, official, "num_experts_per_tok", HfForm::null_is_zero));
    t.push_back(int_field("n_expert_groups",    &A::n_expert_groups,    pos,    official, "n_group"));
    t.push_back(int_field("n_limited_groups",   &A::n_limited_groups,   pos,    official, "topk_group"));
    ModelArgField score{"score_func", ArgType::string, ArgRange::any, official, "scoring_func", HfForm::plain};
    score.string = &A::score_func;
    score.choices = {"softmax", "sigmoid"};
    t.push_back(score);
    t.push_back(num_field("route_scale",        &A::route_scale,        pos,    official, "routed_scaling_factor"));
    ModelArgField gate_bias{"gate_bias", ArgType::boolean, ArgRange::any, ours, "topk_method", HfForm::derived};
    gate_bias.boolean = &A::gate_bias;
    t.push_back(gate_bias);
    t.push_back(int_field("q_lora_rank",        &A::q_lora_rank,        nonneg, official, "q_lora_rank", HfForm::zero_is_null));
    t.push_back(int_field("kv_lora_rank",       &A::kv_lora_rank,       pos,    official, "kv_lora_rank"));
    t.push_back(int_field("qk_nope_head_dim",   &A::qk_nope_head_dim,   pos,    official, "qk_nope_head_dim"));
    t.push_back(int_field("qk_rope_head_dim",   &A::qk_rope_head_dim,   pos,    official, "qk_rope_head_dim"));
    t.push_back(int_field("v_head_dim",         &A::v_head_dim,         pos,    official, "v_head_dim"));
    t.push_back(int_field("original_seq_len",   &A::original_seq_len,   pos,    official, "rope_scaling.original_max_position_embeddings",
                          HfForm::plain, yarn_written));
    t.push_back(num_field("rope_theta",         &A::rope_theta,         pos,    official, "rope_theta"));
    t.push_back(num_field("rope_factor",        &A::rope_factor,        pos,    official, "rope_scaling.factor", yarn_written));
    t.push_back(int_field("beta_fast",          &A::beta_fast,          nonneg, official, "rope_scaling.beta_fast", HfForm::plain, yarn_written));
    t.push_back(int_field("beta_slow",          &A::beta_slow,          nonneg, official, "rope_scaling.beta_slow", HfForm::plain, yarn_written));
    t.push_back(num_field("mscale",             &A::mscale,             pos,    official, "rope_scaling.mscale", yarn_written));
    t.push_back(num_field("rms_norm_eps",       &A::rms_norm_eps,       pos,    ours,     "rms_norm_eps"));
    t.push_back(int_field("index_n_heads",      &A::index_n_heads,      nonneg, official, "index_n_heads", HfForm::plain, indexer_written));
    t.push_back(int_field("index_head_dim",     &A::index_head_dim,     pos,    official, "index_head_dim", HfForm::plain, indexer_written));
    t.push_back(int_field("index_topk",         &A::index_topk,         nonneg, official, "index_topk", HfForm::plain, indexer_written));
    ModelArgField index_fp8{"index_fp8", ArgType::boolean, ArgRange::any, ours, "index_fp8", HfForm::plain};
    index_fp8.boolean = &A::index_fp8;
    index_fp8.hf_written = index_fp8_written;
    t.push_back(index_fp8);
    ModelArgField scale_fmt{"scale_fmt", ArgType::string, ArgRange::any, official, "scale_fmt", HfForm::plain};
    scale_fmt.string = &A::scale_fmt;
    scale_fmt.choices = {"", "ue8m0"};
    scale_fmt.hf_written = scale_fmt_written;
    t.push_back(scale_fmt);
    t.push_back(int_field("n_mtp_modules",      &A::n_mtp_modules,      nonneg, ours,     "num_nextn_predict_layers"));
    // FP8 training (models/fp8_model.h): a training setting, not part of an HF config.
    ModelArgField fp8{"fp8", ArgType::boolean, ArgRange::any, ours, nullptr, HfForm::none};
    fp8.boolean = &A::fp8;
    t.push_back(fp8);
    ModelArgField fp8_weights{"fp8_weights", ArgType::string, ArgRange::any, ours, "fp8_weights", HfForm::plain};
    fp8_weights.string = &A::fp8_weights;
    fp8_weights.choices = {"native", "dequant"};
    fp8_weights.hf_written = fp8_weights_written;
    t.push_back(fp8_weights);
    return t;
  }();
  return fields;
}

const ModelArgField* find_model_arg_field(const std::string& name) {
  for (const ModelArgField& f : model_arg_fields())
    if (name == f.name) return &f;
  return nullptr;
}

std::string model_arg_to_string(const ModelArgs& a, const ModelArgField& f) {
  switch (f.type) {
    case ArgType::i64: return std::to_string(a.*f.i64);
    case ArgType::f64: {
      char buf[64];
      auto [end, ec] = std::to_chars(buf, buf + sizeof buf, a.*f.f64);  // shortest text that reads back exactly
      return std::string(buf, end);
    }
    case ArgType::boolean: return a.*f.boolean ? "true" : "false";
    case ArgType::string: return a.*f.string;
  }
  return "";
}

// ---- JSON readers and the writer ------------------------------------------------------------------

static int64_t get_int(const Json& v, const std::string& src, const std::string& key) {
  if (v.is_int()) return v.get_int();
  if (v.is_double() && std::floor(v.get_double()) == v.get_double()) {
    const double d = v.get_double();
    // 2^63 itself does not fit; the cast of anything beyond is undefined (it gave INT64_MIN here)
    if (!(d > -9223372036854775808.0 && d < 9223372036854775808.0)) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "%.17g", d);
      config_error(src, key, std::string("= ") + buf + " does not fit a 64-bit integer");
    }
    return (int64_t)d;
  }
  config_error(src, key, std::string("must be an integer, got ") + v.type_name());
}
static double get_num(const Json& v, const std::string& src, const std::string& key) {
  if (v.is_number()) return v.get_double();
  config_error(src, key, std::string("must be a number, got ") + v.type_name());
}
static std::string get_str(const Json& v, const std::string& src, const std::string& key) {
  if (v.is_string()) return v.get_string();
  config_error(src, key, std::string("must be a string, got ") + v.type_name());
}
static bool get_bool(const Json& v, const std::string& src, const std::string& key) {
  if (v.is_bool()) return v.get_bool();
  config_error(src, key, std::string("must be true or false, got ") + v.type_name());
}

// Sets field `f` of `a` from the JSON value `v` (found under `key`, named in errors); hf: read as
// config.json's key (null may mean 0), else as the official ModelArgs JSON's.
static void read_field(ModelArgs& a, const ModelArgField& f, const Json& v, const std::string& src, const std::string& key,
                       bool hf) {
  if (hf && v.is_null() && (f.hf_form == HfForm::null_is_zero || f.hf_form == HfForm::zero_is_null) && f.type == ArgType::i64) {
    a.*f.i64 = 0;
    return;
  }
  switch (f.type) {
    case ArgType::i64: a.*f.i64 = get_int(v, src, key); break;
    case ArgType::f64: a.*f.f64 = get_num(v, src, key); break;
    case ArgType::boolean: a.*f.boolean = get_bool(v, src, key); break;
    case ArgType::string: a.*f.string = f.string == &ModelArgs::scale_fmt && v.is_null() ? "" : get_str(v, src, key); break;
  }
}

static Json field_json(const ModelArgs& a, const ModelArgField& f) {
  switch (f.type) {
    case ArgType::i64:
      if (f.hf_form == HfForm::zero_is_null && a.*f.i64 == 0) return Json();
      return Json(a.*f.i64);
    case ArgType::f64: return Json(a.*f.f64);
    case ArgType::boolean: return Json(a.*f.boolean);
    case ArgType::string: return Json(a.*f.string);
  }
  return Json();
}

static const std::string kRopeScaling = "rope_scaling.";

// HF key -> table entry (keys inside rope_scaling as "rope_scaling.<key>").
static const ModelArgField* find_hf_key(const std::string& hf_key) {
  for (const ModelArgField& f : model_arg_fields())
    if (f.hf && hf_key == f.hf) return &f;
  return nullptr;
}

ModelArgs model_args_from_hf_config(const Json& c, const std::string& src) {
  if (!c.is_object()) throw std::runtime_error("[config] " + src + ": expected a JSON object");
  ModelArgs a;
  a.max_seq_len = 4096;  // HF default when max_position_embeddings is absent
  std::string topk_method = "greedy";
  bool norm_topk_prob = false;
  int64_t num_key_value_heads = 0;  // 0: absent
  // Keys that are read elsewhere or carry no information for this implementation.
  static const std::set<std::string> ignored = {
      "architectures", "model_type", "auto_map", "torch_dtype", "transformers_version", "bos_token_id", "eos_token_id",
      "pad_token_id", "initializer_range", "hidden_act", "attention_bias", "attention_dropout", "use_cache",
      "pretraining_tp", "rope_interleave", "moe_layer_freq", "ep_size", "aux_loss_alpha", "seq_aux",
      "_name_or_path", "tie_word_embeddings"};
  bool yarn = false;  // rope_scaling is an object
  for (const auto& [key, v] : c.items()) {
    if (key == "rope_scaling") {
      if (v.is_null()) continue;
      if (!v.is_object()) config_error(src, key, "must be an object or null");
      yarn = true;
      for (const auto& [k2, v2] : v.items()) {
        const std::string full = kRopeScaling + k2;
        if (k2 == "type" || k2 == "rope_type") {
          if (get_str(v2, src, full) != "yarn") config_error(src, full, "must be \"yarn\" (the only scaling DeepSeek uses)");
        } else if (k2 == "mscale_all_dim") {
          // The official code uses mscale alone; HF's mscale/mscale_all_dim ratio is 1 for every release.
        } else if (const ModelArgField* f = find_hf_key(full)) {
          read_field(a, *f, v2, src, full, true);
        } else {
          config_error(src, full, "is not a known key");
        }
      }
    } else if (const ModelArgField* f = key.find('.') == std::string::npos ? find_hf_key(key) : nullptr) {
      if (f->hf_form != HfForm::derived) read_field(a, *f, v, src, key, true);
      else if (f->boolean == &ModelArgs::gate_bias) topk_method = get_str(v, src, key);
      else if (f->i64 == &ModelArgs::n_kv_heads) num_key_value_heads = get_int(v, src, key);
      else config_error(src, key, "has no reader (a derived key in model_arg_fields() that config.cpp does not convert)");
    } else if (key == "quantization_config") {
      // The FP8 checkpoint's description: only its scale_fmt concerns the model (the indexer's act_quant);
      // a top-level scale_fmt, when present, wins.
      if (v.is_object() && v.contains("scale_fmt") && !c.contains("scale_fmt"))
        read_field(a, *find_hf_key("scale_fmt"), v.at("scale_fmt"), src, "quantization_config.scale_fmt", true);
    } else if (key == "norm_topk_prob") {
      norm_topk_prob = get_bool(v, src, key);
    } else if (ignored.count(key)) {
      continue;
    } else {
      config_error(src, key, "is not a known DeepSeek-V3 config key");
    }
  }
  if (!yarn) a.original_seq_len = a.max_seq_len;  // no YaRN
  // num_key_value_heads = num_attention_heads is plain multi-head attention: n_kv_heads 0.
  a.n_kv_heads = num_key_value_heads == a.n_heads ? 0 : num_key_value_heads;
  if (topk_method == "noaux_tc") a.gate_bias = true;
  else if (topk_method != "greedy" && topk_method != "group_limited_greedy")
    config_error(src, "topk_method", "must be greedy, group_limited_greedy or noaux_tc, got \"" + topk_method + "\"");
  // Renormalisation follows score_func in the official code (sigmoid: yes, softmax: no); a config
  // that asks for the other combination cannot be reproduced by it.
  if (norm_topk_prob != (a.score_func == "sigmoid") && a.n_routed_experts > 0 && c.contains("norm_topk_prob"))
    config_error(src, "norm_topk_prob", std::string("is ") + (norm_topk_prob ? "true" : "false") + " but scoring_func is " +
                                            a.score_func + " (the official code renormalises iff sigmoid)");
  a.validate(src);
  return a;
}

ModelArgs model_args_from_official_json(const Json& c, const std::string& src) {
  ModelArgs a;
  for (const auto& [key, v] : c.items()) {
    if (key == "dtype") continue;
    const ModelArgField* f = find_model_arg_field(key);
    if (!f || !f->official) config_error(src, key, "is not a known ModelArgs field");
    read_field(a, *f, v, src, key, false);
  }
  // The official code creates the gate bias only for dim == 7168 (models/README.md §1).
  a.gate_bias = a.dim == 7168;
  a.validate(src);
  return a;
}

ModelArgs load_model_args_json(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("[config] cannot open " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  Json j = Json::parse(ss.str(), path);
  if (j.contains("official_ModelArgs")) return model_args_from_official_json(j.at("official_ModelArgs"), path);
  if (j.contains("hidden_size")) return model_args_from_hf_config(j, path);
  return model_args_from_official_json(j, path);
}

Json model_args_to_hf_config(const ModelArgs& a) {
  Json c = Json::object();
  c.set("architectures", Json(Json::Array{Json("DeepseekV3ForCausalLM")}));
  c.set("model_type", a.index_topk > 0 ? "deepseek_v32" : "deepseek_v3");
  for (const ModelArgField& f : model_arg_fields()) {
    if (f.hf_form == HfForm::none || (f.hf_written && !f.hf_written(a))) continue;
    const std::string key = f.hf;
    if (key.rfind(kRopeScaling, 0) == 0) {  // inside rope_scaling (written only with YaRN active)
      if (!c.contains("rope_scaling")) {
        Json r = Json::object();
        r.set("type", "yarn");
        c.set("rope_scaling", r);
      }
      c.at("rope_scaling").set(key.substr(kRopeScaling.size()), field_json(a, f));
    } else if (f.boolean == &ModelArgs::gate_bias) {
      c.set(key, a.gate_bias ? "noaux_tc" : (a.n_expert_groups > 1 ? "group_limited_greedy" : "greedy"));
    } else if (f.i64 == &ModelArgs::n_kv_heads) {
      c.set(key, a.n_kv_heads > 0 ? a.n_kv_heads : a.n_heads);
    } else {
      c.set(key, field_json(a, f));
    }
  }
  if (c.contains("rope_scaling")) c.at("rope_scaling").set("mscale_all_dim", a.mscale);
  else c.set("rope_scaling", Json());
  c.set("norm_topk_prob", a.score_func == "sigmoid");
  c.set("hidden_act", "silu");
  c.set("tie_word_embeddings", false);
  c.set("torch_dtype", "float32");
  return c;
}

}  // namespace sg
