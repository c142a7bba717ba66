// tests/cuda/test_dispatch_registry_emu.cpp — the op registry (ops/registry.h) walked on emulated CUDA
// (tests/cuda/registry_walk.h): every case's values and gradients on Device::CUDA against the CPU's plain loops,
// in the forward lane order (the per-family files run both orders); cases whose ops have no CUDA kernel yet are
// printed as SKIPPED.
//
// Tolerance: |got - want| <= 1e-4 + 1e-4 |want|: the CUDA kernels sum rows in another order than the CPU's loops
// and take libm's expf / logf (per family: tests/cuda/test_dispatch_*_emu.cpp, where most ops are held to the same
// bits or 2e-5); the registry's values are of order 1 and its rows short, so 1e-4 is loose for them, and it
// still fails any wrong element, index or gradient path.
#include <doctest/doctest.h>

#include "tests/cuda/registry_walk.h"

#include "autograd/device.h"

using namespace sg;

TEST_CASE("dispatch registry emu: every registry op on emulated CUDA equals the CPU, values and gradients") {
  CudaEmulationScope emu(true);
  CHECK(sg::test::dispatch::walk_registry_on_cuda({1e-4, 1e-4}) > 200);
}
