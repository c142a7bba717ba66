// tests/models/test_dsa.cpp — models/dsa (DeepSeek Sparse Attention: lightning indexer + top-k + MLA over
// the selected tokens, models/README.md §9):
//   * the indexer scores against a naive loop written from the formulas (LayerNorm, half-split RoPE on the
//     FIRST dr dims, w·H_I^-1/2·d_I^-1/2, ReLU), and the selections compared as SETS (ties at the k-th score
//     may go either way);
//   * DSA with index_topk < T against a plain-loop DSA in doubles (indexer scores, exactly the selected keys,
//     the softmax restricted to them, the naive per-head keys/values, wo): outputs and selected sets;
//   * index_topk >= T is dense MLA (values and gradients);
//   * incremental decoding with the caches (MLA latent cache + indexer key cache) == the full forward; a
//     decode step writes one row of each buffer in place and copies nothing of the caches;
//   * cost: every query attends to min(k, t+1) entries, and the gathered tensors have k slots, not T;
//   * float64 gradcheck of DSA w.r.t. x and every weight (selection held fixed, and free with a margin
//     check) and of the indexer's KL losses w.r.t. the indexer's weights;
//   * the losses reach only attn.indexer.*; the main output never reaches the indexer.
// Those run the fp32 indexer (index_fp8 false in tiny_args). Section (i), the fp8 indexer (the default):
//   * its cache is E4M3 codes + f32 scales; bytes_per_token counts both;
//   * its score is within the E4M3 error bound of the exact score (bound derived there, from the rotated
//     q, k in doubles with an explicit Sylvester matrix); loss_scores equals the fp32 score up to rounding;
//   * decoding through the fp8 cache == the prefill (bit-identical codes and scales, same selections,
//     outputs within 1e-5); how often the fp8 selection differs from the fp32 one is reported;
//   * training: the selection is the fp8 score's, the losses are differentiable (f64 gradcheck through the
//     Hadamard rotation) and reach only the indexer; errors for d_I not a power of two, a wrong cache.
#include <doctest/doctest.h>

#include "tests/test_util.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "autograd/allocator.h"
#include "autograd/gradcheck.h"
#include "autograd/runtime.h"
#include "models/config.h"
#include "models/dsa.h"
#include "models/layers.h"
#include "models/mla.h"
#include "ops/cpu/fp8_quant.h"
#include "ops/ops.h"

using namespace sg;
using sg::test::error_of;
using sg::test::kFixtures;
using sg::test::max_abs_diff;

namespace {



bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

struct OneThread {
  int before = num_threads();
  OneThread() { set_num_threads(1); }
  ~OneThread() { set_num_threads(before); }
};

// The gradcheck config of the brief: dim 16, 2 heads, q_lora_rank 8, r_kv 8, dn 4, dr 4, dv 4, H_I 2, d_I 8, k 3.
// YaRN active (max_seq_len > original_seq_len), so softmax_scale carries m² and the RoPE table is blended.
ModelArgs tiny_args() {
  ModelArgs a;
  a.dim = 16;
  a.n_heads = 2;
  a.q_lora_rank = 8;
  a.kv_lora_rank = 8;
  a.qk_nope_head_dim = 4;
  a.qk_rope_head_dim = 4;
  a.v_head_dim = 4;
  a.index_n_heads = 2;
  a.index_head_dim = 8;
  a.index_topk = 3;
  // The tests below compare against the exact (fp32) score and gradcheck through it: the fp32 indexer.
  // The fp8 indexer (the default) has its own section (i) at the end.
  a.index_fp8 = false;
  a.max_seq_len = 16;
  a.original_seq_len = 8;
  a.rope_factor = 4;
  a.mscale = 0.707;
  return a;
}

// A larger one for the value tests: more index heads (fewer exact ties of ReLU zeros), dv != dn.
ModelArgs small_args() {
  ModelArgs a = tiny_args();
  a.dim = 32;
  a.n_heads = 4;
  a.q_lora_rank = 12;
  a.kv_lora_rank = 16;
  a.qk_nope_head_dim = 8;
  a.qk_rope_head_dim = 8;
  a.v_head_dim = 6;
  a.index_n_heads = 4;
  a.index_head_dim = 16;
  a.index_topk = 5;
  a.max_seq_len = 32;
  a.original_seq_len = 16;
  return a;
}

// Norm weights start at 1 (and the LayerNorm bias at 0), which would hide a norm applied to the wrong slice.
void randomise_norms(DSA& m, Rng& rng) {
  auto fill = [&](Tensor& w, double lo, double hi) {
    Tensor r = Tensor::rand(w.shape(), rng, lo, hi, w.dtype());
    for (int64_t i = 0; i < w.numel(); i++) w.set_at({i}, r.at({i}));
  };
  fill(m.mla.q_norm.weight, 0.5, 1.5);
  fill(m.mla.kv_norm.weight, 0.5, 1.5);
  fill(m.indexer.k_norm.weight, 0.5, 1.5);
  fill(m.indexer.k_norm.bias, -0.5, 0.5);
}

// ---- a naive indexer, plain loops over the weights (models/README.md §3, §9) ---------------------------------
// q^I [B,S,H_I,d_I], k^I [B,S,d_I] (after RoPE, before any Hadamard rotation) and w [B,S,H_I], in doubles.
struct NaiveIndexerParts {
  std::vector<double> q, k, w;
};
NaiveIndexerParts naive_indexer_parts(const DSA& m, const ModelArgs& a, const Tensor& x_t, int64_t start_pos,
                                      const RopeTable& rope) {
  const int64_t B = x_t.size(0), S = x_t.size(1), d = a.dim, rq = a.q_lora_rank, HI = a.index_n_heads;
  const int64_t dI = a.index_head_dim, dr = a.qk_rope_head_dim, half = dr / 2;
  std::vector<double> x = x_t.to_f64_vector(), wq_a = m.mla.wq_a.weight.to_f64_vector();
  std::vector<double> qn = m.mla.q_norm.weight.to_f64_vector(), wq_b = m.indexer.wq_b.weight.to_f64_vector();
  std::vector<double> wk = m.indexer.wk.weight.to_f64_vector(), kw = m.indexer.k_norm.weight.to_f64_vector();
  std::vector<double> kb = m.indexer.k_norm.bias.to_f64_vector(), wp = m.indexer.weights_proj.weight.to_f64_vector();
  std::vector<double> cosv = rope.cos.to_f64_vector(), sinv = rope.sin.to_f64_vector();
  // half-split rotation of v[0:dr] at position p: pairs (i, i + dr/2)
  auto rotate = [&](double* v, int64_t p) {
    for (int64_t i = 0; i < half; i++) {
      double c = cosv[p * half + i], s = sinv[p * half + i], a0 = v[i], a1 = v[i + half];
      v[i] = a0 * c - a1 * s;
      v[i + half] = a0 * s + a1 * c;
    }
  };
  std::vector<double> q(B * S * HI * dI), k(B * S * dI), w(B * S * HI);
  for (int64_t b = 0; b < B; b++)
    for (int64_t s = 0; s < S; s++) {
      const double* xs = &x[(b * S + s) * d];
      int64_t p = start_pos + s;
      // qr = q_norm(wq_a x)
      std::vector<double> qr(rq);
      double ms = 0;
      for (int64_t i = 0; i < rq; i++) {
        for (int64_t j = 0; j < d; j++) qr[i] += wq_a[i * d + j] * xs[j];
        ms += qr[i] * qr[i];
      }
      double inv = 1.0 / std::sqrt(ms / rq + 1e-6);
      for (int64_t i = 0; i < rq; i++) qr[i] *= inv * qn[i];
      // q^I = wq_b qr, RoPE on each head's first dr dims
      for (int64_t h = 0; h < HI; h++) {
        double* qh = &q[((b * S + s) * HI + h) * dI];
        for (int64_t i = 0; i < dI; i++)
          for (int64_t j = 0; j < rq; j++) qh[i] += wq_b[(h * dI + i) * rq + j] * qr[j];
        rotate(qh, p);
      }
      // k^I = LayerNorm(wk x), RoPE on the first dr dims
      double* kt = &k[(b * S + s) * dI];
      double mean = 0, var = 0;
      for (int64_t i = 0; i < dI; i++) {
        for (int64_t j = 0; j < d; j++) kt[i] += wk[i * d + j] * xs[j];
        mean += kt[i];
      }
      mean /= dI;
      for (int64_t i = 0; i < dI; i++) var += (kt[i] - mean) * (kt[i] - mean);
      var /= dI;
      for (int64_t i = 0; i < dI; i++) kt[i] = (kt[i] - mean) / std::sqrt(var + 1e-6) * kw[i] + kb[i];
      rotate(kt, p);
      // w = weights_proj x · H_I^-1/2 · d_I^-1/2
      for (int64_t h = 0; h < HI; h++) {
        double acc = 0;
        for (int64_t j = 0; j < d; j++) acc += wp[h * d + j] * xs[j];
        w[(b * S + s) * HI + h] = acc / std::sqrt((double)HI) / std::sqrt((double)dI);
      }
    }
  return {q, k, w};
}

// I[b][s][t] for keys t at positions start_pos + t (no cache), −inf for future keys.
std::vector<double> naive_index_scores(const DSA& m, const ModelArgs& a, const Tensor& x_t, int64_t start_pos,
                                       const RopeTable& rope) {
  const int64_t B = x_t.size(0), S = x_t.size(1), HI = a.index_n_heads, dI = a.index_head_dim;
  NaiveIndexerParts parts = naive_indexer_parts(m, a, x_t, start_pos, rope);
  const std::vector<double>&q = parts.q, &k = parts.k, &w = parts.w;
  std::vector<double> I(B * S * S, -INFINITY);
  for (int64_t b = 0; b < B; b++)
    for (int64_t s = 0; s < S; s++)
      for (int64_t t = 0; t <= s; t++) {
        double acc = 0;
        for (int64_t h = 0; h < HI; h++) {
          double dot = 0;
          for (int64_t i = 0; i < dI; i++) dot += q[((b * S + s) * HI + h) * dI + i] * k[(b * S + t) * dI + i];
          acc += w[(b * S + s) * HI + h] * std::max(dot, 0.0);
        }
        I[(b * S + s) * S + t] = acc;
      }
  return I;
}

// The selected key slots of row (b, s) (the −1 slots dropped).
std::set<int64_t> selected_set(const std::vector<int64_t>& idx, int64_t row, int64_t k) {
  std::set<int64_t> out;
  for (int64_t j = 0; j < k; j++)
    if (idx[row * k + j] >= 0) out.insert(idx[row * k + j]);
  return out;
}

// Smallest gap, over queries with more causal keys than k, between the k-th best index score and the next.
// Selections are stable under perturbations smaller than this.
double selection_margin(const Tensor& index_scores, int64_t k) {
  const int64_t rows = index_scores.size(0) * index_scores.size(1), T = index_scores.size(2);
  std::vector<double> I = index_scores.to_f64_vector();
  double margin = INFINITY;
  for (int64_t r = 0; r < rows; r++) {
    std::vector<double> v;
    for (int64_t t = 0; t < T; t++)
      if (std::isfinite(I[r * T + t])) v.push_back(I[r * T + t]);
    if ((int64_t)v.size() <= k) continue;
    std::sort(v.rbegin(), v.rend());
    margin = std::min(margin, v[k - 1] - v[k]);
  }
  return margin;
}

}  // namespace

