// tests/test_util.h — small helpers shared by the test files (doctest must be included first).
#pragma once
#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "autograd/tensor.h"

#ifndef SEEKGRAD_SOURCE_DIR
#define SEEKGRAD_SOURCE_DIR "."
#endif

namespace sg::test {

// The official tiny model and its outputs (tests/fixtures/README.md), with a trailing '/'.
inline const std::string kFixtures = std::string(SEEKGRAD_SOURCE_DIR) + "/tests/fixtures/tiny_v2lite/";

// max |a - b| over two tensors of the same shape (any dtypes, any layouts).
inline double max_abs_diff(const Tensor& a, const Tensor& b) {
  REQUIRE_MESSAGE(a.shape() == b.shape(), a.describe() << " vs " << b.describe());
  std::vector<double> x = a.to_f64_vector(), y = b.to_f64_vector();
  double m = 0;
  for (size_t i = 0; i < x.size(); i++) m = std::max(m, std::abs(x[i] - y[i]));
  return m;
}

// The message of the exception `f` throws ("" if it does not throw).
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

}  // namespace sg::test
