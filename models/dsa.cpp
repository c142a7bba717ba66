// models/dsa.cpp — see dsa.h. Built from differentiable ops (linear, rms_norm, layer_norm, rope,
// hadamard_rotate, matmul, relu, index_select, gather, softmax, log_softmax); the only things outside the
// tape are the cache writes, the top-k selection (integer indices) and the fp8 index score (act_quant +
// ops/cpu/fp8_index.h: a constant).
#include "models/dsa.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <stdexcept>

#include "autograd/node.h"
#include "ops/cpu/fp8_quant.h"  // fp8_num_blocks
#include "ops/cpu/hadamard.h"   // is_power_of_two
#include "ops/dispatch.h"
#include "ops/fp8_linear.h"
#include "ops/kernels.h"
#include "ops/ops.h"
#include "models/kv_cache.h"

namespace sg {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

std::string described(const Tensor& t) { return t.defined() ? t.describe() : std::string("(undefined)"); }

// Additive causal mask [S, T]: −inf where key position key_start + t > query position start_pos + s. Built on
// the host (S·T values) and moved to `device`, where the scores are.
Tensor causal_mask(int64_t S, int64_t T, int64_t key_start, int64_t start_pos, DType dtype, Device device) {
  Tensor mask = Tensor::zeros({S, T}, dtype);
  dispatch_float(dtype, "dsa", [&]<class T_>() {
    T_* m = mask.data<T_>();
    for (int64_t s = 0; s < S; s++)
      for (int64_t t = 0; t < T; t++)
        if (key_start + t > start_pos + s) m[s * T + t] = -std::numeric_limits<T_>::infinity();
  });
  return mask.to(device);
}

// RoPE (half-split) on the FIRST dr dims of the last axis, the rest passed through: the indexer's layout.
Tensor rope_first(const Tensor& x, int64_t dr, const Tensor& cos, const Tensor& sin) {
  int64_t d = x.size(-1);
  Tensor pe = rope(slice(x, -1, 0, dr), cos, sin, RopeLayout::half_split);
  return d == dr ? pe : cat({pe, slice(x, -1, dr, d)}, -1);
}

// A tensor's numbers in row-major order, read through a contiguous copy with a plain loop (the generic
// Tensor::to_f64_vector walks the strides element by element; these tensors can be [B,S,T]). A device tensor is
// made contiguous there and copied to the host: the selection's bookkeeping (which slots are causal, the recall)
// is host code over B·S·k numbers.
std::vector<double> values_of(const Tensor& t) {
  NoGradGuard no_grad;
  Tensor c = (t.is_contiguous() ? t.detach() : contiguous(t.detach())).to(Device::CPU);
  std::vector<double> out(c.numel());
  dispatch_float(c.dtype(), "dsa", [&]<class T>() {
    const T* p = c.data<T>();
    for (int64_t i = 0; i < c.numel(); i++) out[i] = (double)p[i];
  });
  return out;
}

std::vector<int64_t> slots_of(const Tensor& t) {
  if (t.dtype() != DType::i64 || !t.is_contiguous() || t.device() != Device::CPU) return t.to_i64_vector();
  const int64_t* p = t.data<int64_t>();
  return std::vector<int64_t>(p, p + t.numel());
}

// 1 where a score is −inf (an excluded entry), 0 elsewhere (for masked_fill): scores' shape, dtype and device
// (made on the host from the scores' values).
Tensor excluded_mask(const Tensor& scores) {
  NoGradGuard no_grad;
  Tensor c = (scores.is_contiguous() ? scores.detach() : contiguous(scores.detach())).to(Device::CPU);
  Tensor m = Tensor::empty(c.shape(), c.dtype());
  dispatch_float(c.dtype(), "dsa", [&]<class T>() {
    const T* p = c.data<T>();
    T* q = m.data<T>();
    for (int64_t i = 0; i < c.numel(); i++) q[i] = std::isinf(p[i]) && p[i] < 0 ? T(1) : T(0);
  });
  return m.to(scores.device());
}

}  // namespace

// ---- LayerNorm -----------------------------------------------------------------------------------------

LayerNorm::LayerNorm(int64_t dim, double eps_, DType dtype) : eps(eps_) {
  weight = Tensor::ones({dim}, dtype).requires_grad_();
  bias = Tensor::zeros({dim}, dtype).requires_grad_();
}
Tensor LayerNorm::forward(const Tensor& x) const { return layer_norm(x, weight, bias, eps); }

// ---- caches --------------------------------------------------------------------------------------------