// ---- (a) names and shapes --------------------------------------------------------------------------------

TEST_CASE("dsa: parameter names are MLA's under attn.* and the indexer's under attn.indexer.*") {
  ModelArgs a = tiny_args();
  Rng rng(1);
  DSA dsa(a, rng);
  NamedParameters params = dsa.named_parameters("layers.0.attn");
  std::vector<std::string> names;
  for (auto& [name, t] : params) names.push_back(name);
  std::vector<std::string> want{
      "layers.0.attn.wq_a.weight",         "layers.0.attn.q_norm.weight",         "layers.0.attn.wq_b.weight",
      "layers.0.attn.wkv_a.weight",        "layers.0.attn.kv_norm.weight",        "layers.0.attn.wkv_b.weight",
      "layers.0.attn.wo.weight",           "layers.0.attn.indexer.wq_b.weight",   "layers.0.attn.indexer.wk.weight",
      "layers.0.attn.indexer.k_norm.weight", "layers.0.attn.indexer.k_norm.bias", "layers.0.attn.indexer.weights_proj.weight"};
  CHECK(names == want);
  CHECK(dsa.indexer.wq_b.weight.shape() == Shape{2 * 8, 8});  // [H_I·d_I, r_q]
  CHECK(dsa.indexer.wk.weight.shape() == Shape{8, 16});       // [d_I, dim]
  CHECK(dsa.indexer.k_norm.weight.shape() == Shape{8});
  CHECK(dsa.indexer.k_norm.bias.shape() == Shape{8});
  CHECK(dsa.indexer.weights_proj.weight.shape() == Shape{2, 16});  // [H_I, dim]
  CHECK(dsa.indexer.k_norm.eps == 1e-6);
  DSACache cache(a, 2, 16);
  CHECK(cache.bytes_per_token() == (8 + 4 + 8) * 4);  // r_kv + dr latent/rope key + d_I indexer key, f32
}

// ---- (b) the indexer against the naive loop; selections as sets ------------------------------------------

TEST_CASE("dsa: indexer scores match a naive loop and the selections match as sets") {
  for (int which = 0; which < 2; which++) {
    ModelArgs a = which == 0 ? tiny_args() : small_args();
    Rng rng(7 + which);
    DSA dsa(a, rng);
    randomise_norms(dsa, rng);
    RopeTable rope(a);
    const int64_t B = 2, S = which == 0 ? 6 : 14, k = a.index_topk;
    for (int64_t start_pos : {0, 2}) {
      CAPTURE(which);
      CAPTURE(start_pos);
      Tensor x = Tensor::randn({B, S, a.dim}, rng);
      DSAStep step = dsa.forward_step(x, start_pos, rope);
      std::vector<double> naive = naive_index_scores(dsa, a, x, start_pos, rope);
      std::vector<double> mine = step.index_scores.to_f64_vector();
      REQUIRE(mine.size() == naive.size());
      double err = 0;
      for (size_t i = 0; i < mine.size(); i++) {
        REQUIRE(std::isinf(mine[i]) == std::isinf(naive[i]));  // exactly the future keys are masked
        if (std::isfinite(mine[i])) err = std::max(err, std::abs(mine[i] - naive[i]));
      }
      CHECK(err <= 1e-4);
      // The naive selection: sort the causal keys by score (ties: lower slot) and keep min(k, s+1).
      REQUIRE(step.indices.shape() == Shape{B, S, std::min(k, S)});
      std::vector<int64_t> idx = step.indices.to_i64_vector();
      int64_t kk = std::min(k, S);
      for (int64_t b = 0; b < B; b++)
        for (int64_t s = 0; s < S; s++) {
          int64_t row = b * S + s;
          std::vector<int64_t> order;
          for (int64_t t = 0; t <= s; t++) order.push_back(t);
          std::stable_sort(order.begin(), order.end(),
                           [&](int64_t p, int64_t q) { return naive[row * S + p] > naive[row * S + q]; });
          int64_t keep = std::min(kk, s + 1);
          std::set<int64_t> want(order.begin(), order.begin() + keep), got = selected_set(idx, row, kk);
          if (got != want) {
            // Only a tie at the k-th score may differ: every key in one set but not the other scores like it.
            double kth = naive[row * S + order[keep - 1]];
            for (int64_t t : got)
              if (!want.count(t)) CHECK(std::abs(naive[row * S + t] - kth) <= 1e-5);
          }
          CHECK((int64_t)got.size() == keep);
        }
    }
  }
}

TEST_CASE("dsa: the indexer rope is half-split on the first dr dims, the rest untouched") {
  // A key whose only non-zero entries sit past dr must not be rotated; one at [0] must pair with [dr/2].
  ModelArgs a = tiny_args();
  RopeTable table(a);
  Tensor cos = table.cos_at(3, 1), sin = table.sin_at(3, 1);
  Tensor v = Tensor::zeros({1, 1, 8});
  v.set_at({0, 0, 0}, 1.0);
  v.set_at({0, 0, 6}, 2.0);
  Tensor y = rope(slice(v, -1, 0, 4), cos, sin, RopeLayout::half_split);
  double c = cos.at({0, 0}), s = sin.at({0, 0});
  CHECK(std::abs(y.at({0, 0, 0}) - c) < 1e-7);
  CHECK(std::abs(y.at({0, 0, 2}) - s) < 1e-7);  // the pair of dim 0 is dim dr/2 = 2
  CHECK(y.at({0, 0, 1}) == 0.0);
}

// ---- (b2) the whole sparse layer against a plain loop ------------------------------------------------------
// A reference DSA written from the formulas with raw loops over the module's weights, in doubles, that shares
// nothing with DSA::forward but the weights: the indexer scores (naive_index_scores), per query the top-k
// causal keys by score (ties: the lower slot), and MLA in its NAIVE per-head form — k_nope,h = W_UK,h c_t,
// v_h = W_UV,h c_t, q·k over [nope ; rope] — with the softmax taken over the selected keys only.
struct NaiveDSA {
  std::vector<double> out;                // [B,S,dim]
  std::vector<std::set<int64_t>> chosen;  // [B·S] selected key slots
  std::vector<double> I;                  // [B,S,S] indexer scores (−inf for future keys)
  std::vector<double> target;             // [B,S,S] Σ_h p_h,t / H over the chosen keys t, 0 elsewhere
};

