// train/clip.cpp — see clip.h.
#include "train/clip.h"

#include <cmath>
#include <stdexcept>
#include <vector>

#include "ops/optim.h"

namespace sg {

namespace {

// The parameter's gradient as a contiguous f32 tensor on the parameter's device (or undefined). Leaf gradients
// own a contiguous buffer (autograd/backward.cpp), so this is the tensor itself, updated in place.
Tensor grad_of(const std::string& name, const Tensor* p) {
  if (!p || !p->defined()) throw std::invalid_argument("[clip] parameter '" + name + "' is not a tensor");
  Tensor g = p->grad();
  if (!g.defined()) return g;
  if (g.dtype() != DType::f32 || g.device() != p->device() || !g.is_contiguous())
    throw std::runtime_error("[clip] gradient of '" + name + "' is " + g.describe() + " on " +
                             device_name(g.device()) + "; expected a contiguous f32 tensor on " +
                             device_name(p->device()) + ", the parameter's device");
  return g;
}

}  // namespace

// Σ g² over every gradient by the sum_squares kernel (ops/optim.h): fixed chunks, so the norm is the
// same on any thread count.
double grad_norm(const NamedParameters& params) {
  std::vector<Tensor> grads;
  for (const auto& [name, p] : params) {
    Tensor g = grad_of(name, p);
    if (g.defined()) grads.push_back(g);
  }
  return std::sqrt(sum_squares(grads));
}

double clip_grad_norm(const NamedParameters& params, double max_norm) {
  if (!(max_norm > 0)) throw std::invalid_argument("[clip] max_norm must be > 0, got " + std::to_string(max_norm));
  const double norm = grad_norm(params);
  if (!std::isfinite(norm) || norm <= max_norm) return norm;
  const float c = (float)(max_norm / (norm + 1e-6));
  for (const auto& [name, p] : params) {
    Tensor g = grad_of(name, p);
    if (!g.defined()) continue;
    scale_in_place(g, c);
  }
  return norm;
}

void zero_grad(const NamedParameters& params) {
  for (const auto& [name, p] : params)
    if (p && p->defined()) p->zero_grad();
}

}  // namespace sg
