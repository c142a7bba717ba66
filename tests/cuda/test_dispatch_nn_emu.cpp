// tests/cuda/test_dispatch_nn_emu.cpp — the fused nn ops through the device dispatch, under the CUDA emulation:
// softmax / log_softmax / cross_entropy (softmax family), rms_norm / layer_norm (norm family, the backward's
// dweight scratch allocated on the device by the op), rope, topk / argmax on Device::CUDA tensors give the CPU op's
// values and gradients, in both lane orders.
//
// Tolerances: rope (the shared scalar::rope_rotate), topk and argmax (they move the row's own values) give the same
// bits. softmax and the norms sum rows in another order and take libm's expf where the CPU's plain loops take
// std::exp in f32 / double: tests/cuda/test_{softmax,norm}_emu.cpp bound each kernel at 4e-6 of the magnitudes of
// the terms; here, with values of order 1 and rows of <= 70 terms, |got - want| <= 2e-5 + 2e-5 |want|.
#include <doctest/doctest.h>

#include "tests/cuda/dispatch_checks.h"
#include "tests/test_util.h"

#include "autograd/device.h"
#include "ops/ops.h"

using namespace sg;
using sg::test::dispatch::check_on_cuda_both_orders;
using sg::test::dispatch::Tol;
using sg::test::error_of;

namespace {
Tensor input(const Shape& shape, uint64_t seed, double lo = -2.0, double hi = 2.0, bool grad = true) {
  Rng rng(seed);
  Tensor t = Tensor::rand(shape, rng, lo, hi);
  if (grad) t.requires_grad_();
  return t;
}
const Tol kRow{2e-5, 2e-5};
}  // namespace

TEST_CASE("dispatch nn emu: softmax, log_softmax over the last and a middle dim, cross_entropy with ignored rows") {
  CudaEmulationScope emu(true);
  check_on_cuda_both_orders("softmax/last", [](const std::vector<Tensor>& in) { return softmax(in[0], -1); },
                            {input({5, 70}, 1)}, kRow);
  check_on_cuda_both_orders("softmax/middle", [](const std::vector<Tensor>& in) { return softmax(in[0], 1); },
                            {input({2, 9, 3}, 2)}, kRow);
  check_on_cuda_both_orders("log_softmax/last", [](const std::vector<Tensor>& in) { return log_softmax(in[0], -1); },
                            {input({4, 33}, 3)}, kRow);
  check_on_cuda_both_orders("log_softmax/dim0", [](const std::vector<Tensor>& in) { return log_softmax(in[0], 0); },
                            {input({6, 5}, 4)}, kRow);
  Tensor targets = Tensor::from_vector(std::vector<int64_t>{3, -100, 0, 40, 7, 40}, {2, 3});
  Tensor targets32 = Tensor::from_vector(std::vector<int32_t>{1, 2, -100, 0, 5, 6}, {2, 3});
  check_on_cuda_both_orders("cross_entropy/i64", [](const std::vector<Tensor>& in) { return cross_entropy(in[0], in[1]); },
                            {input({2, 3, 41}, 5), targets}, kRow);
  check_on_cuda_both_orders("cross_entropy/i32_transposed",
                            [](const std::vector<Tensor>& in) { return cross_entropy(transpose(in[0], 0, 1), in[1]); },
                            {input({3, 2, 9}, 6), targets32}, kRow);
  // errors: targets on another device, a target out of range (checked on the host)
  Tensor logits = Tensor::zeros({2, 3, 41}).to(Device::CUDA);
  CHECK(error_of([&] { cross_entropy(logits, targets); }).find("are on different devices (cuda and cpu)") != std::string::npos);
  Tensor bad = Tensor::from_vector(std::vector<int64_t>{3, 41, 0, 1, 2, 3}, {2, 3}).to(Device::CUDA);
  CHECK(error_of([&] { cross_entropy(logits, bad); }) == "[cross_entropy] target 41 at position 1 is outside [0, 41)");
}

