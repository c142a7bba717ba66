// autograd/gradcheck.h — finite-difference gradient checking in float64.
//
// For a function f(inputs) -> output, picks a random upstream gradient w (same shape as the output)
// and compares, for every element x_i of every floating input that requires grad,
//     analytic:  (d/dx_i) <w, f(x)>   from one backward() with seed w
//     numeric:   (<w, f(x + eps e_i)> - <w, f(x - eps e_i)>) / (2 eps)
// Passes when |analytic - numeric| <= atol + rtol * |numeric| everywhere. Inputs must be f64.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "autograd/tensor.h"

namespace sg {

struct GradcheckOptions {
  double eps = 1e-6;
  double atol = 1e-6;
  double rtol = 1e-5;
  uint64_t seed = 1234;
  int64_t max_elements_per_input = 4096;  // check at most this many elements per input (spread evenly)
};

struct GradcheckResult {
  bool ok = true;
  double max_abs_error = 0;
  std::string message;  // first failure: which input, which element, analytic vs numeric
};

GradcheckResult gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& f, const std::vector<Tensor>& inputs,
                          const GradcheckOptions& options = {});

}  // namespace sg
