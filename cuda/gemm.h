// cuda/gemm.h — the CUDA GEMM versions' host functions (cuda/kernels/gemm.cuh), declared for both builds of that
// header: sg::cuda (the GPU; pointers are device memory) and sg::cuda_emu (the CPU emulation, fibers per lane;
// pointers are host memory). Arguments and contract: ops/kernel_abi/gemm.h (= ops/cpu/gemm.h, plus batches).
//
// Numbered versions side by side, each checked against sg::cpu::gemm_f32_naive (tests/cuda/test_gemm_emu.cpp)
// and explained in chapter 15 (tools/chapters/ch15_gpu_kernels.md):
//   gemm_v1_naive     one thread per C element, operands straight from global memory
//   gemm_v2_smem      32×32 tiles of A and B staged in shared memory, one C element per thread
//   gemm_v3_regtile   128×128 block tiles, 8×8 C elements per thread in registers, K tiles of 8 in shared memory
//   gemm_v4_mma       tensor cores (nvcuda::wmma, TF32 inputs, f32 accumulation; sm_80+ on a GPU). The emulation
//                     runs it on cuda/emu/wmma.h (tests/cuda/test_gemm_v4_emu.cpp: the naive loop's bits on
//                     TF32-rounded inputs); the tensor cores' speed and own rounding only a GPU shows
//   gemm              the default: v3, or v4 when args.precision == GemmPrecision::tf32
#pragma once
#include "ops/kernel_abi/gemm.h"

namespace sg {

// The tiling of each version: the C tile one block computes (block_m × block_n), the K depth staged in
// shared memory per step (block_k; 1 = nothing staged), the threads per block, the C elements one thread owns
// (thread_m × thread_n), and the C tile computed from one read of its operands out of shared memory
// (reuse_m × reuse_n: a thread's register tile in v2/v3, a warp's 64 × 32 of tensor-core fragments in v4; in v1
// the operands come from global memory). The kernels are written with these numbers; chapter 15 computes each
// version's memory traffic from them.
struct GemmTiling {
  const char* name;
  int block_m, block_n, block_k;
  int threads;
  int thread_m, thread_n;
  int reuse_m, reuse_n;
  bool reuses_tiles;   // false for v1: every thread reads its own operands from global memory
};
constexpr GemmTiling kGemmV1Tiling{"gemm_v1_naive", 8, 32, 1, 256, 1, 1, 1, 1, false};
constexpr GemmTiling kGemmV2Tiling{"gemm_v2_smem", 32, 32, 32, 1024, 1, 1, 1, 1, true};
constexpr GemmTiling kGemmV3Tiling{"gemm_v3_regtile", 128, 128, 8, 256, 8, 8, 8, 8, true};
constexpr GemmTiling kGemmV4Tiling{"gemm_v4_mma", 128, 128, 16, 256, 8, 8, 64, 32, true};

}  // namespace sg

namespace sg::cuda {
void gemm_v1_naive(const GemmArgs& g);
void gemm_v2_smem(const GemmArgs& g);
void gemm_v3_regtile(const GemmArgs& g);
void gemm_v4_mma(const GemmArgs& g);
void gemm(const GemmArgs& g);
}  // namespace sg::cuda

namespace sg::cuda_emu {
void gemm_v1_naive(const GemmArgs& g);
void gemm_v2_smem(const GemmArgs& g);
void gemm_v3_regtile(const GemmArgs& g);
void gemm_v4_mma(const GemmArgs& g);
void gemm(const GemmArgs& g);
}  // namespace sg::cuda_emu
