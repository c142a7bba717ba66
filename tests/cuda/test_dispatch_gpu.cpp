// tests/cuda/test_dispatch_gpu.cpp — the dispatched op families on a REAL GPU (sg::cuda::, device memory): the op
// registry walk (tests/cuda/registry_walk.h) and the tiny Transformer (tests/cuda/model_check.h) on Device::CUDA
// against the CPU, as their emulated twins (test_dispatch_registry_emu.cpp, test_dispatch_model_emu.cpp) check them
// without one. Every case is skipped (exit 77) when sg::cuda::available() is false: a build without nvcc, or no
// device.
//
// Tolerances: the emulation's, 1e-4 + 1e-4 |want| for the registry and 1e-4 of max|want| for the model: on the GPU
// nvcc contracts a·b + c into FMAs and expf / logf are CUDA's (within 2 ulp of glibc's), a few f32 ulps more than
// the emulation differs by, far below 1e-4 for values of order 1 (tests/cuda/device_checks.h).
#include <doctest/doctest.h>

#include "tests/test_util.h"
#include "tests/cuda/model_check.h"
#include "tests/cuda/registry_walk.h"

#include "autograd/device.h"
#include "cuda/cuda_backend.h"

using namespace sg;

namespace {
constexpr const char* kNoGpu = "no CUDA device (or a build without nvcc)";
}  // namespace

TEST_CASE("dispatch gpu: every registry op on the GPU equals the CPU, values and gradients") {
  CudaEmulationScope real_device(false);
  if (!sg::cuda::available()) SEEKGRAD_SKIP(kNoGpu);
  CHECK(sg::test::dispatch::walk_registry_on_cuda({1e-4, 1e-4}) > 200);
}

TEST_CASE("dispatch gpu: the tiny dense and MoE Transformers on the GPU give the CPU's losses, gradients and step") {
  CudaEmulationScope real_device(false);
  if (!sg::cuda::available()) SEEKGRAD_SKIP(kNoGpu);
  sg::test::model::check_model(false);
  sg::test::model::check_model(true);
}
