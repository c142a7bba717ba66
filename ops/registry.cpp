// ops/registry.cpp — collects every family's cases; helpers for reference implementations.
#include "ops/registry.h"

#include <cmath>

namespace sg {

const std::vector<OpCase>& op_registry() {
  static const std::vector<OpCase> cases = [] {
    std::vector<OpCase> c;
    register_elementwise_cases(c);
    register_reduce_cases(c);
    register_shape_cases(c);
    register_linalg_cases(c);
    register_index_cases(c);
    register_nn_cases(c);
    register_attention_cases(c);
    return c;
  }();
  return cases;
}

void for_each_index(const Shape& shape, const std::function<void(const std::vector<int64_t>&)>& fn) {
  int64_t n = shape_numel(shape);
  std::vector<int64_t> idx(shape.size(), 0);
  for (int64_t i = 0; i < n; i++) {
    fn(idx);
    for (int64_t d = (int64_t)shape.size() - 1; d >= 0; d--) {
      if (++idx[d] < shape[d]) break;
      idx[d] = 0;
    }
  }
}

Tensor make_reference(const Shape& shape, const std::function<double(const std::vector<int64_t>&)>& fn) {
  Tensor out = Tensor::empty(shape, DType::f64);
  double* p = out.data<double>();
  int64_t i = 0;
  for_each_index(shape, [&](const std::vector<int64_t>& idx) { p[i++] = fn(idx); });
  return out;
}

double at_broadcast(const Tensor& t, const std::vector<int64_t>& index) {
  std::vector<int64_t> own(t.dim());
  int64_t lead = (int64_t)index.size() - t.dim();
  for (int64_t d = 0; d < t.dim(); d++) own[d] = t.shape()[d] == 1 ? 0 : index[lead + d];
  return t.at(own);
}

Tensor rand_input(Rng& rng, const Shape& shape, double lo, double hi, double min_abs, bool requires_grad) {
  Tensor t = Tensor::empty(shape, DType::f64);
  double* p = t.data<double>();
  for (int64_t i = 0; i < t.numel(); i++) {
    double v = rng.uniform(lo, hi);
    if (min_abs > 0 && std::abs(v) < min_abs) v = v < 0 ? v - min_abs : v + min_abs;
    p[i] = v;
  }
  if (requires_grad) t.requires_grad_();
  return t;
}

}  // namespace sg
