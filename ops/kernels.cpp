// ops/kernels.cpp — the device dispatch, one switch per kernel. See kernels.h (the recipe is there).
#include "ops/kernels.h"

#include <type_traits>
#include <vector>

#include "cuda/elementwise.h"
#include "ops/checks.h"
#include "ops/cpu/elementwise.h"

namespace sg::kernels {

namespace {

// The CUDA kernels compute f32, as the GPU trains (cuda/README.md); the CPU keeps f64 for gradchecks.
[[noreturn]] void cuda_needs_f32(const char* op) {
  op_error(op, "the CUDA backend computes f32; this tensor on cuda is f64 (convert it to f32 on the CPU, then move it)");
}
[[noreturn]] void no_metal(const char* op) { op_error(op, "no Metal backend in this build"); }

template <class T> constexpr bool is_f32 = std::is_same_v<T, float>;

}  // namespace

// ---- elementwise -----------------------------------------------------------------------------------------------

template <class T> void unary_forward(const char* op, Device d, const UnaryArgs<T>& a) {
  switch (d) {
    case Device::CPU: cpu::unary_forward<T>(a.op, a.x, a.y, a.n); return;
    case Device::CUDA:
      if constexpr (is_f32<T>) {
        if (cuda_emulation()) cuda_emu::unary_forward(a);
        else cuda::unary_forward(a);
        return;
      }
      cuda_needs_f32(op);
    case Device::Metal: no_metal(op);
  }
}

template <class T> void unary_backward(const char* op, Device d, const UnaryBackwardArgs<T>& a) {
  switch (d) {
    case Device::CPU: cpu::unary_backward<T>(a.op, a.x, a.y, a.dy, a.dx, a.n); return;
    case Device::CUDA:
      if constexpr (is_f32<T>) {
        if (cuda_emulation()) cuda_emu::unary_backward(a);
        else cuda::unary_backward(a);
        return;
      }
      cuda_needs_f32(op);
    case Device::Metal: no_metal(op);
  }
}

template <class T> void binary_forward(const char* op, Device d, const BinaryArgs<T>& a) {
  switch (d) {
    case Device::CPU: {
      const std::vector<int64_t> shape(a.shape, a.shape + a.ndim), a_strides(a.a_strides, a.a_strides + a.ndim),
          b_strides(a.b_strides, a.b_strides + a.ndim);
      cpu::binary_forward<T>(a.op, shape, a.a, a_strides, a.b, b_strides, a.out);
      return;
    }
    case Device::CUDA:
      if constexpr (is_f32<T>) {
        if (cuda_emulation()) cuda_emu::binary_forward(a);
        else cuda::binary_forward(a);
        return;
      }
      cuda_needs_f32(op);
    case Device::Metal: no_metal(op);
  }
}

template <class T> void affine_forward(const char* op, Device d, const AffineArgs<T>& a) {
  switch (d) {
    case Device::CPU: cpu::affine_forward<T>(a.x, a.alpha, a.beta, a.y, a.n); return;
    case Device::CUDA:
      if constexpr (is_f32<T>) {
        if (cuda_emulation()) cuda_emu::affine_forward(a);
        else cuda::affine_forward(a);
        return;
      }
      cuda_needs_f32(op);
    case Device::Metal: no_metal(op);
  }
}

template void unary_forward<float>(const char*, Device, const UnaryArgs<float>&);
template void unary_forward<double>(const char*, Device, const UnaryArgs<double>&);
template void unary_backward<float>(const char*, Device, const UnaryBackwardArgs<float>&);
template void unary_backward<double>(const char*, Device, const UnaryBackwardArgs<double>&);
template void binary_forward<float>(const char*, Device, const BinaryArgs<float>&);
template void binary_forward<double>(const char*, Device, const BinaryArgs<double>&);
template void affine_forward<float>(const char*, Device, const AffineArgs<float>&);
template void affine_forward<double>(const char*, Device, const AffineArgs<double>&);

}  // namespace sg::kernels
