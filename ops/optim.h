// ops/optim.h — the optimizer and clipping kernels on tensors: argument checks, then each kernel through the
// device dispatch (ops/kernels.h: CPU ops/cpu/optim.h, CUDA cuda/optim.h). train/optim.cpp and train/clip.cpp
// call these, never a backend's kernels, so the optimizer step runs where the parameters live.
//
//   adamw_update(p, g, m, v, args)       one AdamW step of one parameter, in place (math: train/optim.h)
//   sgd_update(p, g, buf, args)          one SGD step; buf undefined = no momentum
//   sum_squares(xs)                      Σ over every tensor of Σ x² in double (the grad norm's square);
//                                        the same number on any thread count (fixed chunks); on CUDA a
//                                        deterministic double within rounding of the CPU's (cuda/optim.h)
//   scale_in_place(x, c)                 x ← c·x (the clipping step)
//
// Every tensor must be a contiguous f32 tensor, all of one call on one device, shapes matching; the
// errors name the op, the tensor and its shape.
//
// What this is not: differentiable ops. They write the numbers of leaves in place, outside the tape
// (no Node is recorded), as an optimizer step does.
#pragma once
#include <vector>

#include "autograd/tensor.h"
#include "ops/cpu/optim.h"

namespace sg {

using cpu::AdamWUpdateArgs;
using cpu::SGDUpdateArgs;

// param, grad, exp_avg, exp_avg_sq: the same shape; param, exp_avg, exp_avg_sq updated in place.
void adamw_update(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
                  const AdamWUpdateArgs& args);
// param, grad (and momentum_buffer when defined): the same shape; param and the buffer updated in place.
void sgd_update(const Tensor& param, const Tensor& grad, const Tensor& momentum_buffer, const SGDUpdateArgs& args);
// Σ_t Σ_i t[i]²; an empty list gives 0.
double sum_squares(const std::vector<Tensor>& xs);
// x ← c·x in place.
void scale_in_place(const Tensor& x, double c);

}  // namespace sg
