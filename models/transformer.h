// models/transformer.h — the whole DeepSeek language model (models/README.md §2, §7, §11): embedding, the
// stack of pre-norm blocks (MLA + dense SwiGLU for the first n_dense_layers, MLA + DeepSeekMoE after),
// the final RMSNorm, the untied head, and the D Multi-Token-Prediction modules used in training (and for
// speculative decoding, models/generate.h). Plus whole-model import/export in HuggingFace layout.
//
//   h⁰ = Emb(tokens)                                    [B,S,d]
//   h ← h + MLA(attn_norm(h));  h ← h + FFN(ffn_norm(h))  per block (FFN = MLP or MoE)
//   logits = head(norm(h))                              [B,S,V], every position (training needs all)
//
// MTP (models/README.md §7), module k = 1..D, sharing embed and head with the main model:
//   h'^k_i = eh_proj_k [ enorm_k(Emb(t_{i+k})) ; hnorm_k(h^{k−1}_i) ]      ([embedding ; hidden] order)
//   h^k_{0:T−k} = TRM_k(h'^k_{0:T−k})   (one causal block, RoPE positions i = 0..T−k−1)
//   P^k_{i+k+1} = softmax(head(shared_head.norm_k(h^k_i)))
//   h⁰ = the main model's POST-final-norm hidden state (as vLLM / Megatron-Core feed it).
// Loss = L_main + (λ/D) Σ_k L^k + α · mean over MoE blocks of the sequence-wise balance loss.
//
// Parameter names are the official inference names (embed.weight, layers.0.attn.wkv_a.weight,
// layers.1.ffn.experts.3.w1.weight, head.weight, ...); the MTP module k (0-based here) is "mtp.k." with
// the block's parameters flattened into it (mtp.0.attn_norm.weight, mtp.0.attn.wkv_a.weight,
// mtp.0.ffn.gate.weight, mtp.0.enorm.weight, mtp.0.eh_proj.weight, mtp.0.shared_head.norm.weight).
// On disk (HF) MTP module k is layer n_layers + k: model.layers.{n_layers+k}.{enorm, hnorm, eh_proj,
// shared_head.norm, self_attn.*, mlp.*, ...} plus copies of the shared head (shared_head.head) and
// embedding (embed_tokens).
//
// Attention is MLA (models/mla.h) or, when args.index_topk > 0 (V3.2), DSA = MLA + the lightning indexer
// (models/dsa.h; same parameter names plus attn.indexer.*). The indexer's own losses (warm-up KL, sparse
// KL) are not part of loss(): a trainer gets them from DSA::forward_step / indexer_warmup_loss.
//
// What this is not: tensor/pipeline parallelism (train/parallel/), FP8 linears.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "autograd/rng.h"
#include "models/config.h"
#include "models/dsa.h"
#include "models/layers.h"
#include "models/mla.h"
#include "models/module.h"
#include "models/moe.h"

namespace sg {

// One block's decoding state: the MLA latent (or naive) KV cache, or for a DSA block its cache (MLA's
// absorbed cache + the indexer's key cache).
struct BlockCache {
  MLACache attn;  // MLA blocks
  DSACache dsa;   // DSA blocks
};

// What one block's forward reports beside its output, for the loss and the trainer. It is returned to the
// caller, never kept in the module.
struct BlockAux {
  bool moe_ran = false;
  MoEOutput moe;        // MoE blocks: the routing (gate scores, indices) and the load of this forward
  bool dsa_trained = false;
  DSATrainStep dsa;     // DSA blocks in a training forward (TrainForward::dsa): the indexer loss and recall
};

// What a training forward asks of the blocks beyond the plain forward. DSA blocks (V3.2) run
// dsa_train_forward (models/dsa.h): dense attention + indexer KL in the warm-up stage, sparse attention +
// the KL on the selected keys in the sparse stage (models/README.md §14). Plain MLA blocks ignore it.
struct TrainForward {
  bool dsa = false;
  DSAStage dsa_stage = DSAStage::sparse;
  bool measure_recall = false;  // the indexer's recall of the dense attention's top-k keys (costs a dense pass)
};

// Pre-norm block: h ← h + attn(attn_norm(h)); h ← h + ffn(ffn_norm(h)).
// Exactly one of attn / dsa is set (dsa iff args.index_topk > 0), and one of dense_ffn / moe
// (layer_id < n_dense_layers → dense).
struct Block : Module {
  int64_t layer_id = 0;
  RMSNorm attn_norm, ffn_norm;
  std::unique_ptr<MLA> attn;       // MLA (V2/V3)
  std::unique_ptr<DSA> dsa;        // DSA (V3.2): MLA + indexer, listed under the same "attn." prefix
  std::unique_ptr<MLP> dense_ffn;  // inter_dim SwiGLU
  std::unique_ptr<MoE> moe;        // DeepSeekMoE
  MLAMode attn_mode = MLAMode::absorbed;  // MLA only: the official default; both modes give the same numbers

