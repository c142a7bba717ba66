// tests/cuda/test_dispatch_emu.cpp — the device dispatch (ops/kernels.h) under the CUDA EMULATION: elementwise ops
// on Device::CUDA tensors run the CUDA kernels through the CPU fiber emulator (sg::cuda_emu::, no GPU), and give
// the CPU ops' values and gradients — the same bits as the CPU's plain loops (SEEKGRAD_NAIVE), since both do the
// same float operations from the same formulas — in both lane orders. The same checks run on a GPU in
// tests/cuda/test_devices_gpu.cpp.
#include <doctest/doctest.h>

#include "tests/test_util.h"
#include "tests/cuda/device_checks.h"

#include "autograd/device.h"
#include "cuda/emu/emu.h"
#include "ops/kernels.h"
#include "ops/ops.h"

using namespace sg;
using sg::emu::LaneOrder;
using sg::test::error_of;

TEST_CASE("dispatch emu: every unary op on CUDA, forward and backward, equals the CPU op bit for bit") {
  CudaEmulationScope emu(true);
  for (LaneOrder order : {LaneOrder::forward, LaneOrder::reverse}) {
    CAPTURE(sg::emu::lane_order_name(order));
    sg::emu::LaneOrderScope scope(order);
    sg::test::devices::check_unary_ops(0.0);
  }
}

TEST_CASE("dispatch emu: add/sub/mul/div with broadcast and strided inputs, and the scalar affine, equal the CPU") {
  CudaEmulationScope emu(true);
  for (LaneOrder order : {LaneOrder::forward, LaneOrder::reverse}) {
    CAPTURE(sg::emu::lane_order_name(order));
    sg::emu::LaneOrderScope scope(order);
    sg::test::devices::check_binary_ops(0.0);
  }
}

TEST_CASE("dispatch emu: silu(a*b + c)*a with broadcast, values and gradients on the device equal the CPU") {
  CudaEmulationScope emu(true);
  for (LaneOrder order : {LaneOrder::forward, LaneOrder::reverse}) {
    CAPTURE(sg::emu::lane_order_name(order));
    sg::emu::LaneOrderScope scope(order);
    sg::test::devices::check_graph(0.0);
  }
}

TEST_CASE("dispatch emu: the CUDA kernels really ran in the emulator, not the CPU kernels") {
  CudaEmulationScope emu(true);
  Tensor x = Tensor::ones({1000}).to(Device::CUDA);
  (void)silu(x);
  // 1000 values: 4 blocks of 256 lanes (cuda/kernels/elementwise.cuh).
  CHECK(sg::emu::last_launch().blocks == 4);
  CHECK(sg::emu::last_launch().threads_per_block == 256);
}

TEST_CASE("dispatch emu: kernels::* called directly, and their errors") {
  CudaEmulationScope emu(true);
  std::vector<float> x = {-1.0f, 0.5f, 2.0f}, y(3, 0.0f);
  kernels::unary_forward<float>("relu", Device::CUDA, {UnaryOp::relu, 3, x.data(), y.data()});
  CHECK(y == std::vector<float>{0.0f, 0.5f, 2.0f});
  kernels::affine_forward<float>("affine", Device::CPU, {3, 2.0f, 1.0f, x.data(), y.data()});
  CHECK(y == std::vector<float>{-1.0f, 2.0f, 5.0f});
  std::vector<double> xd = {1.0}, yd = {0.0};
  CHECK(error_of([&] { kernels::unary_forward<double>("exp", Device::CUDA, {UnaryOp::exp, 1, xd.data(), yd.data()}); }) ==
        "[exp] the CUDA backend computes f32; this tensor on cuda is f64 (convert it to f32 on the CPU, then move it)");
  CHECK(error_of([&] { kernels::unary_forward<float>("exp", Device::Metal, {UnaryOp::exp, 3, x.data(), y.data()}); }) ==
        "[exp] no Metal backend in this build");
}

TEST_CASE("dispatch emu: a broadcast input that needs a gradient: sum_to runs on the device") {
  CudaEmulationScope emu(true);
  Tensor a = Tensor::ones({3, 4}).to(Device::CUDA).requires_grad_();
  Tensor b = Tensor::full({4}, 2.0, DType::f32, Device::CUDA).requires_grad_();
  Tensor y = a * b;
  y.backward(Tensor::ones({3, 4}, DType::f32, Device::CUDA));
  CHECK(b.grad().device() == Device::CUDA);
  CHECK(b.grad().to_f32_vector() == std::vector<float>(4, 3.0f));  // Σ over the 3 rows of dy ⊙ a
  CHECK(a.grad().to_f32_vector() == std::vector<float>(12, 2.0f));
}