// k = 0: the module's index_topk; k >= S: every causal key (dense MLA).
NaiveDSA naive_dsa_forward(const DSA& m, const ModelArgs& a, const Tensor& x_t, int64_t start_pos,
                           const RopeTable& rope, int64_t k_override = 0) {
  const int64_t B = x_t.size(0), S = x_t.size(1), d = a.dim, rq = a.q_lora_rank, H = a.n_heads;
  const int64_t dn = a.qk_nope_head_dim, dr = a.qk_rope_head_dim, dv = a.v_head_dim, r = a.kv_lora_rank;
  const int64_t half = dr / 2, dq = dn + dr, k = k_override > 0 ? k_override : a.index_topk;
  const double eps = a.rms_norm_eps, scale = a.softmax_scale();
  std::vector<double> I = naive_index_scores(m, a, x_t, start_pos, rope);
  std::vector<double> x = x_t.to_f64_vector(), wq_a = m.mla.wq_a.weight.to_f64_vector();
  std::vector<double> qn = m.mla.q_norm.weight.to_f64_vector(), wq_b = m.mla.wq_b.weight.to_f64_vector();
  std::vector<double> wkv_a = m.mla.wkv_a.weight.to_f64_vector(), kvn = m.mla.kv_norm.weight.to_f64_vector();
  std::vector<double> wkv_b = m.mla.wkv_b.weight.to_f64_vector(), wo = m.mla.wo.weight.to_f64_vector();
  std::vector<double> cosv = rope.cos.to_f64_vector(), sinv = rope.sin.to_f64_vector();
  // interleaved rotation of v[0:dr] at position p: pairs (2i, 2i+1)
  auto rotate = [&](double* v, int64_t p) {
    for (int64_t i = 0; i < half; i++) {
      double c = cosv[p * half + i], s = sinv[p * half + i], a0 = v[2 * i], a1 = v[2 * i + 1];
      v[2 * i] = a0 * c - a1 * s;
      v[2 * i + 1] = a0 * s + a1 * c;
    }
  };
  auto rms_norm = [&](std::vector<double>& v, const std::vector<double>& w) {
    double ms = 0;
    for (double e : v) ms += e * e;
    double inv = 1.0 / std::sqrt(ms / (double)v.size() + eps);
    for (size_t i = 0; i < v.size(); i++) v[i] *= inv * w[i];
  };
  // Per token: q [H, dn+dr] (rope on each head's last dr), k_nope / v per head from c, the shared rotated k_pe.
  std::vector<double> q(B * S * H * dq), knope(B * S * H * dn), val(B * S * H * dv), kpe(B * S * dr);
  for (int64_t b = 0; b < B; b++)
    for (int64_t s = 0; s < S; s++) {
      const int64_t bs = b * S + s, p = start_pos + s;
      const double* xs = &x[bs * d];
      std::vector<double> qr(rq, 0.0), c(r, 0.0);
      for (int64_t i = 0; i < rq; i++)
        for (int64_t j = 0; j < d; j++) qr[i] += wq_a[i * d + j] * xs[j];
      rms_norm(qr, qn);
      for (int64_t o = 0; o < H * dq; o++) {
        double acc = 0;
        for (int64_t j = 0; j < rq; j++) acc += wq_b[o * rq + j] * qr[j];
        q[bs * H * dq + o] = acc;
      }
      for (int64_t h = 0; h < H; h++) rotate(&q[(bs * H + h) * dq + dn], p);
      for (int64_t i = 0; i < r + dr; i++) {
        double acc = 0;
        for (int64_t j = 0; j < d; j++) acc += wkv_a[i * d + j] * xs[j];
        if (i < r) c[i] = acc;
        else kpe[bs * dr + (i - r)] = acc;
      }
      rms_norm(c, kvn);
      rotate(&kpe[bs * dr], p);
      for (int64_t h = 0; h < H; h++)
        for (int64_t i = 0; i < dn + dv; i++) {
          double acc = 0;
          for (int64_t j = 0; j < r; j++) acc += wkv_b[(h * (dn + dv) + i) * r + j] * c[j];
          if (i < dn) knope[(bs * H + h) * dn + i] = acc;
          else val[(bs * H + h) * dv + (i - dn)] = acc;
        }
    }
  NaiveDSA ref;
  ref.out.assign(B * S * d, 0.0);
  ref.I = I;
  ref.target.assign(B * S * S, 0.0);
  for (int64_t b = 0; b < B; b++)
    for (int64_t s = 0; s < S; s++) {
      const int64_t bs = b * S + s;
      // The selection: causal keys t <= s sorted by I (ties: the lower slot), the first min(k, s+1).
      std::vector<int64_t> order;
      for (int64_t t = 0; t <= s; t++) order.push_back(t);
      std::stable_sort(order.begin(), order.end(), [&](int64_t u, int64_t w) { return I[bs * S + u] > I[bs * S + w]; });
      order.resize(std::min<int64_t>(k, s + 1));
      ref.chosen.emplace_back(order.begin(), order.end());
      std::vector<double> o(H * dv, 0.0);
      for (int64_t h = 0; h < H; h++) {
        const double* qh = &q[(bs * H + h) * dq];
        std::vector<double> sc;
        for (int64_t t : order) {
          const int64_t bt = b * S + t;
          double dot = 0;
          for (int64_t i = 0; i < dn; i++) dot += qh[i] * knope[(bt * H + h) * dn + i];
          for (int64_t i = 0; i < dr; i++) dot += qh[dn + i] * kpe[bt * dr + i];
          sc.push_back(dot * scale);
        }
        double mx = *std::max_element(sc.begin(), sc.end()), z = 0;
        for (double& e : sc) z += (e = std::exp(e - mx));
        for (size_t j = 0; j < order.size(); j++) {
          for (int64_t i = 0; i < dv; i++) o[h * dv + i] += sc[j] / z * val[((b * S + order[j]) * H + h) * dv + i];
          ref.target[bs * S + order[j]] += sc[j] / z / (double)H;
        }
      }
      for (int64_t i = 0; i < d; i++) {
        double acc = 0;
        for (int64_t j = 0; j < H * dv; j++) acc += wo[i * H * dv + j] * o[j];
        ref.out[bs * d + i] = acc;
      }
    }
  return ref;
}

TEST_CASE("dsa: with index_topk < T it matches a plain-loop DSA in doubles (outputs and selected sets)") {
  ModelArgs a = small_args();  // k = 5 of up to 12 causal keys, dv 6 != dn 8
  Rng rng(17);
  DSA dsa(a, rng, DType::f64);
  randomise_norms(dsa, rng);
  RopeTable rope(a);
  const int64_t B = 2, S = 12, k = a.index_topk;
  for (int64_t start_pos : {0, 3}) {
    CAPTURE(start_pos);
    // Draw x until no query's k-th and (k+1)-th index scores tie (dead-ReLU zeros do): the selection is unique.
    Tensor x;
    double margin = 0;
    for (uint64_t seed = 300; seed < 400 && !(margin > 1e-6); seed++) {
      Rng xr(seed);
      x = Tensor::randn({B, S, a.dim}, xr, 1.0, DType::f64);
      NoGradGuard no_grad;
      margin = selection_margin(dsa.forward_step(x, start_pos, rope).index_scores, k);
    }
    REQUIRE(margin > 1e-6);
    NaiveDSA ref = naive_dsa_forward(dsa, a, x, start_pos, rope);
    DSAStep step = dsa.forward_step(x, start_pos, rope);
    REQUIRE(step.indices.shape() == Shape{B, S, k});
    std::vector<int64_t> idx = step.indices.to_i64_vector();
    int64_t sparse_queries = 0;
    for (int64_t row = 0; row < B * S; row++) {
      CHECK(selected_set(idx, row, k) == ref.chosen[row]);
      sparse_queries += (row % S) + 1 > k;
    }
    CHECK(sparse_queries == B * (S - k));  // most queries really drop keys
    std::vector<double> out = step.out.to_f64_vector();
    double err = 0, scale = 0;
    for (size_t i = 0; i < out.size(); i++) {
      err = std::max(err, std::abs(out[i] - ref.out[i]));
      scale = std::max(scale, std::abs(ref.out[i]));
    }
    MESSAGE("start_pos " << start_pos << ": max |DSA - plain loop| = " << err << " (outputs up to " << scale
                         << "), top-k margin " << margin);
    CHECK(scale > 1e-2);
    CHECK(err <= 1e-10);
  }
}

// ---- (c) k >= T is dense MLA ------------------------------------------------------------------------------

TEST_CASE("dsa: with index_topk >= T it equals dense MLA, values and gradients") {
  ModelArgs a = small_args();
  const int64_t B = 2, S = 10;
  for (int64_t topk : {S, S + 6}) {
    a.index_topk = topk;
    Rng rng(21);
    DSA dsa(a, rng);
    randomise_norms(dsa, rng);
    RopeTable rope(a);
    Tensor x = Tensor::randn({B, S, a.dim}, rng).requires_grad_();
    for (int64_t start_pos : {0, 4}) {
      CAPTURE(topk);
      CAPTURE(start_pos);
      NamedParameters params = dsa.mla.named_parameters();
      Tensor w = Tensor::randn({B, S, a.dim}, rng);
      std::vector<std::vector<double>> grads[2];
      Tensor outs[2];
      for (int sparse = 0; sparse < 2; sparse++) {
        for (auto& [name, t] : params) t->zero_grad();
        x.zero_grad();
        outs[sparse] = sparse ? dsa.forward(x, start_pos, rope) : dsa.mla.forward(x, start_pos, rope, nullptr, MLAMode::absorbed);
        sum(mul(outs[sparse], w)).backward();
        for (auto& [name, t] : params) grads[sparse].push_back(t->grad().to_f64_vector());
        grads[sparse].push_back(x.grad().to_f64_vector());
      }
      CHECK(max_abs_diff(outs[0], outs[1]) <= 1e-5);
      for (size_t i = 0; i < grads[0].size(); i++) {
        double m = 0;
        for (size_t j = 0; j < grads[0][i].size(); j++) m = std::max(m, std::abs(grads[0][i][j] - grads[1][i][j]));
        CHECK_MESSAGE(m <= 1e-4, (i < params.size() ? params[i].first : std::string("x")) << " gradient differs by " << m);
      }
    }
  }
}

// ---- (d) incremental decoding == full forward -------------------------------------------------------------

