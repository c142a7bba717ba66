// tests/cuda/test_dispatch_index_emu.cpp — the index ops through the device dispatch, under the CUDA emulation:
// embedding, index_select, index_add, gather and scatter_add on Device::CUDA tensors (with their indices there too,
// i64 and i32) give the CPU op's values and gradients bit for bit — the kernels copy values, and every scatter
// adds an output element's contributions in increasing index order, as the CPU loops do — in both lane orders.
// Indices are checked on the host: an out-of-range index on the device is named like on the CPU.
#include <doctest/doctest.h>

#include "tests/cuda/dispatch_checks.h"
#include "tests/test_util.h"

#include "autograd/device.h"
#include "ops/ops.h"

using namespace sg;
using sg::test::dispatch::check_on_cuda_both_orders;
using sg::test::error_of;

namespace {
Tensor input(const Shape& shape, uint64_t seed, bool grad = true) {
  Rng rng(seed);
  Tensor t = Tensor::rand(shape, rng, -2.0, 2.0);
  if (grad) t.requires_grad_();
  return t;
}
Tensor ids(const std::vector<int64_t>& v, const Shape& shape, DType dt = DType::i64) {
  Tensor t = Tensor::from_vector(v, shape);
  return dt == DType::i64 ? t : Tensor::from_vector(std::vector<int32_t>(v.begin(), v.end()), shape);
}
}  // namespace

TEST_CASE("dispatch index emu: embedding and index_select (repeated ids: their gradients add), i64 and i32") {
  CudaEmulationScope emu(true);
  for (DType dt : {DType::i64, DType::i32}) {
    const std::string suffix = dt == DType::i64 ? "/i64" : "/i32";
    check_on_cuda_both_orders("embedding" + suffix, [](const std::vector<Tensor>& in) { return embedding(in[0], in[1]); },
                              {input({11, 6}, 1), ids({3, 0, 3, 10, 3, 7}, {2, 3}, dt)});
    check_on_cuda_both_orders("index_select/dim1" + suffix,
                              [](const std::vector<Tensor>& in) { return index_select(in[0], 1, in[1]); },
                              {input({3, 7, 4}, 2), ids({6, 0, 6, 2}, {4}, dt)});
    check_on_cuda_both_orders("index_select/transposed_x" + suffix,
                              [](const std::vector<Tensor>& in) { return index_select(transpose(in[0], 0, 1), 0, in[1]); },
                              {input({5, 4}, 3), ids({1, 1, 3}, {3}, dt)});
  }
}

TEST_CASE("dispatch index emu: index_add, gather and scatter_add, gradients of x and src") {
  CudaEmulationScope emu(true);
  check_on_cuda_both_orders("index_add/dim0", [](const std::vector<Tensor>& in) { return index_add(in[0], 0, in[1], in[2]); },
                            {input({6, 5}, 10), ids({5, 1, 5, 0}, {4}), input({4, 5}, 11)});
  check_on_cuda_both_orders("gather/dim1", [](const std::vector<Tensor>& in) { return gather(in[0], 1, in[1]); },
                            {input({4, 6}, 12), ids({5, 0, 5, 1, 2, 2, 3, 4, 0, 0, 1, 5}, {3, 4})});
  check_on_cuda_both_orders("gather/dim0_i32", [](const std::vector<Tensor>& in) { return gather(in[0], 0, in[1]); },
                            {input({3, 4, 2}, 13), ids({2, 0, 1, 2, 0, 0, 1, 1}, {1, 4, 2}, DType::i32)});
  check_on_cuda_both_orders("scatter_add/dim1", [](const std::vector<Tensor>& in) { return scatter_add(in[0], 1, in[1], in[2]); },
                            {input({3, 5}, 14), ids({4, 4, 0, 1, 1, 1, 2, 3, 2}, {3, 3}), input({3, 3}, 15)});
}

TEST_CASE("dispatch index emu: indices on another device, and out-of-range indices on the device, are named") {
  CudaEmulationScope emu(true);
  Tensor w = Tensor::zeros({4, 3}).to(Device::CUDA);
  CHECK(error_of([&] { embedding(w, ids({1, 2}, {2})); }).find("are on different devices (cuda and cpu)") != std::string::npos);
  CHECK(error_of([&] { embedding(w, ids({1, 4}, {2}).to(Device::CUDA)); }) ==
        "[embedding] id 4 at position 1 is outside the vocabulary of weight (4, 3)");
  CHECK(error_of([&] { gather(w, 1, ids({0, 3}, {1, 2}).to(Device::CUDA)); }) ==
        "[gather] index 3 at position (0, 1) is out of range for dim 1 of x (4, 3), which has size 3");
}