IndexerCache::IndexerCache(const ModelArgs& a, int64_t max_batch_size_, int64_t max_seq_len_, DType dtype,
                           Device device)
    : max_batch_size(max_batch_size_), max_seq_len(max_seq_len_), fp8(a.index_fp8) {
  if (max_batch_size <= 0 || max_seq_len <= 0)
    throw std::runtime_error("[dsa] IndexerCache needs max_batch_size and max_seq_len > 0, got " +
                             std::to_string(max_batch_size) + " and " + std::to_string(max_seq_len));
  if (!fp8) {
    k_cache = Tensor::zeros({max_batch_size, max_seq_len, a.index_head_dim}, dtype, device);
    return;
  }
  const int64_t nb = cpu::fp8_num_blocks(a.index_head_dim, Indexer::kQuantBlock);
  k_cache = Tensor::zeros({max_batch_size, max_seq_len, a.index_head_dim}, DType::f8e4m3, device);  // E4M3 +0
  k_scale_cache = Tensor::zeros({max_batch_size, max_seq_len, nb}, DType::f32, device);
}

int64_t IndexerCache::bytes_per_token() const {
  if (!k_cache.defined()) return 0;
  int64_t b = k_cache.size(2) * (int64_t)dtype_size(k_cache.dtype());
  if (k_scale_cache.defined()) b += k_scale_cache.size(2) * (int64_t)dtype_size(k_scale_cache.dtype());
  return b;
}

DSACache::DSACache(const ModelArgs& a, int64_t max_batch_size, int64_t max_seq_len, DType dtype, Device device)
    : mla(a, MLAMode::absorbed, max_batch_size, max_seq_len, dtype, device),
      indexer(a, max_batch_size, max_seq_len, dtype, device) {}

int64_t DSACache::bytes_per_token() const { return mla.bytes_per_token() + indexer.bytes_per_token(); }

// ---- the indexer ---------------------------------------------------------------------------------------

Indexer::Indexer(const ModelArgs& a, Rng& rng, DType dtype)
    : dim(a.dim),
      n_heads(a.index_n_heads),
      head_dim(a.index_head_dim),
      rope_head_dim(a.qk_rope_head_dim),
      index_topk(a.index_topk),
      q_lora_rank(a.q_lora_rank),
      fp8(a.index_fp8),
      ue8m0(a.scale_ue8m0()) {
  if (n_heads <= 0 || head_dim <= 0 || q_lora_rank <= 0 || rope_head_dim % 2 != 0 || rope_head_dim > head_dim)
    throw std::runtime_error("[dsa] " + describe() +
                             ": needs index_n_heads > 0, q_lora_rank > 0 (the indexer reads MLA's q latent) and an "
                             "even qk_rope_head_dim <= index_head_dim");
  if (fp8 && !cpu::is_power_of_two(head_dim))
    throw std::runtime_error("[dsa] " + describe() + ": the fp8 indexer (index_fp8) rotates q^I, k^I by the Hadamard "
                             "matrix H_{d_I}, which needs index_head_dim a power of two; got " + std::to_string(head_dim) +
                             " (set index_fp8 false for the fp32 indexer)");
  wq_b = Linear(q_lora_rank, n_heads * head_dim, rng, 0.0, dtype);
  wk = Linear(dim, head_dim, rng, 0.0, dtype);
  k_norm = LayerNorm(head_dim, 1e-6, dtype);
  weights_proj = Linear(dim, n_heads, rng, 0.0, dtype);
}

void Indexer::parameters(const std::string& prefix, NamedParameters& out) {
  wq_b.parameters(join_name(prefix, "wq_b"), out);
  wk.parameters(join_name(prefix, "wk"), out);
  k_norm.parameters(join_name(prefix, "k_norm"), out);
  weights_proj.parameters(join_name(prefix, "weights_proj"), out);
}

std::string Indexer::describe() const {
  return "Indexer(dim " + std::to_string(dim) + ", H_I " + std::to_string(n_heads) + ", d_I " + std::to_string(head_dim) +
         ", dr " + std::to_string(rope_head_dim) + ", topk " + std::to_string(index_topk) + ", r_q " +
         std::to_string(q_lora_rank) + (fp8 ? (ue8m0 ? ", fp8 ue8m0" : ", fp8") : ", fp32") + ")";
}

Tensor Indexer::scores(const Tensor& x, const Tensor& qr, int64_t start_pos, const RopeTable& rope,
                       IndexerCache* cache) const {
  return compute_scores(x, qr, start_pos, rope, cache, /*differentiable=*/!fp8);
}

Tensor Indexer::loss_scores(const Tensor& x, const Tensor& qr, int64_t start_pos, const RopeTable& rope,
                            IndexerCache* cache) const {
  return compute_scores(x, qr, start_pos, rope, cache, /*differentiable=*/true);
}

