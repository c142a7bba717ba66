// train/distill_loss.h — the differentiable math of logit distillation (Hinton, Vinyals & Dean 2015, "Distilling
// the Knowledge in a Neural Network", §2; models/README.md §10.4): a student is trained to match a teacher's whole
// next-token distribution, softened by a temperature T, not only the one token the data holds.
//
// For M selected positions i (rows of the logits) with student logits z_s[i,:] and teacher logits z_t[i,:] over
// V tokens:
//
//   p_i  = softmax(z_t[i] / T)            the teacher's softened distribution (a constant: no gradient)
//   q_i  = softmax(z_s[i] / T)            the student's
//   KL_i = Σ_v p_iv (log p_iv − log q_iv)   KL(p_i ‖ q_i) ≥ 0, = 0 iff q_i = p_i (forward KL: mass-covering)
//   L_KD = T² · (1/M) Σ_i KL_i
//
// Its gradient. log q_iu = z_s[i,u]/T − logsumexp_w(z_s[i,w]/T), so ∂log q_iu/∂z_s[i,v] = (δ_uv − q_iv)/T and
//   ∂KL_i/∂z_s[i,v] = −Σ_u p_iu (δ_uv − q_iv)/T = (q_iv − p_iv)/T        (Σ_u p_iu = 1)
//   ∂L_KD/∂z_s[i,v] = T² · (1/M) · (q_iv − p_iv)/T = T · (q_iv − p_iv) / M
// Unselected rows get exactly 0. The T² factor is Hinton's: the soft targets' gradient scales as 1/T² for large T
// (T(q − p) ≈ (z_s − z_t)/(V·T) when the logits are small against T), so multiplying by T² keeps the KD term's
// size comparable to the hard-label CE's as T changes — a stage mixes them as α·L_KD + (1 − α)·CE.
//
// Composed from differentiable ops (index_select, mul, log_softmax, sub, sum); the teacher's softmax and
// log_softmax run under NoGradGuard. Equal logits give exactly 0 (the same ops on the same numbers).
//
// What this is not: reverse KL (KL(q ‖ p), mode-seeking, as in MiniLLM), sequence-level KD (R1's distillation is
// that: SFT on teacher samples, train/distill.h), or the teacher's forward (the stage runs it without a tape).
#pragma once
#include <cstdint>

#include "autograd/tensor.h"

namespace sg {

struct KDLossOutput {
  Tensor loss;            // T² · mean_i KL_i, scalar on the student's tape
  double kl = 0;          // mean_i KL_i at temperature T (= loss / T²)
  double agreement = 0;   // share of selected positions where argmax z_s = argmax z_t (first maximum)
  int64_t positions = 0;  // M
};

// student_logits [N,V] (on the tape, f32/f64: the compute dtype), teacher_logits [N,V] (a constant: detached and
// converted to the student's dtype), temperature T > 0, mask [N] (non-zero = a selected position; undefined =
// every row). Throws "[kd_loss] ..." naming the tensor and its shape on a mismatch, T <= 0 or a mask that selects
// no position.
KDLossOutput kd_loss(const Tensor& student_logits, const Tensor& teacher_logits, double temperature,
                     const Tensor& mask = Tensor());

}  // namespace sg
