// tests/cuda/test_dispatch_reduce_emu.cpp — the reduce-and-copy family through the device dispatch, under the CUDA
// emulation: contiguous / cat / slice's backward (the strided copy kernel), sum / mean / max / min over any axes and
// sum_to (reduce_rows, arg_reduce_rows; max's backward is the topk backward with k = 1) on Device::CUDA tensors give
// the CPU op's values and gradients, in both lane orders.
//
// Tolerances: copies, max and min move values: the same bits. A sum is not the same sequence of operations (the CPU
// adds a row in double, the CUDA kernel in f32 lanes then a fixed tree): |got - want| <= 4e-6 · Σ|terms| + 1e-7
// (f32 forward error of a depth-log2(n) tree plus one rounding; the terms here are in [-1, 1], rows of <= 60,
// so atol 1e-4 and rtol 1e-6 cover it; tests/cuda/test_reduce_emu.cpp measures the kernel itself).
#include <doctest/doctest.h>

#include "tests/cuda/dispatch_checks.h"
#include "tests/test_util.h"

#include "autograd/device.h"
#include "cuda/emu/emu.h"
#include "ops/ops.h"

using namespace sg;
using sg::test::dispatch::check_on_cuda_both_orders;
using sg::test::dispatch::Tol;
using sg::test::error_of;

namespace {
Tensor input(const Shape& shape, uint64_t seed, bool grad = true, DType dt = DType::f32) {
  Rng rng(seed);
  Tensor t = Tensor::rand(shape, rng, -1.0, 1.0, dt);
  if (grad) t.requires_grad_();
  return t;
}
const Tol kSum{1e-4, 1e-6};
}  // namespace

TEST_CASE("dispatch reduce emu: contiguous of strided CUDA views equals the CPU's, f32 and 4/8-byte integers") {
  CudaEmulationScope emu(true);
  check_on_cuda_both_orders("contiguous/transposed", [](const std::vector<Tensor>& in) { return contiguous(transpose(in[0], 0, 2)); },
                            {input({3, 5, 7}, 1)});
  check_on_cuda_both_orders("contiguous/narrowed", [](const std::vector<Tensor>& in) { return contiguous(narrow(in[0], 1, 1, 3)); },
                            {input({4, 6, 5}, 2)});
  // (expand's backward is a sum over the copies: kSum)
  check_on_cuda_both_orders("contiguous/expanded", [](const std::vector<Tensor>& in) { return contiguous(expand(in[0], {3, 4, 5})); },
                            {input({4, 1}, 3)}, kSum);
  check_on_cuda_both_orders("contiguous/stepped", [](const std::vector<Tensor>& in) { return contiguous(slice(in[0], 1, 0, 9, 2)); },
                            {input({3, 9}, 4)});
  // rank 10 whose runs merge into <= 8 kernel dims (size-1 dims dropped, a contiguous tail merged)
  check_on_cuda_both_orders("contiguous/rank10",
                            [](const std::vector<Tensor>& in) {
                              return contiguous(permute(reshape(in[0], {2, 1, 3, 1, 2, 2, 1, 3, 1, 2}), {2, 1, 0, 3, 4, 5, 6, 7, 8, 9}));
                            },
                            {input({144}, 5)});

  // Integer (and f64 storage) tensors: the kernel moves 32-bit words, an 8-byte element as two of them.
  Rng rng(6);
  Tensor ids = Tensor::randint({4, 6}, rng, -(int64_t(1) << 40), int64_t(1) << 40);
  Tensor ids32 = Tensor::randint({4, 6}, rng, -1000000, 1000000, DType::i32);
  Tensor xd = Tensor::randn({4, 6}, rng, 1.0, DType::f64);
  CHECK(contiguous(transpose(ids.to(Device::CUDA), 0, 1)).to_i64_vector() == contiguous(transpose(ids, 0, 1)).to_i64_vector());
  CHECK(contiguous(transpose(ids32.to(Device::CUDA), 0, 1)).to_i64_vector() == contiguous(transpose(ids32, 0, 1)).to_i64_vector());
  CHECK(contiguous(transpose(xd.to(Device::CUDA), 0, 1)).to_f64_vector() == contiguous(transpose(xd, 0, 1)).to_f64_vector());
  Tensor c = contiguous(transpose(ids.to(Device::CUDA), 0, 1));
  CHECK(c.device() == Device::CUDA);
  CHECK(c.dtype() == DType::i64);
  // 2-byte elements have no CUDA copy: refused by the op's name.
  Tensor h = to_dtype(Tensor::ones({2, 3}), DType::bf16).to(Device::CUDA);
  CHECK(error_of([&] { contiguous(transpose(h, 0, 1)); }).find("[contiguous] the CUDA copy moves 4- and 8-byte elements") == 0);
}