TEST_CASE("dispatch nn emu: rms_norm and layer_norm (with and without bias), gradients of x, weight and bias") {
  CudaEmulationScope emu(true);
  // 300 rows: more than the 256 partial rows of the dweight scratch (ops/kernel_abi/norm.h), so the second pass
  // adds more than one row per block.
  check_on_cuda_both_orders("rms_norm/300x24", [](const std::vector<Tensor>& in) { return rms_norm(in[0], in[1], 1e-6); },
                            {input({3, 100, 24}, 10), input({24}, 11, 0.5, 1.5)}, kRow);
  check_on_cuda_both_orders("rms_norm/strided_x", [](const std::vector<Tensor>& in) { return rms_norm(transpose(in[0], 0, 1), in[1]); },
                            {input({7, 5, 16}, 12), input({16}, 13, 0.5, 1.5)}, kRow);
  check_on_cuda_both_orders("layer_norm/bias", [](const std::vector<Tensor>& in) { return layer_norm(in[0], in[1], in[2]); },
                            {input({37, 20}, 14), input({20}, 15, 0.5, 1.5), input({20}, 16)}, kRow);
  check_on_cuda_both_orders("layer_norm/no_bias", [](const std::vector<Tensor>& in) { return layer_norm(in[0], in[1], Tensor()); },
                            {input({9, 65}, 17), input({65}, 18, 0.5, 1.5)}, kRow);
  // weight that takes no gradient: no scratch, dx only
  check_on_cuda_both_orders("rms_norm/frozen_weight", [](const std::vector<Tensor>& in) { return rms_norm(in[0], in[1]); },
                            {input({6, 8}, 19), input({8}, 20, 0.5, 1.5, false)}, kRow);
  Tensor x = Tensor::ones({2, 4}).to(Device::CUDA), w = Tensor::ones({4});
  CHECK(error_of([&] { rms_norm(x, w); }).find("[rms_norm] tensor (2, 4) f32 on cuda and tensor (4) f32 are on different devices") == 0);
}

TEST_CASE("dispatch nn emu: rope (both layouts, 3-D and 4-D), topk (largest and smallest, any dim), argmax") {
  CudaEmulationScope emu(true);
  Tensor cos = input({5, 4}, 30, -1.0, 1.0, false), sin = input({5, 4}, 31, -1.0, 1.0, false);
  for (RopeLayout layout : {RopeLayout::interleaved, RopeLayout::half_split}) {
    const std::string name = layout == RopeLayout::interleaved ? "interleaved" : "half_split";
    check_on_cuda_both_orders("rope/4d_" + name, [layout](const std::vector<Tensor>& in) { return rope(in[0], in[1], in[2], layout); },
                              {input({2, 5, 3, 8}, 32), cos, sin});
    check_on_cuda_both_orders("rope/3d_" + name, [layout](const std::vector<Tensor>& in) { return rope(in[0], in[1], in[2], layout); },
                              {input({2, 5, 8}, 33), cos, sin});
  }
  check_on_cuda_both_orders("topk/largest_last", [](const std::vector<Tensor>& in) { return topk(in[0], 3, -1).values; },
                            {input({4, 37}, 34)});
  check_on_cuda_both_orders("topk/smallest_dim0", [](const std::vector<Tensor>& in) { return topk(in[0], 2, 0, false).values; },
                            {input({9, 3, 2}, 35)});
  check_on_cuda_both_orders("topk/indices", [](const std::vector<Tensor>& in) { return topk(in[0], 5, 1).indices; },
                            {input({3, 12}, 36, -2.0, 2.0, false)});
  // ties: the lower index first, on both devices
  Tensor tied = Tensor::from_vector(std::vector<float>{1, 2, 2, 0, 2, 1}, {1, 6}).requires_grad_();
  check_on_cuda_both_orders("topk/ties", [](const std::vector<Tensor>& in) { return topk(in[0], 3).values * topk(in[0], 3).values; }, {tied});
  check_on_cuda_both_orders("argmax/last", [](const std::vector<Tensor>& in) { return argmax(in[0], -1); },
                            {input({5, 300}, 37, -2.0, 2.0, false)});
  check_on_cuda_both_orders("argmax/dim0_keepdim", [](const std::vector<Tensor>& in) { return argmax(in[0], 0, true); },
                            {input({6, 4}, 38, -2.0, 2.0, false)});
}
