// models/attention.cpp — see attention.h. The forward reads top to bottom like the equations:
// project, split heads, rotate, cache, attend, merge heads, project out.
#include "models/attention.h"

#include <cmath>
#include <stdexcept>

#include "ops/attention.h"
#include "ops/cpu/copy.h"
#include "ops/dispatch.h"
#include "ops/ops.h"
#include "models/kv_cache.h"

namespace sg {

const char* attention_kind(int64_t n_heads, int64_t n_kv_heads) {
  if (n_kv_heads == n_heads) return "MHA";
  if (n_kv_heads == 1) return "MQA";
  return "GQA";
}

// ---- the cache ---------------------------------------------------------------------------------

KVCache::KVCache(int64_t max_batch_size_, int64_t max_seq_len_, int64_t n_kv_heads_, int64_t head_dim_, DType dtype,
                 Device device)
    : max_batch_size(max_batch_size_), max_seq_len(max_seq_len_), n_kv_heads(n_kv_heads_), head_dim(head_dim_) {
  k = Tensor::zeros({max_batch_size, max_seq_len, n_kv_heads, head_dim}, dtype, device);
  v = Tensor::zeros({max_batch_size, max_seq_len, n_kv_heads, head_dim}, dtype, device);
}

int64_t KVCache::bytes_per_token() const {
  return 2 * n_kv_heads * head_dim * (int64_t)dtype_size(k.defined() ? k.dtype() : DType::f32);
}
int64_t KVCache::bytes() const { return bytes_per_token() * max_batch_size * max_seq_len; }

// ---- the module --------------------------------------------------------------------------------

Attention::Attention(const ModelArgs& args, Rng& rng, DType dtype, int64_t head_dim_)
    : dim(args.dim), n_heads(args.n_heads), n_kv_heads(args.n_kv_heads > 0 ? args.n_kv_heads : args.n_heads) {
  if (dim <= 0 || n_heads <= 0 || n_kv_heads <= 0)
    throw std::runtime_error("[attention] dim " + std::to_string(dim) + ", n_heads " + std::to_string(n_heads) +
                             ", n_kv_heads " + std::to_string(n_kv_heads) + " must be positive");
  if (n_heads % n_kv_heads != 0)
    throw std::runtime_error("[attention] n_heads " + std::to_string(n_heads) + " is not divisible by n_kv_heads " +
                             std::to_string(n_kv_heads) + " (each kv head serves n_heads / n_kv_heads query heads)");
  if (head_dim_ <= 0) {
    if (dim % n_heads != 0)
      throw std::runtime_error("[attention] dim " + std::to_string(dim) + " is not divisible by n_heads " +
                               std::to_string(n_heads) + "; give head_dim explicitly");
    head_dim_ = dim / n_heads;
  }
  head_dim = head_dim_;
  if (head_dim % 2 != 0)
    throw std::runtime_error("[attention] head_dim " + std::to_string(head_dim) + " is odd; RoPE rotates pairs of dims");
  softmax_scale = 1.0 / std::sqrt((double)head_dim);
  wq = Linear(dim, n_heads * head_dim, rng, 0.0, dtype);
  wk = Linear(dim, n_kv_heads * head_dim, rng, 0.0, dtype);
  wv = Linear(dim, n_kv_heads * head_dim, rng, 0.0, dtype);
  wo = Linear(n_heads * head_dim, dim, rng, 0.0, dtype);
}

std::string Attention::describe() const {
  return std::string(kind()) + "(dim " + std::to_string(dim) + ", n_heads " + std::to_string(n_heads) + ", n_kv_heads " +
         std::to_string(n_kv_heads) + ", head_dim " + std::to_string(head_dim) + ")";
}

void Attention::fail(const std::string& message) const { throw std::runtime_error("[attention] " + describe() + ": " + message); }

void Attention::parameters(const std::string& prefix, NamedParameters& out) {
  wq.parameters(join_name(prefix, "wq"), out);
  wk.parameters(join_name(prefix, "wk"), out);
  wv.parameters(join_name(prefix, "wv"), out);
  wo.parameters(join_name(prefix, "wo"), out);
}

KVCache Attention::make_cache(int64_t max_batch_size, int64_t max_seq_len) const {
  return KVCache(max_batch_size, max_seq_len, n_kv_heads, head_dim, wq.weight.dtype());
}

// The composite twin of the fused op: kv heads expanded to the query heads as views
// ([B,T,Hkv,hd] -> [B,T,Hkv,group,hd] -> [B,T,H,hd] -> [B,H,T,hd]), scores + additive causal mask, softmax.
//   q [B,S,H,hd], keys [B,T,Hkv,hd] -> probabilities [B,H,S,T]
static Tensor repeat_kv_heads(const Tensor& x, int64_t H) {
  int64_t B = x.size(0), T = x.size(1), Hkv = x.size(2), hd = x.size(3);
  return permute(reshape(expand(unsqueeze(x, 3), {B, T, Hkv, H / Hkv, hd}), {B, T, H, hd}), {0, 2, 1, 3});
}
static Tensor composite_probabilities(const Tensor& q, const Tensor& keys, double scale, const Tensor& seg = Tensor()) {
  int64_t B = q.size(0), S = q.size(1), H = q.size(2), T = keys.size(1);
  Tensor scores = mul(matmul(permute(q, {0, 2, 1, 3}), transpose(repeat_kv_heads(keys, H), -2, -1)), scale);
  // −∞ where key t lies after query s's position (T − S) + s; with segment ids seg [B, T] ([B, 1, S, T] mask)
  // also where key t's segment is not query s's
  Tensor mask = seg.defined() ? Tensor::zeros({B, 1, S, T}, q.dtype()) : Tensor::zeros({S, T}, q.dtype());
  for (int64_t b = 0; b < (seg.defined() ? B : 1); b++)
    for (int64_t s = 0; s < S; s++)
      for (int64_t t = 0; t < T; t++) {
        bool hidden = t > T - S + s || (seg.defined() && seg.at({b, t}) != seg.at({b, T - S + s}));
        if (!hidden) continue;
        if (seg.defined()) mask.set_at({b, 0, s, t}, -INFINITY);
        else mask.set_at({s, t}, -INFINITY);
      }
  return softmax(add(scores, mask), -1);
}
//   values [B,T,Hkv,hd] -> o [B,H,S,hd]
static Tensor composite_attention(const Tensor& q, const Tensor& keys, const Tensor& values, double scale,
                                  const Tensor& seg) {
  return matmul(composite_probabilities(q, keys, scale, seg), repeat_kv_heads(values, q.size(2)));
}

void Attention::check_input(const Tensor& x, int64_t start_pos, const RopeTable& rope_table) const {
  if (!x.defined()) fail("x is an undefined tensor");
  if (x.dim() != 3 || x.size(-1) != dim) fail("x " + x.describe() + " must be [B, S, dim] with dim " + std::to_string(dim));
  if (x.dtype() != wq.weight.dtype()) fail("x " + x.describe() + " and wq " + wq.weight.describe() + " differ in dtype");
  const int64_t S = x.size(1), hd = head_dim;
  if (start_pos < 0) fail("start_pos " + std::to_string(start_pos) + " is negative");
  if (!rope_table.cos.defined() || rope_table.cos.size(1) != hd / 2)
    fail("the RopeTable (cos " + (rope_table.cos.defined() ? rope_table.cos.describe() : std::string("undefined")) +
         ") must have width head_dim / 2 = " + std::to_string(hd / 2) + "; build it as RopeTable(args, head_dim)");
  if (start_pos + S > rope_table.cos.size(0))
    fail("positions " + std::to_string(start_pos) + " + S " + std::to_string(S) + " run past the RopeTable's " +
         std::to_string(rope_table.cos.size(0)) + " rows (max_seq_len)");
}

// q [B,S,H,hd] and k [B,S,Hkv,hd], rotated by the angles of positions start_pos .. start_pos + S − 1.
void Attention::project_qk(const Tensor& x, int64_t start_pos, const RopeTable& rope_table, Tensor& q, Tensor& k) const {
  const int64_t B = x.size(0), S = x.size(1);
  q = reshape(wq.forward(x), {B, S, n_heads, head_dim});
  k = reshape(wk.forward(x), {B, S, n_kv_heads, head_dim});
  Tensor cos = rope_table.cos_at(start_pos, S), sin = rope_table.sin_at(start_pos, S);
  q = rope(q, cos, sin, RopeLayout::half_split);
  k = rope(k, cos, sin, RopeLayout::half_split);
}

Tensor Attention::probabilities(const Tensor& x, int64_t start_pos, const RopeTable& rope_table) const {
  check_input(x, start_pos, rope_table);
  Tensor q, k;
  project_qk(x, start_pos, rope_table, q, k);
  return composite_probabilities(q, k, softmax_scale);
}

Tensor Attention::forward(const Tensor& x, int64_t start_pos, const RopeTable& rope_table, KVCache* cache,
                          const Tensor& segment_ids) const {
  check_input(x, start_pos, rope_table);
  const int64_t B = x.size(0), S = x.size(1), H = n_heads, Hkv = n_kv_heads, hd = head_dim;
  if (segment_ids.defined()) {
    const int64_t T = cache ? start_pos + S : S;
    if (segment_ids.dtype() != DType::i64 || segment_ids.shape() != Shape{B, T})
      fail("segment_ids " + segment_ids.describe() + " must be an i64 tensor [B, T] = " + shape_str({B, T}) +
           ", one segment id per key (" + (cache ? "T = start_pos + S: the cached keys and this step's" : "T = S") + ")");
  }

  // project, split heads, rotate q and k (half-split pairs)
  Tensor q, k;
  project_qk(x, start_pos, rope_table, q, k);
  Tensor v = reshape(wv.forward(x), {B, S, Hkv, hd});

  Tensor keys = k, values = v;  // [B, T, Hkv, hd]
  if (cache) {
    Shape want{cache->max_batch_size, cache->max_seq_len, Hkv, hd};
    if (!cache->k.defined() || cache->k.shape() != want || !cache->v.defined() || cache->v.shape() != want)
      fail("the cache (k " + (cache->k.defined() ? cache->k.describe() : std::string("undefined")) +
           ") does not fit this module, which needs k and v of shape " + shape_str(want) +
           " = [max_batch_size, max_seq_len, n_kv_heads, head_dim]");
    if (cache->k.dtype() != x.dtype()) fail("the cache " + cache->k.describe() + " and x " + x.describe() + " differ in dtype");
    if (B > cache->max_batch_size)
      fail("x " + x.describe() + " has batch " + std::to_string(B) + " but the cache holds " +
           std::to_string(cache->max_batch_size) + " sequences");
    if (start_pos + S > cache->max_seq_len)
      fail("positions " + std::to_string(start_pos) + " + S " + std::to_string(S) + " run past the cache's max_seq_len " +
           std::to_string(cache->max_seq_len));
    write_cache_rows(cache->k, k, start_pos);
    write_cache_rows(cache->v, v, start_pos);
    keys = read_cache_rows(cache->k, k, start_pos);
    values = read_cache_rows(cache->v, v, start_pos);
  }

  // attend: query s at key position (T − S) + s sees keys [0, T − S + s]
  Tensor o;  // [B, H, S, hd]
  if (impl == AttentionImpl::fused) {
    int64_t T = keys.size(1);
    o = scaled_dot_product_attention(permute(q, {0, 2, 1, 3}), permute(keys, {0, 2, 1, 3}), permute(values, {0, 2, 1, 3}),
                                     softmax_scale, /*causal=*/true, T - S, segment_ids);
  } else {
    o = composite_attention(q, keys, values, softmax_scale, segment_ids);
  }
  // merge heads and project out
  return wo.forward(reshape(permute(o, {0, 2, 1, 3}), {B, S, H * hd}));
}

}  // namespace sg
