// models/kv_cache.cpp — see kv_cache.h.
#include "models/kv_cache.h"

#include "autograd/node.h"
#include "ops/dispatch.h"
#include "ops/shape.h"

namespace sg {

void write_cache_rows(const Tensor& cache, const Tensor& values, int64_t start_pos) {
  NoGradGuard no_grad;
  Tensor dst = narrow(narrow(cache, 0, 0, values.size(0)), 1, start_pos, values.size(1));
  dispatch_float(cache.dtype(), "kv_cache", []<class T>() {});  // throws unless the cache is f32 / f64
  copy_into(dst, values.detach());
}

Tensor read_cache_rows(const Tensor& cache, const Tensor& current, int64_t start_pos) {
  int64_t B = current.size(0), S = current.size(1);
  Tensor mine = narrow(cache, 0, 0, B);
  if (!grad_enabled()) return narrow(mine, 1, 0, start_pos + S);
  if (start_pos == 0) return current;
  return cat({narrow(mine, 1, 0, start_pos), current}, 1);
}

}  // namespace sg
