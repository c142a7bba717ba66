// train/grpo_loss.cpp — GRPO's advantages and loss (train/grpo_loss.h). The loss is composed from existing
// differentiable ops (sub, exp, mul, where, sum): min(ρA, clip(ρ)A) is written as where(active, (1±ε)·A, ρ·A)
// with `active` read off the values, which is the same function and the same gradient as PPO's min (the
// clipped branch is a constant in logp). The advantages and the logged numbers are plain loops.
#include "train/grpo_loss.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "autograd/node.h"
#include "ops/ops.h"

namespace sg {

namespace {

std::string shape_str(const Tensor& t) { return t.defined() ? t.describe() : std::string("undefined"); }

// A constant tensor (no history) of `dtype` holding `values` (row-major), on `device` (made on the host, then
// copied: the loss's per-token constants are N·L numbers).
Tensor constant(const std::vector<double>& values, const Shape& shape, DType dtype, Device device = Device::CPU) {
  NoGradGuard no_grad;
  Tensor t = Tensor::from_vector(values, shape);
  return (dtype == DType::f64 ? t : to_dtype(t, dtype)).to(device);
}

}  // namespace

Tensor group_advantages(const Tensor& rewards, double eps) {
  if (!rewards.defined() || (rewards.dim() != 1 && rewards.dim() != 2) ||
      (rewards.dtype() != DType::f32 && rewards.dtype() != DType::f64))
    throw std::invalid_argument("[group_advantages] rewards must be [G] or [P,G] float, got " + shape_str(rewards));
  const int64_t G = rewards.size(-1), P = rewards.numel() / std::max<int64_t>(G, 1);
  if (G < 1) throw std::invalid_argument("[group_advantages] empty group: " + rewards.describe());
  std::vector<double> r = rewards.to_f64_vector(), a(r.size(), 0.0);
  for (int64_t p = 0; p < P; p++) {
    const double* rp = r.data() + p * G;
    bool all_equal = true;
    for (int64_t i = 1; i < G; i++) all_equal = all_equal && rp[i] == rp[0];
    if (all_equal) continue;  // A = 0 exactly: mean r may round away from r, the difference must not
    double mean = 0;
    for (int64_t i = 0; i < G; i++) mean += rp[i];
    mean /= double(G);
    double var = 0;  // population variance: (1/G) Σ (r − mean)²
    for (int64_t i = 0; i < G; i++) var += (rp[i] - mean) * (rp[i] - mean);
    const double std_r = std::sqrt(var / double(G));
    for (int64_t i = 0; i < G; i++) a[p * G + i] = (rp[i] - mean) / (std_r + eps);
  }
  return constant(a, rewards.shape(), rewards.dtype());
}

GRPONorm parse_grpo_norm(const std::string& s) {
  if (s == "sequence") return GRPONorm::sequence;
  if (s == "token") return GRPONorm::token;
  throw std::invalid_argument("[grpo_loss] unknown normalisation '" + s + "' (expected sequence or token)");
}

std::string to_string(GRPONorm n) { return n == GRPONorm::sequence ? "sequence" : "token"; }

GRPOLossOutput grpo_loss(const Tensor& logp, const Tensor& old_logp, const Tensor& ref_logp, const Tensor& mask,
                         const Tensor& advantages, const GRPOLossConfig& config) {
  const char* op = "[grpo_loss] ";
  if (!logp.defined() || logp.dim() != 2 || (logp.dtype() != DType::f32 && logp.dtype() != DType::f64))
    throw std::invalid_argument(std::string(op) + "logp must be [N,L] f32/f64, got " + shape_str(logp));
  const Shape shape = logp.shape();
  const int64_t N = shape[0], L = shape[1];
  for (const auto& [t, name] : {std::pair{&old_logp, "old_logp"}, std::pair{&ref_logp, "ref_logp"}, std::pair{&mask, "mask"}})
    if (!t->defined() || t->shape() != shape)
      throw std::invalid_argument(std::string(op) + name + " " + shape_str(*t) + " must have logp's shape " +
                                  logp.describe());
  if (!advantages.defined() || advantages.dim() != 1 || advantages.size(0) != N)
    throw std::invalid_argument(std::string(op) + "advantages " + shape_str(advantages) + " must be [N] for logp " +
                                logp.describe());
  if (!(config.clip_eps >= 0)) throw std::invalid_argument(std::string(op) + "clip_eps must be >= 0");
  const DType dt = logp.dtype();

  // Constants. Masked positions of old/ref are set to 0 and logp is replaced by 0 there (below), so whatever a
  // padded position holds (−inf, garbage) gives ρ = 1, D = 0 and no gradient.
  std::vector<double> m = mask.to_f64_vector(), old_v = old_logp.to_f64_vector(), ref_v = ref_logp.to_f64_vector();
  const std::vector<double> adv = advantages.to_f64_vector();
  std::vector<double> len(N, 0.0);
  int64_t tokens = 0;
  for (int64_t i = 0; i < N; i++)
    for (int64_t t = 0; t < L; t++) {
      const int64_t k = i * L + t;
      m[k] = m[k] != 0 ? 1.0 : 0.0;
      if (m[k] == 0) old_v[k] = ref_v[k] = 0;
      len[i] += m[k];
      tokens += m[k] != 0;
    }
  // The per-token weight of the normalised sum.
  std::vector<double> w(N * L, 0.0);
  for (int64_t i = 0; i < N; i++) {
    if (config.norm == GRPONorm::sequence && len[i] == 0)
      throw std::invalid_argument(std::string(op) + "completion " + std::to_string(i) +
                                  " has no tokens in the mask (sequence normalisation divides by |o_i|)");
    for (int64_t t = 0; t < L; t++) {
      const int64_t k = i * L + t;
      if (m[k] == 0) continue;
      w[k] = config.norm == GRPONorm::sequence ? 1.0 / (double(N) * len[i]) : 1.0 / double(tokens);
    }
  }
  if (tokens == 0) throw std::invalid_argument(std::string(op) + "the mask selects no token");

  const Device dev = logp.device();
  Tensor mask_c = constant(m, shape, dt, dev), old_c = constant(old_v, shape, dt, dev), ref_c = constant(ref_v, shape, dt, dev);
  Tensor w_c = constant(w, shape, dt, dev), adv_c = constant(adv, {N, 1}, dt, dev);
  Tensor lp = where(mask_c, logp, Tensor::zeros(shape, dt, dev));

  // Surrogate.
  Tensor ratio = exp(lp - old_c);                               // ρ [N,L]
  const std::vector<double> rho = ratio.to_f64_vector();
  std::vector<double> active(N * L, 0.0), clipped(N * L, 0.0);
  const double lo = 1.0 - config.clip_eps, hi = 1.0 + config.clip_eps;
  int64_t n_active = 0;
  double ratio_sum = 0;
  for (int64_t i = 0; i < N; i++)
    for (int64_t t = 0; t < L; t++) {
      const int64_t k = i * L + t;
      if (m[k] == 0) continue;
      ratio_sum += rho[k];
      const bool up = adv[i] > 0 && rho[k] > hi, down = adv[i] < 0 && rho[k] < lo;
      if (up || down) {
        active[k] = 1;
        clipped[k] = (up ? hi : lo) * adv[i];
        n_active++;
      }
    }
  Tensor surr = where(constant(active, shape, dt, dev), constant(clipped, shape, dt, dev), ratio * adv_c);

  // KL estimator.
  Tensor d = ref_c - lp;                                        // log(π_ref / π_θ)
  Tensor kl_tok = exp(d) - d - 1.0;                             // D [N,L], 0 at masked positions

  GRPOLossOutput out;
  out.policy_loss = neg(sum(surr * w_c));
  out.kl = sum(kl_tok * w_c);
  out.loss = out.policy_loss + out.kl * config.kl_beta;
  double kl_sum = 0;
  const std::vector<double> kl_v = kl_tok.to_f64_vector();
  for (int64_t k = 0; k < N * L; k++)
    if (m[k] != 0) kl_sum += kl_v[k];
  out.tokens = tokens;
  out.kl_mean = kl_sum / double(tokens);
  out.clip_fraction = double(n_active) / double(tokens);
  out.ratio_mean = ratio_sum / double(tokens);
  return out;
}

}  // namespace sg
