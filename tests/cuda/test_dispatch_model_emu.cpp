// tests/cuda/test_dispatch_model_emu.cpp — a whole Transformer on emulated CUDA: two copies of one tiny DeepSeek-V3
// shaped model (the same seed), one left on the CPU, one moved to Device::CUDA (every parameter, buffer and the rope
// table), give the same loss and the same parameter gradients, and one AdamW step moves their weights alike. Every
// op of the forward and the backward runs its CUDA kernel in the emulator: embedding, rms_norm, linear (gemm), rope,
// cat / slice, the fused MLA attention, silu, the MoE gate (sigmoid, topk, gather), index_select / index_add,
// cross_entropy, the balance loss's sums.
//
// Tolerance: the two sides run different kernels (the CPU's fast paths — packed GEMM, SIMD exp — against the CUDA
// tile kernels), so every value differs by f32 roundings that the layers carry along: |got - want| <= 1e-4 ·
// max|want| over the tensor, for the loss and each gradient (measured worst: printed). The routing (topk of the
// gate scores) is the same on both sides: the scores differ by ~1e-7 and no two are that close here (checked).
#include <doctest/doctest.h>

#include "tests/cuda/model_check.h"

#include "autograd/device.h"

using namespace sg;

TEST_CASE("dispatch model emu: a dense 1-layer Transformer on CUDA gives the CPU's loss, gradients and AdamW step") {
  CudaEmulationScope emu(true);
  sg::test::model::check_model(false);
}

TEST_CASE("dispatch model emu: a 2-layer MoE Transformer with MTP on CUDA gives the CPU's losses, gradients and step") {
  CudaEmulationScope emu(true);
  sg::test::model::check_model(true);
}
