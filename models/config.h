// models/config.h — ModelArgs: the model's hyper-parameters under the official DeepSeek names
// (inference/model.py), with the official defaults (DEEPSEEK.md §1).
//
// Sources: an HF `config.json` (DeepSeek-V3 / V3.2 model directory; keys mapped per DEEPSEEK.md §11),
// the official `ModelArgs` JSON, or the project's YAML (train/, via yaml-cpp, which fills the same
// struct). Unknown keys and bad values are errors naming the file and the key.
#pragma once
#include <cstdint>
#include <string>

namespace sg {

class Json;

struct ModelArgs {
  int64_t max_batch_size = 8;
  int64_t max_seq_len = 16384;
  int64_t vocab_size = 102400;
  int64_t dim = 2048;
  int64_t inter_dim = 10944;
  int64_t moe_inter_dim = 1408;
  int64_t n_layers = 27;
  int64_t n_dense_layers = 1;
  int64_t n_heads = 16;
  int64_t n_kv_heads = 0;            // MHA/MQA/GQA module only (0 = n_heads); MLA ignores it
  // MoE
  int64_t n_routed_experts = 64;
  int64_t n_shared_experts = 2;
  int64_t n_activated_experts = 6;
  int64_t n_expert_groups = 1;
  int64_t n_limited_groups = 1;
  std::string score_func = "softmax";  // "softmax" (V2) or "sigmoid" (V3)
  double route_scale = 1.0;
  bool gate_bias = false;              // e_score_correction_bias (aux-loss-free balancing)
  // MLA
  int64_t q_lora_rank = 0;
  int64_t kv_lora_rank = 512;
  int64_t qk_nope_head_dim = 128;
  int64_t qk_rope_head_dim = 64;
  int64_t v_head_dim = 128;
  // YaRN
  int64_t original_seq_len = 4096;
  double rope_theta = 10000.0;
  double rope_factor = 40.0;
  int64_t beta_fast = 32;
  int64_t beta_slow = 1;
  double mscale = 1.0;
  double rms_norm_eps = 1e-6;
  // V3.2 DSA indexer (index_topk 0 = dense MLA)
  int64_t index_n_heads = 0;
  int64_t index_head_dim = 128;
  int64_t index_topk = 0;
  // MTP
  int64_t n_mtp_modules = 0;           // HF num_nextn_predict_layers

  int64_t qk_head_dim() const { return qk_nope_head_dim + qk_rope_head_dim; }
  bool yarn_active() const { return max_seq_len > original_seq_len; }
  // (dn + dr)^-1/2, times m² with m = 0.1·mscale·ln(rope_factor) + 1 when YaRN is active (DEEPSEEK.md §3).
  double softmax_scale() const;
  // Throws "[config] <source>: <key> ..." on inconsistent values (e.g. n_routed_experts % n_expert_groups).
  void validate(const std::string& source) const;
};

// HF config.json (DeepSeek-V3 / V3.2) -> ModelArgs. Unknown keys outside the known HF set are errors.
ModelArgs model_args_from_hf_config(const Json& config, const std::string& source);
// The official ModelArgs as JSON ({"dim": ..., "n_layers": ...}, as in model_args.json["official_ModelArgs"]).
ModelArgs model_args_from_official_json(const Json& args, const std::string& source);
// Reads `path`, detects HF (has "hidden_size") vs official names, returns validated args.
ModelArgs load_model_args_json(const std::string& path);
// ModelArgs -> HF config.json (for export).
Json model_args_to_hf_config(const ModelArgs& args);

}  // namespace sg