namespace {

// `t` (any float dtype, [rows, n] in row-major order) as a contiguous f32 matrix [rows, n] on its device: what
// act_quant and the score kernel read.
Tensor rows_f32(const Tensor& t, int64_t rows, int64_t n) {
  return reshape(contiguous(t.dtype() == DType::f32 ? t : to_dtype(t, DType::f32)), {rows, n});
}

// cache[b, start_pos : start_pos + S, :] = values[b·S : (b+1)·S, :] for b < B: the fp8 key cache (E4M3 codes) and its
// scales. Each sequence's rows are one run of bytes in both (contiguous), copied where the cache lives — a byte
// copy, so the 1-byte codes need no kernel of their own.
void copy_cache_rows(const Tensor& cache, const Tensor& values, int64_t start_pos, int64_t B, int64_t S) {
  if (!cache.is_contiguous() || !values.is_contiguous() || cache.device() != values.device())
    throw std::runtime_error("[dsa] the fp8 key cache " + cache.describe() + " and this step's rows " + values.describe() +
                             " must be contiguous tensors on one device");
  const size_t row = (size_t)(cache.numel() / (cache.size(0) * cache.size(1))) * dtype_size(cache.dtype());
  const MemoryPool dst_pool = cache.impl()->storage->pool, src_pool = values.impl()->storage->pool;
  char* dst = static_cast<char*>(cache.raw_device_data());
  const char* src = static_cast<const char*>(values.raw_device_data());
  for (int64_t b = 0; b < B; b++)
    copy_memory(dst_pool, dst + (size_t)(b * cache.size(1) + start_pos) * row, src_pool, src + (size_t)(b * S) * row,
                (size_t)S * row);
}

}  // namespace

