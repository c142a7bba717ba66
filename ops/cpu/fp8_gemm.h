// ops/cpu/fp8_gemm.h — the blockwise FP8 GEMM of DeepSeek-V3 (report §3.3 "increasing accumulation
// precision"; the official fp8_gemm kernel's semantics), over raw E4M3 codes and their scales:
//
//   C[m, n] = Σ_kb ( Σ_{k ∈ kb} q_a[m, k] · q_b[n, k] ) · s_a[m / a_scale_rows, kb] · s_b[n / b_scale_rows, kb]
//
// A is [M, K] and B is [N, K], both row-major E4M3 codes (ops/fp8.h) contracted over K — the layout of
// y = x·Wᵀ with x [tokens, in] and W [out, in]. K is cut into blocks of `block` (128) columns; each
// operand has one f32 scale per K block per group of `*_scale_rows` rows: 1 for activations (1×128
// tiles, ops/cpu/fp8_quant.h act_quant_f32) and `block` for weights (128×128 blocks, weight_quant_f32).
// The scale arrays are row-major [ceil(rows / scale_rows), ceil(K / block)]; ragged last blocks count.
//
// Accumulation (Fp8Accumulation):
//   fp32_promoted    the products of one K block (exact in f32: 4-bit × 4-bit mantissas) are summed in
//                    f32 in k order, then promoted: c += (p · s_a) · s_b. The default, and what the
//                    official kernel computes.
//   limited_promoted the same, but the block sum keeps only `accum_bits` significant bits after every
//                    addition (the tensor core's ~14-bit accumulator, ops/fp8.h truncate_to_bits); the
//                    promotion into the f32 c still happens every block: DeepSeek-V3's recipe on H800.
//   limited          no promotion: every scaled product q_a·q_b·(s_a·s_b) goes straight into one
//                    `accum_bits`-bit accumulator over all of K — what happens without the recipe; its
//                    error grows with K (tools/chapters/ch07_fp8 measures it).
//
// fp8_gemm_naive is the plain loop: for each (m, n), the sums above in the order written. fp8_gemm gives
// the SAME BITS as the naive loop on any thread count (tests/ops/test_fp8_gemm.cpp): for fp32_promoted it
// decodes both operands into f32 panels and runs SIMD register tiles over one K block at a time (the
// product of two E4M3 values is exact in f32, so an FMA rounds exactly as p + a·b does); the limited
// modes run the naive arithmetic with rows split over the threads.
//
// What this is not: an autograd op (ops/fp8_linear.h builds the FP8 linear on it), E5M2 operands, or
// a device kernel; C is overwritten (no alpha/beta).
#pragma once
#include <cstdint>

#include "ops/cpu/gemm.h"  // GemmKernel
#include "ops/kernel_abi/fp8.h"

namespace sg::cpu {

using sg::Fp8Accumulation;  // fp32_promoted, limited_promoted, limited (ops/kernel_abi/fp8.h)
const char* fp8_accumulation_name(Fp8Accumulation a);  // "fp32_promoted", "limited_promoted", "limited"

// One plain struct of fixed-width fields (DESIGN: kernel arguments compile as C++, CUDA and Metal), shared
// with the device kernels: ops/kernel_abi/fp8.h (a, a_scale, b, b_scale, c, M, N, K, block, a_scale_rows,
// b_scale_rows, accumulation, accum_bits).
using sg::Fp8GemmArgs;

// Throws std::invalid_argument naming the field for null pointers, negative sizes, block < 1, or
// scale_rows other than 1 or block.
void check_fp8_gemm_args(const char* fn, const Fp8GemmArgs& args);

// v1: the plain loop (the reference; step through it in a debugger).
void fp8_gemm_naive(const Fp8GemmArgs& args);

// v2: same bits, fast. With SEEKGRAD_NAIVE=1 (sg::naive_kernels()) it calls fp8_gemm_naive.
// fp32_promoted runs decoded f32 panels through a SIMD register-tile micro-kernel (ops/cpu/fp8_gemm.cpp
// says why that is bit-identical); the limited modes run the naive arithmetic, rows over the threads.
void fp8_gemm(const Fp8GemmArgs& args);

// fp8_gemm with an explicit micro-kernel (tests and benchmarks run each one; `automatic` = the widest the
// CPU has). Ignores naive_kernels(). Throws std::runtime_error for a kernel this CPU cannot run.
void fp8_gemm_with(GemmKernel kernel, const Fp8GemmArgs& args);
const char* fp8_gemm_kernel_name(GemmKernel kernel);  // "avx512", "avx2", "scalar"; throws as above

}  // namespace sg::cpu