TEST_CASE("dsa: decoding with the caches equals the full forward (token by token and in chunks)") {
  ModelArgs a = small_args();
  Rng rng(31);
  DSA dsa(a, rng);
  randomise_norms(dsa, rng);
  RopeTable rope(a);
  const int64_t B = 2, S = 12;
  Tensor x = Tensor::randn({B, S, a.dim}, rng);
  DSAStep full = dsa.forward_step(x, 0, rope);
  for (const std::vector<int64_t>& chunks : {std::vector<int64_t>(S, 1), std::vector<int64_t>{4, 1, 5, 2}}) {
    for (bool grad_mode : {false, true}) {
      CAPTURE(chunks.size());
      CAPTURE(grad_mode);
      DSACache cache(a, 3, 20);  // bigger than needed
      std::vector<Tensor> outs;
      int64_t pos = 0;
      std::vector<int64_t> full_idx = full.indices.to_i64_vector();
      const int64_t kf = full.indices.size(2);
      for (int64_t n : chunks) {
        std::unique_ptr<NoGradGuard> guard;
        if (!grad_mode) guard = std::make_unique<NoGradGuard>();
        DSAStep step = dsa.forward_step(narrow(x, 1, pos, n), pos, rope, &cache);
        outs.push_back(step.out);
        // Same selections as the full forward (slots are absolute positions in both: start_pos 0, no cache).
        std::vector<int64_t> idx = step.indices.to_i64_vector();
        const int64_t k = step.indices.size(2);
        CHECK(k == std::min(a.index_topk, pos + n));
        for (int64_t b = 0; b < B; b++)
          for (int64_t s = 0; s < n; s++)
            CHECK(selected_set(idx, b * n + s, k) == selected_set(full_idx, b * S + pos + s, kf));
        pos += n;
      }
      CHECK(max_abs_diff(cat(outs, 1), full.out) <= 1e-5);
    }
  }
}

TEST_CASE("dsa: a decode step writes one row of each cache in place and copies nothing of them") {
  // Wide cache rows (r_kv 64 + dr 8 + d_I 64 values per token) against the per-step work that is O(T) by
  // design: the indexer's H_I = 2 dot products per cached key (dots, ReLU, I), so that a copy of either
  // cache buffer would stand out.
  ModelArgs a = small_args();
  a.max_seq_len = 256;
  a.kv_lora_rank = 64;
  a.index_head_dim = 64;
  a.index_n_heads = 2;
  Rng rng(33);
  DSA dsa(a, rng);
  randomise_norms(dsa, rng);
  RopeTable rope(a);
  const int64_t B = 2, Smax = 256, prefill = 240, steps = 4;
  Tensor x = Tensor::randn({B, prefill + steps, a.dim}, rng);
  NoGradGuard no_grad;
  Tensor full = dsa.forward(x, 0, rope);
  DSACache cache(a, B, Smax);
  REQUIRE(cache.mla.kv.shape() == Shape{B, Smax, a.kv_lora_rank + a.qk_rope_head_dim});
  const void* kv_data = cache.mla.kv.data<float>();
  const void* k_data = cache.indexer.k_cache.data<float>();
  dsa.forward(narrow(x, 1, 0, prefill), 0, rope, &cache);
  for (int64_t pos = prefill; pos < prefill + steps; pos++) {
    CAPTURE(pos);
    std::vector<float> kv_before = cache.mla.kv.to_f32_vector(), k_before = cache.indexer.k_cache.to_f32_vector();
    cpu_allocator_reset_peak();
    const int64_t live = cpu_allocator_stats().allocated_bytes;
    Tensor y = dsa.forward(narrow(x, 1, pos, 1), pos, rope, &cache);
    const int64_t transient = cpu_allocator_stats().peak_bytes - live;
    const int64_t prefix_bytes = B * pos * (cache.bytes_per_token());
    MESSAGE("decode at " << pos << ": peak allocation " << transient << " B, the cached prefix " << prefix_bytes << " B");
    CHECK(transient < prefix_bytes / 4);
    CHECK(max_abs_diff(y, narrow(full, 1, pos, 1)) <= 1e-5);
    CHECK(cache.mla.kv.data<float>() == kv_data);
    CHECK(cache.indexer.k_cache.data<float>() == k_data);
    // Outside row `pos` of the B sequences both buffers are bit-for-bit unchanged.
    for (int which = 0; which < 2; which++) {
      const Tensor& buf = which == 0 ? cache.mla.kv : cache.indexer.k_cache;
      const std::vector<float>& before = which == 0 ? kv_before : k_before;
      const float* now = buf.data<float>();
      const int64_t w = buf.size(2);
      int64_t changed_elsewhere = 0;
      for (int64_t i = 0; i < buf.numel(); i++) {
        int64_t t = (i / w) % Smax;
        if (t != pos && std::memcmp(&before[i], &now[i], sizeof(float)) != 0) changed_elsewhere++;
      }
      CHECK_MESSAGE(changed_elsewhere == 0, (which == 0 ? "mla.kv" : "indexer.k_cache"));
    }
  }
}

// ---- (e) cost ----------------------------------------------------------------------------------------------

TEST_CASE("dsa: each query attends to min(k, t+1) entries; the gathered tensors have k slots, not T") {
  ModelArgs a = small_args();  // k = 5
  Rng rng(41);
  DSA dsa(a, rng);
  RopeTable rope(a);
  const int64_t B = 2, S = 16, k = a.index_topk;
  Tensor x = Tensor::randn({B, S, a.dim}, rng);
  DSAStep step = dsa.forward_step(x, 0, rope);
  CHECK(step.probs.shape() == Shape{B, S, a.n_heads, k});
  int64_t total = 0;
  for (int64_t b = 0; b < B; b++)
    for (int64_t t = 0; t < S; t++) {
      CHECK(step.attended_per_query[b * S + t] == std::min(k, t + 1));
      total += std::min(k, t + 1);
    }
  CHECK(step.attended == total);
  // Unused slots carry no probability; each head's probabilities sum to 1 over the slots in use.
  std::vector<double> p = step.probs.to_f64_vector();
  std::vector<int64_t> idx = step.indices.to_i64_vector();
  for (int64_t row = 0; row < B * S; row++)
    for (int64_t h = 0; h < a.n_heads; h++) {
      double total_p = 0;
      for (int64_t j = 0; j < k; j++) {
        double pj = p[(row * a.n_heads + h) * k + j];
        if (idx[row * k + j] < 0) CHECK(pj == 0.0);
        total_p += pj;
      }
      CHECK(std::abs(total_p - 1.0) < 1e-5);
    }
  // Decoding one token at position p: T = p + 1 keys in the cache, min(k, p+1) attended.
  DSACache cache(a, B, S);
  NoGradGuard no_grad;
  for (int64_t pos = 0; pos < S; pos++) {
    DSAStep d = dsa.forward_step(narrow(x, 1, pos, 1), pos, rope, &cache);
    CHECK(d.probs.size(3) == std::min(k, pos + 1));
    CHECK(d.attended == B * std::min(k, pos + 1));
  }
}

// ---- (f) float64 gradcheck ---------------------------------------------------------------------------------

TEST_CASE("dsa: float64 gradcheck w.r.t. x and every weight" * doctest::test_suite("gradcheck")) {
  ModelArgs a = tiny_args();  // dim 16, 2 heads, r_q 8, r_kv 8, dn 4, dr 4, dv 4, H_I 2, d_I 8, k 3
  Rng rng(5);
  DSA dsa(a, rng, DType::f64);
  randomise_norms(dsa, rng);
  RopeTable rope(a);
  const int64_t S = 6;
  // The selection is discontinuous: draw x until every query's k-th best index score beats the next one by
  // more than 1e-3 (with H_I = 2, exact ties of dead-ReLU zeros at the k-th place are common), at both
  // start positions. Then no nudge of gradcheck (1e-6) can flip a selection.
  Tensor x;
  double margin[2] = {0, 0};
  for (uint64_t seed = 100; seed < 200 && !(margin[0] > 1e-3 && margin[1] > 1e-3); seed++) {
    Rng xr(seed);
    x = Tensor::randn({2, S, a.dim}, xr, 1.0, DType::f64);
    NoGradGuard no_grad;
    for (int i = 0; i < 2; i++) margin[i] = selection_margin(dsa.forward_step(x, 3 * i, rope).index_scores, a.index_topk);
  }
  MESSAGE("smallest top-k margins: " << margin[0] << " (start_pos 0), " << margin[1] << " (start_pos 3)");
  REQUIRE(margin[0] > 1e-3);
  REQUIRE(margin[1] > 1e-3);
  x.requires_grad_();
  std::vector<Tensor> inputs{x};
  NamedParameters params = dsa.named_parameters();
  REQUIRE(params.size() == 12u);
  for (auto& [name, t] : params) {
    REQUIRE(t->dtype() == DType::f64);
    inputs.push_back(*t);  // the same TensorImpl: gradcheck's in-place nudges reach the module
  }
  OneThread one_thread;
  for (int64_t start_pos : {0, 3}) {
    CAPTURE(start_pos);
    Tensor indices;
    {
      NoGradGuard no_grad;
      indices = dsa.forward_step(x, start_pos, rope).indices;
    }
    // 1. The selection held fixed: the main attention is smooth in x and MLA's weights.
    GradcheckResult fixed = gradcheck(
        [&](const std::vector<Tensor>& in) { return dsa.forward_selected(in[0], start_pos, rope, indices).out; }, inputs);
    CHECK_MESSAGE(fixed.ok, fixed.message);
    CHECK(fixed.max_abs_error < 1e-6);
    // 2. The selection free: the nudges (1e-6) are far smaller than the gap between the k-th and the next score,
    //    so no selection flips; the indexer's weights then get exactly zero gradient, numerically and analytically.
    GradcheckResult free = gradcheck(
        [&](const std::vector<Tensor>& in) { return dsa.forward(in[0], start_pos, rope); }, inputs);
    CHECK_MESSAGE(free.ok, free.message);
    CHECK(free.max_abs_error < 1e-6);
  }
}

