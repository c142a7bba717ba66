// train/grpo_loss.h — the differentiable math of GRPO (models/README.md §10; DeepSeekMath §4.1, DeepSeek-R1
// §2.2.1): group-normalised advantages and the clipped-surrogate + KL loss over a batch of completions.
//
// Advantages, per group of G completions of one prompt (rewards r [G], or [P,G] for P prompts):
//   A_i = (r_i − mean r) / (std r + eps),   std = the POPULATION std  sqrt((1/G) Σ (r_i − mean r)²)
//   a group whose rewards are all equal gets A = 0 exactly (no gradient from it).
//
// Loss over N completions, tokens [N,L] (logp on the tape; old_logp, ref_logp constants; mask 1 on the
// completion tokens, 0 on prompt and padding; advantages [N], one per completion, applied to all its tokens):
//   ρ      = exp(logp − old_logp)                                          π_θ / π_old
//   surr   = min(ρ A, clip(ρ, 1−ε, 1+ε) A)
//   D      = exp(ref_logp − logp) − (ref_logp − logp) − 1                  π_ref/π_θ − log(π_ref/π_θ) − 1 ≥ 0
//   obj    = surr − β D                                                    per token
//   sequence normalisation (DeepSeekMath):  J = (1/N) Σ_i (1/|o_i|) Σ_t mask·obj      |o_i| = Σ_t mask[i,t]
//   token normalisation (DAPO):             J = Σ_{i,t} mask·obj / Σ_{i,t} mask
//   loss   = −J
// The clip is "active" on a token when min picks the clipped branch strictly: A > 0 and ρ > 1+ε, or A < 0 and
// ρ < 1−ε; there the surrogate is the constant (1±ε)·A and its gradient w.r.t. logp is 0. Elsewhere the
// surrogate is ρ·A with d/dlogp = ρ·A (also at ρ = 1±ε exactly, where both branches are equal).
// dD/dlogp = 1 − exp(ref_logp − logp).
//
// What this is not: the sampling loop, the rewards (rule-based checks live with the stage), the Stage.
#pragma once
#include <cstdint>
#include <string>

#include "autograd/tensor.h"

namespace sg {

// rewards [G] or [P,G] (float) -> advantages of the same shape and dtype (constants, no tape).
Tensor group_advantages(const Tensor& rewards, double eps = 1e-4);

enum class GRPONorm { sequence, token };
GRPONorm parse_grpo_norm(const std::string& s);  // "sequence" | "token"
std::string to_string(GRPONorm n);

struct GRPOLossConfig {
  double clip_eps = 0.2;               // ε
  double kl_beta = 0.04;               // β (DeepSeekMath's value)
  GRPONorm norm = GRPONorm::sequence;
};

struct GRPOLossOutput {
  Tensor loss;          // scalar on the tape: policy_loss + β · kl
  Tensor policy_loss;   // −(normalised Σ mask · surr), on the tape
  Tensor kl;            // normalised Σ mask · D (same normalisation as the loss), on the tape
  double kl_mean = 0;        // Σ mask·D / Σ mask  (token mean, for logging)
  double clip_fraction = 0;  // share of the masked tokens where the clip is active
  double ratio_mean = 0;     // Σ mask·ρ / Σ mask
  int64_t tokens = 0;        // Σ mask
};

// logp, old_logp, ref_logp, mask: [N,L]; advantages [N]. logp's dtype (f32/f64) is the compute dtype; old_logp,
// ref_logp and advantages are detached (treated as constants). mask: any dtype, non-zero = completion token.
// Throws "[grpo_loss] ..." on shape mismatches, on a row without completion tokens (sequence normalisation)
// or a batch without any (token normalisation).
GRPOLossOutput grpo_loss(const Tensor& logp, const Tensor& old_logp, const Tensor& ref_logp, const Tensor& mask,
                         const Tensor& advantages, const GRPOLossConfig& config);

}  // namespace sg
