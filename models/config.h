// models/config.h — ModelArgs: the model's hyper-parameters under the official DeepSeek names
// (inference/model.py), with the official defaults (models/README.md §1).
//
// Sources: an HF `config.json` (DeepSeek-V3 / V3.2 model directory; keys mapped per models/README.md §11),
// the official `ModelArgs` JSON, or the project's YAML (train/, via yaml-cpp, which fills the same
// struct). Unknown keys and bad values are errors naming the file and the key.
//
// The fields are listed ONCE, in model_arg_fields(): name, HF key, type, range and the member itself.
// The YAML reader, the official-JSON reader and the HF config.json reader and writer all loop over
// that table; a new ModelArgs field is one line there (and a default here).
//
// What this is not: the trainer's own keys (train/config_yaml.h), or a general HF config library.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

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
  // The indexer's arithmetic (models/dsa.h): true = the official V3.2 way (Hadamard rotation, E4M3 q/k with
  // per-128 scales, the fp8 score, an E4M3 key cache); false = the plain fp32 indexer (no rotation, no FP8).
  // Ours (the official code has only the fp8 path); HF config.json key index_fp8, absent = true.
  bool index_fp8 = true;
  // The scale format of the FP8 activation quantization (official ModelArgs.scale_fmt): "ue8m0" = scales
  // rounded up to powers of two (V3.2's configs), "" = plain amax/448 scales (the official default None).
  // HF config.json: top-level scale_fmt or quantization_config.scale_fmt.
  std::string scale_fmt = "";
  // MTP
  int64_t n_mtp_modules = 0;           // HF num_nextn_predict_layers
  // FP8 training: the linears of models/fp8_model.h run Fprop/Dgrad/Wgrad as FP8 GEMMs (ops/fp8_linear.h)
  bool fp8 = false;
  // FP8 checkpoint weights (F8_E4M3 + weight_scale_inv): "native" = run them the official way (activations
  // quantized per 1×128 tile, blockwise FP8 GEMM, f32 promotion), "dequant" = dequantize to f32 on load.
  // HF config.json key fp8_weights (ours; absent = native); `--fp8 dequant` on the CLI overrides it.
  std::string fp8_weights = "native";

  int64_t qk_head_dim() const { return qk_nope_head_dim + qk_rope_head_dim; }
  bool yarn_active() const { return max_seq_len > original_seq_len; }
  // (dn + dr)^-1/2, times m² with m = 0.1·mscale·ln(rope_factor) + 1 when YaRN is active (models/README.md §3).
  double softmax_scale() const;
  bool scale_ue8m0() const { return scale_fmt == "ue8m0"; }
  // Throws "[config] <source>: <key> ..." on inconsistent values (e.g. n_routed_experts % n_expert_groups), and on
  // sizes whose element counts overflow int64 (model_size below). Machine-independent: memory is not checked here.
  void validate(const std::string& source) const;
  bool operator==(const ModelArgs&) const = default;
};

// ---- sizes and memory -----------------------------------------------------------------------------
// What a config asks for, counted before anything is allocated, so that a `dim` of 2^62 or a model larger
// than the machine is an error naming its keys instead of a segfault or an out-of-memory kill.

struct ModelSize {
  struct Part {
    int64_t numel = 0;
    std::string what;   // "the embedding", "an expert's w1, w2 or w3"
    std::string keys;   // the factors of numel: "vocab_size 102400 × dim (HF hidden_size) 2048"
  };
  int64_t n_parameters = 0;      // = Transformer(args).num_parameters(): embedding, blocks, MTP modules, norms, head
  Part largest;                  // the largest single weight tensor
  Part heaviest;                 // the group of same-shaped weights with the most parameters (numel = the group's)
  int64_t rope_table_numel = 0;  // the RoPE cos + sin tables: max_seq_len × qk_rope_head_dim (f32, not parameters)
  int64_t kv_cache_numel = 0;    // the absorbed-MLA caches at max_batch_size × max_seq_len, every block, plus the
                                 // DSA indexer's key caches (not allocated by the model itself)
};
// Every sum and product overflow-checked: one that does not fit in int64 throws
// "[config] <source>: <keys with values> (<what>): the element count overflows int64". validate() calls it.
ModelSize model_size(const ModelArgs& args, const std::string& source);