Tensor Indexer::compute_scores(const Tensor& x, const Tensor& qr, int64_t start_pos, const RopeTable& rope_table,
                               IndexerCache* cache, bool differentiable) const {
  auto fail = [&](const std::string& message) {
    std::string scope = current_scope();
    throw std::runtime_error("[dsa] " + (scope.empty() ? "" : scope + " ") + describe() + ": " + message);
  };
  if (!wq_b.weight.defined()) fail("the indexer has no weights (default-constructed)");
  if (!x.defined() || x.dim() != 3 || x.size(2) != dim)
    fail("x " + described(x) + " must be [B, S, dim = " + std::to_string(dim) + "]");
  if (!qr.defined() || qr.dim() != 3 || qr.size(0) != x.size(0) || qr.size(1) != x.size(1) || qr.size(2) != q_lora_rank)
    fail("qr " + described(qr) + " must be [B, S, q_lora_rank = " + std::to_string(q_lora_rank) + "] like x " +
         x.describe());
  const int64_t B = x.size(0), S = x.size(1), HI = n_heads, dI = head_dim, dr = rope_head_dim;
  if (start_pos < 0 || !rope_table.cos.defined() || rope_table.cos.dim() != 2 || start_pos + S > rope_table.cos.size(0) ||
      rope_table.cos.size(1) != dr / 2)
    fail("positions [" + std::to_string(start_pos) + ", " + std::to_string(start_pos + S) + ") and dr " +
         std::to_string(dr) + " do not fit the rope table cos " + described(rope_table.cos));
  const bool quantized = fp8 && !differentiable;  // the fp8 selection score; else the formula on the tape
  const int64_t nb = cpu::fp8_num_blocks(dI, kQuantBlock);
  if (fp8 && differentiable && cache)
    fail("the differentiable score of the fp8 indexer (loss_scores) takes no cache: the key cache holds E4M3 "
         "codes, not the rotated keys it needs (train without a cache, or set index_fp8 false)");
  if (cache) {
    Shape want{cache->max_batch_size, cache->max_seq_len, dI};
    const DType want_dtype = fp8 ? DType::f8e4m3 : x.dtype();
    if (cache->fp8 != fp8 || !cache->k_cache.defined() || cache->k_cache.shape() != want ||
        cache->k_cache.dtype() != want_dtype)
      fail("the key cache " + described(cache->k_cache) + " does not fit: needs " + shape_str(want) + " " +
           dtype_name(want_dtype) + (fp8 ? " (the fp8 indexer)" : " (the fp32 indexer)"));
    Shape want_scales{cache->max_batch_size, cache->max_seq_len, nb};
    if (fp8 && (!cache->k_scale_cache.defined() || cache->k_scale_cache.shape() != want_scales ||
                cache->k_scale_cache.dtype() != DType::f32))
      fail("the key scale cache " + described(cache->k_scale_cache) + " does not fit: needs " +
           shape_str(want_scales) + " f32");
    if (B > cache->max_batch_size || start_pos + S > cache->max_seq_len)
      fail("x " + x.describe() + " at start_pos " + std::to_string(start_pos) + " does not fit the key cache " +
           cache->k_cache.describe());
  }
  std::optional<NoGradGuard> outside_tape;  // the fp8 score is a constant
  if (quantized) outside_tape.emplace();
  Tensor cos = rope_table.cos_at(start_pos, S), sin = rope_table.sin_at(start_pos, S);

  // q^I [B,S,H_I,d_I]: RoPE on the first dr dims of each index head.
  Tensor q;
  {
    ScopeGuard s("wq_b");
    q = reshape(wq_b.forward(qr), {B, S, HI, dI});
  }
  q = rope_first(q, dr, cos, sin);
  // k^I [B,S,d_I]: LayerNorm, then RoPE on its first dr dims.
  Tensor k;
  {
    ScopeGuard s("wk");
    k = wk.forward(x);
  }
  {
    ScopeGuard s("k_norm");
    k = k_norm.forward(k);
  }
  k = rope_first(k, dr, cos, sin);
  if (fp8) {  // rotate_activation: x · H_{d_I} / √d_I (orthonormal: the exact q·k are unchanged)
    q = hadamard_rotate(q);
    k = hadamard_rotate(k);
  }
  // w [B,S,H_I] = weights_proj(x) · H_I^-1/2 · d_I^-1/2
  Tensor w;
  {
    ScopeGuard s("weights_proj");
    w = mul(weights_proj.forward(x), 1.0 / std::sqrt((double)(HI * dI)));
  }
  if (quantized) {
    // act_quant of q^I, k^I (1×128 tiles along d_I) where they live, then the fp8 score per sequence against the
    // E4M3 keys: this step's, or the cache's rows [0, start_pos + S) after this step's are written.
    const Device device = x.device();
    Fp8Tensor qq = fp8_quantize_tiles(rows_f32(q, B * S * HI, dI), ue8m0, kQuantBlock);  // [B·S·H_I, d_I]
    Fp8Tensor kq = fp8_quantize_tiles(rows_f32(k, B * S, dI), ue8m0, kQuantBlock);       // [B·S, d_I]
    Tensor wf = rows_f32(w, B * S, HI);
    const uint8_t* key_codes = static_cast<const uint8_t*>(kq.codes.raw_device_data());
    const float* key_scales = kq.scale.device_data<float>();
    int64_t T = S, key_rows = S, key_start = start_pos;
    if (cache) {
      copy_cache_rows(cache->k_cache, kq.codes, start_pos, B, S);
      copy_cache_rows(cache->k_scale_cache, kq.scale, start_pos, B, S);
      key_codes = static_cast<const uint8_t*>(cache->k_cache.raw_device_data());
      key_scales = cache->k_scale_cache.device_data<float>();
      T = start_pos + S;
      key_rows = cache->max_seq_len;
      key_start = 0;
    }
    Tensor I = Tensor::empty({B, S, T}, DType::f32, device);
    Fp8IndexScoresArgs args;
    args.q_codes = static_cast<const uint8_t*>(qq.codes.raw_device_data());
    args.q_scales = qq.scale.device_data<float>();
    args.weights = wf.device_data<float>();
    args.k_codes = key_codes;
    args.k_scales = key_scales;
    args.scores = I.device_data<float>();
    args.B = B, args.S = S, args.H = HI, args.D = dI, args.T = T, args.key_rows = key_rows, args.block = kQuantBlock;
    kernels::fp8_index_scores("dsa", device, args);
    if (x.dtype() != DType::f32) I = to_dtype(I, x.dtype());
    return add(I, causal_mask(S, T, key_start, start_pos, I.dtype(), I.device()));
  }
  Tensor keys = k;  // [B,T,d_I]
  int64_t key_start = start_pos;
  if (cache) {
    write_cache_rows(cache->k_cache, k, start_pos);
    keys = read_cache_rows(cache->k_cache, k, start_pos);
    key_start = 0;
  }
  const int64_t T = keys.size(1);
  // dots [B,S,H_I,T] = q^I · k^I  (heads and query positions as the rows of one GEMM per sequence)
  Tensor dots = reshape(matmul(reshape(q, {B, S * HI, dI}), transpose(keys, 1, 2)), {B, S, HI, T});
  // I [B,S,T] = Σ_j w_j ReLU(dots_j): a [1, H_I] · [H_I, T] product per query
  Tensor I = reshape(matmul(unsqueeze(w, 2), relu(dots)), {B, S, T});
  return add(I, causal_mask(S, T, key_start, start_pos, I.dtype(), I.device()));
}

Tensor Indexer::forward(const Tensor& x, const Tensor& qr, int64_t start_pos, const RopeTable& rope,
                        IndexerCache* cache) const {
  return select_topk(scores(x, qr, start_pos, rope, cache), index_topk);
}

Tensor select_topk(const Tensor& index_scores, int64_t k) {
  if (!index_scores.defined() || index_scores.dim() != 3)
    throw std::runtime_error("[dsa] select_topk: index_scores " + described(index_scores) + " must be [B, S, T]");
  if (k <= 0) throw std::runtime_error("[dsa] select_topk: k = " + std::to_string(k) + " must be > 0");
  NoGradGuard no_grad;
  const int64_t B = index_scores.size(0), S = index_scores.size(1), T = index_scores.size(2);
  const int64_t kk = std::min(k, T);
  TopK best = topk(index_scores.detach(), kk, -1, /*largest=*/true);
  std::vector<double> values = values_of(best.values);
  std::vector<int64_t> slots = slots_of(best.indices);
  for (size_t i = 0; i < slots.size(); i++)
    if (std::isinf(values[i]) && values[i] < 0) slots[i] = -1;  // a future key: fewer than k are causal
  return Tensor::from_vector(slots, {B, S, kk}).to(index_scores.device());
}

