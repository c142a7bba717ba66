// cuda/kernels/indexer.cuh — DeepSeek-V3.2's lightning-indexer kernels on the device (models/dsa.h): the
// Walsh–Hadamard rotation of q^I and k^I (ops/cpu/hadamard.h) and the FP8 index score (ops/cpu/fp8_index.h).
// Compiled by nvcc (cuda/indexer.cu) and by g++ for the emulation (cuda/emu/indexer_emu.cpp); see
// cuda/kernels/common.cuh.
//
// Both give the CPU kernels' bits:
//   - hadamard: one block per row (grid-stride over rows), the row in shared memory, the log2 n butterfly passes
//     h = 1, 2, ..., n/2 with a barrier after each. A pass's butterflies (a, b) → (a + b, a − b) touch disjoint
//     pairs, so which thread does which changes nothing: every element sees the CPU loop's additions in the CPU
//     loop's order. Then one multiply by 1/√n, that scale computed on the host exactly as the CPU does
//     (1.0f / std::sqrt(float(n))). n ≤ kHadamardMaxN = 4096 (the row must fit the block's static shared memory:
//     16 KiB); a larger n is refused by the kernel's name.
//   - fp8_index_scores: ONE thread per score[b, s, t], walking h, the tiles and d in the CPU loop's order, each
//     operation rounded on its own (__fmul_rn / __fadd_rn: nvcc would fuse (q_scale · k_scale) · dot + logit
//     into an FMA). The E4M3 products are exact in f32. No reduction across threads, no atomics.
// Correct, simple kernels, not fast ones: the score kernel re-reads the shared q rows from global memory (a warp
// reads the same address: a broadcast) and decodes each code where it is used; no tensor cores (their FP8 MMA
// accumulates in its own order and precision, so it could not give the CPU's bits).
#pragma once
#include <cmath>

#include "cuda/kernels/common.cuh"
#include "ops/fp8.h"
#include "ops/kernel_abi/indexer.h"