// Bytes this process may still allocate: MemAvailable of /proc/meminfo (else physical pages × page size), or
// less when the cgroup's memory.max leaves less (INT64_MAX when nothing is known). Swap is not counted.
int64_t available_memory_bytes();

// Throws "[config] <source>: <keys> (<what>) needs N bytes (X GiB) at B bytes an element, more than the Y bytes (Z GiB) of
// memory available" when the largest weight, the RoPE table, or all the parameters plus the RoPE table (at
// bytes_per_element, the model dtype's size; the table is f32) exceed available_bytes. Called where a model is
// about to be built from a file (the YAML trainer config, a model directory, an HF import) with
// available_memory_bytes(); tests pass a small number. It is a lower bound on the need: gradients, optimizer
// moments and activations come on top, so passing it does not promise a run fits.
void check_model_fits_memory(const ModelArgs& args, const std::string& source, int64_t bytes_per_element,
                             int64_t available_bytes);

// ---- the field table ------------------------------------------------------------------------------

enum class ArgType { i64, f64, boolean, string };
enum class ArgRange { any, positive, nonnegative };  // what a reader checks per value (YAML does)

// How a field appears in HF config.json.
enum class HfForm {
  none,          // not in config.json (max_batch_size: an inference-time setting)
  plain,         // key `hf`, same type
  null_is_zero,  // as plain, and null reads as 0 (n_routed_experts, ... in dense HF configs)
  zero_is_null,  // as null_is_zero, and 0 is written as null (q_lora_rank: null = no q-LoRA)
  derived,       // key `hf` holds something else; config.cpp converts by hand:
                 //   gate_bias <-> topk_method ("noaux_tc" = gate bias),
                 //   n_kv_heads <-> num_key_value_heads (0 <-> = num_attention_heads)
};

struct ModelArgField {
  const char* name;     // the ModelArgs member = the YAML key = the official ModelArgs JSON key
  ArgType type;
  ArgRange range;
  bool official;        // a field of the official inference/model.py ModelArgs (its JSON has it)
  const char* hf;       // HF config.json key ("rope_scaling.factor": inside rope_scaling); nullptr: none
  HfForm hf_form;
  // The member, by type (exactly the one of `type` is set).
  int64_t ModelArgs::*i64 = nullptr;
  double ModelArgs::*f64 = nullptr;
  bool ModelArgs::*boolean = nullptr;
  std::string ModelArgs::*string = nullptr;
  std::vector<std::string> choices = {};  // string fields: the allowed values (empty: any)
  // HF export writes the key only when this holds (nullptr: always): the YaRN keys when YaRN is active,
  // the indexer keys for a V3.2 (DSA) model.
  bool (*hf_written)(const ModelArgs&) = nullptr;
};

// Every ModelArgs field, in declaration order.
const std::vector<ModelArgField>& model_arg_fields();
// The entry named `name` (ModelArgs / YAML name), or nullptr.
const ModelArgField* find_model_arg_field(const std::string& name);
// A field's value as text ("128", "0.707", "true", "sigmoid"): for messages and tests.
std::string model_arg_to_string(const ModelArgs& args, const ModelArgField& field);

// HF config.json (DeepSeek-V3 / V3.2) -> ModelArgs. Unknown keys outside the known HF set are errors.
ModelArgs model_args_from_hf_config(const Json& config, const std::string& source);
// The official ModelArgs as JSON ({"dim": ..., "n_layers": ...}, as in model_args.json["official_ModelArgs"]).
ModelArgs model_args_from_official_json(const Json& args, const std::string& source);
// Reads `path`, detects HF (has "hidden_size") vs official names, returns validated args.
ModelArgs load_model_args_json(const std::string& path);
// ModelArgs -> HF config.json (for export).
Json model_args_to_hf_config(const ModelArgs& args);

}  // namespace sg
