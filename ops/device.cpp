// ops/device.cpp — to_device, forward and backward. See device.h.
#include "ops/device.h"

#include "autograd/node.h"
#include "ops/checks.h"

namespace sg {

// y = x on `device`:  dx = dy on x's device
Tensor to_device(const Tensor& x, Device device) {
  check_defined("to_device", x, "x");
  if (x.device() == device) return x;
  Tensor y = x.to(device);
  if (needs_grad(x)) {
    const Device from = x.device();
    record("to_device", y, {x}, [from](const Tensor& dy) { return std::vector<Tensor>{to_device(dy, from)}; });
  }
  return y;
}

}  // namespace sg
