// ops/checks.cpp — argument checks shared by all ops. See checks.h.
#include "ops/checks.h"

#include <stdexcept>

namespace sg {

void op_error(const char* op, const std::string& message) { throw std::runtime_error(std::string("[") + op + "] " + message); }

void check_cpu(const char* op, const Tensor& t) {
  switch (t.device()) {
    case Device::CPU: return;
    case Device::CUDA: op_error(op, "has no CUDA kernel yet; " + t.describe());
    case Device::Metal: op_error(op, "has no Metal kernel yet; " + t.describe());
  }
}
void check_defined(const char* op, const Tensor& t, const char* what) {
  if (!t.defined()) op_error(op, std::string(what) + " is an undefined tensor");
}
void check_same_dtype(const char* op, const Tensor& a, const Tensor& b) {
  if (a.dtype() != b.dtype()) op_error(op, a.describe() + " and " + b.describe() + " have different dtypes");
}
void check_same_device(const char* op, const Tensor& a, const Tensor& b) {
  if (a.device() != b.device())
    op_error(op, a.describe() + " and " + b.describe() + " are on different devices (" + device_name(a.device()) +
                     " and " + device_name(b.device()) + "); move one with to_device");
}
void check_floating(const char* op, const Tensor& t) {
  if (!is_floating(t.dtype())) op_error(op, t.describe() + " is not a floating-point tensor");
}
int64_t normalize_dim(const char* op, int64_t ndim, int64_t dim, const std::string& what) {
  int64_t d = dim < 0 ? dim + ndim : dim;
  if (d < 0 || d >= ndim)
    op_error(op, "dim " + std::to_string(dim) + " is out of range for " + what + " with " + std::to_string(ndim) + " dims");
  return d;
}
int64_t normalize_dim(const char* op, const Tensor& t, int64_t dim) { return normalize_dim(op, t.dim(), dim, t.describe()); }

}  // namespace sg