TEST_CASE("dispatch reduce emu: cat along every dim and slice's backward (steps 1 and 3) equal the CPU's") {
  CudaEmulationScope emu(true);
  for (int64_t d : {0, 1, 2}) {
    check_on_cuda_both_orders("cat/dim" + std::to_string(d),
                              [d](const std::vector<Tensor>& in) { return cat({in[0], transpose(in[1], 0, 1), in[2]}, d); },
                              {input({3, 4, 5}, 10), input(d == 0 ? Shape{4, 3, 5} : d == 1 ? Shape{3, 3, 5} : Shape{4, 3, 3}, 11),
                               input(d == 0 ? Shape{2, 4, 5} : d == 1 ? Shape{3, 1, 5} : Shape{3, 4, 2}, 12)});
  }
  check_on_cuda_both_orders("stack", [](const std::vector<Tensor>& in) { return stack({in[0], in[1]}, 1); },
                            {input({3, 4}, 13), input({3, 4}, 14)});
  check_on_cuda_both_orders("slice/step1_dim1", [](const std::vector<Tensor>& in) { return slice(in[0], 1, 1, 4); },
                            {input({3, 6, 2}, 15)});
  check_on_cuda_both_orders("slice/step3_dim0", [](const std::vector<Tensor>& in) { return slice(in[0], 0, 1, 8, 3); },
                            {input({8, 5}, 16)});
  check_on_cuda_both_orders("split/last", [](const std::vector<Tensor>& in) {
    std::vector<Tensor> parts = split(in[0], 2, -1);
    return parts[0] * parts[1] + parts[2];
  }, {input({3, 6}, 17)});
}

TEST_CASE("dispatch reduce emu: sum, mean, max, min over any axes, and sum_to of a broadcast backward") {
  CudaEmulationScope emu(true);
  check_on_cuda_both_orders("sum/all", [](const std::vector<Tensor>& in) { return sum(in[0]); }, {input({7, 9}, 20)}, kSum);
  check_on_cuda_both_orders("sum/middle_keepdim", [](const std::vector<Tensor>& in) { return sum(in[0], {1}, true); },
                            {input({3, 60, 4}, 21)}, kSum);
  check_on_cuda_both_orders("sum/two_axes", [](const std::vector<Tensor>& in) { return sum(in[0], {0, -1}); },
                            {input({5, 3, 6}, 22)}, kSum);
  check_on_cuda_both_orders("mean/last", [](const std::vector<Tensor>& in) { return mean(in[0], {-1}); },
                            {input({4, 33}, 23)}, kSum);
  check_on_cuda_both_orders("var/last", [](const std::vector<Tensor>& in) { return var(in[0], {-1}); },
                            {input({4, 17}, 24)}, kSum);
  for (bool keep : {false, true}) {
    check_on_cuda_both_orders(std::string("max/dim0") + (keep ? "_keepdim" : ""),
                              [keep](const std::vector<Tensor>& in) { return max(in[0], {0}, keep); }, {input({37, 5}, 25)});
    check_on_cuda_both_orders(std::string("min/axes01") + (keep ? "_keepdim" : ""),
                              [keep](const std::vector<Tensor>& in) { return min(in[0], {0, 1}, keep); }, {input({3, 4, 5}, 26)});
  }
  // Ties: the first position gets the gradient, on both devices.
  Tensor tied = Tensor::from_vector(std::vector<float>{1, 3, 3, 2, -1, -1, -5, 0}, {2, 4}).requires_grad_();
  check_on_cuda_both_orders("max/ties", [](const std::vector<Tensor>& in) { return max(in[0], {1}); }, {tied});
  check_on_cuda_both_orders("min/ties", [](const std::vector<Tensor>& in) { return min(in[0], {1}); }, {tied});
  // sum_to: the backward of a broadcast (b is (4) and (3, 1) against a (3, 4)).
  check_on_cuda_both_orders("mul/broadcast_grad", [](const std::vector<Tensor>& in) { return in[0] * in[1] + in[2]; },
                            {input({3, 4}, 27), input({4}, 28), input({3, 1}, 29)}, kSum);
  check_on_cuda_both_orders("expand/backward", [](const std::vector<Tensor>& in) { return expand(in[0], {2, 3, 4}) * 1.5; },
                            {input({3, 1}, 30)}, kSum);
}

TEST_CASE("dispatch reduce emu: the kernels really ran in the emulator, and f64 on CUDA is refused by name") {
  CudaEmulationScope emu(true);
  Tensor x = Tensor::ones({3, 300}).to(Device::CUDA);
  Tensor s = sum(x, {1});
  CHECK(sg::emu::last_launch().blocks == 3);  // reduce_rows: one block per row
  CHECK(s.to_f32_vector() == std::vector<float>(3, 300.0f));
  Rng rng(40);
  Tensor xd = Tensor::randn({2, 3}, rng, 1.0, DType::f64).to(Device::CUDA);
  CHECK(error_of([&] { sum(xd); }).find("[sum] the CUDA backend computes f32") == 0);
}
