// train/clip.h — global-norm gradient clipping and zero_grad over a NamedParameters list.
//
//   norm = sqrt( Σ_params Σ_i g_i² )          accumulated in double, over every defined .grad()
//   if norm > max_norm:  g ← g · c,  c = max_norm / (norm + 1e-6)     (PyTorch's clip_grad_norm_)
//
// A non-finite norm (a NaN or Inf gradient somewhere) is returned as it is and the gradients are
// left untouched, so the caller can see it and skip the step instead of writing NaN everywhere.
//
// What this is not: per-parameter or value clipping.
#pragma once
#include "models/module.h"

namespace sg {

// The global L2 norm of all gradients (parameters without a gradient count as zero).
double grad_norm(const NamedParameters& params);
// Clips in place; returns the norm before clipping.
double clip_grad_norm(const NamedParameters& params, double max_norm);
// Drops every parameter's .grad (the next backward() starts from nothing).
void zero_grad(const NamedParameters& params);

}  // namespace sg
