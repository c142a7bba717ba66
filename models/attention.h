// models/attention.h — multi-head attention with grouped key/value heads: MHA, MQA and GQA are ONE
// module, told apart by n_kv_heads (Hkv):
//   Hkv == n_heads      MHA  (Vaswani et al. 2017)       every query head has its own k/v head
//   Hkv == 1            MQA  (Shazeer 2019)              all query heads share one k/v head
//   1 < Hkv < n_heads   GQA  (Ainslie et al. 2023)       query head h reads k/v head h / (H/Hkv)
// This is the baseline DeepSeek's MLA (models/mla.h) is measured against: the KV cache holds
// 2·Hkv·hd values per token per layer, so Hkv is the knob that trades quality for cache memory.
//
// Parameters (Llama names; no biases):  wq [H·hd, dim], wk [Hkv·hd, dim], wv [Hkv·hd, dim], wo [dim, H·hd]
// Shapes for x [B, S, dim] (T = start_pos + S with a cache, S without):
//   q [B,S,H,hd]   k, v [B,S,Hkv,hd]   (heads moved forward as views: [B,H,S,hd], [B,Hkv,T,hd])
//   o = scaled_dot_product_attention(q, k, v, hd^−1/2, causal)  [B,H,S,hd] -> [B,S,H·hd] -> wo -> [B,S,dim]
// head_dim hd = dim / n_heads unless given. softmax_scale = hd^−1/2 (no YaRN mscale: that is MLA's).
//
// RoPE: HALF-SPLIT layout (the Llama / GPT-NeoX convention as HF's Llama code applies it): every q and k
// head's hd dims are rotated in pairs (x[i], x[i + hd/2]), i < hd/2, by the angle of position
// start_pos + s, from a RopeTable of width hd (RopeTable(args, head_dim)). (MLA rotates interleaved
// pairs (x[2i], x[2i+1]) instead — models/README.md §3; the two differ only by a fixed permutation of the
// rows of wq and wk.)
//
// KV cache: preallocated k, v [max_batch_size, max_seq_len, Hkv, hd], written under NoGradGuard at
// rows [start_pos, start_pos + S). The fused kernel reads the cache IN PLACE through strides (no copy).
// With grad mode off (decoding) the queries attend over cache rows [0, start_pos + S); with grad mode
// on, over cat(cache rows [0, start_pos) as constants, this step's k/v with their history) — the same
// convention as MLACache.
#pragma once
#include <cstdint>
#include <string>

#include "autograd/rng.h"
#include "models/config.h"
#include "models/layers.h"
#include "models/module.h"

namespace sg {

// fused: ops/attention.h (flash kernel). composite: matmul + mask + softmax + matmul with the kv heads
// expanded to the query heads — the same math written the long way, for tests and for gdb.
enum class AttentionImpl { fused, composite };

// "MHA" (Hkv == H), "MQA" (Hkv == 1, H > 1), "GQA" (otherwise).
const char* attention_kind(int64_t n_heads, int64_t n_kv_heads);

struct KVCache {
  int64_t max_batch_size = 0, max_seq_len = 0, n_kv_heads = 0, head_dim = 0;
  Tensor k;  // [max_batch_size, max_seq_len, Hkv, hd]   RoPE already applied
  Tensor v;  // [max_batch_size, max_seq_len, Hkv, hd]

  KVCache() = default;
  KVCache(int64_t max_batch_size, int64_t max_seq_len, int64_t n_kv_heads, int64_t head_dim, DType dtype = DType::f32,
          Device device = Device::CPU);
  // One layer, one sequence: 2 · Hkv · hd · element size (sizeof(float) for the f32 cache).
  int64_t bytes_per_token() const;
  int64_t bytes() const;  // everything allocated
};

struct Attention : Module {
  int64_t dim = 0, n_heads = 0, n_kv_heads = 0, head_dim = 0;
  double softmax_scale = 1.0;                  // head_dim^−1/2
  AttentionImpl impl = AttentionImpl::fused;

  Linear wq, wk, wv, wo;

  Attention() = default;
  // n_kv_heads from args (0 = n_heads); head_dim <= 0 means dim / n_heads. Throws "[attention] ..." for
  // n_heads not divisible by n_kv_heads, dim not divisible by n_heads, an odd head_dim.
  Attention(const ModelArgs& args, Rng& rng, DType dtype = DType::f32, int64_t head_dim = 0);

  // x [B,S,dim] -> [B,S,dim]; query s at position start_pos + s. `cache` may be null (attend over the
  // S tokens of x, causally); when given, this step's k/v are written at [start_pos, start_pos + S)
  // first and the queries attend over [0, start_pos + S).
  // segment_ids (packed sequences; undefined = one sequence per row): [B, T] i64, one id per key (T = S
  // without a cache, start_pos + S with one); query s (position T − S + s) then sees only the keys of its
  // own segment (ops/attention.h: each id one contiguous run). RoPE is relative, so no position reset.
  Tensor forward(const Tensor& x, int64_t start_pos, const RopeTable& rope, KVCache* cache = nullptr,
                 const Tensor& segment_ids = Tensor()) const;

  // The attention probabilities softmax(q kᵀ · scale + causal mask) of every head, [B, H, S, S], for x
  // without a cache — computed the composite way, because the fused kernel never forms them. For plots
  // and for reading in gdb; the forward does not use it.
  Tensor probabilities(const Tensor& x, int64_t start_pos, const RopeTable& rope) const;

  // A zero cache shaped for this module.
  KVCache make_cache(int64_t max_batch_size, int64_t max_seq_len) const;
  const char* kind() const { return attention_kind(n_heads, n_kv_heads); }
  // "GQA(dim 256, n_heads 8, n_kv_heads 2, head_dim 32)" — used in errors.
  std::string describe() const;
  void parameters(const std::string& prefix, NamedParameters& out) override;

 private:
  void check_input(const Tensor& x, int64_t start_pos, const RopeTable& rope) const;
  void project_qk(const Tensor& x, int64_t start_pos, const RopeTable& rope, Tensor& q, Tensor& k) const;
  [[noreturn]] void fail(const std::string& message) const;
};

}  // namespace sg
