// cuda/indexer.h — the lightning-indexer kernels' host functions (cuda/kernels/indexer.cuh), declared for both
// builds of that header: sg::cuda (the GPU; pointers are device memory) and sg::cuda_emu (the CPU emulation,
// fibers per lane; pointers are host memory). Same names and semantics as ops/cpu/hadamard.h and
// ops/cpu/fp8_index.h (the score for B sequences at once), and the same bits.
#pragma once
#include "ops/kernel_abi/indexer.h"

namespace sg::cuda {
void hadamard_rotate_f32(const HadamardArgs<float>& a);   // n a power of two, n <= 4096
void fp8_index_scores_f32(const Fp8IndexScoresArgs& a);
}  // namespace sg::cuda

namespace sg::cuda_emu {
void hadamard_rotate_f32(const HadamardArgs<float>& a);
void fp8_index_scores_f32(const Fp8IndexScoresArgs& a);
}  // namespace sg::cuda_emu
