// tests/cuda/test_devices_gpu.cpp — the device checks of tests/cuda/device_checks.h on a REAL GPU: Device::CUDA
// storage in device memory (the cuda pool), cudaMemcpy copies, the elementwise kernels launched by sg::cuda::.
// Every case is skipped (exit 77) when sg::cuda::available() is false: a build without nvcc, or no device.
// Values are compared with tolerance 1e-5 · (1 + |want|) (device_checks.h says why), not bit for bit.
#include <doctest/doctest.h>

#include "tests/test_util.h"
#include "tests/cuda/device_checks.h"

#include "autograd/device.h"
#include "cuda/cuda_backend.h"
#include "ops/ops.h"

using namespace sg;

namespace {
constexpr double kGpuTolerance = 1e-5;
constexpr const char* kNoGpu = "no CUDA device (or a build without nvcc)";
}  // namespace

// Each case: the real device (whatever SEEKGRAD_CUDA_EMU says), or a skip.

TEST_CASE("devices gpu: to(CUDA) and back round-trips values, views, dtypes") {
  CudaEmulationScope real_device(false);
  if (!sg::cuda::available()) SEEKGRAD_SKIP(kNoGpu);
  MESSAGE("device 0: " << sg::cuda::device_name(0));
  sg::test::devices::check_round_trip();
  CHECK(Tensor::ones({2}, DType::f32, Device::CUDA).impl()->storage->pool == MemoryPool::cuda);
}

TEST_CASE("devices gpu: the cuda pool caches device memory") {
  CudaEmulationScope real_device(false);
  if (!sg::cuda::available()) SEEKGRAD_SKIP(kNoGpu);
  sg::test::devices::check_cuda_pool_stats();
}

TEST_CASE("devices gpu: every unary op, forward and backward, against the CPU") {
  CudaEmulationScope real_device(false);
  if (!sg::cuda::available()) SEEKGRAD_SKIP(kNoGpu);
  sg::test::devices::check_unary_ops(kGpuTolerance);
}

TEST_CASE("devices gpu: binary ops with broadcast and strides, and the scalar affine, against the CPU") {
  CudaEmulationScope real_device(false);
  if (!sg::cuda::available()) SEEKGRAD_SKIP(kNoGpu);
  sg::test::devices::check_binary_ops(kGpuTolerance);
}

TEST_CASE("devices gpu: silu(a*b + c)*a, values and gradients on the device") {
  CudaEmulationScope real_device(false);
  if (!sg::cuda::available()) SEEKGRAD_SKIP(kNoGpu);
  sg::test::devices::check_graph(kGpuTolerance);
}

TEST_CASE("devices gpu: to_device is differentiable") {
  CudaEmulationScope real_device(false);
  if (!sg::cuda::available()) SEEKGRAD_SKIP(kNoGpu);
  sg::test::devices::check_to_device_grad(kGpuTolerance);
}
