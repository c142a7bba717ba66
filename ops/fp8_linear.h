// ops/fp8_linear.h — FP8 tensors of the engine and the FP8 linear layer on them (DeepSeek-V3 report §3.3).
//
// An Fp8Tensor is a real 8-bit tensor: `codes` has dtype f8e4m3 (one byte per element, autograd/tensor.h)
// and `scale` holds the f32 factors that dequantize it, one per tile:
//   scale_rows == 1      1×block tiles along the last dim (activations: act_quant, per token per 128 channels)
//   scale_rows == block  block×block blocks (weights: the checkpoint's weight_scale_inv)
// value[r, k] = e4m3(codes[r, k]) · scale[r / scale_rows, k / block]. The math of the quantizers is in
// ops/cpu/fp8_quant.h, that of the GEMM in ops/cpu/fp8_gemm.h; this file puts Tensors around them.
//
// The FP8 linear y = x·Wᵀ runs its three GEMMs the way DeepSeek-V3 trains (report Fig. 6):
//   Fprop  y  = fp8_gemm( q_tile(x)  [M,K],  q_block(W) [N,K] )                         contracted over K
//   Dgrad  dx = fp8_gemm( q_tile(dy) [M,N],  q_block(W)ᵀ [K,N] )                        contracted over N
//   Wgrad  dW = fp8_gemm( q_tile(dyᵀ) [N,M], q_tile(xᵀ) [K,M] )                         contracted over M (tokens)
// M = tokens, K = in, N = out; q_tile = 1×128 tiles along the contracted axis, q_block = 128×128 blocks.
// Wgrad re-quantizes along the TOKEN axis (dyᵀ and xᵀ in 1×128 tiles of tokens, i.e. 128×1 tiles of the
// original layout). The activation saved for backward is x in FP8 (its Fprop codes + scales: one byte per
// element, not four) and is dequantized and re-quantized along tokens for Wgrad. Wᵀ for Dgrad is the same
// codes transposed with the block scales transposed (a 128×128 block of W is a block of Wᵀ): exact, no
// re-quantization. The master weight stays f32 and receives an f32 gradient; everything the GEMMs read is
// a real E4M3 code. All GEMMs accumulate fp32_promoted (ops/cpu/fp8_gemm.h).
//
// What this is not: differentiable in float64 (quantization is a step function; the tests compare its
// gradients with the f32 linear's within the error E4M3 implies instead of a gradcheck), E5M2 gradients
// (DeepSeek uses E4M3 everywhere), or a fused kernel: quantize, GEMM, dequantize are separate calls.
#pragma once
#include <cstdint>

#include "autograd/tensor.h"
#include "ops/cpu/fp8_gemm.h"

namespace sg {

struct Fp8Tensor {
  Tensor codes;            // [rows, cols] f8e4m3, contiguous
  Tensor scale;            // [ceil(rows / scale_rows), ceil(cols / block)] f32
  int64_t block = 128;
  int64_t scale_rows = 1;  // 1 (tiles) or block (blocks)
  int64_t rows() const { return codes.size(0); }
  int64_t cols() const { return codes.size(1); }
};

// act_quant: x [rows, cols] f32 -> 1×block tiles along cols (amax floored at 1e-4, scale = amax/448,
// optionally ue8m0 power-of-two scales). Errors name the op and the tensor.
Fp8Tensor fp8_quantize_tiles(const Tensor& x, bool ue8m0 = false, int64_t block = 128);
// weight_quant: w [rows, cols] f32 -> block×block blocks.
Fp8Tensor fp8_quantize_blocks(const Tensor& w, int64_t block = 128);
// Checks a stored FP8 weight (codes [N, K] f8e4m3 and weight_scale_inv [ceil(N/block), ceil(K/block)]
// f32) and wraps it; `what` names it in errors ("layers.0.attn.wq.weight").
Fp8Tensor fp8_weight(const Tensor& codes, const Tensor& scale_inv, const std::string& what, int64_t block = 128);
// The f32 values: e4m3(code) · scale.
Tensor fp8_dequantize(const Fp8Tensor& q);
// Block-layout transpose: codes [R,C] -> [C,R], scale transposed. Exact (only for scale_rows == block).
Fp8Tensor fp8_transpose_blocks(const Fp8Tensor& q);
// C [a.rows, b.rows] = Σ_k a[m,k]·b[n,k] with block scales (ops/cpu/fp8_gemm.h); a and b share block and cols.
Tensor fp8_matmul(const Fp8Tensor& a, const Fp8Tensor& b,
                  cpu::Fp8Accumulation accumulation = cpu::Fp8Accumulation::fp32_promoted);

struct Fp8LinearOptions {
  bool ue8m0 = false;   // power-of-two activation (and gradient) scales (scale_fmt "ue8m0": V3.1, V3.2)
  int64_t block = 128;
};

// The FP8 linear of training: x [..., in] f32, weight [out, in] f32 (the master weight) -> [..., out].
// Records one node "fp8_linear" whose backward runs Dgrad and Wgrad in FP8 as above.
Tensor fp8_linear(const Tensor& x, const Tensor& weight, const Fp8LinearOptions& options = {});

// The FP8 linear of inference on a checkpoint's FP8 weight (the official act_quant + fp8_gemm): x [..., in]
// f32, weight codes [out, in] f8e4m3, scale_inv [ceil(out/block), ceil(in/block)] f32 -> [..., out]. The
// weight has no gradient; x gets one (Dgrad in FP8) when it requires grad.
Tensor fp8_linear_stored(const Tensor& x, const Tensor& weight_codes, const Tensor& weight_scale_inv,
                         const Fp8LinearOptions& options = {});

}  // namespace sg