TEST_CASE("dsa: float64 gradcheck of the indexer's KL losses w.r.t. the indexer weights" *
          doctest::test_suite("gradcheck")) {
  ModelArgs a = tiny_args();
  Rng rng(9);
  DSA dsa(a, rng, DType::f64);
  randomise_norms(dsa, rng);
  RopeTable rope(a);
  Tensor x = Tensor::randn({2, 6, a.dim}, rng, 1.0, DType::f64);
  std::vector<Tensor> inputs;
  NamedParameters iparams = dsa.indexer.named_parameters();
  for (auto& [name, t] : iparams) inputs.push_back(*t);
  OneThread one_thread;
  // Dense warm-up: smooth in the indexer's weights (away from ReLU kinks).
  GradcheckResult warm = gradcheck(
      [&](const std::vector<Tensor>&) { return indexer_warmup_loss(dsa, x, 0, rope); }, inputs);
  CHECK_MESSAGE(warm.ok, warm.message);
  // Sparse stage over a fixed selection and fixed main-attention probabilities.
  DSAStep step;
  {
    NoGradGuard no_grad;
    step = dsa.forward_step(x, 0, rope);
  }
  Tensor qr = step.qr.detach();
  GradcheckResult sparse = gradcheck(
      [&](const std::vector<Tensor>&) {
        return indexer_sparse_kl(dsa.indexer.scores(x, qr, 0, rope), step.indices, step.probs);
      },
      inputs);
  CHECK_MESSAGE(sparse.ok, sparse.message);
}

// ---- (g) the losses -----------------------------------------------------------------------------------------

TEST_CASE("dsa: the KL losses are KLs, reach only the indexer, and agree when k >= T") {
  ModelArgs a = small_args();
  const int64_t B = 2, S = 9;
  a.index_topk = 64;  // k >= T: the sparse loss over S_t = every causal key is the dense warm-up loss
  Rng rng(51);
  DSA dsa(a, rng);
  randomise_norms(dsa, rng);
  RopeTable rope(a);
  Tensor x = Tensor::randn({B, S, a.dim}, rng).requires_grad_();
  NamedParameters params = dsa.named_parameters("attn");

  Tensor warm = indexer_warmup_loss(dsa, x, 0, rope);
  // By hand: Σ_t Σ_s p log(p / q) from the dense probabilities and the indexer's softmax.
  Tensor target, I;
  {
    NoGradGuard no_grad;
    target = attention_target(mla_attention_probs(dsa.mla, x, 0, rope));
    I = dsa.indexer.scores(x, dsa.mla.q_norm.forward(dsa.mla.wq_a.forward(x)), 0, rope);
  }
  std::vector<double> p = target.to_f64_vector(), iv = I.to_f64_vector();
  double kl = 0;
  for (int64_t row = 0; row < B * S; row++) {
    int64_t s = row % S;
    double mx = -INFINITY, z = 0, mass = 0;
    for (int64_t t = 0; t <= s; t++) mx = std::max(mx, iv[row * S + t]);
    for (int64_t t = 0; t <= s; t++) z += std::exp(iv[row * S + t] - mx);
    for (int64_t t = 0; t < S; t++) {
      if (t > s) {
        CHECK(p[row * S + t] == 0.0);
        continue;
      }
      double pt = p[row * S + t], logq = iv[row * S + t] - mx - std::log(z);
      mass += pt;
      if (pt > 0) kl += pt * (std::log(pt) - logq);
    }
    CHECK(std::abs(mass - 1.0) < 1e-5);
  }
  CHECK(warm.item() >= -1e-5);
  CHECK(std::abs(warm.item() - kl) <= 1e-4 * std::max(1.0, kl));

  for (auto& [name, t] : params) t->zero_grad();
  warm.backward();
  for (auto& [name, t] : params) {
    bool is_indexer = contains(name, "indexer");
    CHECK_MESSAGE(t->grad().defined() == is_indexer, name);
  }
  CHECK(!x.grad().defined());  // the indexer sees x.detach()

  // Sparse stage: the LM side (step.out) reaches MLA and x, never the indexer; the KL reaches only the indexer.
  for (auto& [name, t] : params) t->zero_grad();
  DSAStep step = dsa.forward_step(x, 0, rope, nullptr, /*indexer_grad=*/true);
  Tensor sparse = indexer_sparse_loss(step);
  CHECK(std::abs(sparse.item() - warm.item()) <= 1e-4 * std::max(1.0, warm.item()));
  sparse.backward();
  for (auto& [name, t] : params) CHECK_MESSAGE(t->grad().defined() == contains(name, "indexer"), name);
  for (auto& [name, t] : params) t->zero_grad();
  sum(square(step.out)).backward();
  for (auto& [name, t] : params) CHECK_MESSAGE(t->grad().defined() == !contains(name, "indexer"), name);
  CHECK(x.grad().defined());

  // With a real selection (k < T) the sparse loss is a KL over S_t: finite and ≥ 0.
  ModelArgs a2 = small_args();
  Rng rng2(52);
  DSA dsa2(a2, rng2);
  DSAStep step2 = dsa2.forward_step(Tensor::randn({B, S, a2.dim}, rng2), 0, rope, nullptr, true);
  double l2 = indexer_sparse_loss(step2).item();
  CHECK(std::isfinite(l2));
  CHECK(l2 >= -1e-5);
}

// ---- (g2) the two training stages: dsa_train_forward, indexer_recall ---------------------------------------

namespace {

// KL(P ‖ softmax(I)) of one query row by hand, over the keys in `keys` only, P renormalised over them.
double kl_by_hand(const std::vector<double>& P, const std::vector<double>& I, int64_t row, int64_t T,
                  const std::set<int64_t>& keys) {
  double mx = -INFINITY, z = 0, mass = 0, kl = 0;
  for (int64_t t : keys) mx = std::max(mx, I[row * T + t]);
  for (int64_t t : keys) z += std::exp(I[row * T + t] - mx);
  for (int64_t t : keys) mass += P[row * T + t];
  for (int64_t t : keys) {
    double pt = P[row * T + t] / mass, logq = I[row * T + t] - mx - std::log(z);
    if (pt > 0) kl += pt * (std::log(pt) - logq);
  }
  return kl;
}

// |chosen ∩ top-m of the dense target| / m, m = |chosen|, ties to the lower slot: recall by hand.
double recall_by_hand(const std::vector<double>& dense, int64_t row, int64_t T, const std::set<int64_t>& chosen) {
  std::vector<int64_t> order(T);
  for (int64_t t = 0; t < T; t++) order[t] = t;
  std::stable_sort(order.begin(), order.end(), [&](int64_t u, int64_t v) { return dense[row * T + u] > dense[row * T + v]; });
  int64_t hits = 0;
  for (size_t i = 0; i < chosen.size(); i++) hits += chosen.count(order[i]);
  return (double)hits / (double)chosen.size();
}

}  // namespace

TEST_CASE("dsa: indexer_kl_loss and indexer_sparse_kl by value on hand-made inputs") {
  // Identical distributions: scores = log p  =>  KL = 0 (a −inf entry — a future key — is left out of both).
  std::vector<double> p{0.2, 0.5, 0.3, 0.0}, scores{std::log(0.2), std::log(0.5), std::log(0.3), -INFINITY};
  Tensor kl0 = indexer_kl_loss(Tensor::from_vector(scores, {1, 1, 4}), Tensor::from_vector(p, {1, 1, 4}));
  CHECK(std::abs(kl0.item()) < 1e-12);
  // Two keys: target (1/2, 1/2), softmax(0, ln 3) = (1/4, 3/4):
  //   KL = ½ ln(½ / ¼) + ½ ln(½ / ¾) = ½ ln 2 + ½ ln(2/3) = ½ ln(4/3).
  Tensor kl2 = indexer_kl_loss(Tensor::from_vector(std::vector<double>{0.0, std::log(3.0)}, {1, 1, 2}),
                               Tensor::from_vector(std::vector<double>{0.5, 0.5}, {1, 1, 2}));
  CHECK(std::abs(kl2.item() - 0.5 * std::log(4.0 / 3.0)) < 1e-12);
  // Two rows sum (the trainer's mean divides by B·S = 2 itself).
  Tensor two = indexer_kl_loss(Tensor::from_vector(std::vector<double>{0.0, std::log(3.0), 1.0, 1.0}, {1, 2, 2}),
                               Tensor::from_vector(std::vector<double>{0.5, 0.5, 0.5, 0.5}, {1, 2, 2}));
  CHECK(std::abs(two.item() - 0.5 * std::log(4.0 / 3.0)) < 1e-12);
  // Restricted to the selected set: I over T = 3 keys, slots {2, 0} selected, H = 2 heads' probabilities over
  // the slots (0.5, 0.5) and (0.7, 0.3) => target (0.6, 0.4) over slots (2, 0); softmax(I_2, I_0) = softmax(ln 3, 0)
  // = (3/4, 1/4); KL = 0.6 ln(0.6/0.75) + 0.4 ln(0.4/0.25). The unselected slot 1 (score 5) plays no part.
  Tensor I = Tensor::from_vector(std::vector<double>{0.0, 5.0, std::log(3.0)}, {1, 1, 3});
  Tensor idx = Tensor::from_vector(std::vector<int64_t>{2, 0}, {1, 1, 2});
  Tensor probs = Tensor::from_vector(std::vector<double>{0.5, 0.5, 0.7, 0.3}, {1, 1, 2, 2});
  double want = 0.6 * std::log(0.6 / 0.75) + 0.4 * std::log(0.4 / 0.25);
  CHECK(std::abs(indexer_sparse_kl(I, idx, probs).item() - want) < 1e-12);
  // An unused slot (−1) is left out: a query with one key in use has KL 0.
  Tensor one = indexer_sparse_kl(I, Tensor::from_vector(std::vector<int64_t>{1, -1}, {1, 1, 2}),
                                 Tensor::from_vector(std::vector<double>{1.0, 0.0, 1.0, 0.0}, {1, 1, 2, 2}));
  CHECK(std::abs(one.item()) < 1e-12);
}

