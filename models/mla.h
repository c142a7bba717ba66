// models/mla.h — Multi-head Latent Attention (models/README.md §4), the attention of DeepSeek-V2/V3, with
// both of its equivalent computations and their KV caches.
//
// Parameters (official names; HF names in weights.h):
//   q path   q_lora_rank == 0: wq [H(dn+dr), d]
//            q_lora_rank  > 0: wq_a [r_q, d] -> q_norm RMSNorm(r_q) -> wq_b [H(dn+dr), r_q]
//   kv path  wkv_a [r_kv + dr, d]: rows [0, r_kv) = latent c (-> kv_norm), rows [r_kv, r_kv+dr) = the ONE
//            rope key k_pe shared by all heads;  wkv_b [H(dn+dv), r_kv], per head h: dn rows W_UK,h then dv
//            rows W_UV,h;  wo [d, H·dv]
// Shapes for x [B,S,d], T = keys seen (start_pos + S with a cache, S without):
//   q [B,S,H,dn+dr] = [q_nope | q_pe]   c [B,S,r_kv]   k_pe [B,S,dr]   scores/probs [B,H,S,T]
//
//   MLAMode::naive     "MHA mode": [k_nope | v] = wkv_b(c) per head, k = [k_nope ; k_pe], q = [q_nope ; q_pe],
//                      p = softmax(q·kᵀ·scale + mask), o = p·v.  Cache: k [B,Smax,H,dn+dr], v [B,Smax,H,dv].
//   MLAMode::absorbed  "MQA mode" (official default): W_UK is folded into the query, W_UV into the output:
//                      q̃ = W_UKᵀ q_nope [B,H,S,r_kv], scores = q̃·c_t + q_pe·k_pe_t, ō = Σ_t p c_t,
//                      o = W_UV ō.  Cache: ONE buffer kv [B,Smax,r_kv+dr] whose row t is [c_t | k_pe_t]
//                      (normalised latent, then the rotated rope key): r_kv + dr values per token per layer.
// RoPE (interleaved pairs) rotates the last dr dims of every q head and k_pe, at positions start_pos + s.
// Causal mask: −inf where key position > query position, only when S > 1. Softmax in x's dtype (fp32).
// Packed sequences (segment_ids, optional, [B, T] i64 with one id per KEY: T = S without a cache,
// start_pos + S with one): query p also sees only the keys of its own segment (ops/attention.h — each id
// one contiguous run of positions). Both modes: the fused kernel takes the ids, the composite adds them to
// its additive mask. RoPE stays at the absolute positions start_pos + s: being relative, it gives a
// sequence packed at [a, a + L) the same attention as alone at [0, L), so no position reset is needed (up to
// the float32 rounding of the rope table's angles p·f_i: ~1e-7 relative; tests/models/test_mla.cpp).
// The attention core (scores, mask, softmax, weighted sum) runs in the fused kernel of ops/attention.h,
// which never builds scores/probs: naive mode as MHA (D = dn+dr, Dv = dv), absorbed mode as MQA (one kv
// head: k = [c ; k_pe], v = c). With SEEKGRAD_NAIVE=1 it runs the composite written out in mla.cpp
// (matmul, mask, softmax, matmul) — the same numbers, tested against each other.
//
// The cache is preallocated (as in the official code) and written under NoGradGuard. Reading it:
//   * grad mode off (decoding): attend straight over the cache view [0, start_pos + S) — no copy. In
//     absorbed mode the fused kernel reads the keys [c | k_pe] and the values c (the first r_kv columns)
//     as two views of the one buffer, so a decode step allocates only this step's S rows.
//   * grad mode on: keys = cat(cache[0, start_pos) as constants, this step's k/c in the graph), so the
//     current step stays differentiable (a prefill through the cache has the same graph as no cache).
// Without a cache (cache == nullptr) the forward attends over its own S tokens and is differentiable in
// both modes w.r.t. x and every weight.
//
// The absorbed path is two public steps, which DSA (models/dsa.h) calls too instead of re-deriving them:
//   project(x)                      -> MLAProjection {qr, q_nope, q_pe, c, k_pe}
//   absorbed_attention(P, keys, ...) -> the block output over the given key rows [c | k_pe]: all of them
//                                      (dense MLA, causal) or a per-query selection (DSA's top-k, slot mask).
#pragma once
#include <cstdint>
#include <string>

#include "autograd/rng.h"
#include "models/config.h"
#include "models/layers.h"
#include "models/module.h"

namespace sg {

enum class MLAMode { naive, absorbed };
const char* mla_mode_name(MLAMode mode);  // "naive" / "absorbed"

// Values (not bytes) one token adds to one layer's cache: naive H(dn+dr+dv), absorbed r_kv + dr.
int64_t mla_cache_values_per_token(const ModelArgs& args, MLAMode mode);

struct MLACache {
  MLAMode mode = MLAMode::absorbed;
  int64_t max_batch_size = 0, max_seq_len = 0;
  int64_t kv_lora_rank = 0;  // absorbed: where k_pe starts in a row of kv
  Tensor k_cache;  // naive:    [max_batch_size, max_seq_len, H, dn+dr]
  Tensor v_cache;  // naive:    [max_batch_size, max_seq_len, H, dv]
  Tensor kv;       // absorbed: [max_batch_size, max_seq_len, r_kv + dr], row = [kv_norm(c) | RoPE(k_pe)]

