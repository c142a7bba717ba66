// cuda/fp8.h — the fine-grained FP8 kernels' host functions (cuda/kernels/fp8.cuh), declared for both builds of
// that header: sg::cuda (the GPU; pointers are device memory) and sg::cuda_emu (the CPU emulation, fibers per
// lane; pointers are host memory). Same names and semantics as ops/cpu/fp8_quant.h and ops/cpu/fp8_gemm.h, and
// the same bits as their naive loops.
#pragma once
#include "ops/kernel_abi/fp8.h"

namespace sg::cuda {
void act_quant_f32(const Fp8ActQuantArgs& a);
void act_dequant_f32(const Fp8ActDequantArgs& a);
void weight_quant_f32(const Fp8WeightQuantArgs& a);
void weight_dequant_f32(const Fp8WeightDequantArgs& a);
void fp8_gemm(const Fp8GemmArgs& g);
}  // namespace sg::cuda

namespace sg::cuda_emu {
void act_quant_f32(const Fp8ActQuantArgs& a);
void act_dequant_f32(const Fp8ActDequantArgs& a);
void weight_quant_f32(const Fp8WeightQuantArgs& a);
void weight_dequant_f32(const Fp8WeightDequantArgs& a);
void fp8_gemm(const Fp8GemmArgs& g);
}  // namespace sg::cuda_emu
