// tests/cuda/test_dispatch_fp8_emu.cpp — the FP8 ops (ops/fp8_linear.h) through the device dispatch, under the
// CUDA emulation: tile / block quantization, dequantization, the block transpose, the blockwise FP8 GEMM in its
// three accumulation modes, and the FP8 linear's forward and backward (Fprop, Dgrad, Wgrad: six quantizations and
// three FP8 GEMMs) on Device::CUDA tensors give the CPU's codes, scales and values bit for bit: the CUDA kernels
// match the CPU's naive loops (tests/cuda/test_fp8_emu.cpp), and the CPU's fast paths match them too.
// Small blocks (16) keep the emulation short; ragged sizes cut the last tile and block.
#include <doctest/doctest.h>

#include "tests/cuda/dispatch_checks.h"
#include "tests/test_util.h"

#include "autograd/device.h"
#include "ops/fp8_linear.h"
#include "ops/ops.h"

using namespace sg;
using sg::test::dispatch::check_on_cuda_both_orders;
using sg::test::dispatch::compare;

namespace {
Tensor input(const Shape& shape, uint64_t seed, bool grad = true) {
  Rng rng(seed);
  Tensor t = Tensor::randn(shape, rng, 1.0);
  if (grad) t.requires_grad_();
  return t;
}
// codes compared as their bits (0..255) and scales as floats
void same_fp8(const Fp8Tensor& got, const Fp8Tensor& want, const std::string& what) {
  CHECK(got.codes.device() == Device::CUDA);
  const Tensor g = got.codes.to(Device::CPU);
  REQUIRE(g.shape() == want.codes.shape());
  const std::vector<uint8_t> gb(g.fp8_codes(), g.fp8_codes() + g.numel()),
      wb(want.codes.fp8_codes(), want.codes.fp8_codes() + want.codes.numel());
  CHECK(gb == wb);
  compare(got.scale, want.scale, {}, what + " scales");
  CHECK(got.block == want.block);
  CHECK(got.scale_rows == want.scale_rows);
}
}  // namespace

TEST_CASE("dispatch fp8 emu: quantize tiles (ue8m0 off/on) and blocks, dequantize, transpose, fp8_matmul modes") {
  CudaEmulationScope emu(true);
  const int64_t block = 16;
  Tensor x = input({5, 37}, 1, false), w = input({21, 37}, 2, false);
  Tensor xc = x.to(Device::CUDA), wc = w.to(Device::CUDA);
  for (bool ue8m0 : {false, true}) {
    CAPTURE(ue8m0);
    Fp8Tensor want = fp8_quantize_tiles(x, ue8m0, block), got = fp8_quantize_tiles(xc, ue8m0, block);
    same_fp8(got, want, "tiles");
    compare(fp8_dequantize(got), fp8_dequantize(want), {}, "dequantized tiles");
  }
  Fp8Tensor wq = fp8_quantize_blocks(w, block), wq_c = fp8_quantize_blocks(wc, block);
  same_fp8(wq_c, wq, "blocks");
  compare(fp8_dequantize(wq_c), fp8_dequantize(wq), {}, "dequantized blocks");
  same_fp8(fp8_transpose_blocks(wq_c), fp8_transpose_blocks(wq), "transposed blocks");
  Fp8Tensor xq = fp8_quantize_tiles(x, false, block), xq_c = fp8_quantize_tiles(xc, false, block);
  for (Fp8Accumulation acc : {Fp8Accumulation::fp32_promoted, Fp8Accumulation::limited_promoted, Fp8Accumulation::limited}) {
    CAPTURE((int)acc);
    compare(fp8_matmul(xq_c, wq_c, acc), fp8_matmul(xq, wq, acc), {}, "fp8_matmul");
  }
}

TEST_CASE("dispatch fp8 emu: fp8_linear forward, Dgrad and Wgrad on CUDA equal the CPU's bits; the stored-weight linear") {
  CudaEmulationScope emu(true);
  Fp8LinearOptions o;
  o.block = 16;
  check_on_cuda_both_orders("fp8_linear/3d", [o](const std::vector<Tensor>& in) { return fp8_linear(in[0], in[1], o); },
                            {input({2, 9, 40}, 10), input({19, 40}, 11)});
  Fp8Tensor wq = fp8_quantize_blocks(input({19, 40}, 12, false), o.block);
  check_on_cuda_both_orders("fp8_linear_stored",
                            [o, wq](const std::vector<Tensor>& in) {
                              return fp8_linear_stored(in[0], wq.codes.to(in[0].device()), wq.scale.to(in[0].device()), o);
                            },
                            {input({7, 40}, 13)});
}