  MLACache() = default;
  // Zero-filled buffers for the mode's layout (the other mode's tensors stay undefined).
  MLACache(const ModelArgs& args, MLAMode mode, int64_t max_batch_size, int64_t max_seq_len, DType dtype = DType::f32,
           Device device = Device::CPU);
  int64_t values_per_token() const;  // per layer, per sequence
  int64_t bytes_per_token() const;   // values_per_token × the element size
  int64_t bytes() const;             // everything allocated
};

// What MLA computes from x before attending (positions start_pos + s), shared with DSA.
struct MLAProjection {
  Tensor qr;      // [B,S,r_q]   q_norm(wq_a(x)) when q_lora_rank > 0 (DSA's indexer reads it), else undefined
  Tensor q_nope;  // [B,S,H,dn]
  Tensor q_pe;    // [B,S,H,dr]  RoPE'd: the LAST dr dims of each head of wq(x) / wq_b(qr)
  Tensor c;       // [B,S,r_kv]  kv_norm(first r_kv dims of wkv_a(x))
  Tensor k_pe;    // [B,S,dr]    RoPE'd last dr dims of wkv_a(x), one rope key shared by all heads
  // [c | k_pe] [B,S,r_kv+dr]: the rows the absorbed cache stores and absorbed_attention reads.
  Tensor latent_rows() const;
};

// What absorbed_attention returns.
struct MLAAttention {
  Tensor out;    // [B,S,dim] = wo(W_UV ō)
  Tensor probs;  // [B,S,H,N] softmax over each query's N keys, on the tape; only when keep_probs
};

struct MLA : Module {
  int64_t dim = 0, n_heads = 0, q_lora_rank = 0, kv_lora_rank = 0;
  int64_t qk_nope_head_dim = 0, qk_rope_head_dim = 0, qk_head_dim = 0, v_head_dim = 0;
  double softmax_scale = 1.0;  // ModelArgs::softmax_scale(): (dn+dr)^-1/2, YaRN m² when active

  Linear wq;                // q_lora_rank == 0
  Linear wq_a;              // q_lora_rank > 0
  RMSNorm q_norm;           //   "
  Linear wq_b;              //   "
  Linear wkv_a;
  RMSNorm kv_norm;
  Linear wkv_b;
  Linear wo;

  MLA() = default;
  MLA(const ModelArgs& args, Rng& rng, DType dtype = DType::f32);

  // x [B,S,dim] -> [B,S,dim]. Positions start_pos + s. `cache` may be null (full-sequence forward);
  // when given, it must have been made for `mode`, and this step's keys are written at
  // [start_pos, start_pos + S) before attending over [0, start_pos + S).
  // segment_ids (may be undefined: one sequence per row): [B, T] i64, see above.
  Tensor forward(const Tensor& x, int64_t start_pos, const RopeTable& rope, MLACache* cache = nullptr,
                 MLAMode mode = MLAMode::absorbed, const Tensor& segment_ids = Tensor()) const;

  // Step 1 of forward: the queries and this step's latent / rope key. Checks x, the weights and the rope
  // table ("[mla] ..." errors).
  MLAProjection project(const Tensor& x, int64_t start_pos, const RopeTable& rope) const;

  // Step 2 of the absorbed forward, from the projections to the block output. `keys` holds rows [c | k_pe]
  // (r_kv + dr wide, e.g. views of an MLACache's kv) in one of two forms:
  //   [B,T,r_kv+dr]    every query reads the same T keys; key t sits at position key_start + t, query s at
  //                    start_pos + s, and the causal mask hides the future (S > 1). slot_mask undefined.
  //                    Runs the fused kernel (ops/attention.h) unless SEEKGRAD_NAIVE or keep_probs.
  //   [B,S,N,r_kv+dr]  query s reads its own N keys (DSA's gathered top-k); slot_mask [B,S,1,N] (0 = in use,
  //                    −inf = unused) decides, key_start / start_pos are not used. Composite ops.
  //   q̃ = W_UKᵀ q_nope;  scores = (q̃·c + q_pe·k_pe)·softmax_scale + mask;  p = softmax;  ō = Σ p c;
  //   out = wo(W_UV ō).   keep_probs: also return p (forces the composite path in the first form).
  //   segment_ids [B, T] i64 (first form only; undefined = one sequence): key t's segment; query s has the
  //   segment of key start_pos − key_start + s and sees only keys of that segment.
  MLAAttention absorbed_attention(const MLAProjection& p, const Tensor& keys, int64_t key_start, int64_t start_pos,
                                  const Tensor& slot_mask = Tensor(), bool keep_probs = false,
                                  const Tensor& segment_ids = Tensor()) const;

  void parameters(const std::string& prefix, NamedParameters& out) override;
  // "MLA(dim 128, n_heads 4, q_lora_rank 0, kv_lora_rank 32, dn 32, dr 16, dv 32)" — used in errors.
  std::string describe() const;

 private:
  Tensor forward_naive(const MLAProjection& p, int64_t start_pos, MLACache* cache,
                       const Tensor& segment_ids) const;  // o [B,S,H·dv]
  // "[mla] ... segment_ids ... must be an i64 tensor [B, T] = ..." unless undefined or [B, T] i64.
  void check_segment_ids(const Tensor& segment_ids, int64_t B, int64_t T, const std::string& keys) const;
  void check_weights() const;
  [[noreturn]] void fail(const std::string& message) const;
};

}  // namespace sg