  Block() = default;
  Block(const ModelArgs& args, int64_t layer_id, bool use_moe, Rng& rng, DType dtype = DType::f32);
  bool is_moe() const { return moe != nullptr; }
  // h [B,S,d] -> [B,S,d]; positions start_pos + s. `cache` (may be null) must have been made in attn_mode.
  // aux (may be null) receives the routing of an MoE block (and, with train->dsa, a DSA block's indexer loss).
  // segment_ids [B,S] i64 (packed sequences, undefined = one per row) go to the MLA (see mla.h); a DSA block
  // throws "[dsa] segment_ids (packed sequences) are not supported for DSA blocks".
  Tensor forward(const Tensor& h, int64_t start_pos, const RopeTable& rope, BlockCache* cache = nullptr,
                 BlockAux* aux = nullptr, const TrainForward* train = nullptr,
                 const Tensor& segment_ids = Tensor()) const;
  // attn_norm.weight, attn.*, ffn_norm.weight, ffn.* (dense: ffn.w1/w2/w3; MoE: ffn.gate.*, ffn.experts.E.*,
  // ffn.shared_experts.*).
  void parameters(const std::string& prefix, NamedParameters& out) override;
  void buffers(const std::string& prefix, NamedParameters& out) override;
};

// One MTP module (models/README.md §7). The shared embedding and head are the main model's; this module owns
// its norms, the projection and its block.
struct MTPModule : Module {
  RMSNorm enorm, hnorm;
  Linear eh_proj;           // [d, 2d]: columns [0, d) act on enorm(Emb), [d, 2d) on hnorm(h)
  Block block;              // same structure as a main MoE layer (dense if the model has no MoE layers)
  RMSNorm shared_head_norm; // "shared_head.norm"

  MTPModule() = default;
  MTPModule(const ModelArgs& args, int64_t layer_id, Rng& rng, DType dtype = DType::f32);
  // emb_next = Emb(t_{i+k}) [B,S,d], h_prev = h^{k−1}_i [B,S,d] -> h^k [B,S,d] (before shared_head.norm).
  Tensor forward(const Tensor& emb_next, const Tensor& h_prev, int64_t start_pos, const RopeTable& rope,
                 BlockCache* cache = nullptr, BlockAux* aux = nullptr, const TrainForward* train = nullptr,
                 const Tensor& segment_ids = Tensor()) const;
  void parameters(const std::string& prefix, NamedParameters& out) override;
  void buffers(const std::string& prefix, NamedParameters& out) override;
};

// The KV caches of every block (and of every MTP module, for speculative decoding). Entries are written
// at their positions, so rolling back (rejected speculative tokens) is just set_length().
struct TransformerCache {
  MLAMode mode = MLAMode::absorbed;
  int64_t batch = 0, max_len = 0;
  std::vector<BlockCache> layers;  // one per main block
  std::vector<BlockCache> mtp;     // one per MTP module
  int64_t filled = 0;              // positions [0, filled) hold valid keys of the main blocks