// ---- DSA -----------------------------------------------------------------------------------------------

DSA::DSA(const ModelArgs& a, Rng& rng, DType dtype) : mla(a, rng, dtype), index_topk(a.index_topk) {
  if (a.index_topk <= 0)
    throw std::runtime_error("[dsa] index_topk = " + std::to_string(a.index_topk) +
                             ": DSA needs index_topk > 0 (0 means dense MLA; use models/mla.h)");
  if (a.q_lora_rank <= 0)
    throw std::runtime_error("[dsa] q_lora_rank = 0: DSA needs the q latent qr = q_norm(wq_a(x)), which the indexer "
                             "shares with MLA (V3.2: q_lora_rank 1536)");
  indexer = Indexer(a, rng, dtype);
}

void DSA::parameters(const std::string& prefix, NamedParameters& out) {
  mla.parameters(prefix, out);
  indexer.parameters(join_name(prefix, "indexer"), out);
}

std::string DSA::describe() const { return "DSA(" + mla.describe() + ", " + indexer.describe() + ")"; }

Tensor DSA::forward(const Tensor& x, int64_t start_pos, const RopeTable& rope, DSACache* cache) const {
  return forward_step(x, start_pos, rope, cache, false).out;
}

namespace {

[[noreturn]] void dsa_fail(const DSA& m, const std::string& message) {
  std::string scope = current_scope();
  throw std::runtime_error("[dsa] " + (scope.empty() ? "" : scope + " ") + m.describe() + ": " + message);
}

void check_inputs(const DSA& m, const Tensor& x, int64_t start_pos, const RopeTable& rope_table, const MLACache* cache) {
  const MLA& mla = m.mla;
  if (!mla.wq_a.weight.defined() || !m.indexer.wq_b.weight.defined())
    dsa_fail(m, "the module has no weights (default-constructed)");
  if (!x.defined() || x.dim() != 3 || x.size(2) != mla.dim)
    dsa_fail(m, "x " + described(x) + " must be [B, S, dim = " + std::to_string(mla.dim) + "]");
  if (x.dtype() != mla.kv_norm.weight.dtype())
    dsa_fail(m, "x " + x.describe() + " is " + dtype_name(x.dtype()) + " but the weights are " +
                    dtype_name(mla.kv_norm.weight.dtype()));
  const int64_t B = x.size(0), S = x.size(1), dr = mla.qk_rope_head_dim, r = mla.kv_lora_rank;
  if (start_pos < 0) dsa_fail(m, "start_pos " + std::to_string(start_pos) + " is negative");
  if (!rope_table.cos.defined() || rope_table.cos.dim() != 2 || rope_table.cos.size(1) != dr / 2 ||
      start_pos + S > rope_table.cos.size(0))
    dsa_fail(m, "positions [" + std::to_string(start_pos) + ", " + std::to_string(start_pos + S) + ") and dr " +
                    std::to_string(dr) + " do not fit the rope table cos " + described(rope_table.cos));
  if (cache) {
    Shape want{cache->max_batch_size, cache->max_seq_len, r + dr};
    if (cache->mode != MLAMode::absorbed || !cache->kv.defined() || cache->kv.shape() != want ||
        cache->kv_lora_rank != r || cache->kv.dtype() != x.dtype())
      dsa_fail(m, "the MLA cache must be an absorbed-mode cache kv " + shape_str(want) + " of " + dtype_name(x.dtype()) +
                      " (rows [c | k_pe], r_kv = " + std::to_string(r) + "), got " + described(cache->kv));
    if (B > cache->max_batch_size || start_pos + S > cache->max_seq_len)
      dsa_fail(m, "x " + x.describe() + " at start_pos " + std::to_string(start_pos) + " does not fit the cache " +
                      cache->kv.describe());
  }
}

// The main attention over the selected slots, from MLA's projections P (see the top of dsa.h): the selected
// rows [c | k_pe] are gathered per query, kv_sel [B,S,k,r_kv+dr], and MLA's own absorbed core attends over
// them with a slot mask (MLA::absorbed_attention, per-query form).
DSAStep attend_selected(const DSA& m, const MLAProjection& P, int64_t start_pos, const Tensor& indices,
                        MLACache* cache) {
  const MLA& mla = m.mla;
  const int64_t B = P.c.size(0), S = P.c.size(1), dr = mla.qk_rope_head_dim, r = mla.kv_lora_rank;
  const DType dtype = P.c.dtype();
  if (!indices.defined() || indices.dim() != 3 || indices.size(0) != B || indices.size(1) != S ||
      (indices.dtype() != DType::i64 && indices.dtype() != DType::i32))
    dsa_fail(m, "indices " + described(indices) + " must be an integer [B, S, k] tensor with B = " + std::to_string(B) +
                    ", S = " + std::to_string(S));

  // The key rows [c | k_pe] as the rows of a 2-D table, so one index_select gathers the selected ones:
  //   row of (batch b, key slot t) = b · row_stride + t.
  Tensor rows_now = P.latent_rows();  // [B,S,r+dr], the absorbed cache's row layout
  Tensor kv_rows;                     // [rows, r+dr]
  int64_t T = S, row_stride = S, key_start = start_pos;
  if (cache) {
    write_cache_rows(cache->kv, rows_now, start_pos);
    T = start_pos + S;
    key_start = 0;
    if (!grad_enabled()) {  // decoding: gather straight from the whole cache buffer, no copy of the T rows
      row_stride = cache->max_seq_len;
      kv_rows = reshape(cache->kv, {cache->max_batch_size * row_stride, r + dr});
    } else {
      row_stride = T;
      kv_rows = reshape(contiguous(read_cache_rows(cache->kv, rows_now, start_pos)), {B * T, r + dr});
    }
  } else {
    kv_rows = reshape(rows_now, {B * S, r + dr});
  }

  // Which slots are in use: index in [0, T) and the key not in the query's future. Unused slots gather
  // row b·row_stride (any valid row) and get −inf in the slot mask.
  const int64_t k = indices.size(2);
  std::vector<int64_t> idx = slots_of(indices), rows(B * S * k);
  std::vector<double> slot_mask(B * S * k, 0.0);
  DSAStep step;
  step.key_start = key_start;
  step.attended_per_query.assign(B * S, 0);
  for (int64_t b = 0; b < B; b++)
    for (int64_t s = 0; s < S; s++) {
      int64_t used = 0;
      for (int64_t j = 0; j < k; j++) {
        int64_t i = (b * S + s) * k + j, t = idx[i];
        if (t < -1 || t >= T)
          dsa_fail(m, "indices " + indices.describe() + " holds " + std::to_string(t) + " at (" + std::to_string(b) +
                          ", " + std::to_string(s) + ", " + std::to_string(j) + "); key slots are -1 (unused) or in [0, " +
                          std::to_string(T) + ")");
        bool in_use = t >= 0 && key_start + t <= start_pos + s;
        rows[i] = b * row_stride + (in_use ? t : 0);
        if (in_use) used++;
        else slot_mask[i] = -kInf;
      }
      if (used == 0)
        dsa_fail(m, "query (" + std::to_string(b) + ", " + std::to_string(s) +
                        ") has no selected key at or before its position " + std::to_string(start_pos + s));
      step.attended_per_query[b * S + s] = used;
      step.attended += used;
    }
  const Device device = kv_rows.device();
  Tensor row_index = Tensor::from_vector(rows, {B * S * k}).to(device);
  Tensor mask = Tensor::from_vector(slot_mask, {B, S, 1, k});
  if (dtype != DType::f64) mask = to_dtype(mask, dtype);
  mask = mask.to(device);

  // Gather the selected rows, kv_sel [B,S,k,r+dr] (whole rows of a contiguous table: gathering from a
  // column-narrowed view would copy the table), then MLA's absorbed core over the k slots.
  Tensor kv_sel = reshape(index_select(kv_rows, 0, row_index), {B, S, k, r + dr});
  MLAAttention att = mla.absorbed_attention(P, kv_sel, key_start, start_pos, mask, /*keep_probs=*/true);
  step.out = att.out;
  step.qr = P.qr;
  step.indices = indices.dtype() == DType::i64 ? indices : Tensor::from_vector(idx, indices.shape()).to(device);
  step.probs = att.probs.detach();  // [B,S,H,k]
  return step;
}

}  // namespace

