// models/mla.cpp — see mla.h. Every step is built from differentiable ops (linear, views, cat, matmul,
// softmax, rope), so backward() reaches x and every weight in both modes; the only thing outside the
// tape is the write into a preallocated cache.
#include "models/mla.h"

#include <limits>
#include <stdexcept>
#include <vector>

#include "autograd/node.h"
#include "ops/attention.h"
#include "ops/cpu/copy.h"
#include "ops/cpu/runtime.h"
#include "ops/dispatch.h"
#include "ops/ops.h"
#include "models/kv_cache.h"

namespace sg {

const char* mla_mode_name(MLAMode mode) { return mode == MLAMode::naive ? "naive" : "absorbed"; }

int64_t mla_cache_values_per_token(const ModelArgs& a, MLAMode mode) {
  if (mode == MLAMode::naive) return a.n_heads * (a.qk_nope_head_dim + a.qk_rope_head_dim + a.v_head_dim);
  return a.kv_lora_rank + a.qk_rope_head_dim;
}

// ---- the cache ---------------------------------------------------------------------------------

MLACache::MLACache(const ModelArgs& a, MLAMode mode_, int64_t max_batch_size_, int64_t max_seq_len_, DType dtype,
                   Device device)
    : mode(mode_), max_batch_size(max_batch_size_), max_seq_len(max_seq_len_) {
  if (max_batch_size <= 0 || max_seq_len <= 0)
    throw std::runtime_error("[mla] MLACache needs max_batch_size and max_seq_len > 0, got " +
                             std::to_string(max_batch_size) + " and " + std::to_string(max_seq_len));
  if (mode == MLAMode::naive) {
    k_cache = Tensor::zeros({max_batch_size, max_seq_len, a.n_heads, a.qk_head_dim()}, dtype, device);
    v_cache = Tensor::zeros({max_batch_size, max_seq_len, a.n_heads, a.v_head_dim}, dtype, device);
  } else {
    kv_lora_rank = a.kv_lora_rank;
    kv = Tensor::zeros({max_batch_size, max_seq_len, a.kv_lora_rank + a.qk_rope_head_dim}, dtype, device);
  }
}

int64_t MLACache::values_per_token() const {
  if (mode == MLAMode::absorbed) return kv.defined() ? kv.size(2) : 0;
  if (!k_cache.defined()) return 0;
  return (k_cache.numel() + v_cache.numel()) / (max_batch_size * max_seq_len);
}

int64_t MLACache::bytes_per_token() const {
  const Tensor& a = mode == MLAMode::naive ? k_cache : kv;
  return a.defined() ? values_per_token() * (int64_t)dtype_size(a.dtype()) : 0;
}

Tensor MLAProjection::latent_rows() const { return cat({c, k_pe}, -1); }

int64_t MLACache::bytes() const { return bytes_per_token() * max_batch_size * max_seq_len; }

// Additive attention mask of the composite paths (built on the host; the callers move it to the scores'
// device): −inf where key position key_start + t > query position start_pos + s. Without segment ids: [S, T]. With segment ids seg [B, T] (one per key; the query at
// position p has seg[b, p − key_start]): [B, 1, S, T], also −inf where the two ids differ.
static Tensor attention_mask(int64_t S, int64_t T, int64_t key_start, int64_t start_pos, const Tensor& seg, DType dtype) {
  const int64_t B = seg.defined() ? seg.size(0) : 1;
  Tensor mask = seg.defined() ? Tensor::zeros({B, 1, S, T}, dtype) : Tensor::zeros({S, T}, dtype);
  const std::vector<int64_t> ids = seg.defined() ? seg.to_i64_vector() : std::vector<int64_t>();
  dispatch_float(dtype, "mla", [&]<class T_>() {
    T_* m = mask.data<T_>();
    for (int64_t b = 0; b < B; b++)
      for (int64_t s = 0; s < S; s++)
        for (int64_t t = 0; t < T; t++) {
          bool hidden = key_start + t > start_pos + s;
          if (seg.defined()) hidden = hidden || ids[b * T + t] != ids[b * T + start_pos - key_start + s];
          if (hidden) m[(b * S + s) * T + t] = -std::numeric_limits<T_>::infinity();
        }
  });
  return mask;
}

void MLA::check_segment_ids(const Tensor& segment_ids, int64_t B, int64_t T, const std::string& keys) const {
  if (!segment_ids.defined()) return;
  if (segment_ids.dtype() != DType::i64 || segment_ids.shape() != Shape{B, T})
    fail("segment_ids " + segment_ids.describe() + " must be an i64 tensor [B, T] = " + shape_str({B, T}) +
         ", one segment id per key (" + keys + ")");
}

// ---- the module --------------------------------------------------------------------------------

MLA::MLA(const ModelArgs& a, Rng& rng, DType dtype)
    : dim(a.dim),
      n_heads(a.n_heads),
      q_lora_rank(a.q_lora_rank),
      kv_lora_rank(a.kv_lora_rank),
      qk_nope_head_dim(a.qk_nope_head_dim),
      qk_rope_head_dim(a.qk_rope_head_dim),
      qk_head_dim(a.qk_head_dim()),
      v_head_dim(a.v_head_dim),
      softmax_scale(a.softmax_scale()) {
  if (qk_rope_head_dim % 2 != 0) fail("qk_rope_head_dim must be even (RoPE rotates pairs)");
  if (q_lora_rank == 0) {
    wq = Linear(dim, n_heads * qk_head_dim, rng, 0.0, dtype);
  } else {
    wq_a = Linear(dim, q_lora_rank, rng, 0.0, dtype);
    q_norm = RMSNorm(q_lora_rank, a.rms_norm_eps, dtype);
    wq_b = Linear(q_lora_rank, n_heads * qk_head_dim, rng, 0.0, dtype);
  }
  wkv_a = Linear(dim, kv_lora_rank + qk_rope_head_dim, rng, 0.0, dtype);
  kv_norm = RMSNorm(kv_lora_rank, a.rms_norm_eps, dtype);
  wkv_b = Linear(kv_lora_rank, n_heads * (qk_nope_head_dim + v_head_dim), rng, 0.0, dtype);
  wo = Linear(n_heads * v_head_dim, dim, rng, 0.0, dtype);
}

void MLA::parameters(const std::string& prefix, NamedParameters& out) {
  if (q_lora_rank == 0) {
    wq.parameters(join_name(prefix, "wq"), out);
  } else {
    wq_a.parameters(join_name(prefix, "wq_a"), out);
    q_norm.parameters(join_name(prefix, "q_norm"), out);
    wq_b.parameters(join_name(prefix, "wq_b"), out);
  }
  wkv_a.parameters(join_name(prefix, "wkv_a"), out);
  kv_norm.parameters(join_name(prefix, "kv_norm"), out);
  wkv_b.parameters(join_name(prefix, "wkv_b"), out);
  wo.parameters(join_name(prefix, "wo"), out);
}

std::string MLA::describe() const {
  return "MLA(dim " + std::to_string(dim) + ", n_heads " + std::to_string(n_heads) + ", q_lora_rank " +
         std::to_string(q_lora_rank) + ", kv_lora_rank " + std::to_string(kv_lora_rank) + ", dn " +
         std::to_string(qk_nope_head_dim) + ", dr " + std::to_string(qk_rope_head_dim) + ", dv " +
         std::to_string(v_head_dim) + ")";
}

// "[mla] layers.0.attn MLA(dim 16, ...): <message>" — the scope names which layer, describe() the sizes.
void MLA::fail(const std::string& message) const {
  std::string scope = current_scope();
  throw std::runtime_error("[mla] " + (scope.empty() ? "" : scope + " ") + describe() + ": " + message);
}

void MLA::check_weights() const {
  auto check = [&](const char* name, const Tensor& w, Shape want) {
    if (!w.defined()) fail(std::string(name) + " is undefined");
    if (w.shape() != want)
      fail(std::string(name) + " " + w.describe() + " should have shape " + shape_str(want));
  };
  if (q_lora_rank == 0) {
    check("wq.weight", wq.weight, {n_heads * qk_head_dim, dim});
  } else {
    check("wq_a.weight", wq_a.weight, {q_lora_rank, dim});
    check("q_norm.weight", q_norm.weight, {q_lora_rank});
    check("wq_b.weight", wq_b.weight, {n_heads * qk_head_dim, q_lora_rank});
  }
  check("wkv_a.weight", wkv_a.weight, {kv_lora_rank + qk_rope_head_dim, dim});
  check("kv_norm.weight", kv_norm.weight, {kv_lora_rank});
  check("wkv_b.weight", wkv_b.weight, {n_heads * (qk_nope_head_dim + v_head_dim), kv_lora_rank});
  check("wo.weight", wo.weight, {dim, n_heads * v_head_dim});
}

MLAProjection MLA::project(const Tensor& x, int64_t start_pos, const RopeTable& rope_table) const {
  check_weights();
  if (!x.defined() || x.dim() != 3 || x.size(2) != dim)
    fail("x " + (x.defined() ? x.describe() : std::string("(undefined)")) + " must be [B, S, dim = " +
         std::to_string(dim) + "]");
  // kv_norm's weight has the model's compute dtype (a linear's may be FP8 codes of a checkpoint).
  if (x.dtype() != kv_norm.weight.dtype())
    fail("x " + x.describe() + " is " + dtype_name(x.dtype()) + " but the weights are " + dtype_name(kv_norm.weight.dtype()));
  const int64_t B = x.size(0), S = x.size(1), H = n_heads;
  const int64_t dn = qk_nope_head_dim, dr = qk_rope_head_dim, r = kv_lora_rank;
  if (start_pos < 0) fail("start_pos " + std::to_string(start_pos) + " is negative");
  if (!rope_table.cos.defined() || rope_table.cos.dim() != 2 || rope_table.cos.size(1) != dr / 2)
    fail("the rope table cos " + (rope_table.cos.defined() ? rope_table.cos.describe() : std::string("(undefined)")) +
         " must be [max_seq_len, dr/2 = " + std::to_string(dr / 2) + "]");
  if (start_pos + S > rope_table.cos.size(0))
    fail("positions [" + std::to_string(start_pos) + ", " + std::to_string(start_pos + S) + ") of x " + x.describe() +
         " run past the rope table cos " + rope_table.cos.describe());
  Tensor cos = rope_table.cos_at(start_pos, S), sin = rope_table.sin_at(start_pos, S);  // [S, dr/2]
  MLAProjection P;

  // 1. Queries: q [B,S,H,dn+dr] -> q_nope [B,S,H,dn], q_pe [B,S,H,dr] rotated (the LAST dr dims of each head).
  Tensor q;
  if (q_lora_rank == 0) {
    ScopeGuard s("wq");
    q = wq.forward(x);
  } else {
    {
      ScopeGuard s("wq_a");
      P.qr = wq_a.forward(x);
    }
    {
      ScopeGuard s("q_norm");
      P.qr = q_norm.forward(P.qr);
    }
    ScopeGuard s("wq_b");
    q = wq_b.forward(P.qr);
  }
  q = reshape(q, {B, S, H, qk_head_dim});
  P.q_nope = slice(q, -1, 0, dn);
  P.q_pe = rope(slice(q, -1, dn, dn + dr), cos, sin, RopeLayout::interleaved);

  // 2. The compressed kv: wkv_a(x) [B,S,r+dr] -> c = kv_norm(first r) [B,S,r], k_pe = RoPE(last dr) [B,S,dr].
  Tensor kv;
  {
    ScopeGuard s("wkv_a");
    kv = wkv_a.forward(x);
  }
  {
    ScopeGuard s("kv_norm");
    P.c = kv_norm.forward(slice(kv, -1, 0, r));
  }
  P.k_pe = rope(slice(kv, -1, r, r + dr), cos, sin, RopeLayout::interleaved);
  return P;
}

Tensor MLA::forward(const Tensor& x, int64_t start_pos, const RopeTable& rope_table, MLACache* cache, MLAMode mode,
                    const Tensor& segment_ids) const {
  MLAProjection P = project(x, start_pos, rope_table);
  const int64_t B = x.size(0), S = x.size(1), H = n_heads;
  check_segment_ids(segment_ids, B, cache ? start_pos + S : S,
                    cache ? "T = start_pos + S: the cached keys and this step's" : "T = S: this step's tokens");
  const int64_t dn = qk_nope_head_dim, dr = qk_rope_head_dim, r = kv_lora_rank;
  if (cache) {
    if (cache->mode != mode)
      fail(std::string("the cache was made for ") + mla_mode_name(cache->mode) + " mode, forward asked for " +
           mla_mode_name(mode));
    const Tensor& c0 = mode == MLAMode::naive ? cache->k_cache : cache->kv;
    Shape want0 = mode == MLAMode::naive ? Shape{cache->max_batch_size, cache->max_seq_len, H, dn + dr}
                                         : Shape{cache->max_batch_size, cache->max_seq_len, r + dr};
    bool fits = c0.defined() && c0.shape() == want0;
    std::string got = c0.defined() ? c0.describe() : "undefined", want = shape_str(want0);
    if (mode == MLAMode::naive) {
      Shape want1{cache->max_batch_size, cache->max_seq_len, H, v_head_dim};
      fits = fits && cache->v_cache.defined() && cache->v_cache.shape() == want1;
      got += std::string(", ") + (cache->v_cache.defined() ? cache->v_cache.describe() : "undefined");
      want += " and " + shape_str(want1);
    } else {
      fits = fits && cache->kv_lora_rank == r;
    }
    if (!fits)
      fail(std::string("the ") + mla_mode_name(mode) + " cache (" + got + ") does not fit this module, which needs " +
           want);
    if (c0.dtype() != x.dtype()) fail("the cache " + c0.describe() + " and x " + x.describe() + " differ in dtype");
    if (B > cache->max_batch_size)
      fail("x " + x.describe() + " has batch " + std::to_string(B) + " but the cache holds " +
           std::to_string(cache->max_batch_size) + " sequences");
    if (start_pos + S > cache->max_seq_len)
      fail("positions [" + std::to_string(start_pos) + ", " + std::to_string(start_pos + S) + ") of x " + x.describe() +
           " run past the cache's max_seq_len " + std::to_string(cache->max_seq_len));
  }
  if (mode == MLAMode::naive) {
    Tensor o = forward_naive(P, start_pos, cache, segment_ids);
    ScopeGuard s("wo");
    return wo.forward(o);
  }
  // Absorbed: this step's rows [c | k_pe], written into the one cache buffer; the keys are the cached rows
  // [0, start_pos + S) (a view when decoding) or, without a cache, this step's rows.
  Tensor rows = P.latent_rows(), keys = rows;
  int64_t key_start = start_pos;
  if (cache) {
    write_cache_rows(cache->kv, rows, start_pos);
    keys = read_cache_rows(cache->kv, rows, start_pos);
    key_start = 0;
  }
  return absorbed_attention(P, keys, key_start, start_pos, Tensor(), false, segment_ids).out;
}

// Naive ("MHA mode"): materialise every head's key and value from the latent, attend as ordinary MHA.
//   [k_nope | v] = wkv_b(c) [B,S,H,dn+dv];  k = [k_nope ; k_pe broadcast over heads] [B,S,H,dn+dr]
//   scores[b,h,s,t] = (q_h,s · k_h,t)·scale + mask;  o_h,s = Σ_t p[b,h,s,t] v_h,t
// Returns o [B,S,H·dv].
Tensor MLA::forward_naive(const MLAProjection& P, int64_t start_pos, MLACache* cache, const Tensor& segment_ids) const {
  const int64_t B = P.c.size(0), S = P.c.size(1), H = n_heads, dn = qk_nope_head_dim, dr = qk_rope_head_dim,
                dv = v_head_dim;
  Tensor kv;
  {
    ScopeGuard s("wkv_b");
    kv = reshape(wkv_b.forward(P.c), {B, S, H, dn + dv});
  }
  Tensor k_nope = slice(kv, -1, 0, dn), v = slice(kv, -1, dn, dn + dv);
  Tensor k = cat({k_nope, expand(unsqueeze(P.k_pe, 2), {B, S, H, dr})}, -1);  // [B,S,H,dn+dr]
  Tensor q = cat({P.q_nope, P.q_pe}, -1);                                      // [B,S,H,dn+dr]

  Tensor keys = k, values = v;  // [B,T,H,dn+dr], [B,T,H,dv]
  int64_t key_start = start_pos;
  if (cache) {
    write_cache_rows(cache->k_cache, k, start_pos);
    write_cache_rows(cache->v_cache, v, start_pos);
    keys = read_cache_rows(cache->k_cache, k, start_pos);
    values = read_cache_rows(cache->v_cache, v, start_pos);
    key_start = 0;
  }
  const int64_t T = keys.size(1);
  Tensor o;  // [B,H,S,dv]
  if (naive_kernels()) {
    // The composite, every step on the tape: [B,H,S,dn+dr] · [B,H,dn+dr,T] -> scores [B,H,S,T]
    Tensor scores = mul(matmul(permute(q, {0, 2, 1, 3}), permute(keys, {0, 2, 3, 1})), softmax_scale);
    if (S > 1 || segment_ids.defined())
      scores = add(scores, attention_mask(S, T, key_start, start_pos, segment_ids, scores.dtype()).to(scores.device()));
    Tensor p = softmax(scores, -1);
    o = matmul(p, permute(values, {0, 2, 1, 3}));
  } else {
    // The same numbers from the fused kernel (ops/attention.h): MHA with D = dn+dr, Dv = dv. The queries
    // are the last S of the T keys, which is the fused op's default start_pos (T − S); with S = 1 the mask
    // hides nothing, as above. It reads the permuted views in place, never builds [B,H,S,T] and skips the
    // key blocks above the diagonal. Segment ids [B, T] are the op's own (one per key; query s has key T − S + s's).
    o = scaled_dot_product_attention(permute(q, {0, 2, 1, 3}), permute(keys, {0, 2, 1, 3}),
                                     permute(values, {0, 2, 1, 3}), softmax_scale, /*causal=*/true,
                                     /*start_pos=*/std::nullopt, segment_ids);
  }
  return reshape(permute(o, {0, 2, 1, 3}), {B, S, H * dv});
}

// Absorbed ("MQA mode"): never materialise per-head keys or values. With W = wkv_b viewed [H, dn+dv, r]:
//   q̃_h = W_UK,hᵀ q_nope,h                     [B,H,S,r]   (W_UK,h = W[h, 0:dn, :])
//   scores = (q̃_h · c_t + q_pe,h · k_pe,t)·scale + mask      — every head reads the same c_t, k_pe_t
//   ō_h = Σ_t p c_t                            [B,H,S,r]
//   o_h = W_UV,h ō_h                           [B,H,S,dv]  (W_UV,h = W[h, dn:dn+dv, :])
// Same numbers as the naive path: q_nope·(W_UK c) = (W_UKᵀ q_nope)·c and Σ p (W_UV c) = W_UV Σ p c.
MLAAttention MLA::absorbed_attention(const MLAProjection& P, const Tensor& keys, int64_t key_start, int64_t start_pos,
                                     const Tensor& slot_mask, bool keep_probs, const Tensor& segment_ids) const {
  const int64_t B = P.q_nope.size(0), S = P.q_nope.size(1), H = n_heads, dn = qk_nope_head_dim,
                dr = qk_rope_head_dim, dv = v_head_dim, r = kv_lora_rank;
  const bool shared = keys.defined() && keys.dim() == 3;  // [B,T,r+dr]: every query reads the same keys
  if (!keys.defined() || (keys.dim() != 3 && keys.dim() != 4) || keys.size(0) != B || keys.size(-1) != r + dr ||
      (keys.dim() == 4 && keys.size(1) != S))
    fail("absorbed_attention: keys " + (keys.defined() ? keys.describe() : std::string("(undefined)")) +
         " must be [B, T, r_kv + dr] or [B, S, N, r_kv + dr] rows [c | k_pe], with B = " + std::to_string(B) +
         ", S = " + std::to_string(S) + ", r_kv + dr = " + std::to_string(r + dr));
  if (shared && slot_mask.defined()) fail("absorbed_attention: a slot_mask goes with per-query keys [B, S, N, r_kv + dr]");
  if (!shared && (!slot_mask.defined() || slot_mask.shape() != Shape{B, S, 1, keys.size(2)}))
    fail("absorbed_attention: per-query keys " + keys.describe() + " need a slot_mask [B, S, 1, N] = " +
         shape_str({B, S, 1, keys.size(2)}) + ", got " + (slot_mask.defined() ? slot_mask.describe() : "(undefined)"));
  const int64_t N = shared ? keys.size(1) : keys.size(2);  // keys per query
  if (!shared && segment_ids.defined())
    fail("absorbed_attention: segment_ids " + segment_ids.describe() + " go with shared keys [B, T, r_kv + dr], not "
         "per-query keys " + keys.describe());
  if (shared) check_segment_ids(segment_ids, B, N, "T = keys " + keys.describe());
  // The absorbed form reads W itself (not x·Wᵀ): an FP8 wkv_b is dequantized first, as the official code does.
  Tensor W = reshape(wkv_b.dense_weight(), {H, dn + dv, r});
  Tensor W_UK = slice(W, 1, 0, dn);       // [H, dn, r]
  Tensor W_UV = slice(W, 1, dn, dn + dv);  // [H, dv, r]
  // The two column blocks of every key row, as views: latents c [.., r], rope keys k_pe [.., dr].
  Tensor latents = narrow(keys, -1, 0, r), rope_keys = narrow(keys, -1, r, dr);

  Tensor q_abs;  // [B,H,S,r]
  {
    // One GEMM per head over all B·S tokens: [H, B·S, dn]·[H, dn, r] -> [H, B·S, r], seen as [B,H,S,r].
    // (q_nope [B,S,H,dn] is read in place as [H, B·S, dn] rows.)
    ScopeGuard s("wkv_b");
    Tensor q_rows = permute(reshape(P.q_nope, {B * S, H, dn}), {1, 0, 2});
    q_abs = permute(reshape(matmul(q_rows, W_UK), {H, B, S, r}), {1, 0, 2, 3});
  }
  MLAAttention result;
  Tensor o_latent;  // ō [B,H,S,r]
  if (shared && !keep_probs && !naive_kernels()) {
    // The fused kernel (ops/attention.h) as MQA, one kv head read by all H query heads:
    //   q = [q̃ ; q_pe] [B,H,S,r+dr],  k = [c ; k_pe] [B,1,T,r+dr],  v = c [B,1,T,r]
    // gives q̃·c_t + q_pe·k_pe_t as the score, and ō = Σ_t p c_t, with no [B,H,S,T] tensor. k and v are
    // views of the same rows (v = their first r columns): when decoding they are the cache buffer itself.
    // Measured on one bench-small layer (B 8, S 256, H 4, r 64, one core), forward + backward of the whole
    // MLA with the fused core: ~62 -> ~36 ms (the composite's scores, mask, softmax and their backward are gone).
    Tensor q_full = cat({q_abs, permute(P.q_pe, {0, 2, 1, 3})}, -1);
    // Query s sits start_pos − key_start + s keys in: the kernel's causal start_pos.
    o_latent = scaled_dot_product_attention(q_full, unsqueeze(keys, 1), unsqueeze(latents, 1), softmax_scale,
                                            /*causal=*/true, start_pos - key_start, segment_ids);
  } else if (shared) {
    // The composite: [B,H,S,r]·[B,1,r,T] (+ the rope part) -> scores [B,H,S,T], every head against the shared keys.
    Tensor scores = add(matmul(q_abs, unsqueeze(transpose(latents, 1, 2), 1)),
                        matmul(permute(P.q_pe, {0, 2, 1, 3}), unsqueeze(transpose(rope_keys, 1, 2), 1)));
    scores = mul(scores, softmax_scale);
    if (S > 1 || segment_ids.defined())
      scores = add(scores, attention_mask(S, N, key_start, start_pos, segment_ids, scores.dtype()).to(scores.device()));
    Tensor p = softmax(scores, -1);
    o_latent = matmul(p, unsqueeze(latents, 1));  // [B,H,S,T]·[B,1,T,r]
    if (keep_probs) result.probs = permute(p, {0, 2, 1, 3});
  } else {
    // Per-query keys [B,S,N,·]: one [H, r]·[r, N] product per query; the slot mask hides the unused slots.
    Tensor scores = add(matmul(permute(q_abs, {0, 2, 1, 3}), transpose(latents, 2, 3)),  // [B,S,H,N]
                        matmul(P.q_pe, transpose(rope_keys, 2, 3)));
    Tensor mask = slot_mask.dtype() == scores.dtype() ? slot_mask : to_dtype(slot_mask, scores.dtype());
    scores = add(mul(scores, softmax_scale), mask);
    Tensor p = softmax(scores, -1);
    o_latent = permute(matmul(p, latents), {0, 2, 1, 3});  // ō [B,S,H,r] = Σ_j p_j c_j, seen as [B,H,S,r]
    if (keep_probs) result.probs = p;
  }
  Tensor o;
  {
    ScopeGuard s("wkv_b");
    o = matmul(o_latent, transpose(W_UV, 1, 2));  // [B,H,S,r]·[H,r,dv] -> [B,H,S,dv]
  }
  o = reshape(permute(o, {0, 2, 1, 3}), {B, S, H * dv});
  ScopeGuard s("wo");
  result.out = wo.forward(o);
  return result;
}

}  // namespace sg