TEST_CASE("dsa: indexer_recall by value on a hand-made example") {
  // B 1, S 4, T 4, k 2. Rows: the dense target p_t and the selection.
  //   q0: p (1, 0, 0, 0),        sel {0, −1}: m 1, dense top-1 {0}            -> 1
  //   q1: p (0.3, 0.7, 0, 0),    sel {0, 1}:  m 2, top-2 {1, 0}               -> 1
  //   q2: p (0.5, 0.1, 0.4, 0),  sel {1, 2}:  m 2, top-2 {0, 2}               -> 1/2
  //   q3: p (0.1, 0.2, 0.3, 0.4), sel {0, 1}: m 2, top-2 {3, 2}               -> 0
  Tensor target = Tensor::from_vector(
      std::vector<double>{1, 0, 0, 0, 0.3, 0.7, 0, 0, 0.5, 0.1, 0.4, 0, 0.1, 0.2, 0.3, 0.4}, {1, 4, 4});
  Tensor idx = Tensor::from_vector(std::vector<int64_t>{0, -1, 0, 1, 1, 2, 0, 1}, {1, 4, 2});
  CHECK(std::abs(indexer_recall(idx, target) - 2.5 / 4.0) < 1e-15);
  // Ties go to the lower slot: p (0.5, 0.25, 0.25), m 2 -> top-2 {0, 1}; sel {0, 2} -> 1/2, sel {1, 0} -> 1.
  Tensor tie = Tensor::from_vector(std::vector<double>{0.5, 0.25, 0.25}, {1, 1, 3});
  CHECK(indexer_recall(Tensor::from_vector(std::vector<int64_t>{0, 2}, {1, 1, 2}), tie) == 0.5);
  CHECK(indexer_recall(Tensor::from_vector(std::vector<int64_t>{1, 0}, {1, 1, 2}), tie) == 1.0);
  CHECK(std::isnan(indexer_recall(Tensor::from_vector(std::vector<int64_t>{-1, -1}, {1, 1, 2}), tie)));
  CHECK(contains(error_of([&] { indexer_recall(Tensor::from_vector(std::vector<int64_t>{0, 3}, {1, 1, 2}), tie); }),
                 "key slots are -1 (unused) or in [0, 3)"));
}

TEST_CASE("dsa: dsa_train_forward — losses and recall by value against the plain loop, both stages") {
  ModelArgs a = small_args();  // k = 5
  Rng rng(71);
  DSA dsa(a, rng, DType::f64);
  randomise_norms(dsa, rng);
  RopeTable rope(a);
  const int64_t B = 2, S = 11;
  const int64_t k = a.index_topk;
  Tensor x;
  double margin = 0;
  for (uint64_t seed = 500; seed < 600 && !(margin > 1e-6); seed++) {  // a unique selection
    Rng xr(seed);
    x = Tensor::randn({B, S, a.dim}, xr, 1.0, DType::f64);
    NoGradGuard no_grad;
    margin = selection_margin(dsa.forward_step(x, 0, rope).index_scores, k);
  }
  REQUIRE(margin > 1e-6);
  NaiveDSA sparse_ref = naive_dsa_forward(dsa, a, x, 0, rope), dense_ref = naive_dsa_forward(dsa, a, x, 0, rope, S);
  double warm_kl = 0, sparse_kl = 0, recall = 0;
  for (int64_t row = 0; row < B * S; row++) {
    warm_kl += kl_by_hand(dense_ref.target, dense_ref.I, row, S, dense_ref.chosen[row]);  // all causal keys
    sparse_kl += kl_by_hand(sparse_ref.target, sparse_ref.I, row, S, sparse_ref.chosen[row]);
    recall += recall_by_hand(dense_ref.target, row, S, sparse_ref.chosen[row]);
  }
  warm_kl /= (double)(B * S);  // the mean over queries
  sparse_kl /= (double)(B * S);
  recall /= (double)(B * S);
  MESSAGE("by hand: warm-up KL/query " << warm_kl << ", sparse KL/query " << sparse_kl << ", recall " << recall);
  CHECK(recall < 1.0);  // the random indexer misses some of the dense top keys
  CHECK(recall > 0.0);

  DSATrainStep warm = dsa_train_forward(dsa, x, 0, rope, DSAStage::dense_warmup, true);
  CHECK(std::abs(warm.indexer_loss.item() - warm_kl) < 1e-12);
  CHECK(std::abs(warm.recall - recall) < 1e-12);
  // out = the dense MLA output.
  NoGradGuard no_grad;
  CHECK(max_abs_diff(warm.out, Tensor::from_vector(dense_ref.out, {B, S, a.dim})) < 1e-10);
  DSATrainStep sparse = dsa_train_forward(dsa, x, 0, rope, DSAStage::sparse, true);
  CHECK(std::abs(sparse.indexer_loss.item() - sparse_kl) < 1e-12);
  CHECK(std::abs(sparse.recall - recall) < 1e-12);
  CHECK(max_abs_diff(sparse.out, Tensor::from_vector(sparse_ref.out, {B, S, a.dim})) < 1e-10);
  CHECK(std::isnan(dsa_train_forward(dsa, x, 0, rope, DSAStage::sparse, false).recall));
  // Under NoGradGuard (evaluation) both stages still give their losses.
  CHECK(std::abs(dsa_train_forward(dsa, x, 0, rope, DSAStage::dense_warmup, false).indexer_loss.item() - warm_kl) < 1e-12);
  // k >= T: the selection is every causal key, recall exactly 1 and the two stages' losses agree.
  ModelArgs wide = a;
  wide.index_topk = 64;
  Rng rng2(72);
  DSA dense(wide, rng2, DType::f64);
  DSATrainStep w1 = dsa_train_forward(dense, x, 0, rope, DSAStage::dense_warmup, true);
  DSATrainStep w2 = dsa_train_forward(dense, x, 0, rope, DSAStage::sparse, true);
  CHECK(w1.recall == 1.0);
  CHECK(w2.recall == 1.0);
  CHECK(std::abs(w1.indexer_loss.item() - w2.indexer_loss.item()) < 1e-12);
}

TEST_CASE("dsa: dsa_train_forward — indexer_loss reaches only attn.indexer.*, out only the main model") {
  ModelArgs a = small_args();
  Rng rng(73);
  DSA dsa(a, rng);
  randomise_norms(dsa, rng);
  RopeTable rope(a);
  Tensor x = Tensor::randn({2, 10, a.dim}, rng).requires_grad_();
  NamedParameters params = dsa.named_parameters("attn");
  for (DSAStage stage : {DSAStage::dense_warmup, DSAStage::sparse}) {
    CAPTURE(dsa_stage_name(stage));
    for (auto& [name, t] : params) t->zero_grad();
    x.zero_grad();
    DSATrainStep r = dsa_train_forward(dsa, x, 0, rope, stage, false);
    REQUIRE(r.indexer_loss.requires_grad());
    r.indexer_loss.backward();
    int64_t indexer_params = 0;
    for (auto& [name, t] : params) {
      bool is_indexer = contains(name, "attn.indexer.");
      indexer_params += is_indexer;
      CHECK_MESSAGE(t->grad().defined() == is_indexer, name);
      if (is_indexer && t->grad().defined()) {
        double g = 0;
        for (double v : t->grad().to_f64_vector()) g += std::abs(v);
        CHECK_MESSAGE(g > 0, name << " got an all-zero gradient");
      }
    }
    CHECK(indexer_params == 5);
    CHECK(!x.grad().defined());  // the indexer reads x.detach()
    // The output goes to the LM loss: it reaches x and every MLA weight, never the indexer.
    for (auto& [name, t] : params) t->zero_grad();
    sum(square(r.out)).backward();
    for (auto& [name, t] : params) CHECK_MESSAGE(t->grad().defined() == !contains(name, "indexer"), name);
    CHECK(x.grad().defined());
  }
}

TEST_CASE("dsa: float64 gradcheck of dsa_train_forward's indexer_loss w.r.t. the indexer, both stages" *
          doctest::test_suite("gradcheck")) {
  ModelArgs a = tiny_args();  // k = 3
  Rng rng(75);
  DSA dsa(a, rng, DType::f64);
  randomise_norms(dsa, rng);
  RopeTable rope(a);
  // In the sparse stage the selection moves with the indexer's weights: pick x with every top-k margin > 1e-3,
  // far above what gradcheck's nudges can change.
  Tensor x;
  double margin = 0;
  for (uint64_t seed = 700; seed < 800 && !(margin > 1e-3); seed++) {
    Rng xr(seed);
    x = Tensor::randn({2, 6, a.dim}, xr, 1.0, DType::f64);
    NoGradGuard no_grad;
    margin = selection_margin(dsa.forward_step(x, 0, rope).index_scores, a.index_topk);
  }
  REQUIRE(margin > 1e-3);
  std::vector<Tensor> inputs;
  for (auto& [name, t] : dsa.indexer.named_parameters()) inputs.push_back(*t);
  OneThread one_thread;
  for (DSAStage stage : {DSAStage::dense_warmup, DSAStage::sparse}) {
    CAPTURE(dsa_stage_name(stage));
    GradcheckResult g = gradcheck(
        [&](const std::vector<Tensor>&) { return dsa_train_forward(dsa, x, 0, rope, stage, false).indexer_loss; },
        inputs);
    CHECK_MESSAGE(g.ok, g.message);
    CHECK(g.max_abs_error < 1e-7);
  }
}

