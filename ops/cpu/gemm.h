// ops/cpu/gemm.h — the CPU matrix multiply: C = alpha * op(A)·op(B) + beta * C.
//
// Every matmul in seekgrad (linear layers, attention scores, their backwards) ends here on the CPU.
// All matrices are row-major over raw float pointers, with a row stride ("leading dimension"):
//
//   op(A) is [M,K]: A itself, stored [M,K] with lda >= K, or with trans_a, A stored [K,M] with lda >= M
//   op(B) is [K,N]: B itself, stored [K,N] with ldb >= N, or with trans_b, B stored [N,K] with ldb >= K
//   C     is [M,N], stored with ldc >= N
//
// As in BLAS: beta == 0 overwrites C without reading it (so C may hold garbage or NaN), and alpha == 0
// (or K == 0) leaves C = beta * C without reading A or B.
//
// Three versions sit side by side (ops/cpu/gemm.cpp explains the fast one for a student):
//   gemm_f32_naive   v1: the plain triple loop. The reference every other version is tested against.
//   gemm_f32         v2: packed operands + cache blocking + a SIMD register-tile micro-kernel + threads.
//                        With SEEKGRAD_NAIVE=1 (sg::naive_kernels()) it calls gemm_f32_naive instead.
//   gemm_f64         a simple i-k-j loop in double, for float64 gradchecks (precision, not speed).
//
// What this is not: a BLAS. No complex types, no column-major, no batched or strided-batch variants
// (callers loop), no bf16/fp8 (those convert to f32 first).
#pragma once
#include <cstdint>

namespace sg::cpu {

// C[M,N] = alpha * op(A)[M,K] · op(B)[K,N] + beta * C[M,N]
void gemm_f32(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
              int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

// Same contract; i-j-k triple loop, one thread, no SIMD.
void gemm_f32_naive(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                    int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

// Same contract in double.
void gemm_f64(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, double alpha, const double* A,
              int64_t lda, const double* B, int64_t ldb, double beta, double* C, int64_t ldc);

// The micro-kernel gemm_f32 runs. `automatic` picks the widest one the CPU has, at run time:
// avx512 (16 floats per register) > avx2 (8, with FMA) > scalar (plain C++, any CPU).
enum class GemmKernel { automatic, scalar, avx2, avx512 };

const char* gemm_kernel_name(GemmKernel kernel);   // "scalar", "avx2", "avx512"; automatic names its pick
bool gemm_kernel_available(GemmKernel kernel);     // false for avx2/avx512 when the CPU lacks them

// gemm_f32 with an explicit micro-kernel (tests and benchmarks run each one). Ignores naive_kernels().
// Throws std::runtime_error for a kernel this CPU cannot run.
void gemm_f32_with(GemmKernel kernel, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                   const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

// The machine's measured FP32 FMA throughput in GFLOP/s (2 flops per FMA lane): a loop of independent
// FMAs on registers only (no memory traffic), widest SIMD available, on `threads` threads through
// sg::parallel_for, run for about `seconds`. The ceiling a GEMM can be compared against.
double measure_fma_peak_gflops(int threads, double seconds = 0.2);

}  // namespace sg::cpu
