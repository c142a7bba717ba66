// ops/reduce.h — reductions over any set of axes, with keepdim: sum, mean, max, min, var;
// and sum_to (the reduction that undoes broadcasting, used by every broadcasting backward).
#pragma once
#include <vector>

#include "autograd/tensor.h"

namespace sg {

Tensor sum(const Tensor& x);                                                      // all elements -> scalar
Tensor sum(const Tensor& x, const std::vector<int64_t>& axes, bool keepdim = false);
Tensor mean(const Tensor& x);
Tensor mean(const Tensor& x, const std::vector<int64_t>& axes, bool keepdim = false);
Tensor max(const Tensor& x, const std::vector<int64_t>& axes, bool keepdim = false);
Tensor min(const Tensor& x, const std::vector<int64_t>& axes, bool keepdim = false);
// Variance with Bessel's correction (`correction` = 1) or the population variance (0).
Tensor var(const Tensor& x, const std::vector<int64_t>& axes, bool keepdim = false, int64_t correction = 1);

// Sums g over the dims that broadcasting added or stretched, so the result has `shape`.
Tensor sum_to(const Tensor& g, const Shape& shape);

}  // namespace sg
