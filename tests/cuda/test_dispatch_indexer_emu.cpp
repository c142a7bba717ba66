// tests/cuda/test_dispatch_indexer_emu.cpp — hadamard_rotate and dropout (p > 0, training) on Device::CUDA tensors
// under the CUDA emulation give the CPU op's values and gradients (tests/cuda/dispatch_checks.h), in both lane
// orders, to the bit (tolerance {0, 0}): the Hadamard kernel does the CPU butterfly's additions in its order
// (cuda/kernels/indexer.cuh), and dropout's mask is drawn on the host from the same Rng calls on both devices and
// multiplied in by the elementwise mul kernel (x * m, as cpu::dropout_apply).
#include <doctest/doctest.h>

#include "tests/cuda/dispatch_checks.h"
#include "tests/test_util.h"

#include "autograd/device.h"
#include "ops/ops.h"

using namespace sg;
using sg::test::dispatch::check_on_cuda_both_orders;
using sg::test::error_of;

namespace {
Tensor input(const Shape& shape, uint64_t seed, DType dtype = DType::f32) {
  Rng rng(seed);
  Tensor t = Tensor::rand(shape, rng, -2.0, 2.0, dtype);
  t.requires_grad_();
  return t;
}
}  // namespace

TEST_CASE("dispatch indexer emu: hadamard_rotate on CUDA tensors, values and gradients, n = 1 ... 1024") {
  CudaEmulationScope emu(true);
  auto rotate = [](const std::vector<Tensor>& in) { return hadamard_rotate(in[0]); };
  check_on_cuda_both_orders("hadamard/3d_n8", rotate, {input({2, 3, 8}, 1)});
  check_on_cuda_both_orders("hadamard/n1", rotate, {input({4, 1}, 2)});
  check_on_cuda_both_orders("hadamard/n2", rotate, {input({3, 2}, 3)});
  check_on_cuda_both_orders("hadamard/n128", rotate, {input({2, 2, 128}, 4)});
  check_on_cuda_both_orders("hadamard/n1024", rotate, {input({2, 1024}, 5)});
  check_on_cuda_both_orders("hadamard/transposed_n4",
                            [](const std::vector<Tensor>& in) { return hadamard_rotate(transpose(in[0], 0, 1)); },
                            {input({4, 3, 4}, 6)});
  // a downstream op so dy is not the seeded dy itself but a product of it
  check_on_cuda_both_orders("hadamard/then_mul",
                            [](const std::vector<Tensor>& in) { return mul(hadamard_rotate(in[0]), in[1]); },
                            {input({3, 16}, 7), input({3, 16}, 8)});
  Tensor x = Tensor::ones({2, 8192}).to(Device::CUDA);
  CHECK(error_of([&] { hadamard_rotate(x); }) ==
        "[cuda] hadamard_rotate_f32: n = 8192 is over this kernel's limit of 4096 (one row in a block's shared memory)");
  Tensor x64 = Tensor::ones({2, 8}, DType::f64).to(Device::CUDA);
  CHECK(error_of([&] { hadamard_rotate(x64); }).find("[hadamard_rotate] the CUDA backend computes f32") == 0);
  Tensor x6 = Tensor::ones({2, 6}).to(Device::CUDA);
  CHECK(error_of([&] { hadamard_rotate(x6); }).find("the last dim n = 6 must be a power of two") != std::string::npos);
}

TEST_CASE("dispatch indexer emu: dropout on CUDA tensors, the same mask for the same seed, values and gradients") {
  CudaEmulationScope emu(true);
  for (double p : {0.1, 0.5, 0.9}) {
    CAPTURE(p);
    // A fresh Rng(11) per call: the CPU run and the CUDA run draw the same numbers.
    auto drop = [p](const std::vector<Tensor>& in) {
      Rng rng(11);
      return dropout(in[0], p, rng);
    };
    check_on_cuda_both_orders("dropout/2d", drop, {input({37, 13}, 20)});
    check_on_cuda_both_orders("dropout/transposed",
                              [p](const std::vector<Tensor>& in) {
                                Rng rng(12);
                                return dropout(transpose(in[0], 0, 1), p, rng);
                              },
                              {input({5, 9, 3}, 21)});
  }
  // The mask itself, and the generator's state after the call, are the CPU's.
  Tensor x = Tensor::ones({1000});
  Rng cpu_rng(5), cuda_rng(5);
  const Tensor y_cpu = dropout(x, 0.3, cpu_rng);
  const Tensor y_cuda = dropout(x.to(Device::CUDA), 0.3, cuda_rng);
  CHECK(y_cuda.device() == Device::CUDA);
  CHECK(y_cuda.to(Device::CPU).to_f64_vector() == y_cpu.to_f64_vector());
  CHECK(cpu_rng.uniform() == cuda_rng.uniform());
  int64_t zeros = 0;
  for (double v : y_cpu.to_f64_vector()) zeros += v == 0.0;
  CHECK(zeros > 200);
  CHECK(zeros < 400);
  // The identity cases draw nothing, on CUDA too; f64 on CUDA is refused before any draw.
  Rng rng(9), ref(9);
  Tensor xc = x.to(Device::CUDA);
  CHECK(dropout(xc, 0.0, rng).device() == Device::CUDA);
  CHECK(dropout(xc, 0.5, rng, /*training=*/false).device() == Device::CUDA);
  Tensor x64 = Tensor::ones({4}, DType::f64).to(Device::CUDA);
  CHECK(error_of([&] { dropout(x64, 0.5, rng); }).find("[dropout] the CUDA backend computes f32") == 0);
  CHECK(rng.uniform() == ref.uniform());
}
