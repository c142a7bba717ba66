// models/layers.h — the building blocks every DeepSeek module is made of (models/README.md §2–§3):
//   Linear      y = x Wᵀ, W [out, in], no bias (DeepSeek has none)
//   Embedding   row lookup, E [vocab, dim]
//   RMSNorm     y = w ⊙ x / sqrt(mean(x²) + eps), eps 1e-6, w initialised to 1
//   MLP         SwiGLU: y = W2 (silu(W1 x) ⊙ W3 x)   (HF: gate_proj = W1, up_proj = W3, down_proj = W2)
//   RopeTable   the YaRN-scaled angle table cos/sin [max_seq_len, dr/2] (precompute_freqs_cis)
#pragma once
#include <cstdint>

#include "autograd/rng.h"
#include "models/config.h"
#include "models/module.h"
#include "ops/nn.h"

namespace sg {

struct Linear : Module {
  Tensor weight;  // [out_features, in_features]
  Linear() = default;
  // Weights ~ N(0, init_std²); init_std <= 0 means 1/sqrt(in_features).
  Linear(int64_t in_features, int64_t out_features, Rng& rng, double init_std = 0.0, DType dtype = DType::f32);
  Tensor forward(const Tensor& x) const;
  void parameters(const std::string& prefix, NamedParameters& out) override {
    add_parameter(out, join_name(prefix, "weight"), weight, ParamKind::weight);
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