// ---- (h) errors ----------------------------------------------------------------------------------------------

TEST_CASE("dsa: errors name the module and the shapes") {
  ModelArgs a = tiny_args();
  Rng rng(61);
  a.q_lora_rank = 0;
  CHECK(contains(error_of([&] { DSA d(a, rng); }), "q_lora_rank = 0"));
  a = tiny_args();
  a.index_topk = 0;
  CHECK(contains(error_of([&] { DSA d(a, rng); }), "index_topk = 0"));
  a = tiny_args();
  DSA dsa(a, rng);
  RopeTable rope(a);
  Tensor x = Tensor::randn({1, 4, a.dim}, rng);
  std::string e = error_of([&] { dsa.forward(Tensor::randn({1, 4, 7}, rng), 0, rope); });
  CHECK(contains(e, "[dsa]"));
  CHECK(contains(e, "must be [B, S, dim = 16]"));
  e = error_of([&] { dsa.forward_selected(x, 0, rope, Tensor::from_vector(std::vector<int64_t>(4 * 3, 9), {1, 4, 3})); });
  CHECK(contains(e, "key slots are -1 (unused) or in [0, 4)"));
  e = error_of([&] { dsa.forward_selected(x, 0, rope, Tensor::from_vector(std::vector<int64_t>(4 * 3, -1), {1, 4, 3})); });
  CHECK(contains(e, "has no selected key"));
  e = error_of([&] { indexer_sparse_loss(dsa.forward_step(x, 0, rope)); });
  CHECK(contains(e, "indexer_grad = true"));
}

// ---- (i) the fp8 indexer (index_fp8, the default; models/dsa.h) -----------------------------------------------

namespace {

ModelArgs fp8_args(ModelArgs a, const std::string& scale_fmt = "ue8m0") {
  a.index_fp8 = true;
  a.scale_fmt = scale_fmt;
  return a;
}


// rows of n values -> each row · H_n / √n, with the explicit matrix.
std::vector<double> rotate_rows(const std::vector<double>& x, int64_t n) {
  std::vector<double> h = test::sylvester_hadamard(n), y(x.size(), 0.0);
  for (size_t r = 0; r < x.size() / n; r++)
    for (int64_t j = 0; j < n; j++) {
      double acc = 0;
      for (int64_t i = 0; i < n; i++) acc += x[r * n + i] * h[i * n + j];
      y[r * n + j] = acc / std::sqrt((double)n);
    }
  return y;
}

// Two DSA modules with the same weights, one per indexer mode.
struct Pair {
  ModelArgs a8, a32;
  DSA d8, d32;
  Pair(const ModelArgs& base, uint64_t seed, const std::string& scale_fmt = "ue8m0")
      : a8(fp8_args(base, scale_fmt)), a32(base) {
    a32.index_fp8 = false;
    Rng r8(seed), r32(seed);
    d8 = DSA(a8, r8);
    d32 = DSA(a32, r32);
    Rng n8(seed + 1), n32(seed + 1);
    randomise_norms(d8, n8);
    randomise_norms(d32, n32);
  }
};

}  // namespace

TEST_CASE("dsa fp8: the indexer cache holds E4M3 codes and one f32 scale per 128 channels") {
  ModelArgs a = fp8_args(tiny_args());  // d_I 8
  DSACache cache(a, 2, 16);
  CHECK(cache.indexer.fp8);
  CHECK(cache.indexer.k_cache.dtype() == DType::f8e4m3);
  CHECK(cache.indexer.k_cache.shape() == Shape{2, 16, 8});
  CHECK(cache.indexer.k_scale_cache.dtype() == DType::f32);
  CHECK(cache.indexer.k_scale_cache.shape() == Shape{2, 16, 1});
  CHECK(cache.bytes_per_token() == (8 + 4) * 4 + 8 * 1 + 1 * 4);  // MLA f32 + d_I codes + one scale
  DSACache f64_cache(a, 1, 4, DType::f64);  // the model's dtype does not change the fp8 cache
  CHECK(f64_cache.indexer.k_cache.dtype() == DType::f8e4m3);
  CHECK(f64_cache.bytes_per_token() == (8 + 4) * 8 + 8 + 4);
  ModelArgs wide = a;
  wide.index_head_dim = 256;  // two 1×128 tiles per key
  DSACache wide_cache(wide, 1, 4);
  CHECK(wide_cache.indexer.k_scale_cache.shape() == Shape{1, 4, 2});
  CHECK(wide_cache.indexer.bytes_per_token() == 256 + 2 * 4);
  DSACache plain(tiny_args(), 2, 16);  // the fp32 indexer
  CHECK(!plain.indexer.k_scale_cache.defined());
  CHECK(plain.bytes_per_token() == (8 + 4 + 8) * 4);
}

TEST_CASE("dsa fp8: the fp8 score is within the E4M3 error bound of the exact score; loss_scores is the exact one") {
  // Bound. act_quant rounds each rotated value v to ŵ = e4m3(v/s)·s with |ŵ − v| ≤ e(v) = 2^-4·|v| + s·2^-10
  // (half an E4M3 ulp: relative 2^-4 for normals, absolute s·2^-10 among the subnormals; ops/cpu/fp8_quant.h).
  // Then |q̂·k̂ − q·k| ≤ Σ_d e(q_d)|k_d| + |q_d| e(k_d) + e(q_d) e(k_d), and ReLU is 1-Lipschitz, so
  //   |I_fp8 − I| ≤ Σ_h |w_h| · that + f32 rounding (1e-5 · (1 + Σ_h |w_h| Σ_d |q_d||k_d|)).
  // The rotation leaves q·k unchanged, so the exact score I is the fp32 indexer's.
  for (const std::string fmt : {"ue8m0", ""})
    for (int which = 0; which < 2; which++) {
      CAPTURE(fmt);
      CAPTURE(which);
      const ModelArgs base = which == 0 ? tiny_args() : small_args();
      Pair p(base, 70 + which, fmt);
      RopeTable rope(p.a32);
      const int64_t B = 2, S = which == 0 ? 8 : 16, HI = base.index_n_heads, dI = base.index_head_dim;
      Rng rng(80 + which);
      Tensor x = Tensor::randn({B, S, base.dim}, rng);
      NoGradGuard no_grad;
      DSAStep s8 = p.d8.forward_step(x, 0, rope), s32 = p.d32.forward_step(x, 0, rope);
      std::vector<double> I8 = s8.index_scores.to_f64_vector(), I32 = s32.index_scores.to_f64_vector();
      // loss_scores: the rotated, unquantized score = the fp32 score up to rounding
      CHECK(max_abs_diff(p.d8.indexer.loss_scores(x, s8.qr, 0, rope), s32.index_scores) <= 1e-5);

      NaiveIndexerParts parts = naive_indexer_parts(p.d32, p.a32, x, 0, rope);
      std::vector<double> q = rotate_rows(parts.q, dI), k = rotate_rows(parts.k, dI);
      auto tile_scale = [&](const double* v) {
        float amax = 0;
        for (int64_t d = 0; d < dI; d++) amax = std::max(amax, (float)std::abs(v[d]));
        return (double)cpu::fp8_tile_scale(amax, fmt == "ue8m0");
      };
      double worst_ratio = 0, worst_rel = 0, worst_mag = 0;
      for (int64_t b = 0; b < B; b++)
        for (int64_t s = 0; s < S; s++)
          for (int64_t t = 0; t < S; t++) {
            const size_t i = (b * S + s) * S + t;
            REQUIRE(std::isinf(I8[i]) == std::isinf(I32[i]));
            if (std::isinf(I8[i])) continue;
            const double* kt = &k[(b * S + t) * dI];
            const double sk = tile_scale(kt);
            double bound = 0, mag = 0, row_max = 0;
            for (int64_t h = 0; h < HI; h++) {
              const double* qh = &q[((b * S + s) * HI + h) * dI];
              const double sq = tile_scale(qh), wh = std::abs(parts.w[(b * S + s) * HI + h]);
              double err = 0, abs_dot = 0;
              for (int64_t d = 0; d < dI; d++) {
                double eq = std::ldexp(std::abs(qh[d]), -4) + std::ldexp(sq, -10);
                double ek = std::ldexp(std::abs(kt[d]), -4) + std::ldexp(sk, -10);
                err += eq * std::abs(kt[d]) + std::abs(qh[d]) * ek + eq * ek;
                abs_dot += std::abs(qh[d] * kt[d]);
              }
              bound += wh * err;
              mag += wh * abs_dot;
            }
            bound += 1e-5 * (1 + mag);
            for (int64_t u = 0; u <= s; u++) row_max = std::max(row_max, std::abs(I32[(b * S + s) * S + u]));
            const double diff = std::abs(I8[i] - I32[i]);
            CHECK(diff <= bound);
            worst_ratio = std::max(worst_ratio, diff / bound);
            worst_rel = std::max(worst_rel, diff / std::max(row_max, 1e-12));
            worst_mag = std::max(worst_mag, diff / std::max(mag, 1e-12));
          }
      MESSAGE("fp8 vs fp32 index score (" << std::string(which == 0 ? "tiny" : "small") << ", scale_fmt '" << fmt
                                          << "'): largest |I_fp8 - I| / bound " << worst_ratio
                                          << ", largest |I_fp8 - I| / max_t |I| of its row " << worst_rel
                                          << ", largest |I_fp8 - I| / sum_h |w_h| sum_d |q_d k_d| " << worst_mag);
    }
}