  int64_t length() const { return filled; }
  void set_length(int64_t n);      // 0 <= n <= max_len
  int64_t bytes() const;
};

// The weights of loss()'s terms and what the training forward does (TrainForward).
struct LossOptions {
  double mtp_lambda = 0.0;     // λ of L_MTP
  double balance_alpha = 0.0;  // α of the sequence-wise balance loss
  TrainForward train;          // DSA models: which indexer stage, and whether to measure recall
  Tensor segment_ids;  // [B,S] i64, undefined = one sequence per row (packed sequences: see Transformer)
};

struct LossOutput {
  Tensor loss;                     // total = main_loss + (λ/D) Σ mtp_losses + balance_loss (NOT the indexer loss)
  Tensor main_loss;                // cross entropy, mean over targets != -100
  std::vector<Tensor> mtp_losses;  // L^k, k = 1..D (unweighted)
  Tensor balance_loss;             // α · mean over MoE blocks of mean_b seq_balance_loss (0 without MoE)
  // Tokens per expert of this forward, per MoE block in moe_layer_names() order (main blocks, then MTP).
  std::vector<std::vector<int64_t>> expert_loads;
  // DSA models with train.dsa: the indexer KL, mean over the DSA blocks that ran (each a mean over queries),
  // on the tape and reaching only attn.indexer.* — a trainer weighs it and adds it (train/pretrain.h) — and the
  // mean recall over those blocks (NaN unless measured). Undefined / NaN otherwise.
  Tensor indexer_loss;
  double indexer_recall = NAN;
};

struct Transformer : Module {
  ModelArgs args;
  DType dtype = DType::f32;
  Embedding embed;
  std::vector<std::unique_ptr<Block>> layers;
  RMSNorm norm;
  Linear head;
  std::vector<std::unique_ptr<MTPModule>> mtp;  // args.n_mtp_modules
  RopeTable rope;

  Transformer() = default;
  Transformer(const ModelArgs& args, Rng& rng, DType dtype = DType::f32);

  // tokens [B,S] i64 -> logits [B,S,V] at every position. With a cache: the tokens sit at positions
  // [start_pos, start_pos+S), keys are written there and attention covers [0, start_pos+S); start_pos
  // must be <= cache->length() (no holes); afterwards cache->length() = start_pos + S.
  // segment_ids (packed sequences, e.g. SFT): [B,S] i64, one id per token, each id one contiguous run of its
  // row (0 0 0 1 1 2 ...); token i then attends token j iff j ≤ i and both have the same id, in every block,
  // so each sequence gets the logits it would get alone (RoPE is relative: no position reset is needed; the
  // float32 rope table rounds the angles of later positions, so "the same" is to ~1e-7 relative, not bitwise).
  // Undefined = one sequence per row. Only without a cache; DSA models reject them.
  Tensor forward(const Tensor& tokens, int64_t start_pos = 0, TransformerCache* cache = nullptr,
                 const Tensor& segment_ids = Tensor()) const;
  // The post-final-norm hidden state norm(h) [B,S,d] (= h⁰ of MTP). block_inputs (if given) receives the
  // input of every block, then the last block's output (the reference's hidden.0..n_layers).
  // aux (if given) receives one BlockAux per main block; train (may be null): see TrainForward.
  // segment_ids: as forward.
  Tensor hidden(const Tensor& tokens, int64_t start_pos = 0, TransformerCache* cache = nullptr,
                std::vector<Tensor>* block_inputs = nullptr, std::vector<BlockAux>* aux = nullptr,
                const TrainForward* train = nullptr, const Tensor& segment_ids = Tensor()) const;
  // head(x) for an already normalised x [..., d] -> [..., V].
  Tensor logits_from_hidden(const Tensor& normed) const;
  // MTP module k (0-based): next_tokens = t_{i+k+1} [B,S], h_prev = h^k (h⁰ for k = 0) [B,S,d]
  // -> h^{k+1} [B,S,d] (feed to the next module's h_prev; logits = logits_from_hidden(mtp_norm(k, ...))).
  // segment_ids [B,S] (S of next_tokens): the segment of each position's h_prev (loss() passes seg[:, :S−k−1]).
  Tensor mtp_forward(int64_t k, const Tensor& next_tokens, const Tensor& h_prev, int64_t start_pos = 0,
                     TransformerCache* cache = nullptr, BlockAux* aux = nullptr, const TrainForward* train = nullptr,
                     const Tensor& segment_ids = Tensor()) const;
  Tensor mtp_logits(int64_t k, const Tensor& h_k) const;  // head(shared_head.norm_k(h_k))

