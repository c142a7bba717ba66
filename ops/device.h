// ops/device.h — moving tensors between devices, as a differentiable op.
//
//   to_device(x, d)   x's values on device d: a contiguous copy (x itself when it is on d already).
//                     dx = to_device(dy, x.device()) — the gradient goes back to where x lives, so a CPU
//                     parameter used on CUDA gets a CPU .grad.
//
// Tensor::to(d) (autograd/tensor.h) is the same copy without autograd history, for host code (printing,
// checkpoints, seeds). Devices, pools and the CUDA emulation: autograd/device.h.
#pragma once
#include "autograd/tensor.h"

namespace sg {

Tensor to_device(const Tensor& x, Device device);

}  // namespace sg
