// tests/cuda/test_dispatch_linalg_emu.cpp — matmul / linear (the gemm family: cuda::gemm = gemm_v3_regtile) and the
// fused attention (cuda/attention.h) through the device dispatch, under the CUDA emulation, on Device::CUDA tensors
// against the CPU ops (plain loops), values and gradients, in both lane orders.
//
// Tolerances: gemm_v3 does the CPU naive loop's operations in its order (tests/cuda/test_gemm_emu.cpp: the same
// bits), so a matmul whose gradients need no sum over broadcast batch dims is compared bit for bit; a broadcast
// operand's gradient goes through sum_to (another summation order): 1e-5 + 1e-5 |want|. Attention: the CUDA
// kernels are flash kernels (tiles, online softmax, expf) against the CPU's plain loops: tests/cuda/
// test_attention_emu.cpp bounds them at 1e-5 of the scale of the values; here 2e-5 + 2e-5 |want| for values
// of order 1.
#include <doctest/doctest.h>

#include "tests/cuda/dispatch_checks.h"
#include "tests/test_util.h"

#include "autograd/device.h"
#include "cuda/emu/emu.h"
#include "ops/attention.h"
#include "ops/ops.h"

using namespace sg;
using sg::test::dispatch::check_on_cuda_both_orders;
using sg::test::dispatch::Tol;
using sg::test::error_of;

namespace {
Tensor input(const Shape& shape, uint64_t seed, bool grad = true) {
  Rng rng(seed);
  Tensor t = Tensor::rand(shape, rng, -1.0, 1.0);
  if (grad) t.requires_grad_();
  return t;
}
const Tol kSum{1e-5, 1e-5};
const Tol kAttention{2e-5, 2e-5};
}  // namespace

TEST_CASE("dispatch linalg emu: matmul of matrices, transposed views, vectors, and linear") {
  CudaEmulationScope emu(true);
  check_on_cuda_both_orders("matmul/37x19x45", [](const std::vector<Tensor>& in) { return matmul(in[0], in[1]); },
                            {input({37, 19}, 1), input({19, 45}, 2)});
  check_on_cuda_both_orders("matmul/transposed_both",
                            [](const std::vector<Tensor>& in) { return matmul(transpose(in[0], 0, 1), transpose(in[1], 0, 1)); },
                            {input({9, 13}, 3), input({7, 9}, 4)});
  check_on_cuda_both_orders("matmul/vector_matrix", [](const std::vector<Tensor>& in) { return matmul(in[0], in[1]); },
                            {input({6}, 5), input({6, 4}, 6)});
  check_on_cuda_both_orders("matmul/dot", [](const std::vector<Tensor>& in) { return matmul(in[0], in[1]); },
                            {input({6}, 7), input({6}, 8)});
  check_on_cuda_both_orders("linear/3d", [](const std::vector<Tensor>& in) { return linear(in[0], in[1]); },
                            {input({2, 3, 8}, 9), input({5, 8}, 10)});
  Tensor x = Tensor::ones({2, 3}).to(Device::CUDA);
  CHECK(error_of([&] { matmul(x, Tensor::ones({3, 4})); }).find("[matmul]") == 0);
}

TEST_CASE("dispatch linalg emu: batched matmul: one launch for uniform batches, runs for permuted ones, broadcast") {
  CudaEmulationScope emu(true);
  check_on_cuda_both_orders("matmul/batch3", [](const std::vector<Tensor>& in) { return matmul(in[0], in[1]); },
                            {input({3, 5, 4}, 20), input({3, 4, 6}, 21)});
  // q [B, H, S, D] read from [B, S, H, D] (attention's layout): batch offsets b·SHD + h·D are no single stride,
  // so each b is one launch of H matrices
  check_on_cuda_both_orders("matmul/permuted_heads",
                            [](const std::vector<Tensor>& in) {
                              return matmul(permute(in[0], {0, 2, 1, 3}), transpose(permute(in[1], {0, 2, 1, 3}), -1, -2));
                            },
                            {input({2, 5, 3, 4}, 22), input({2, 6, 3, 4}, 23)});
  // a weight broadcast over the batch (stride 0): its gradient is a sum over the batch
  check_on_cuda_both_orders("matmul/broadcast_b", [](const std::vector<Tensor>& in) { return matmul(in[0], in[1]); },
                            {input({2, 3, 5, 4}, 24), input({4, 6}, 25)}, kSum);
  check_on_cuda_both_orders("matmul/broadcast_batch_dims", [](const std::vector<Tensor>& in) { return matmul(in[0], in[1]); },
                            {input({2, 1, 5, 4}, 26), input({3, 4, 2}, 27)}, kSum);

  Tensor a = input({4, 5, 6}, 28, false).to(Device::CUDA), b = input({4, 6, 3}, 29, false).to(Device::CUDA);
  (void)matmul(a, b);
  CHECK(sg::emu::last_launch().kernel == "gemm_v3_regtile");
  CHECK(sg::emu::last_launch().blocks == 4);  // the 4 matrices (one 128x128 tile each) in one launch, along z
}

TEST_CASE("dispatch linalg emu: scaled_dot_product_attention on CUDA: MHA, GQA, decode, non-causal, packed") {
  CudaEmulationScope emu(true);
  check_on_cuda_both_orders("attention/mha_causal",
                            [](const std::vector<Tensor>& in) { return scaled_dot_product_attention(in[0], in[1], in[2], 0.5, true); },
                            {input({2, 2, 7, 16}, 40), input({2, 2, 7, 16}, 41), input({2, 2, 7, 16}, 42)}, kAttention);
  check_on_cuda_both_orders("attention/gqa_dv",
                            [](const std::vector<Tensor>& in) { return scaled_dot_product_attention(in[0], in[1], in[2], 0.3, true); },
                            {input({1, 4, 5, 8}, 43), input({1, 2, 5, 8}, 44), input({1, 2, 5, 12}, 45)}, kAttention);
  check_on_cuda_both_orders("attention/decode",
                            [](const std::vector<Tensor>& in) { return scaled_dot_product_attention(in[0], in[1], in[2], 0.4, true); },
                            {input({1, 2, 1, 8}, 46), input({1, 2, 9, 8}, 47), input({1, 2, 9, 8}, 48)}, kAttention);
  check_on_cuda_both_orders("attention/noncausal_strided",
                            [](const std::vector<Tensor>& in) {
                              return scaled_dot_product_attention(permute(in[0], {0, 2, 1, 3}), in[1], in[2], 0.35, false);
                            },
                            {input({1, 6, 2, 8}, 49), input({1, 2, 4, 8}, 50), input({1, 2, 4, 8}, 51)}, kAttention);
  Tensor seg = Tensor::from_vector(std::vector<int64_t>{0, 0, 0, 1, 1, 2}, {1, 6});
  check_on_cuda_both_orders("attention/packed",
                            [seg](const std::vector<Tensor>& in) {
                              return scaled_dot_product_attention(in[0], in[1], in[2], 0.5, true, std::nullopt, seg);
                            },
                            {input({1, 2, 6, 8}, 52), input({1, 2, 6, 8}, 53), input({1, 2, 6, 8}, 54)}, kAttention);
  // (segment_ids are read on the host, so the packed case above passes them on the CPU for CUDA q, k, v)
  Tensor q = Tensor::zeros({1, 1, 2, 8}).to(Device::CUDA);
  CHECK(error_of([&] { scaled_dot_product_attention(q, Tensor::zeros({1, 1, 2, 8}), q, 1.0, true); })
            .find("are on different devices") != std::string::npos);
}
