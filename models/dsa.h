// models/dsa.h — DeepSeek Sparse Attention (V3.2-Exp, models/README.md §9): the lightning indexer, per-query
// top-k token selection, MLA restricted to the selected tokens, and the indexer's training losses.
//
// Indexer (official names, under attn.indexer.*; HF self_attn.indexer.*), with H_I = index_n_heads,
// d_I = index_head_dim, dr = qk_rope_head_dim, r_q = q_lora_rank:
//   wq_b [H_I·d_I, r_q]   wk [d_I, dim]   k_norm LayerNorm(d_I, eps 1e-6, weight + bias)   weights_proj [H_I, dim]
// For x [B,S,dim] (the attn-normed block input) and qr = q_norm(wq_a(x)) [B,S,r_q] (MLA's q latent, shared):
//   q^I = wq_b(qr)           [B,S,H_I,d_I]   RoPE (half-split pairs (i, i+dr/2)) on the FIRST dr dims
//   k^I = k_norm(wk(x))      [B,S,d_I]       one key per token, shared by the index heads; same RoPE
//   w   = weights_proj(x) · H_I^-1/2 · d_I^-1/2                     [B,S,H_I]
//   I[b,s,t] = Σ_j w[b,s,j] · ReLU(q^I[b,s,j] · k^I[b,t])  + causal −inf        [B,S,T]
//   sel[b,s] = top-min(k, T) of I[b,s,:] — the causal ones; a query at position p keeps min(k, p+1) keys
// That is the score in exact arithmetic. Its ARITHMETIC has two modes (ModelArgs::index_fp8):
//   index_fp8 = true (the default; the official V3.2 inference code, Indexer.forward):
//     q^I, k^I  ← rotate_activation: x · H_{d_I} / √d_I (Sylvester Hadamard, hadamard_rotate in ops/nn.h)
//     q^I, k^I  ← act_quant(·, 128, scale_fmt): E4M3 codes + one f32 scale per 1×128 tile of each head
//                 vector (amax/448, amax floored at 1e-4; ue8m0: rounded up to a power of two) — ops/cpu/fp8_quant.h
//     I[b,s,t]  = Σ_j w[b,s,j] · ReLU(Σ_tiles q_scale · k_scale · Σ_d e4m3(q) · e4m3(k))  (f32 dot; ops/cpu/fp8_index.h)
//     The key cache holds the E4M3 codes of k^I and their scales (the official k_cache + k_scale_cache).
//     Needs d_I a power of two (the rotation); then d_I <= 128 is one tile and d_I > 128 is d_I/128 full
//     tiles, each with its own scale, summed before the ReLU. Runs for f32 and f64 models alike: q, k, w are
//     rounded to f32 first (the kernels are f32) and I comes back in the model's dtype.
//     The rotation is orthonormal, so the only change from the exact score is the E4M3 rounding of q and k
//     (about 2^-4 relative per element), which can change which tokens win near the k-th score.
//   index_fp8 = false: the plain fp32 (model-dtype) score above — no rotation, no quantization, an fp32 key
//     cache. Not an official path: it is the exact reference, and what the gradchecks and the selection-
//     exact tests use.
// Training with index_fp8: top-k has no gradient and the fp8 score has none either, so the indexer's KL
// losses use the DIFFERENTIABLE score Indexer::loss_scores: the same formula in the model's dtype on the
// ROTATED q^I, k^I without quantization (= the fp32 score up to rounding, the rotation being orthonormal).
// The SELECTION always uses Indexer::scores (fp8 in this mode). So the loss measures the fp32 score of the
// keys the fp8 score selected; no straight-through estimator. (With index_fp8 = false both are one tensor.)
//
// DSA = MLA + Indexer (MLA's parameters keep their names attn.wq_a ... attn.wo; the indexer's are
// attn.indexer.*). The main attention runs in absorbed ("MQA") form over the SELECTED entries only:
//   c_sel, k_pe_sel = the latents / rope keys of the selected slots, gathered per query   [B,S,k,r_kv], [B,S,k,dr]
//   q̃ = W_UKᵀ q_nope [B,S,H,r_kv];  scores = (q̃·c_sel + q_pe·k_pe_sel)·softmax_scale + slot mask   [B,S,H,k]
//   p = softmax over the k slots;   ō = Σ_j p_j c_sel,j [B,S,H,r_kv];   o = W_UV ō;   out = wo(o)
// — MLA's own projection and absorbed core (MLA::project, MLA::absorbed_attention in its per-query form, with
// the gathered rows [c | k_pe] as keys); DSA adds only the selection and the gather —
// so the main attention costs O(S·k), not O(S·T) (the indexer stays O(S·T), with H_I·d_I ≪ H·(2 r_kv + dr)
// multiply-adds per pair). A slot is in use when its index is ≥ 0 and the key is not in the query's
// future; unused slots (−1, when fewer than k keys are causal) get −inf before the softmax. With k ≥ T
// this is dense MLA exactly (a permutation of the same keys). Differentiable w.r.t. x and MLA's weights
// through the gathers (index_select), the softmax over k and the weighted sum; the selection itself is a
// constant (top-k has no gradient), so the indexer learns only from its own loss:
//   dense warm-up   L_I = Σ_t KL(p_t ‖ softmax(I_t)),   p_t = dense attention probabilities Σ_h p_{h,t}, L1-normalised
//   sparse stage    the same restricted to the selected set S_t (both distributions renormalised over S_t)
// In both, p_t is a detached target and the indexer sees x.detach(), qr.detach(): gradients reach only
// attn.indexer.*.
//
// Key slots. Without a cache the keys are this call's S tokens: slot t = position start_pos + t. With a
// cache the keys are the cached positions [0, start_pos + S): slot t = position t. Index tensors hold slots.
// Caches: DSACache = MLA's absorbed cache (one buffer kv [B,Smax,r_kv+dr], rows [c | k_pe]) + the indexer's key
// cache (fp8: k_cache [B,Smax,d_I] f8e4m3 codes of the rotated k^I + k_scale_cache [B,Smax,ceil(d_I/128)] f32;
// fp32: k_cache [B,Smax,d_I] of the model dtype, k^I after k_norm and RoPE). Quantization is per token, so
// decoding token by token writes the same codes and scales as a prefill. Written under NoGradGuard; read as in mla.h (grad off: views of
// the cache, no copy; grad on: cat(cached past as constants, this step)).
#pragma once
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "autograd/rng.h"
#include "models/config.h"
#include "models/layers.h"
#include "models/mla.h"
#include "models/module.h"

