// train/clip.cpp — see clip.h.
#include "train/clip.h"

#include <cmath>
#include <algorithm>
#include <stdexcept>
#include <vector>

#include "autograd/runtime.h"

namespace sg {

namespace {

// The parameter's gradient as a contiguous f32 CPU tensor (or undefined). Leaf gradients own a
// contiguous buffer (autograd/backward.cpp), so this is the tensor itself, updated in place.
Tensor grad_of(const std::string& name, const Tensor* p) {
  if (!p || !p->defined()) throw std::invalid_argument("[clip] parameter '" + name + "' is not a tensor");
  Tensor g = p->grad();
  if (!g.defined()) return g;
  if (g.dtype() != DType::f32 || g.device() != Device::CPU || !g.is_contiguous())
    throw std::runtime_error("[clip] gradient of '" + name + "' is " + g.describe() + " on " +
                             device_name(g.device()) + "; expected a contiguous f32 CPU tensor");
  return g;
}

}  // namespace

// Σ g² over every gradient. The buffers are cut into fixed 64K-element chunks whose partial sums
// (double) are computed in parallel and then added in chunk order, so the result does not depend on
// the thread count. Serial, this loop over 10M values cost ~30 ms of a bench-small step.
double grad_norm(const NamedParameters& params) {
  constexpr int64_t kChunk = 1 << 16;
  struct Chunk {
    const float* data;
    int64_t n;
  };
  std::vector<Chunk> chunks;
  for (const auto& [name, p] : params) {
    Tensor g = grad_of(name, p);
    if (!g.defined()) continue;
    const float* d = g.data<float>();
    for (int64_t i = 0, n = g.numel(); i < n; i += kChunk) chunks.push_back({d + i, std::min(kChunk, n - i)});
  }
  std::vector<double> partial(chunks.size(), 0.0);
  parallel_for((int64_t)chunks.size(), 4, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; c++) {
      double acc = 0.0;
      for (int64_t i = 0; i < chunks[c].n; ++i) acc += (double)chunks[c].data[i] * (double)chunks[c].data[i];
      partial[c] = acc;
    }
  });
  double sum_sq = 0.0;
  for (double v : partial) sum_sq += v;
  return std::sqrt(sum_sq);
}

double clip_grad_norm(const NamedParameters& params, double max_norm) {
  if (!(max_norm > 0)) throw std::invalid_argument("[clip] max_norm must be > 0, got " + std::to_string(max_norm));
  const double norm = grad_norm(params);
  if (!std::isfinite(norm) || norm <= max_norm) return norm;
  const float c = (float)(max_norm / (norm + 1e-6));
  for (const auto& [name, p] : params) {
    Tensor g = grad_of(name, p);
    if (!g.defined()) continue;
    float* d = g.data<float>();
    for (int64_t i = 0, n = g.numel(); i < n; ++i) d[i] *= c;
  }
  return norm;
}

void zero_grad(const NamedParameters& params) {
  for (const auto& [name, p] : params)
    if (p && p->defined()) p->zero_grad();
}

}  // namespace sg
