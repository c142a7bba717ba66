// models/kv_cache.cpp — see kv_cache.h.
#include "models/kv_cache.h"

#include "autograd/node.h"
#include "ops/cpu/copy.h"
#include "ops/dispatch.h"
#include "ops/shape.h"

namespace sg {

void write_cache_rows(const Tensor& cache, const Tensor& values, int64_t start_pos) {
  NoGradGuard no_grad;
  Tensor dst = narrow(narrow(cache, 0, 0, values.size(0)), 1, start_pos, values.size(1));
  Tensor src = values.detach();
  dispatch_float(cache.dtype(), "kv_cache", [&]<class T>() {
    cpu::strided_copy(src.shape(), src.data<T>(), src.strides(), dst.data<T>(), dst.strides());
  });
}

Tensor read_cache_rows(const Tensor& cache, const Tensor& current, int64_t start_pos) {
  int64_t B = current.size(0), S = current.size(1);
  Tensor mine = narrow(cache, 0, 0, B);
  if (!grad_enabled()) return narrow(mine, 1, 0, start_pos + S);
  if (start_pos == 0) return current;
  return cat({narrow(mine, 1, 0, start_pos), current}, 1);
}

}  // namespace sg