namespace sg {

// y = (x − mean) / sqrt(var + eps) ⊙ weight + bias over the last dim (the indexer's k_norm; the only module
// of V3.2 with a bias). weight = 1, bias = 0 at initialisation.
struct LayerNorm : Module {
  Tensor weight, bias;  // [dim]
  double eps = 1e-6;
  LayerNorm() = default;
  explicit LayerNorm(int64_t dim, double eps = 1e-6, DType dtype = DType::f32);
  Tensor forward(const Tensor& x) const;
  void parameters(const std::string& prefix, NamedParameters& out) override {
    add_parameter(out, join_name(prefix, "weight"), weight, ParamKind::norm);
    add_parameter(out, join_name(prefix, "bias"), bias, ParamKind::bias);
  }
};

struct IndexerCache {
  int64_t max_batch_size = 0, max_seq_len = 0;
  bool fp8 = false;       // args.index_fp8
  Tensor k_cache;        // [max_batch_size, max_seq_len, d_I]: fp8: f8e4m3 codes of the rotated k^I; else k^I (dtype)
  Tensor k_scale_cache;  // fp8 only: [max_batch_size, max_seq_len, ceil(d_I/128)] f32 act_quant scales

  IndexerCache() = default;
  // dtype: the fp32 cache's dtype (the model's); the fp8 cache is f8e4m3 + f32 whatever the model's dtype.
  IndexerCache(const ModelArgs& args, int64_t max_batch_size, int64_t max_seq_len, DType dtype = DType::f32,
               Device device = Device::CPU);
  // per layer and sequence: fp8: d_I × 1 + ceil(d_I/128) × 4 bytes; fp32: d_I × the element size
  int64_t bytes_per_token() const;
};

struct Indexer : Module {
  static constexpr int64_t kQuantBlock = 128;  // act_quant's tile width (official block_size)
  int64_t dim = 0, n_heads = 0, head_dim = 0, rope_head_dim = 0, index_topk = 0, q_lora_rank = 0;
  bool fp8 = true;      // args.index_fp8: rotation + E4M3 + the fp8 score (see the top of this file)
  bool ue8m0 = false;   // args.scale_fmt == "ue8m0": power-of-two act_quant scales

  Linear wq_b;          // [H_I·d_I, r_q]
  Linear wk;            // [d_I, dim]
  LayerNorm k_norm;     // (d_I), eps 1e-6
  Linear weights_proj;  // [H_I, dim]

  Indexer() = default;
  Indexer(const ModelArgs& args, Rng& rng, DType dtype = DType::f32);

