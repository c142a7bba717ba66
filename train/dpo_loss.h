// train/dpo_loss.h — the differentiable math of DPO (Rafailov et al. 2023, "Direct Preference Optimization",
// eq. 7; models/README.md §10.3): a preference pair is a prompt x with a chosen completion y_w and a rejected one
// y_l, and the policy π_θ is pushed to prefer y_w over y_l MORE than the frozen reference π_ref does, with no
// reward model and no sampling inside the loss.
//
//   log π(y|x)  = Σ_t mask[t] · logp[t]                         sequence log-prob of the completion tokens only
//   r_w = β (log π_θ(y_w|x) − log π_ref(y_w|x))                 the chosen's implicit reward
//   r_l = β (log π_θ(y_l|x) − log π_ref(y_l|x))                 the rejected's
//   loss = −(1/N) Σ_i log σ(r_w,i − r_l,i)                       N pairs
//
// Its gradient, with h_i = r_w,i − r_l,i (σ(−h) is the weight: pairs the policy already orders right by a wide
// margin stop pulling):
//   ∂loss/∂log π_θ(y_w,i|x_i) = −(β/N) σ(−h_i)         ∂loss/∂log π_θ(y_l,i|x_i) = +(β/N) σ(−h_i)
// At the start π_θ = π_ref, so h = 0, loss = log 2 and both weights are β/(2N).
//
// Logged (means over the pairs): reward_accuracy = share with r_w > r_l (strictly: 0 at the start), reward_margin
// = mean (r_w − r_l), chosen_reward / rejected_reward = mean r_w / r_l, chosen_logp / rejected_logp = mean
// sequence log π_θ of y_w / y_l.
//
// What this is not: IPO, cDPO's label smoothing, or the pairs themselves (train/dpo.h builds them).
#pragma once
#include <cstdint>

#include "autograd/tensor.h"

namespace sg {

// logp [N,L] (on the tape or not), mask [N,L] (non-zero = a completion token) -> [N]: Σ_t mask·logp, on logp's
// tape. Positions outside the mask contribute 0 whatever they hold (−inf, NaN). Throws "[dpo] ..." on shapes.
Tensor sequence_logprobs(const Tensor& logp, const Tensor& mask);

struct DPOLossOutput {
  Tensor loss;                 // scalar on the tape
  double reward_accuracy = 0;  // share of pairs with r_w > r_l
  double reward_margin = 0;    // mean r_w − r_l
  double chosen_reward = 0, rejected_reward = 0;  // mean r_w, mean r_l
  double chosen_logp = 0, rejected_logp = 0;      // mean log π_θ(y_w|x), log π_θ(y_l|x)
  int64_t pairs = 0;
};

// chosen_logp, rejected_logp: [N] sequence log-probs under π_θ (on the tape; their dtype f32/f64 is the compute
// dtype); ref_chosen_logp, ref_rejected_logp: [N] under π_ref (constants: detached). beta > 0.
// Throws "[dpo_loss] ..." naming the tensor on a shape mismatch, an empty batch or beta <= 0.
DPOLossOutput dpo_loss(const Tensor& chosen_logp, const Tensor& rejected_logp, const Tensor& ref_chosen_logp,
                       const Tensor& ref_rejected_logp, double beta);

}  // namespace sg
