// tests/tools/gdb_target.cpp — a tiny program for gdb to stop in, so that
// tests/tools/test_gdb_printer.cpp can check what tools/gdb/seekgrad.py prints.
//
// Built as its own executable `gdb_target` (-O0 -g, build/bin/), NOT part of the test_tools
// doctest binary: it has its own main(). It builds a few tensors with known numbers, then calls
// breakpoint_here(); the test runs `break breakpoint_here`, `up`, and prints the locals of main.
// Changing a value here means changing the expected text in test_gdb_printer.cpp.
#include <cstdio>
#include <vector>

#include "ops/ops.h"

// gdb stops here; `up` returns to main, where the tensors are in scope.
extern "C" __attribute__((noinline)) void breakpoint_here() { asm volatile("" ::: "memory"); }

int main() {
  using namespace sg;
  // x = [[1, 2, 3], [4, 5, 6]], f32, contiguous, no grad.
  Tensor x = Tensor::from_vector(std::vector<float>{1, 2, 3, 4, 5, 6}, {2, 3});
  x.set_name("x");
  // xt = xᵀ, a permuted view (3, 2) with strides (1, 3): its values in row-major order are 1, 4, 2, 5, 3, 6.
  Tensor xt = permute(x, {1, 0});
  xt.set_name("xt");
  // w = [[0.5, -1], [2, 3]], f64 leaf; loss = Σ w²  =>  w.grad = 2w = [[1, -2], [4, 6]].
  Tensor w = Tensor::from_vector(std::vector<double>{0.5, -1, 2, 3}, {2, 2});
  w.requires_grad_().set_name("w");
  Tensor loss = sum(w * w);
  loss.backward();
  // y = w·w inside scope "layers.0" (graph kept: no backward through it), a non-leaf with a node.
  Tensor y;
  {
    ScopeGuard scope("layers.0");
    y = matmul(w, w).set_name("y");
  }
  // big: 10 values, more than the printer shows by default.
  Tensor big = Tensor::arange(10, DType::i64);
  Tensor undefined_tensor;

  breakpoint_here();
  std::printf("%s %s %s %s %s %d\n", x.describe().c_str(), xt.describe().c_str(), w.describe().c_str(),
              y.describe().c_str(), big.describe().c_str(), (int)undefined_tensor.defined());
  return 0;
}