  // The SELECTION score I [B,S,T] (see the top of this file), −inf where a key lies in the query's future.
  // x [B,S,dim], qr [B,S,r_q]; positions start_pos + s. With a cache, this step's k^I is written at
  // [start_pos, start_pos+S) and T = start_pos + S; without, T = S. fp8: computed outside the tape (a
  // constant, no history); fp32: on the tape like any op.
  Tensor scores(const Tensor& x, const Tensor& qr, int64_t start_pos, const RopeTable& rope,
                IndexerCache* cache = nullptr) const;
  // The DIFFERENTIABLE score the KL losses train (on the tape): fp32 mode = scores(); fp8 mode = the score of
  // the rotated, unquantized q^I, k^I in the model's dtype. fp8 mode takes no cache (the cache holds E4M3
  // codes, not the keys this needs): an error names it.
  Tensor loss_scores(const Tensor& x, const Tensor& qr, int64_t start_pos, const RopeTable& rope,
                     IndexerCache* cache = nullptr) const;
  // scores(...) then select_topk(·, index_topk): [B,S,min(index_topk, T)] i64 key slots.
  Tensor forward(const Tensor& x, const Tensor& qr, int64_t start_pos, const RopeTable& rope,
                 IndexerCache* cache = nullptr) const;

  void parameters(const std::string& prefix, NamedParameters& out) override;
  std::string describe() const;  // "Indexer(dim 16, H_I 2, d_I 8, dr 4, topk 3, r_q 8, fp8 ue8m0)"

 private:
  Tensor compute_scores(const Tensor& x, const Tensor& qr, int64_t start_pos, const RopeTable& rope,
                        IndexerCache* cache, bool differentiable) const;
};

// Per query row of `index_scores` [B,S,T]: the slots of the min(k, T) largest scores, best first (ties: the
// lower slot), as [B,S,min(k,T)] i64; a slot whose score is −inf (a future key) is written as −1. No gradient.
Tensor select_topk(const Tensor& index_scores, int64_t k);

struct DSACache {
  MLACache mla;          // absorbed layout: kv [B,Smax,r_kv+dr], rows [c | k_pe]
  IndexerCache indexer;  // fp8: k_cache [B,Smax,d_I] f8e4m3 + k_scale_cache [B,Smax,nb] f32; fp32: k_cache [B,Smax,d_I]

  DSACache() = default;
  DSACache(const ModelArgs& args, int64_t max_batch_size, int64_t max_seq_len, DType dtype = DType::f32,
           Device device = Device::CPU);
  int64_t bytes_per_token() const;  // MLA's (r_kv + dr) × the element size + the indexer's, per layer and sequence
};

// What one DSA forward computed: the output and what the losses, the tests and the chapter look at.
struct DSAStep {
  Tensor out;           // [B,S,dim]
  Tensor qr;            // [B,S,r_q]  q_norm(wq_a(x)), shared by the main attention and the indexer
  Tensor index_scores;  // I [B,S,T] the selection used (Indexer::scores); fp32 mode with indexer_grad: on the tape
  Tensor loss_scores;   // indexer_grad only: Indexer::loss_scores [B,S,T] on the tape (fp32 mode: = index_scores)
  Tensor indices;       // [B,S,k] i64 selected key slots, best first; −1 = unused slot
  Tensor probs;         // [B,S,H,k] main attention probabilities over the slots (0 in unused slots), no history
  int64_t key_start = 0;                  // position of key slot 0 (start_pos without a cache, 0 with one)
  int64_t attended = 0;                   // Σ over queries of slots in use = Σ_s min(k, causal keys of s)
  std::vector<int64_t> attended_per_query;  // [B·S], row-major (b, s)
};

struct DSA : Module {
  MLA mla;          // the main attention (absorbed math); its parameters are listed without a "mla." level
  Indexer indexer;  // "indexer.*"
  int64_t index_topk = 0;

  DSA() = default;
  // Needs q_lora_rank > 0 (the indexer reads MLA's q latent), index_n_heads > 0, index_topk > 0 and
  // qk_rope_head_dim <= index_head_dim.
  DSA(const ModelArgs& args, Rng& rng, DType dtype = DType::f32);

  // x [B,S,dim] -> [B,S,dim]; positions start_pos + s; cache may be null (then the keys are x's S tokens).
  Tensor forward(const Tensor& x, int64_t start_pos, const RopeTable& rope, DSACache* cache = nullptr) const;
  // The same, keeping everything. indexer_grad: also compute the differentiable score (loss_scores) on the
  // tape from x.detach(), qr.detach() (for indexer_sparse_loss); otherwise I is computed under NoGradGuard.
  // fp8 mode: indexer_grad with a cache is an error (Indexer::loss_scores).
  DSAStep forward_step(const Tensor& x, int64_t start_pos, const RopeTable& rope, DSACache* cache = nullptr,
                       bool indexer_grad = false) const;
  // The main attention over a GIVEN selection indices [B,S,k] (i32/i64 key slots, −1 = unused): the
  // indexer does not run. For checking gradients with the selection held fixed. cache: MLA's absorbed cache.
  DSAStep forward_selected(const Tensor& x, int64_t start_pos, const RopeTable& rope, const Tensor& indices,
                           MLACache* cache = nullptr) const;