DSAStep DSA::forward_step(const Tensor& x, int64_t start_pos, const RopeTable& rope, DSACache* cache,
                          bool indexer_grad) const {
  check_inputs(*this, x, start_pos, rope, cache ? &cache->mla : nullptr);
  MLAProjection P = mla.project(x, start_pos, rope);
  // The selection: I [B,S,T] -> the top-k slots of every query. The indexer reads x and MLA's q latent qr;
  // on the tape only when asked for, and then from detached inputs (its gradient stays in attn.indexer.*).
  // fp8 mode: the selection uses the fp8 score, the loss (indexer_grad) the differentiable one, computed
  // first (it refuses a cache; the fp8 call then writes the key cache).
  Tensor I, L;
  {
    ScopeGuard s("indexer");
    IndexerCache* icache = cache ? &cache->indexer : nullptr;
    if (indexer_grad) L = indexer.loss_scores(x.detach(), P.qr.detach(), start_pos, rope, icache);
    if (indexer_grad && !indexer.fp8) {
      I = L;
    } else {
      NoGradGuard no_grad;
      I = indexer.scores(x, P.qr, start_pos, rope, icache);
    }
  }
  DSAStep step = attend_selected(*this, P, start_pos, select_topk(I, index_topk), cache ? &cache->mla : nullptr);
  step.index_scores = I;
  step.loss_scores = L;
  return step;
}

