// models/layers.cpp — see layers.h.
#include "models/layers.h"

#include <algorithm>
#include <cmath>

#include "ops/ops.h"

namespace sg {

Linear::Linear(int64_t in_features, int64_t out_features, Rng& rng, double init_std, DType dtype) {
  if (init_std <= 0) init_std = 1.0 / std::sqrt((double)in_features);
  weight = Tensor::randn({out_features, in_features}, rng, init_std, dtype).requires_grad_();
}
Tensor Linear::forward(const Tensor& x) const {
  if (is_fp8_weight()) return fp8_linear_stored(x, weight, scale, fp8_options);
  if (fp8) return fp8_linear(x, weight, fp8_options);
  return linear(x, weight);
}
Tensor Linear::dense_weight() const {
  if (!is_fp8_weight()) return weight;
  return fp8_dequantize(fp8_weight(weight, scale, weight.name().empty() ? "weight" : weight.name(), fp8_options.block));
}
void Linear::dequantize_fp8_weight() {
  if (!is_fp8_weight()) return;
  Tensor w = dense_weight();
  w.set_name(weight.name()).set_param_kind(weight.param_kind()).requires_grad_();
  weight = w;
  scale = Tensor();
}
void Linear::quantize_fp8_weight() {
  if (is_fp8_weight()) return;
  if (weight.dtype() != DType::f32)
    throw std::runtime_error("[Linear] FP8 quantization needs an f32 weight, got " + weight.describe());
  Fp8Tensor q = fp8_quantize_blocks(weight.detach(), fp8_options.block);
  q.codes.set_name(weight.name()).set_param_kind(weight.param_kind());
  weight = q.codes;
  scale = q.scale;
}

Embedding::Embedding(int64_t vocab_size, int64_t dim, Rng& rng, double init_std, DType dtype) {
  weight = Tensor::randn({vocab_size, dim}, rng, init_std, dtype).requires_grad_();
}
Tensor Embedding::forward(const Tensor& ids) const { return embedding(weight, ids); }

RMSNorm::RMSNorm(int64_t dim, double eps_, DType dtype) : eps(eps_) {
  weight = Tensor::ones({dim}, dtype).requires_grad_();
}
Tensor RMSNorm::forward(const Tensor& x) const { return rms_norm(x, weight, eps); }

MLP::MLP(int64_t dim, int64_t inter_dim, Rng& rng, DType dtype)
    : w1(dim, inter_dim, rng, 0.0, dtype), w2(inter_dim, dim, rng, 0.0, dtype), w3(dim, inter_dim, rng, 0.0, dtype) {}

// y = W2 (silu(W1 x) ⊙ W3 x)
Tensor MLP::forward(const Tensor& x) const { return w2.forward(mul(silu(w1.forward(x)), w3.forward(x))); }

std::vector<float> yarn_inv_freq(const ModelArgs& a, int64_t dim) {
  // f_i = 1 / θ^(2i/dim), in float32 as torch computes it.
  std::vector<float> freqs(dim / 2);
  for (int64_t i = 0; i < dim / 2; i++)
    freqs[i] = 1.0f / std::pow((float)a.rope_theta, (float)(2 * i) / (float)dim);
  if (!a.yarn_active()) return freqs;
  // corr(n) = dim · ln(L0 / (2π n)) / (2 ln θ): the pair index whose wavelength fits n times in L0.
  auto corr = [&](double n) { return dim * std::log(a.original_seq_len / (n * 2 * M_PI)) / (2 * std::log(a.rope_theta)); };
  double low = std::max(std::floor(corr(a.beta_fast)), 0.0);
  double high = std::min(std::ceil(corr(a.beta_slow)), (double)(dim - 1));
  if (low == high) high += 0.001;
  for (int64_t i = 0; i < dim / 2; i++) {
    float ramp = std::clamp((float)((i - low) / (high - low)), 0.0f, 1.0f);
    float smooth = 1.0f - ramp;
    // high-frequency pairs (i <= low) keep f_i; low-frequency pairs (i >= high) are divided by the factor
    freqs[i] = freqs[i] / (float)a.rope_factor * (1.0f - smooth) + freqs[i] * smooth;
  }
  return freqs;
}

RopeTable::RopeTable(const ModelArgs& args) : RopeTable(args, args.qk_rope_head_dim) {}

RopeTable::RopeTable(const ModelArgs& args, int64_t rope_dim) {
  std::vector<float> f = yarn_inv_freq(args, rope_dim);
  int64_t half = rope_dim / 2, n = args.max_seq_len;
  cos = Tensor::empty({n, half});
  sin = Tensor::empty({n, half});
  float* pc = cos.data<float>();
  float* ps = sin.data<float>();
  for (int64_t p = 0; p < n; p++)
    for (int64_t i = 0; i < half; i++) {
      float angle = (float)p * f[i];  // float32 outer product, as torch.outer does
      pc[p * half + i] = std::cos(angle);
      ps[p * half + i] = std::sin(angle);
    }
}

Tensor RopeTable::cos_at(int64_t start, int64_t length) const { return narrow(cos, 0, start, length); }
Tensor RopeTable::sin_at(int64_t start, int64_t length) const { return narrow(sin, 0, start, length); }

}  // namespace sg