  void parameters(const std::string& prefix, NamedParameters& out) override;
  std::string describe() const;
};

// ---- the dense attention the indexer is trained to imitate --------------------------------------------
// Dense (causal, no cache) MLA attention probabilities [B,H,S,S] of `mla` for x: MLA::absorbed_attention's
// composite path — the same numbers MLA::forward mixes the latents with. Recorded on the tape like any op (wrap in NoGradGuard for a target).
Tensor mla_attention_probs(const MLA& mla, const Tensor& x, int64_t start_pos, const RopeTable& rope);
// p_t = Σ_h probs[b,h,s,:] L1-normalised: [B,H,S,T] -> [B,S,T], no history.
Tensor attention_target(const Tensor& probs_bhst);

// ---- the indexer's losses (models/README.md §9); summed over every query of every sequence ---------------
// Σ_{b,s} KL(target[b,s,:] ‖ softmax(scores[b,s,:])) with entries where scores = −inf left out of both
// (target must be 0 there). scores [B,S,N] on the tape, target [B,S,N] a constant whose rows sum to 1.
Tensor indexer_kl_loss(const Tensor& scores, const Tensor& target);
// Dense warm-up: target = attention_target(mla_attention_probs(·)) under NoGradGuard (the model frozen),
// I = indexer.loss_scores(x.detach(), qr.detach()) on the tape. Gradients reach only attn.indexer.*.
Tensor indexer_warmup_loss(const DSA& dsa, const Tensor& x, int64_t start_pos, const RopeTable& rope);
// Sparse stage over a fixed selection: scores [B,S,T] on the tape (loss_scores), indices [B,S,k], probs [B,S,H,k] the
// main attention over those slots. KL(p_{S_t} ‖ softmax(I_{S_t})), both renormalised over the slots in use.
Tensor indexer_sparse_kl(const Tensor& index_scores, const Tensor& indices, const Tensor& probs);
// The same from a forward_step(..., indexer_grad = true): the model learns from the LM loss through
// step.out, the indexer from this.
Tensor indexer_sparse_loss(const DSAStep& step);

// ---- the two training stages of V3.2 (models/README.md §9), one DSA block at a time -------------------------------
//   dense_warmup  (stage 1) out = DENSE MLA attention (on the tape as usual: the trainer freezes the main model by
//                 not stepping it); indexer_loss = KL(p_t ‖ softmax(I_t)), p_t = the dense probabilities of this
//                 same forward summed over heads and L1-normalised (a detached target), I from x.detach(),
//                 qr.detach().
//   sparse        (stage 2) out = the sparse DSA output (top-k active, on the tape: the LM loss trains the main
//                 model through it); indexer_loss = the KL restricted to the selected set S_t, both renormalised
//                 over S_t (indexer_sparse_kl), I again from detached inputs.
// In both stages indexer_loss reaches only attn.indexer.* and is the MEAN over the B·S queries: the paper sums
// over queries; the mean keeps the loss weight independent of batch size and sequence length.
// recall (measure_recall, else NaN): indexer_recall of the indexer's selection against the dense attention
// (in the sparse stage the dense probabilities are computed once more for it, under NoGradGuard). No cache:
// key slot t = position start_pos + t.
enum class DSAStage { dense_warmup, sparse };
const char* dsa_stage_name(DSAStage stage);  // "dense_warmup" / "sparse"

struct DSATrainStep {
  Tensor out;           // [B,S,dim]
  Tensor indexer_loss;  // scalar
  double recall = NAN;
};

DSATrainStep dsa_train_forward(const DSA& dsa, const Tensor& x, int64_t start_pos, const RopeTable& rope,
                               DSAStage stage, bool measure_recall);

// How much of the dense attention's top keys the selection holds. indices [B,S,k] key slots (−1 unused, as
// select_topk writes them), target_bst [B,S,T] the dense p_t (attention_target). Per query with m > 0 slots in
// use (select_topk leaves m = min(k, causal keys)): |sel ∩ dense_top_m| / m, dense_top_m = the m largest
// p_t (ties: the lower slot); the mean over those queries (NaN if there are none).
double indexer_recall(const Tensor& indices, const Tensor& target_bst);

}  // namespace sg
