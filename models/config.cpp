// models/config.cpp — see config.h.
#include "models/config.h"

#include <cmath>
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
  if (index_topk > 0) {
    positive("index_n_heads", index_n_heads);
    positive("index_head_dim", index_head_dim);
    if (q_lora_rank <= 0) config_error(src, "index_topk", "needs q_lora_rank > 0 (the indexer reads the shared q latent)");
    if (index_head_dim < qk_rope_head_dim) config_error(src, "index_head_dim", "must be >= qk_rope_head_dim");
  }
  if (n_mtp_modules < 0) config_error(src, "n_mtp_modules", "must be >= 0");
}

static int64_t get_int(const Json& v, const std::string& src, const std::string& key) {
  if (v.is_int()) return v.get_int();
  if (v.is_double() && std::floor(v.get_double()) == v.get_double()) return (int64_t)v.get_double();
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

ModelArgs model_args_from_hf_config(const Json& c, const std::string& src) {
  if (!c.is_object()) throw std::runtime_error("[config] " + src + ": expected a JSON object");
  ModelArgs a;
  a.max_seq_len = 4096;  // HF default when max_position_embeddings is absent
  std::string topk_method = "greedy";
  bool norm_topk_prob = false;
  // Keys that are read elsewhere or carry no information for this implementation.
  static const std::set<std::string> ignored = {
      "architectures", "model_type", "auto_map", "torch_dtype", "transformers_version", "bos_token_id", "eos_token_id",
      "pad_token_id", "initializer_range", "hidden_act", "attention_bias", "attention_dropout", "use_cache",
      "pretraining_tp", "rope_interleave", "moe_layer_freq", "ep_size", "aux_loss_alpha", "seq_aux", "num_key_value_heads",
      "quantization_config", "_name_or_path", "tie_word_embeddings", "scale_fmt"};
  for (const auto& [key, v] : c.items()) {
    if (key == "vocab_size") a.vocab_size = get_int(v, src, key);
    else if (key == "hidden_size") a.dim = get_int(v, src, key);
    else if (key == "intermediate_size") a.inter_dim = get_int(v, src, key);
    else if (key == "moe_intermediate_size") a.moe_inter_dim = get_int(v, src, key);
    else if (key == "num_hidden_layers") a.n_layers = get_int(v, src, key);
    else if (key == "first_k_dense_replace") a.n_dense_layers = get_int(v, src, key);
    else if (key == "num_attention_heads") a.n_heads = get_int(v, src, key);
    else if (key == "n_routed_experts") a.n_routed_experts = v.is_null() ? 0 : get_int(v, src, key);
    else if (key == "n_shared_experts") a.n_shared_experts = v.is_null() ? 0 : get_int(v, src, key);
    else if (key == "num_experts_per_tok") a.n_activated_experts = v.is_null() ? 0 : get_int(v, src, key);
    else if (key == "n_group") a.n_expert_groups = get_int(v, src, key);
    else if (key == "topk_group") a.n_limited_groups = get_int(v, src, key);
    else if (key == "scoring_func") a.score_func = get_str(v, src, key);
    else if (key == "routed_scaling_factor") a.route_scale = get_num(v, src, key);
    else if (key == "topk_method") topk_method = get_str(v, src, key);
    else if (key == "norm_topk_prob") norm_topk_prob = get_bool(v, src, key);
    else if (key == "q_lora_rank") a.q_lora_rank = v.is_null() ? 0 : get_int(v, src, key);
    else if (key == "kv_lora_rank") a.kv_lora_rank = get_int(v, src, key);
    else if (key == "qk_nope_head_dim") a.qk_nope_head_dim = get_int(v, src, key);
    else if (key == "qk_rope_head_dim") a.qk_rope_head_dim = get_int(v, src, key);
    else if (key == "v_head_dim") a.v_head_dim = get_int(v, src, key);
    else if (key == "rms_norm_eps") a.rms_norm_eps = get_num(v, src, key);
    else if (key == "rope_theta") a.rope_theta = get_num(v, src, key);
    else if (key == "max_position_embeddings") a.max_seq_len = get_int(v, src, key);
    else if (key == "num_nextn_predict_layers") a.n_mtp_modules = get_int(v, src, key);
    else if (key == "index_n_heads") a.index_n_heads = get_int(v, src, key);
    else if (key == "index_head_dim") a.index_head_dim = get_int(v, src, key);
    else if (key == "index_topk") a.index_topk = get_int(v, src, key);
    else if (key == "rope_scaling") {
      if (v.is_null()) {
        a.original_seq_len = a.max_seq_len;
        continue;
      }
      if (!v.is_object()) config_error(src, key, "must be an object or null");
      for (const auto& [k2, v2] : v.items()) {
        std::string full = "rope_scaling." + k2;
        if (k2 == "type" || k2 == "rope_type") {
          if (get_str(v2, src, full) != "yarn") config_error(src, full, "must be \"yarn\" (the only scaling DeepSeek uses)");
        } else if (k2 == "factor") a.rope_factor = get_num(v2, src, full);
        else if (k2 == "original_max_position_embeddings") a.original_seq_len = get_int(v2, src, full);
        else if (k2 == "beta_fast") a.beta_fast = get_int(v2, src, full);
        else if (k2 == "beta_slow") a.beta_slow = get_int(v2, src, full);
        else if (k2 == "mscale") a.mscale = get_num(v2, src, full);
        else if (k2 == "mscale_all_dim") {
          // The official code uses mscale alone; HF's mscale/mscale_all_dim ratio is 1 for every release.
        } else config_error(src, full, "is not a known key");
      }
    } else if (ignored.count(key)) {
      continue;
    } else {
      config_error(src, key, "is not a known DeepSeek-V3 config key");
    }
  }
  if (!c.contains("rope_scaling")) a.original_seq_len = a.max_seq_len;  // no YaRN
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
    if (key == "max_batch_size") a.max_batch_size = get_int(v, src, key);
    else if (key == "max_seq_len") a.max_seq_len = get_int(v, src, key);
    else if (key == "dtype" || key == "scale_fmt") continue;
    else if (key == "vocab_size") a.vocab_size = get_int(v, src, key);
    else if (key == "dim") a.dim = get_int(v, src, key);
    else if (key == "inter_dim") a.inter_dim = get_int(v, src, key);
    else if (key == "moe_inter_dim") a.moe_inter_dim = get_int(v, src, key);
    else if (key == "n_layers") a.n_layers = get_int(v, src, key);
    else if (key == "n_dense_layers") a.n_dense_layers = get_int(v, src, key);
    else if (key == "n_heads") a.n_heads = get_int(v, src, key);
    else if (key == "n_routed_experts") a.n_routed_experts = get_int(v, src, key);
    else if (key == "n_shared_experts") a.n_shared_experts = get_int(v, src, key);
    else if (key == "n_activated_experts") a.n_activated_experts = get_int(v, src, key);
    else if (key == "n_expert_groups") a.n_expert_groups = get_int(v, src, key);
    else if (key == "n_limited_groups") a.n_limited_groups = get_int(v, src, key);
    else if (key == "score_func") a.score_func = get_str(v, src, key);
    else if (key == "route_scale") a.route_scale = get_num(v, src, key);
    else if (key == "q_lora_rank") a.q_lora_rank = get_int(v, src, key);
    else if (key == "kv_lora_rank") a.kv_lora_rank = get_int(v, src, key);
    else if (key == "qk_nope_head_dim") a.qk_nope_head_dim = get_int(v, src, key);
    else if (key == "qk_rope_head_dim") a.qk_rope_head_dim = get_int(v, src, key);
    else if (key == "v_head_dim") a.v_head_dim = get_int(v, src, key);
    else if (key == "original_seq_len") a.original_seq_len = get_int(v, src, key);
    else if (key == "rope_theta") a.rope_theta = get_num(v, src, key);
    else if (key == "rope_factor") a.rope_factor = get_num(v, src, key);
    else if (key == "beta_fast") a.beta_fast = get_int(v, src, key);
    else if (key == "beta_slow") a.beta_slow = get_int(v, src, key);
    else if (key == "mscale") a.mscale = get_num(v, src, key);
    else if (key == "index_n_heads") a.index_n_heads = get_int(v, src, key);
    else if (key == "index_head_dim") a.index_head_dim = get_int(v, src, key);
    else if (key == "index_topk") a.index_topk = get_int(v, src, key);
    else config_error(src, key, "is not a known ModelArgs field");
  }
  // The official code creates the gate bias only for dim == 7168 (DEEPSEEK.md §1).
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
  c.set("vocab_size", a.vocab_size);
  c.set("hidden_size", a.dim);
  c.set("intermediate_size", a.inter_dim);
  c.set("moe_intermediate_size", a.moe_inter_dim);
  c.set("num_hidden_layers", a.n_layers);
  c.set("num_nextn_predict_layers", a.n_mtp_modules);
  c.set("num_attention_heads", a.n_heads);
  c.set("num_key_value_heads", a.n_heads);
  c.set("n_shared_experts", a.n_shared_experts);
  c.set("n_routed_experts", a.n_routed_experts);
  c.set("num_experts_per_tok", a.n_activated_experts);
  c.set("routed_scaling_factor", a.route_scale);
  c.set("n_group", a.n_expert_groups);
  c.set("topk_group", a.n_limited_groups);
  c.set("topk_method", a.gate_bias ? "noaux_tc" : (a.n_expert_groups > 1 ? "group_limited_greedy" : "greedy"));
  c.set("scoring_func", a.score_func);
  c.set("norm_topk_prob", a.score_func == "sigmoid");
  c.set("first_k_dense_replace", a.n_dense_layers);
  c.set("q_lora_rank", a.q_lora_rank > 0 ? Json(a.q_lora_rank) : Json());
  c.set("kv_lora_rank", a.kv_lora_rank);
  c.set("qk_nope_head_dim", a.qk_nope_head_dim);
  c.set("qk_rope_head_dim", a.qk_rope_head_dim);
  c.set("v_head_dim", a.v_head_dim);
  c.set("hidden_act", "silu");
  c.set("rms_norm_eps", a.rms_norm_eps);
  c.set("max_position_embeddings", a.max_seq_len);
  c.set("rope_theta", a.rope_theta);
  if (a.yarn_active()) {
    Json r = Json::object();
    r.set("type", "yarn");
    r.set("factor", a.rope_factor);
    r.set("original_max_position_embeddings", a.original_seq_len);
    r.set("beta_fast", a.beta_fast);
    r.set("beta_slow", a.beta_slow);
    r.set("mscale", a.mscale);
    r.set("mscale_all_dim", a.mscale);
    c.set("rope_scaling", r);
  } else {
    c.set("rope_scaling", Json());
  }
  if (a.index_topk > 0) {
    c.set("index_n_heads", a.index_n_heads);
    c.set("index_head_dim", a.index_head_dim);
    c.set("index_topk", a.index_topk);
  }
  c.set("tie_word_embeddings", false);
  c.set("torch_dtype", "float32");
  return c;
}

}  // namespace sg
