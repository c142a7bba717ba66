// tests/cuda/test_indexer_gpu.cpp — the lightning-indexer kernels (cuda/kernels/indexer.cuh) on a REAL GPU
// (sg::cuda::, device memory) against the CPU, as test_indexer_emu.cpp checks them in the emulation. Skipped (exit
// 77) when sg::cuda::available() is false: a build without nvcc, or no device.
//
// Asserted BIT-EQUAL on the GPU too: the Hadamard butterfly is additions, subtractions and one multiply per element
// (nothing nvcc could fuse), and the score kernel rounds every product and sum on its own (__fmul_rn / __fadd_rn);
// the E4M3 decode is exact. hadamard_rotate and dropout also run in the GPU registry walk (test_dispatch_gpu.cpp).
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "tests/test_util.h"

#include "autograd/device.h"
#include "autograd/rng.h"
#include "cuda/cuda_backend.h"
#include "ops/cpu/fp8_index.h"
#include "ops/cpu/fp8_quant.h"
#include "ops/kernels.h"
#include "ops/ops.h"

using namespace sg;

namespace {
constexpr const char* kNoGpu = "no CUDA device (or a build without nvcc)";

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// n random E4M3 codes (never NaN) as an f8e4m3 CPU tensor.
Tensor random_codes(Rng& rng, int64_t n) {
  Tensor t = Tensor::empty({n}, DType::f8e4m3);
  uint8_t* c = t.fp8_codes();
  for (int64_t i = 0; i < n; i++) {
    const uint8_t mag = (uint8_t)(1 + rng.randint(126));
    c[i] = rng.uniform() < 0.5 ? mag : (uint8_t)(mag | 0x80u);
  }
  return t;
}
Tensor random_scales(Rng& rng, int64_t n) {
  std::vector<float> s((size_t)n);
  for (float& x : s) x = (float)std::exp2(rng.uniform(-10.0, -4.0));
  return Tensor::from_vector(s, {n});
}
}  // namespace

TEST_CASE("indexer gpu: hadamard_rotate and dropout on the GPU give the CPU's bits, values and gradients") {
  CudaEmulationScope real_device(false);
  if (!sg::cuda::available()) SEEKGRAD_SKIP(kNoGpu);
  for (int64_t n : {1, 2, 128, 1024, 4096}) {
    CAPTURE(n);
    Rng rng(n);
    Tensor x = Tensor::rand({3, n}, rng, -2.0, 2.0);
    Tensor xg = x.to(Device::CUDA).requires_grad_();
    Tensor y = hadamard_rotate(xg);
    Tensor dy = Tensor::rand({3, n}, rng, -1.0, 1.0);
    y.backward(dy.to(Device::CUDA));
    CHECK(same_bits(y.to(Device::CPU).to_f32_vector(), hadamard_rotate(x).to_f32_vector()));
    CHECK(same_bits(xg.grad().to(Device::CPU).to_f32_vector(), hadamard_rotate(dy).to_f32_vector()));
  }
  Rng data(3);
  Tensor x = Tensor::rand({100, 37}, data, -2.0, 2.0);
  Rng cpu_rng(8), gpu_rng(8);
  CHECK(same_bits(dropout(x.to(Device::CUDA), 0.4, gpu_rng).to(Device::CPU).to_f32_vector(),
                  dropout(x, 0.4, cpu_rng).to_f32_vector()));
}

TEST_CASE("indexer gpu: fp8_index_scores on the GPU gives the CPU's bits (cache buffers, three tiles)") {
  CudaEmulationScope real_device(false);
  if (!sg::cuda::available()) SEEKGRAD_SKIP(kNoGpu);
  const int64_t B = 2, S = 33, H = 7, D = 300, T = 45, key_rows = 64, block = 128, nb = cpu::fp8_num_blocks(D, block);
  Rng rng(21);
  Tensor qc = random_codes(rng, B * S * H * D), kc = random_codes(rng, B * key_rows * D);
  Tensor qs = random_scales(rng, B * S * H * nb), ks = random_scales(rng, B * key_rows * nb);
  Tensor w = Tensor::rand({B * S * H}, rng, -1.0, 1.0);
  auto args = [&](const Tensor& q_codes, const Tensor& q_scales, const Tensor& weights, const Tensor& k_codes,
                  const Tensor& k_scales, const Tensor& scores) {
    Fp8IndexScoresArgs a;
    a.q_codes = static_cast<const uint8_t*>(q_codes.raw_device_data());
    a.q_scales = q_scales.device_data<float>();
    a.weights = weights.device_data<float>();
    a.k_codes = static_cast<const uint8_t*>(k_codes.raw_device_data());
    a.k_scales = k_scales.device_data<float>();
    a.scores = scores.device_data<float>();
    a.B = B, a.S = S, a.H = H, a.D = D, a.T = T, a.key_rows = key_rows, a.block = block;
    return a;
  };
  Tensor want = Tensor::empty({B, S, T});
  kernels::fp8_index_scores("fp8_index_scores", Device::CPU, args(qc, qs, w, kc, ks, want));
  const Device g = Device::CUDA;
  Tensor got = Tensor::empty({B, S, T}, DType::f32, g);
  kernels::fp8_index_scores("fp8_index_scores", g,
                            args(qc.to(g), qs.to(g), w.to(g), kc.to(g), ks.to(g), got));
  CHECK(same_bits(got.to(Device::CPU).to_f32_vector(), want.to_f32_vector()));
}
