// train/dpo_loss.cpp — DPO's loss (train/dpo_loss.h), composed from differentiable ops (where, mul, sum, sub,
// logsigmoid, mean): the gradient a student traces is the ops' own backward, nothing written by hand here.
#include "train/dpo_loss.h"

#include <stdexcept>
#include <string>
#include <vector>

#include "autograd/node.h"
#include "ops/ops.h"

namespace sg {

namespace {

std::string describe(const Tensor& t) { return t.defined() ? t.describe() : std::string("undefined"); }

}  // namespace

Tensor sequence_logprobs(const Tensor& logp, const Tensor& mask) {
  if (!logp.defined() || logp.dim() != 2)
    throw std::invalid_argument("[dpo] sequence_logprobs: logp must be [N,L], got " + describe(logp));
  if (!mask.defined() || mask.shape() != logp.shape())
    throw std::invalid_argument("[dpo] sequence_logprobs: mask " + describe(mask) + " must have logp's shape " + logp.describe());
  Tensor keep;
  {
    NoGradGuard no_grad;
    keep = to_dtype(mask, DType::f32).to(logp.device());
  }
  // where(), not logp·mask: a padded position may hold −inf, and −inf·0 is NaN.
  return sum(where(keep, logp, Tensor::zeros(logp.shape(), logp.dtype(), logp.device())), {1});
}

DPOLossOutput dpo_loss(const Tensor& chosen_logp, const Tensor& rejected_logp, const Tensor& ref_chosen_logp,
                       const Tensor& ref_rejected_logp, double beta) {
  const char* op = "[dpo_loss] ";
  if (!chosen_logp.defined() || chosen_logp.dim() != 1 || chosen_logp.size(0) == 0 ||
      (chosen_logp.dtype() != DType::f32 && chosen_logp.dtype() != DType::f64))
    throw std::invalid_argument(std::string(op) + "chosen_logp must be [N] f32/f64 with N >= 1, got " + describe(chosen_logp));
  for (const auto& [t, name] : {std::pair{&rejected_logp, "rejected_logp"}, std::pair{&ref_chosen_logp, "ref_chosen_logp"},
                                std::pair{&ref_rejected_logp, "ref_rejected_logp"}})
    if (!t->defined() || t->shape() != chosen_logp.shape())
      throw std::invalid_argument(std::string(op) + name + " " + describe(*t) + " must have chosen_logp's shape " +
                                  chosen_logp.describe());
  if (!(beta > 0)) throw std::invalid_argument(std::string(op) + "beta must be > 0, got " + std::to_string(beta));
  const DType dt = chosen_logp.dtype();
  const Device dev = chosen_logp.device();
  Tensor ref_w, ref_l;
  {
    NoGradGuard no_grad;  // π_ref is a constant: its log-probs carry no history into the loss
    ref_w = to_dtype(ref_chosen_logp.detach(), dt).to(dev);
    ref_l = to_dtype(ref_rejected_logp.detach(), dt).to(dev);
  }
  Tensor r_w = (chosen_logp - ref_w) * beta;    // implicit rewards [N]
  Tensor r_l = (rejected_logp - ref_l) * beta;
  DPOLossOutput out;
  out.loss = neg(mean(logsigmoid(r_w - r_l)));

  const std::vector<double> w = r_w.to_f64_vector(), l = r_l.to_f64_vector();
  const std::vector<double> lw = chosen_logp.to_f64_vector(), ll = rejected_logp.to_f64_vector();
  const int64_t N = chosen_logp.size(0);
  for (int64_t i = 0; i < N; i++) {
    out.reward_accuracy += w[i] > l[i] ? 1.0 : 0.0;
    out.reward_margin += w[i] - l[i];
    out.chosen_reward += w[i];
    out.rejected_reward += l[i];
    out.chosen_logp += lw[i];
    out.rejected_logp += ll[i];
  }
  for (double* v : {&out.reward_accuracy, &out.reward_margin, &out.chosen_reward, &out.rejected_reward, &out.chosen_logp,
                    &out.rejected_logp})
    *v /= (double)N;
  out.pairs = N;
  return out;
}

}  // namespace sg