TEST_CASE("dsa fp8: decoding through the fp8 key cache equals the prefill (codes, scales, selections, outputs)") {
  ModelArgs a = fp8_args(small_args());
  Rng rng(91);
  DSA dsa(a, rng);
  randomise_norms(dsa, rng);
  RopeTable rope(a);
  const int64_t B = 2, S = 12, Smax = 20, dI = a.index_head_dim;
  Tensor x = Tensor::randn({B, S, a.dim}, rng);
  NoGradGuard no_grad;
  DSAStep full = dsa.forward_step(x, 0, rope);
  DSACache prefill(a, B, Smax);
  DSAStep pre = dsa.forward_step(x, 0, rope, &prefill);
  CHECK(pre.indices.to_i64_vector() == full.indices.to_i64_vector());
  CHECK(max_abs_diff(pre.out, full.out) <= 1e-5);
  for (const std::vector<int64_t>& chunks : {std::vector<int64_t>(S, 1), std::vector<int64_t>{4, 1, 5, 2}}) {
    CAPTURE(chunks.size());
    DSACache cache(a, B, Smax);
    std::vector<Tensor> outs;
    std::vector<int64_t> full_idx = full.indices.to_i64_vector();
    const int64_t kf = full.indices.size(2);
    std::vector<double> full_I = full.index_scores.to_f64_vector();
    int64_t pos = 0, same_order = 0, rows = 0;
    double score_diff = 0;
    for (int64_t n : chunks) {
      DSAStep step = dsa.forward_step(narrow(x, 1, pos, n), pos, rope, &cache);
      outs.push_back(step.out);
      std::vector<int64_t> idx = step.indices.to_i64_vector();
      std::vector<double> I = step.index_scores.to_f64_vector();
      const int64_t k = step.indices.size(2), T = pos + n;
      for (int64_t b = 0; b < B; b++)
        for (int64_t s = 0; s < n; s++) {
          CHECK(selected_set(idx, b * n + s, k) == selected_set(full_idx, b * S + pos + s, kf));
          bool order = true;
          for (int64_t j = 0; j < std::min(k, pos + s + 1); j++)
            order = order && idx[(b * n + s) * k + j] == full_idx[(b * S + pos + s) * kf + j];
          same_order += order;
          rows++;
          for (int64_t t = 0; t < T; t++) {
            double u = I[(b * n + s) * T + t], v = full_I[(b * S + pos + s) * S + t];
            if (std::isfinite(u) || std::isfinite(v)) score_diff = std::max(score_diff, std::abs(u - v));
          }
        }
      pos += n;
    }
    CHECK(same_order == rows);  // the same keys in the same order
    CHECK(score_diff <= 1e-5);
    CHECK(max_abs_diff(cat(outs, 1), full.out) <= 1e-5);
    // Quantization is per token: the cache holds the prefill's codes and scales bit for bit.
    const uint8_t *c0 = prefill.indexer.k_cache.fp8_codes(), *c1 = cache.indexer.k_cache.fp8_codes();
    const float *s0 = prefill.indexer.k_scale_cache.data<float>(), *s1 = cache.indexer.k_scale_cache.data<float>();
    for (int64_t b = 0; b < B; b++) {
      CHECK(std::memcmp(c0 + b * Smax * dI, c1 + b * Smax * dI, S * dI) == 0);
      CHECK(std::memcmp(s0 + b * Smax, s1 + b * Smax, S * sizeof(float)) == 0);
    }
    MESSAGE("fp8 decode vs full forward: largest index-score difference " << score_diff);
  }
}

TEST_CASE("dsa fp8: how often the fp8 selection differs from the fp32 selection (reported, not asserted)") {
  int64_t queries = 0, identical = 0;
  double overlap = 0;
  for (uint64_t seed = 0; seed < 4; seed++) {
    Pair p(small_args(), 100 + seed);  // H_I 4, d_I 16, k 5
    RopeTable rope(p.a32);
    const int64_t B = 2, S = 32, k = p.a32.index_topk;
    Rng rng(200 + seed);
    Tensor x = Tensor::randn({B, S, p.a32.dim}, rng);
    NoGradGuard no_grad;
    std::vector<int64_t> i8 = p.d8.forward_step(x, 0, rope).indices.to_i64_vector();
    std::vector<int64_t> i32 = p.d32.forward_step(x, 0, rope).indices.to_i64_vector();
    for (int64_t row = 0; row < B * S; row++) {
      if (row % S < k) continue;  // every causal key is selected either way
      std::set<int64_t> a8 = selected_set(i8, row, k), a32 = selected_set(i32, row, k);
      int64_t common = 0;
      for (int64_t t : a8) common += a32.count(t);
      overlap += (double)common / (double)k;
      identical += a8 == a32;
      queries++;
    }
  }
  MESSAGE("fp8 vs fp32 selection over " << queries << " queries with more than k causal keys: identical sets "
                                        << identical << " (" << 100.0 * identical / queries << "%), mean overlap "
                                        << overlap / queries);
  CHECK(queries > 0);
  CHECK(overlap / queries > 0.5);  // a sanity floor, not a claim: the two scores agree to ~2^-4
}

TEST_CASE("dsa fp8: training — selection from the fp8 score, differentiable losses that reach only the indexer") {
  ModelArgs a = fp8_args(tiny_args());
  Rng rng(111);
  DSA dsa(a, rng);
  randomise_norms(dsa, rng);
  RopeTable rope(a);
  const int64_t B = 2, S = 6;
  Tensor x = Tensor::randn({B, S, a.dim}, rng).requires_grad_();
  DSAStep step = dsa.forward_step(x, 0, rope, nullptr, /*indexer_grad=*/true);
  CHECK(!step.index_scores.requires_grad());  // the fp8 score: a constant
  REQUIRE(step.loss_scores.defined());
  CHECK(step.loss_scores.requires_grad());
  CHECK(step.indices.to_i64_vector() == select_topk(step.index_scores, a.index_topk).to_i64_vector());
  NamedParameters params = dsa.named_parameters();
  Tensor sparse = indexer_sparse_loss(step);
  CHECK(std::isfinite(sparse.item()));
  CHECK(sparse.item() >= -1e-5);
  sparse.backward();
  for (auto& [name, t] : params) CHECK_MESSAGE(t->grad().defined() == contains(name, "indexer"), name);
  for (DSAStage stage : {DSAStage::dense_warmup, DSAStage::sparse}) {
    DSATrainStep r = dsa_train_forward(dsa, x, 0, rope, stage, true);
    CHECK(std::isfinite(r.indexer_loss.item()));
    CHECK(r.recall >= 0.0);
    CHECK(r.recall <= 1.0);
  }
  // the differentiable score needs the rotated keys, which an fp8 cache does not hold
  DSACache cache(a, B, 8);
  CHECK(contains(error_of([&] { dsa.forward_step(x, 0, rope, &cache, true); }), "takes no cache"));
}

TEST_CASE("dsa fp8: float64 gradcheck of the KL losses through the Hadamard rotation" * doctest::test_suite("gradcheck")) {
  ModelArgs a = fp8_args(tiny_args());
  Rng rng(9);
  DSA dsa(a, rng, DType::f64);  // the fp8 score runs on f32 copies; loss_scores stays f64
  randomise_norms(dsa, rng);
  RopeTable rope(a);
  Tensor x = Tensor::randn({2, 6, a.dim}, rng, 1.0, DType::f64);
  std::vector<Tensor> inputs;
  NamedParameters iparams = dsa.indexer.named_parameters();
  for (auto& [name, t] : iparams) inputs.push_back(*t);
  OneThread one_thread;
  GradcheckResult warm = gradcheck([&](const std::vector<Tensor>&) { return indexer_warmup_loss(dsa, x, 0, rope); }, inputs);
  CHECK_MESSAGE(warm.ok, warm.message);
  DSAStep step;
  {
    NoGradGuard no_grad;
    step = dsa.forward_step(x, 0, rope);  // the fp8 selection, held fixed
  }
  CHECK(step.index_scores.dtype() == DType::f64);
  Tensor qr = step.qr.detach();
  GradcheckResult sparse = gradcheck(
      [&](const std::vector<Tensor>&) {
        return indexer_sparse_kl(dsa.indexer.loss_scores(x, qr, 0, rope), step.indices, step.probs);
      },
      inputs);
  CHECK_MESSAGE(sparse.ok, sparse.message);
}

TEST_CASE("dsa fp8: errors — d_I not a power of two, a cache of the other mode") {
  ModelArgs a = fp8_args(tiny_args());
  a.index_head_dim = 12;
  Rng rng(121);
  std::string e = error_of([&] { DSA d(a, rng); });
  CHECK(contains(e, "[dsa]"));
  CHECK(contains(e, "index_head_dim a power of two; got 12"));
  a.index_fp8 = false;
  CHECK_NOTHROW(DSA(a, rng));  // the fp32 indexer takes any d_I >= dr
  ModelArgs a8 = fp8_args(tiny_args());
  DSA dsa(a8, rng);
  RopeTable rope(a8);
  Tensor x = Tensor::randn({1, 4, a8.dim}, rng);
  DSACache fp32_cache(tiny_args(), 1, 8);
  NoGradGuard no_grad;
  e = error_of([&] { dsa.forward(x, 0, rope, &fp32_cache); });
  CHECK(contains(e, "does not fit"));
  CHECK(contains(e, "f8e4m3"));
}
