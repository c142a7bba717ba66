// models/layers.h — the building blocks every DeepSeek module is made of (models/README.md §2–§3):
//   Linear      y = x Wᵀ, W [out, in], no bias (DeepSeek has none); optionally in FP8 (ops/fp8_linear.h):
//               fp8 = true trains with FP8 GEMMs on the f32 master weight; a weight loaded from an FP8
//               checkpoint is its E4M3 codes (dtype f8e4m3) with its block scales in `scale`, and runs the
//               official act_quant + fp8_gemm (models/fp8_model.h lists which linears DeepSeek quantizes)
//   Embedding   row lookup, E [vocab, dim]
//   RMSNorm     y = w ⊙ x / sqrt(mean(x²) + eps), eps 1e-6, w initialised to 1
//   MLP         SwiGLU: y = W2 (silu(W1 x) ⊙ W3 x)   (HF: gate_proj = W1, up_proj = W3, down_proj = W2)
//   RopeTable   the YaRN-scaled angle table cos/sin [max_seq_len, dr/2] (precompute_freqs_cis)
#pragma once
#include <cstdint>

#include "autograd/rng.h"
#include "models/config.h"
#include "models/module.h"
#include "ops/fp8_linear.h"
#include "ops/nn.h"

namespace sg {

struct Linear : Module {
  Tensor weight;  // [out_features, in_features]: f32/f64, or f8e4m3 codes of an FP8 checkpoint
  Tensor scale;   // FP8 checkpoint weights only: weight_scale_inv [ceil(out/128), ceil(in/128)] f32
  bool fp8 = false;          // f32 weight: run Fprop/Dgrad/Wgrad as FP8 GEMMs (ModelArgs::fp8, training)
  Fp8LinearOptions fp8_options;  // ue8m0 scales, block (128)
  Linear() = default;
  // Weights ~ N(0, init_std²); init_std <= 0 means 1/sqrt(in_features).
  Linear(int64_t in_features, int64_t out_features, Rng& rng, double init_std = 0.0, DType dtype = DType::f32);
  // f8e4m3 weight: fp8_linear_stored (act_quant + fp8_gemm); fp8: fp8_linear; else linear(x, weight).
  Tensor forward(const Tensor& x) const;
  bool is_fp8_weight() const { return weight.defined() && weight.dtype() == DType::f8e4m3; }
  // The weight as f32 numbers (dequantized when it is FP8): for the math that reads W itself (MLA's
  // absorbed wkv_b, as the official code dequantizes it).
  Tensor dense_weight() const;
  // Replaces an FP8 weight by its f32 dequantization and drops the scales (--fp8 dequant).
  void dequantize_fp8_weight();
  // Replaces an f32 weight by its 128×128-block E4M3 quantization (codes + scale), as a checkpoint stores it.
  void quantize_fp8_weight();
  void parameters(const std::string& prefix, NamedParameters& out) override {
    add_parameter(out, join_name(prefix, "weight"), weight, ParamKind::weight);
    if (scale.defined()) add_buffer(out, join_name(prefix, "scale"), scale);
  }
};

struct Embedding : Module {
  Tensor weight;  // [vocab_size, dim]
  Embedding() = default;
  Embedding(int64_t vocab_size, int64_t dim, Rng& rng, double init_std = 1.0, DType dtype = DType::f32);
  Tensor forward(const Tensor& ids) const;
  void parameters(const std::string& prefix, NamedParameters& out) override {
    add_parameter(out, join_name(prefix, "weight"), weight, ParamKind::embedding);
  }
};

struct RMSNorm : Module {
  Tensor weight;  // [dim], ones
  double eps = 1e-6;
  RMSNorm() = default;
  explicit RMSNorm(int64_t dim, double eps = 1e-6, DType dtype = DType::f32);
  Tensor forward(const Tensor& x) const;
  void parameters(const std::string& prefix, NamedParameters& out) override {
    add_parameter(out, join_name(prefix, "weight"), weight, ParamKind::norm);
  }
};

// SwiGLU feed-forward; used as the dense FFN, each routed expert and the shared experts.
struct MLP : Module {
  Linear w1, w2, w3;  // w1, w3: [inter, dim]; w2: [dim, inter]
  MLP() = default;
  MLP(int64_t dim, int64_t inter_dim, Rng& rng, DType dtype = DType::f32);
  Tensor forward(const Tensor& x) const;
  void parameters(const std::string& prefix, NamedParameters& out) override {
    w1.parameters(join_name(prefix, "w1"), out);
    w2.parameters(join_name(prefix, "w2"), out);
    w3.parameters(join_name(prefix, "w3"), out);
  }
};

// Angles φ(p, i) = p · f_i for p < max_seq_len, i < dr/2, with YaRN blending of f_i when
// args.yarn_active() (models/README.md §3). cos/sin are f32 tensors [max_seq_len, dr/2], computed in
// float32 as the official code does.
struct RopeTable {
  Tensor cos, sin;
  RopeTable() = default;
  explicit RopeTable(const ModelArgs& args);                  // dr = qk_rope_head_dim
  RopeTable(const ModelArgs& args, int64_t rope_dim);         // any even rope width
  // Rows [start, start + length): the angles of positions start ... start+length-1.
  Tensor cos_at(int64_t start, int64_t length) const;
  Tensor sin_at(int64_t start, int64_t length) const;
};
// The YaRN-blended inverse frequencies f_i, i < dim/2 (float32 arithmetic).
std::vector<float> yarn_inv_freq(const ModelArgs& args, int64_t dim);

}  // namespace sg