  // tokens, targets [B,S] i64 (targets = next tokens, -100 ignored). MTP depth k predicts
  // targets[:, k:] from tokens[:, k:] and h^{k-1}[:, :S-k]. Differentiable.
  // Packed rows (options.segment_ids, as forward): the caller sets -100 at the last position of every
  // sequence (its "next token" belongs to the next one); MTP depth k additionally ignores its positions i
  // with seg[i] != seg[i+k] (hidden state of one sequence, input token of the next). Then the main and
  // MTP cross entropies are token-weighted means of the sequences' own ones (each sequence's sum of terms is
  // its sum alone). The sequence-wise balance loss still treats each packed ROW as one sequence.
  LossOutput loss(const Tensor& tokens, const Tensor& targets, double mtp_lambda, double balance_alpha) const;
  LossOutput loss(const Tensor& tokens, const Tensor& targets, const LossOptions& options) const;

  // MoE blocks in order: main layers, then MTP blocks. Names like "layers.1.ffn", "mtp.0.ffn".
  std::vector<std::string> moe_layer_names() const;
  // Aux-loss-free step (models/README.md §6) on every MoE gate that has a bias. loads: tokens per expert per MoE
  // block (moe_layer_names() order) over the whole optimizer step — every micro-batch's LossOutput::expert_loads
  // summed (add_expert_loads) — as DeepSeek-V3 updates the bias at the end of each step.
  void update_gate_biases(const std::vector<std::vector<int64_t>>& loads, double gamma);

  // Every parameter, buffer and the rope table to `device` (Module::move_parameters_to); the model's forward,
  // loss and caches then run there. Inputs (tokens, targets, segment ids) may stay on the host: forward and
  // loss move them to device() (a few bytes per token).
  void to(Device device);
  Device device() const { return embed.weight.defined() ? embed.weight.device() : Device::CPU; }

  // Zero-filled caches for every block and MTP module, in the blocks' attn_mode (absorbed unless
  // set_attn_mode() said otherwise), on the model's device(). max_len <= args.max_seq_len.
  std::unique_ptr<TransformerCache> make_cache(int64_t batch, int64_t max_len) const;
  void set_attn_mode(MLAMode mode);  // every block (main and MTP); caches made before no longer fit

  void parameters(const std::string& prefix, NamedParameters& out) override;
  void buffers(const std::string& prefix, NamedParameters& out) override;
};

// total += loads, element by element (total may start empty); throws if the block/expert counts differ.
void add_expert_loads(std::vector<std::vector<int64_t>>& total, const std::vector<std::vector<int64_t>>& loads);

// Official parameter name <-> HF checkpoint name for a model with n_layers main blocks:
// "mtp.k.X" <-> "model.layers.{n_layers+k}.X" (mapped as a layer), the rest via weights.h.
std::string transformer_param_to_hf(const std::string& official, int64_t n_layers);
std::string hf_to_transformer_param(const std::string& hf, int64_t n_layers);

// Reads DIR/config.json (HF) and DIR/model.safetensors (HF names). Every tensor must be used and every
// parameter found with its exact shape; MTP copies of the head / embedding must equal the shared ones.
// FP8 checkpoints (the HF DeepSeek-V3 layout): a linear whose weight is F8_E4M3 keeps its codes and its
// '<name>.weight_scale_inv' block scales (block from config.json quantization_config.weight_block_size)
// and runs the official way (act_quant per 1×128 tile, ue8m0 per scale_fmt, fp8_gemm); a missing,
// mis-shaped or non-positive scale tensor is an error naming it. fp8_weights "dequant" (config.json key,
// or fp8_weights_override: "native" | "dequant" | "" = the config's) dequantizes them to f32 instead.
Transformer load_model_dir(const std::string& dir, DType dtype = DType::f32);
Transformer load_model_dir(const std::string& dir, DType dtype, const std::string& fp8_weights_override);
// Writes DIR/config.json + DIR/model.safetensors (HF names, F32 or F64; FP8 as F8_E4M3 + weight_scale_inv)
// into DIR.tmp, then swaps it in for DIR keeping DIR's other files (replace_dir, models/output_paths.h).
void save_model_dir(Transformer& model, const std::string& dir);

}  // namespace sg