DSAStep DSA::forward_selected(const Tensor& x, int64_t start_pos, const RopeTable& rope, const Tensor& indices,
                              MLACache* cache) const {
  check_inputs(*this, x, start_pos, rope, cache);
  MLAProjection P = mla.project(x, start_pos, rope);
  return attend_selected(*this, P, start_pos, indices, cache);
}

// ---- dense attention probabilities and the indexer's losses ---------------------------------------------

Tensor mla_attention_probs(const MLA& m, const Tensor& x, int64_t start_pos, const RopeTable& rope_table) {
  MLAProjection P = m.project(x, start_pos, rope_table);
  MLAAttention att = m.absorbed_attention(P, P.latent_rows(), start_pos, start_pos, Tensor(), /*keep_probs=*/true);
  return permute(att.probs, {0, 2, 1, 3});  // [B,S,H,S] -> [B,H,S,S]
}

Tensor attention_target(const Tensor& probs) {
  if (!probs.defined() || probs.dim() != 4)
    throw std::runtime_error("[dsa] attention_target: probs " + described(probs) + " must be [B, H, S, T]");
  NoGradGuard no_grad;
  Tensor p = sum(probs.detach(), {1});  // [B,S,T]
  return div(p, sum(p, {-1}, true));
}

// KL(p ‖ q) = Σ_t p_t (log p_t − log q_t), q = softmax(scores) over the entries in use.
// The cross term −Σ p log q is on the tape; Σ p log p is a constant (0·log 0 = 0).
// log_softmax puts −inf at excluded entries; masked_fill turns them into 0 (and stops their gradient) so
// 0 · (−inf) never happens.
Tensor indexer_kl_loss(const Tensor& scores, const Tensor& target) {
  if (!scores.defined() || !target.defined() || scores.dim() != 3 || scores.shape() != target.shape())
    throw std::runtime_error("[dsa] indexer_kl_loss: scores " + described(scores) + " and target " + described(target) +
                             " must both be [B, S, N]");
  Tensor t = target.detach();
  if (t.dtype() != scores.dtype()) t = to_dtype(t, scores.dtype());
  double entropy_term = 0;
  for (double v : values_of(t))
    if (v > 0) entropy_term += v * std::log(v);
  Tensor log_q = masked_fill(log_softmax(scores, -1), excluded_mask(scores), 0.0);
  Tensor cross = neg(sum(mul(t, log_q)));
  return add(cross, entropy_term);
}

Tensor indexer_warmup_loss(const DSA& dsa, const Tensor& x, int64_t start_pos, const RopeTable& rope) {
  Tensor target, qr;
  {
    NoGradGuard frozen;
    MLAProjection P = dsa.mla.project(x, start_pos, rope);
    MLAAttention att = dsa.mla.absorbed_attention(P, P.latent_rows(), start_pos, start_pos, Tensor(), true);
    target = attention_target(permute(att.probs, {0, 2, 1, 3}));
    qr = P.qr;
  }
  Tensor I;
  {
    ScopeGuard s("indexer");
    I = dsa.indexer.loss_scores(x.detach(), qr.detach(), start_pos, rope, nullptr);
  }
  return indexer_kl_loss(I, target);
}

Tensor indexer_sparse_kl(const Tensor& index_scores, const Tensor& indices, const Tensor& probs) {
  if (!index_scores.defined() || !indices.defined() || !probs.defined() || index_scores.dim() != 3 ||
      indices.dim() != 3 || probs.dim() != 4 || indices.size(0) != index_scores.size(0) ||
      indices.size(1) != index_scores.size(1) || probs.size(0) != indices.size(0) || probs.size(1) != indices.size(1) ||
      probs.size(3) != indices.size(2))
    throw std::runtime_error("[dsa] indexer_sparse_kl: index_scores " + described(index_scores) + " [B,S,T], indices " +
                             described(indices) + " [B,S,k] and probs " + described(probs) + " [B,S,H,k] do not fit");
  // I_sel [B,S,k] = I at the selected slots; unused slots (−1) read slot 0 and are set to −inf.
  std::vector<int64_t> idx = slots_of(indices);
  std::vector<double> unused(idx.size(), 0.0);
  for (size_t i = 0; i < idx.size(); i++)
    if (idx[i] < 0) {
      idx[i] = 0;
      unused[i] = 1.0;
    }
  const Device device = index_scores.device();
  Tensor I_sel = gather(index_scores, 2, Tensor::from_vector(idx, indices.shape()).to(device));
  I_sel = masked_fill(I_sel, Tensor::from_vector(unused, indices.shape()).to(device), -kInf);
  // p_{S_t} = Σ_h probs over the slots, L1-normalised (each head already sums to 1, so this is the head mean).
  Tensor target;
  {
    NoGradGuard no_grad;
    Tensor p = sum(probs.detach(), {2});  // [B,S,k]
    target = div(p, sum(p, {-1}, true));
  }
  return indexer_kl_loss(I_sel, target);
}

