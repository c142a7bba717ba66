// ops/kernel_abi/gemm.h — the GEMM kernels' arguments: one plain struct, shared by every backend.
//
// The first thirteen fields are exactly the CPU GEMM's contract (ops/cpu/gemm.h, sg::cpu::gemm_f32):
//
//   C[M,N] = alpha * op(A)[M,K] · op(B)[K,N] + beta * C[M,N]           row-major, leading dimensions lda/ldb/ldc
//   op(A) = A stored [M,K] (lda >= K), or with trans_a A stored [K,M] (lda >= M)
//   op(B) = B stored [K,N] (ldb >= N), or with trans_b B stored [N,K] (ldb >= K)
//   beta == 0: C is written without being read (it may hold NaN); alpha == 0 or K == 0: A and B are not read.
//
// The batched form: `batch` GEMMs of the same shape, operand b at X + b * stride_x (element strides).
// A stride of 0 broadcasts that operand to every batch (one weight matrix against a batch of activations);
// C's batches must not overlap (stride_c >= (M-1)·ldc + N when batch > 1), so no two threads write one element.
// batch = 1 (the default) is the plain GEMM and ignores the strides.
//
// `precision` is the one runtime switch: fp32 multiplies in full f32 on the CUDA cores; tf32 lets the
// kernel round A and B to TF32 (10-bit mantissa) and use the tensor cores, accumulating in f32 (what
// PyTorch calls allow_tf32). Compiles as C++ and CUDA; fixed-width fields and raw pointers only.
#pragma once
#include <cstdint>

namespace sg {

enum class GemmPrecision : int32_t { fp32, tf32 };

struct GemmArgs {
  int32_t trans_a;   // 0 or 1
  int32_t trans_b;   // 0 or 1
  int64_t M, N, K;
  float alpha;
  const float* A;
  int64_t lda;
  const float* B;
  int64_t ldb;
  float beta;
  float* C;
  int64_t ldc;
  // batched form (ignored when batch == 1)
  int64_t batch = 1;
  int64_t stride_a = 0, stride_b = 0, stride_c = 0;
  GemmPrecision precision = GemmPrecision::fp32;
};

}  // namespace sg
