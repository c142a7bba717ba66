// ops/registry_attention.cpp — registry cases of the fused attention op (ops/attention.h):
// MHA / GQA / MQA, prefill, decode (S = 1 at start_pos = T − 1), a chunk at start_pos > 0, an
// explicit start_pos, non-causal cross-attention, Dv ≠ D, strided (permuted / expanded) inputs, and
// sizes that cross the kernel's blocks (cpu::kAttnBlockQ rows × cpu::kAttnBlockK keys), and packed
// sequences (segment_ids: a prefill and a chunk crossing a segment boundary).
//
// The reference is an independent plain loop over Tensor::at in double — it never calls ops/.
#include <algorithm>
#include <cmath>
#include <optional>

#include "ops/attention.h"
#include "ops/cpu/attention.h"
#include "ops/registry.h"
#include "ops/shape.h"

namespace sg {

namespace {

using Inputs = std::vector<Tensor>;

// o[b,h,s,:] = Σ_t softmax_t(scale · q[b,h,s]·k[b,g,t]) v[b,g,t,:],  g = h / (H/Hkv), t ≤ sp + s if causal,
// and, with segment ids seg [B, T], only the keys t with seg[b, t] == seg[b, sp + s].
Tensor ref_attention(const Tensor& q, const Tensor& k, const Tensor& v, double scale, bool causal,
                     std::optional<int64_t> start_pos, const Tensor& seg = Tensor()) {
  int64_t B = q.shape()[0], H = q.shape()[1], S = q.shape()[2], D = q.shape()[3];
  int64_t Hkv = k.shape()[1], T = k.shape()[2], Dv = v.shape()[3];
  int64_t sp = start_pos.value_or(T - S);
  Tensor out = Tensor::zeros({B, H, S, Dv}, DType::f64);
  for (int64_t b = 0; b < B; b++)
    for (int64_t h = 0; h < H; h++)
      for (int64_t s = 0; s < S; s++) {
        int64_t g = h / (H / Hkv), n = causal ? std::min(T, sp + s + 1) : T;
        std::vector<double> score(n, -INFINITY);
        double m = -INFINITY, l = 0;
        for (int64_t t = 0; t < n; t++) {
          if (seg.defined() && seg.at({b, t}) != seg.at({b, sp + s})) continue;  // another sequence: exp(−∞) = 0
          double d = 0;
          for (int64_t c = 0; c < D; c++) d += q.at({b, h, s, c}) * k.at({b, g, t, c});
          score[t] = d * scale;
          m = std::max(m, score[t]);
        }
        for (int64_t t = 0; t < n; t++) l += std::exp(score[t] - m);
        for (int64_t c = 0; c < Dv; c++) {
          double o = 0;
          for (int64_t t = 0; t < n; t++) o += std::exp(score[t] - m) / l * v.at({b, g, t, c});
          out.set_at({b, h, s, c}, o);
        }
      }
  return out;
}

struct Sizes {
  int64_t B, H, Hkv, S, T, D, Dv;
};

OpCase attention_case(const std::string& variant, Sizes z, bool causal, std::optional<int64_t> start_pos = std::nullopt) {
  OpCase c;
  c.name = "scaled_dot_product_attention/" + variant;
  c.make_inputs = [z](Rng& rng) {
    return Inputs{rand_input(rng, {z.B, z.H, z.S, z.D}), rand_input(rng, {z.B, z.Hkv, z.T, z.D}),
                  rand_input(rng, {z.B, z.Hkv, z.T, z.Dv})};
  };
  double scale = 1.0 / std::sqrt((double)z.D);
  c.fn = [=](const Inputs& in) { return scaled_dot_product_attention(in[0], in[1], in[2], scale, causal, start_pos); };
  c.reference = [=](const Inputs& in) { return ref_attention(in[0], in[1], in[2], scale, causal, start_pos); };
  return c;
}

}  // namespace

void register_attention_cases(std::vector<OpCase>& cases) {
  //                               B  H Hkv  S   T  D Dv
  cases.push_back(attention_case("mha_prefill", {2, 2, 2, 5, 5, 4, 4}, true));
  cases.push_back(attention_case("gqa_prefill", {1, 4, 2, 6, 6, 3, 5}, true));
  cases.push_back(attention_case("mqa_prefill", {2, 3, 1, 5, 5, 4, 4}, true));
  cases.push_back(attention_case("decode_gqa", {1, 4, 2, 1, 9, 4, 4}, true));          // start_pos = T − 1 = 8
  cases.push_back(attention_case("chunk_mqa", {1, 2, 1, 3, 8, 4, 3}, true));           // start_pos = 5
  cases.push_back(attention_case("explicit_start_pos", {1, 2, 2, 3, 8, 4, 4}, true, 2));  // keys 5..7 unseen
  cases.push_back(attention_case("cross_noncausal", {1, 2, 1, 3, 5, 4, 6}, false));
  // one more query row than a query block and one more key than a key block of v2_flash
  int64_t n = std::max(cpu::kAttnBlockQ, cpu::kAttnBlockK) + 1;
  cases.push_back(attention_case("blocks_crossed", {1, 2, 1, n, n, 2, 2}, true));

  // Packed sequences: row 0 holds segments 3 | 2 | 4 positions long, row 1 one of 5 then one of 4.
  auto packed_case = [](const std::string& variant, Sizes z) {
    OpCase c = attention_case(variant, z, true);
    Tensor seg = Tensor::from_vector(std::vector<int64_t>{0, 0, 0, 1, 1, 2, 2, 2, 2, 5, 5, 5, 5, 5, 3, 3, 3, 3}, {2, 9});
    double scale = 1.0 / std::sqrt((double)z.D);
    c.fn = [=](const Inputs& in) { return scaled_dot_product_attention(in[0], in[1], in[2], scale, true, std::nullopt, seg); };
    c.reference = [=](const Inputs& in) { return ref_attention(in[0], in[1], in[2], scale, true, std::nullopt, seg); };
    return c;
  };
  cases.push_back(packed_case("packed_gqa_prefill", {2, 4, 2, 9, 9, 3, 4}));
  cases.push_back(packed_case("packed_mqa_chunk", {2, 2, 1, 4, 9, 4, 3}));  // queries 5..8: across a boundary in row 1

  // q arrives as a permuted [B, S, H, D] view, k as a permuted [B, T, Hkv, D] view (a KV cache's
  // layout), v with its kv heads expanded from one stored head (stride 0).
  {
    OpCase c;
    c.name = "scaled_dot_product_attention/strided_views";
    c.make_inputs = [](Rng& rng) {
      return Inputs{rand_input(rng, {2, 5, 4, 3}), rand_input(rng, {2, 7, 2, 3}), rand_input(rng, {2, 1, 7, 4})};
    };
    auto views = [](const Inputs& in) {
      return Inputs{permute(in[0], {0, 2, 1, 3}), permute(in[1], {0, 2, 1, 3}), expand(in[2], {2, 2, 7, 4})};
    };
    c.fn = [views](const Inputs& in) {
      Inputs x = views(in);
      return scaled_dot_product_attention(x[0], x[1], x[2], 0.5, true);
    };
    c.reference = [views](const Inputs& in) {
      Inputs x = views(in);
      return ref_attention(x[0], x[1], x[2], 0.5, true, std::nullopt);
    };
    cases.push_back(c);
  }
}

}  // namespace sg
