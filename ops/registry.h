// ops/registry.h — every op, listed once with sample inputs and tolerances. ONE test
// (tests/ops/test_registry.cpp) walks this list and, for every case:
//   1. value check: runs `fn` on f32 copies of the inputs and compares with `reference`, an
//      independent naive implementation (plain loops over Tensor::at in double);
//   2. gradcheck: float64 central differences vs backward() for every floating input that requires grad.
// Cases cover broadcasting and non-contiguous inputs: `fn` receives the raw inputs and may apply
// views (permute, slice, expand) before the op; `reference` receives the SAME inputs and reads
// them through the same view (views are plain stride arithmetic, tested on their own).
//
// Each op family registers its cases in its own file (ops/registry_<family>.cpp).
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "autograd/rng.h"
#include "autograd/tensor.h"

namespace sg {

struct OpCase {
  std::string name;                                               // "add/broadcast_row"
  // Sample inputs: floating inputs in f64 (requires_grad set on those to gradcheck), indices in i64.
  std::function<std::vector<Tensor>(Rng&)> make_inputs;
  std::function<Tensor(const std::vector<Tensor>&)> fn;          // the op under test
  std::function<Tensor(const std::vector<Tensor>&)> reference;   // plain loops, returns f64 (or integer) tensor
  double atol = 1e-5, rtol = 1e-4;                                // f32 value check vs reference
  bool gradcheck = true;
  double grad_eps = 1e-6, grad_atol = 1e-6, grad_rtol = 1e-5;
};

const std::vector<OpCase>& op_registry();

// Family registration functions (one per ops/registry_<family>.cpp).
void register_elementwise_cases(std::vector<OpCase>& cases);
void register_reduce_cases(std::vector<OpCase>& cases);
void register_shape_cases(std::vector<OpCase>& cases);
void register_linalg_cases(std::vector<OpCase>& cases);
void register_index_cases(std::vector<OpCase>& cases);
void register_nn_cases(std::vector<OpCase>& cases);
void register_attention_cases(std::vector<OpCase>& cases);

// ---- helpers for writing references ------------------------------------------------------------
// Calls fn(index) for every multi-index of `shape` in row-major order.
void for_each_index(const Shape& shape, const std::function<void(const std::vector<int64_t>&)>& fn);
// A new f64 tensor of `shape` whose element at index i is fn(i).
Tensor make_reference(const Shape& shape, const std::function<double(const std::vector<int64_t>&)>& fn);
// Reads t at `index` of a broadcast shape (numpy rules: leading dims dropped, size-1 dims pinned to 0).
double at_broadcast(const Tensor& t, const std::vector<int64_t>& index);
// Random f64 tensor in [lo, hi) that requires grad; values kept away from 0 by `min_abs` when > 0.
Tensor rand_input(Rng& rng, const Shape& shape, double lo = -1.0, double hi = 1.0, double min_abs = 0.0, bool requires_grad = true);

}  // namespace sg