Tensor indexer_sparse_loss(const DSAStep& step) {
  if (!step.loss_scores.defined() || !step.loss_scores.requires_grad())
    throw std::runtime_error("[dsa] indexer_sparse_loss: step.loss_scores is not on the tape; run "
                             "DSA::forward_step(..., indexer_grad = true) with grad mode on");
  return indexer_sparse_kl(step.loss_scores, step.indices, step.probs);
}

// ---- the two training stages ------------------------------------------------------------------------------

const char* dsa_stage_name(DSAStage stage) { return stage == DSAStage::dense_warmup ? "dense_warmup" : "sparse"; }

double indexer_recall(const Tensor& indices, const Tensor& target) {
  if (!indices.defined() || !target.defined() || indices.dim() != 3 || target.dim() != 3 ||
      indices.size(0) != target.size(0) || indices.size(1) != target.size(1))
    throw std::runtime_error("[dsa] indexer_recall: indices " + described(indices) + " [B,S,k] and target " +
                             described(target) + " [B,S,T] do not fit");
  const int64_t rows = indices.size(0) * indices.size(1), k = indices.size(2), T = target.size(2);
  std::vector<int64_t> idx = slots_of(indices);
  std::vector<double> p = values_of(target);
  double total = 0;
  int64_t counted = 0;
  std::vector<int64_t> order(T);
  for (int64_t row = 0; row < rows; row++) {
    std::vector<int64_t> sel;
    for (int64_t j = 0; j < k; j++) {
      int64_t t = idx[row * k + j];
      if (t < -1 || t >= T)
        throw std::runtime_error("[dsa] indexer_recall: indices " + indices.describe() + " holds " + std::to_string(t) +
                                 "; key slots are -1 (unused) or in [0, " + std::to_string(T) + ")");
      if (t >= 0) sel.push_back(t);
    }
    const int64_t m = (int64_t)sel.size();
    if (m == 0) continue;
    const double* pr = &p[row * T];
    for (int64_t t = 0; t < T; t++) order[t] = t;
    std::partial_sort(order.begin(), order.begin() + m, order.end(),
                      [&](int64_t u, int64_t v) { return pr[u] > pr[v] || (pr[u] == pr[v] && u < v); });
    int64_t hits = 0;
    for (int64_t i = 0; i < m; i++) hits += std::find(sel.begin(), sel.end(), order[i]) != sel.end();
    total += (double)hits / (double)m;
    counted++;
  }
  return counted ? total / (double)counted : NAN;
}

DSATrainStep dsa_train_forward(const DSA& dsa, const Tensor& x, int64_t start_pos, const RopeTable& rope,
                               DSAStage stage, bool measure_recall) {
  check_inputs(dsa, x, start_pos, rope, nullptr);
  const double per_query = 1.0 / (double)(x.size(0) * x.size(1));  // the mean over B·S queries
  DSATrainStep r;
  if (stage == DSAStage::dense_warmup) {
    // One dense forward gives both the output and, from its probabilities, the indexer's target.
    MLAProjection P = dsa.mla.project(x, start_pos, rope);
    MLAAttention att = dsa.mla.absorbed_attention(P, P.latent_rows(), start_pos, start_pos, Tensor(), true);
    r.out = att.out;
    Tensor target = attention_target(permute(att.probs, {0, 2, 1, 3}));  // [B,S,S], no history
    Tensor I;
    {
      ScopeGuard s("indexer");
      I = dsa.indexer.loss_scores(x.detach(), P.qr.detach(), start_pos, rope, nullptr);
    }
    r.indexer_loss = mul(indexer_kl_loss(I, target), per_query);
    if (measure_recall) {  // of the selection the model would make: the fp8 score in fp8 mode
      Tensor sel_scores = I;
      if (dsa.indexer.fp8) {
        NoGradGuard no_grad;
        sel_scores = dsa.indexer.scores(x, P.qr, start_pos, rope, nullptr);
      }
      r.recall = indexer_recall(select_topk(sel_scores, dsa.index_topk), target);
    }
  } else {
    DSAStep step = dsa.forward_step(x, start_pos, rope, nullptr, /*indexer_grad=*/true);
    r.out = step.out;
    r.indexer_loss = mul(indexer_sparse_kl(step.loss_scores, step.indices, step.probs), per_query);
    if (measure_recall) {
      Tensor target;
      {
        NoGradGuard no_grad;
        target = attention_target(mla_attention_probs(dsa.mla, x, start_pos, rope));
      }
      r.recall = indexer_recall(step.indices, target);
    }
  }
  return r;
}

}  // namespace sg
