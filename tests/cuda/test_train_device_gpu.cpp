// tests/cuda/test_train_device_gpu.cpp — pretraining with train.device: cuda on a REAL GPU against the same run on the
// CPU (tests/cuda/train_check.h; its emulated twin is test_train_device_emu.cpp). Skipped (exit 77) when
// sg::cuda::available() is false: a build without nvcc, or no device.
#include <doctest/doctest.h>

#include "tests/test_util.h"
#include "tests/cuda/train_check.h"

#include "autograd/device.h"
#include "cuda/cuda_backend.h"

using namespace sg;

TEST_CASE("train gpu: 4 pretraining steps on the GPU give the CPU run's losses, grad norms, loads and parameters") {
  CudaEmulationScope real_device(false);
  if (!sg::cuda::available()) SEEKGRAD_SKIP("no CUDA device (or a build without nvcc)");
  sg::test::train::check_training_matches_cpu();
}