namespace sg::SG_BACKEND_NS {

// ---- hadamard_rotate ------------------------------------------------------------------------------------------

constexpr int64_t kHadamardMaxN = 4096;  // floats of one row in shared memory
constexpr int kHadamardMaxThreads = 256;
// Blocks of the row-per-block kernel; more rows: each block strides over them. 4096 blocks of >= 32 threads fill
// any current GPU (an H100: 132 SMs × 2048 threads = 270k; 4096 × 64 for n = 128).
constexpr unsigned kMaxRowBlocks = 4096;

// Thread j takes the pass's butterflies p = j, j + blockDim.x, ... of n/2: p's pair is (i, i + h) with
// i = (p / h) · 2h + p % h (block p / h of width 2h, offset p % h in its first half).
__global__ void hadamard_rotate_kernel(HadamardArgs<float> a, float scale) {
  __shared__ float smem_row[kHadamardMaxN];
  const int64_t n = a.n, half = n / 2;
  const int j = threadIdx.x, nt = blockDim.x;
  for (int64_t r = blockIdx.x; r < a.rows; r += gridDim.x) {
    const float* xr = a.x + r * n;
    float* yr = a.y + r * n;
    for (int64_t i = j; i < n; i += nt) smem_row[i] = xr[i];
    __syncthreads();  // the whole row is read before any of it is written (x and y may be one buffer)
    for (int64_t h = 1; h < n; h *= 2) {
      for (int64_t p = j; p < half; p += nt) {
        const int64_t i = (p / h) * 2 * h + p % h;
        const float u = smem_row[i], v = smem_row[i + h];
        smem_row[i] = __fadd_rn(u, v);
        smem_row[i + h] = __fsub_rn(u, v);
      }
      __syncthreads();
    }
    for (int64_t i = j; i < n; i += nt) yr[i] = __fmul_rn(smem_row[i], scale);
    __syncthreads();  // the next row's load overwrites smem_row
  }
}

inline void indexer_check(bool ok, const char* kernel, const std::string& what) {
  if (!ok) throw std::runtime_error(std::string("[cuda] ") + kernel + ": " + what);
}

void hadamard_rotate_f32(const HadamardArgs<float>& a) {
  const char* name = "hadamard_rotate_f32";
  indexer_check(a.rows >= 0 && a.n > 0 && (a.n & (a.n - 1)) == 0, name,
                "need rows >= 0 and n a power of two, got rows " + std::to_string(a.rows) + ", n " + std::to_string(a.n));
  indexer_check(a.n <= kHadamardMaxN, name,
                "n = " + std::to_string(a.n) + " is over this kernel's limit of " + std::to_string(kHadamardMaxN) +
                    " (one row in a block's shared memory)");
  if (a.rows == 0) return;
  indexer_check(a.x && a.y, name, "x and y must not be null");
  const float scale = 1.0f / std::sqrt((float)a.n);  // as ops/cpu/hadamard.cpp: T(1) / std::sqrt(T(n))
  int64_t threads = a.n / 2;
  threads = threads < 32 ? 32 : threads > kHadamardMaxThreads ? kHadamardMaxThreads : threads;
  const unsigned grid = a.rows < (int64_t)kMaxRowBlocks ? (unsigned)a.rows : kMaxRowBlocks;
  launch_kernel(name, dim3(grid), dim3((unsigned)threads), hadamard_rotate_kernel, a, scale);
}

// ---- fp8_index_scores -----------------------------------------------------------------------------------------

constexpr int kFp8IndexThreads = 128;

// Output o = (b · S + s) · T + t, grid-stride: consecutive threads take consecutive keys t of one query (b, s),
// so a warp reads the same q codes (broadcast) and each thread one key row.
__global__ void fp8_index_scores_kernel(Fp8IndexScoresArgs a) {
  const int64_t nb = (a.D + a.block - 1) / a.block, total = a.B * a.S * a.T;
  for (int64_t o = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; o < total; o += (int64_t)gridDim.x * blockDim.x) {
    const int64_t t = o % a.T, bs = o / a.T, b = bs / a.S;
    const uint8_t* kc = a.k_codes + (b * a.key_rows + t) * a.D;
    const float* ks = a.k_scales + (b * a.key_rows + t) * nb;
    float score = 0.0f;
    for (int64_t h = 0; h < a.H; h++) {
      const int64_t qh = bs * a.H + h;  // the (b, s, h) row of q
      const uint8_t* qc = a.q_codes + qh * a.D;
      const float* qs = a.q_scales + qh * nb;
      float logit = 0.0f;
      for (int64_t tile = 0; tile < nb; tile++) {
        const int64_t d0 = tile * a.block, d1 = d0 + a.block < a.D ? d0 + a.block : a.D;
        float dot = 0.0f;
        for (int64_t d = d0; d < d1; d++) dot = __fadd_rn(dot, __fmul_rn(lowp::e4m3_to_f32(qc[d]), lowp::e4m3_to_f32(kc[d])));
        logit = __fadd_rn(logit, __fmul_rn(__fmul_rn(qs[tile], ks[tile]), dot));
      }
      // std::max(logit, 0.0f) of the CPU: logit < 0 ? 0 : logit (a NaN logit stays NaN, as there)
      score = __fadd_rn(score, __fmul_rn(a.weights[qh], logit < 0.0f ? 0.0f : logit));
    }
    a.scores[o] = score;
  }
}

void fp8_index_scores_f32(const Fp8IndexScoresArgs& a) {
  const char* name = "fp8_index_scores_f32";
  indexer_check(a.B >= 0 && a.S >= 0 && a.H >= 0 && a.T >= 0 && a.D >= 1 && a.block >= 1, name,
                "need B, S, H, T >= 0 and D, block >= 1, got B " + std::to_string(a.B) + ", S " + std::to_string(a.S) +
                    ", H " + std::to_string(a.H) + ", D " + std::to_string(a.D) + ", T " + std::to_string(a.T) +
                    ", block " + std::to_string(a.block));
  indexer_check(a.key_rows >= a.T, name,
                "key_rows = " + std::to_string(a.key_rows) + " (rows per sequence in k) is less than T = " + std::to_string(a.T));
  const int64_t total = a.B * a.S * a.T;
  if (total == 0) return;
  indexer_check(a.scores && a.k_codes && a.k_scales && (a.H == 0 || (a.q_codes && a.q_scales && a.weights)), name,
                "q_codes, q_scales, weights, k_codes, k_scales and scores must not be null");
  const unsigned grid = grid_for(total, kFp8IndexThreads);
  launch_kernel(name, dim3(grid < 65535u ? grid : 65535u), dim3(kFp8IndexThreads), fp8_index_scores_kernel, a);
}

}  // namespace sg::SG_BACKEND_NS
