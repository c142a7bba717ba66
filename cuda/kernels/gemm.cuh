// cuda/kernels/gemm.cuh — the CUDA matrix multiply in four numbered versions, side by side:
//   C[M,N] = alpha * op(A)[M,K] · op(B)[K,N] + beta * C        (contract: ops/kernel_abi/gemm.h = ops/cpu/gemm.h)
// Compiled by nvcc (cuda/gemm.cu, sg::cuda) and by g++ for the emulation (cuda/emu/gemm_emu.cpp, sg::cuda_emu);
// see cuda/kernels/common.cuh. Chapter 15 (tools/chapters/ch15_gpu_kernels.md) tells the story with numbers.
//
// Each version changes one thing, and what it buys is global-memory traffic per C element (the tile sizes are
// cuda/gemm.h's GemmTiling; per C element a block of block_m × block_n loads K·(1/block_n + 1/block_m) floats):
//   v1  one thread per C element, operands read from global memory:   2K loads per C element
//   v2  A and B staged in 32×32 shared-memory tiles: each load serves 32 threads:   2K/32
//   v3  128×128 block tiles, each thread keeps an 8×8 tile of C in registers: 2K/128, and 16 shared-memory
//       reads per 64 FMAs instead of 2 per FMA
//   v4  v3's tiling on the tensor cores (nvcuda::wmma, TF32 m16n16k8, f32 accumulators). The emulation runs it
//       with cuda/emu/wmma.h (every lane holds whole tiles: the fragment layout is opaque to the kernel), which
//       gives the naive loop's bits on TF32-rounded inputs; only a GPU shows its speed and the tensor cores'
//       own summation order and rounding inside each 8-term product
//
// Every version handles any M, N, K (ragged edges: the shared tiles are padded with zeros, out-of-range C
// elements are not written), both transposes, alpha/beta, leading dimensions over the minimum, and batches
// (blockIdx.z). alpha == 0 launches gemm_scale_c instead (C = beta·C: A and B are never read), as the CPU does.
//
// The arithmetic of v1–v3 is the CPU naive loop's (ops/cpu/gemm.cpp gemm_f32_naive), element for element:
//   sum = 0;  for k = 0..K-1: sum += op(A)[i,k] * op(B)[k,j];   C[i,j] = alpha * sum + (beta == 0 ? 0 : beta * C[i,j])
// in the same k order (the zero padding adds exact +0 terms), so where the compiler fuses nothing (g++ for x86-64
// without -mfma) the emulation gives the CPU's bits; nvcc fuses a*b+sum into one FMA, so the GPU differs by
// rounding. No atomics: one thread owns each C element, so the GPU's bits are the same on every run.
#pragma once
#include "cuda/gemm.h"
#include "cuda/kernels/common.cuh"
#include "ops/kernel_abi/gemm.h"

#if defined(__CUDACC__)
#include <mma.h>
#elif !defined(SEEKGRAD_CUDA_STUB)
#include "cuda/emu/wmma.h"   // the emulation's nvcuda::wmma (the stub build launches nothing)
#endif

// v4's loops over its fragment arrays must be unrolled for nvcc to keep the fragments in registers (without
// `#pragma unroll` ptxas gives the kernel a 256-byte local-memory stack frame); g++ has no such pragma and warns
// at every one (GCC 12 ignores `#pragma GCC diagnostic` for it), so the pragma is spelled for nvcc only.
#if defined(__CUDACC__)
#define SG_UNROLL _Pragma("unroll")
#else
#define SG_UNROLL
#endif

namespace sg::SG_BACKEND_NS {

// ---- shared pieces -----------------------------------------------------------------------------------------

// op(A)[i,k] and op(B)[k,j] of one batch item, 0 outside the matrix (the zero padding of ragged tiles).
__device__ __forceinline__ float gemm_op_a(const GemmArgs& g, const float* A, int64_t i, int64_t k) {
  if (i >= g.M || k >= g.K) return 0.0f;
  return g.trans_a ? A[k * g.lda + i] : A[i * g.lda + k];
}
__device__ __forceinline__ float gemm_op_b(const GemmArgs& g, const float* B, int64_t k, int64_t j) {
  if (k >= g.K || j >= g.N) return 0.0f;
  return g.trans_b ? B[j * g.ldb + k] : B[k * g.ldb + j];
}

// C[i,j] = alpha * sum + beta * C[i,j]; with beta == 0, C is not read (it may hold NaN).
__device__ __forceinline__ void gemm_store_c(const GemmArgs& g, float* c, float sum) {
  *c = g.alpha * sum + (g.beta == 0.0f ? 0.0f : g.beta * *c);
}

// alpha == 0: C = beta * C (beta == 0 writes zeros), one thread per element, A and B untouched. Blocks as v1's.
__global__ void gemm_scale_c_kernel(GemmArgs g) {
  const int64_t j = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  const int64_t i = (int64_t)blockIdx.y * blockDim.y + threadIdx.y;
  if (i >= g.M || j >= g.N) return;
  for (int64_t b = blockIdx.z; b < g.batch; b += gridDim.z) {
    float* c = g.C + b * g.stride_c + i * g.ldc + j;
    *c = g.beta == 0.0f ? 0.0f : g.beta * *c;
  }
}

// ---- v1: one thread per C element ------------------------------------------------------------------------
//
// Thread (x, y) of a 32 × 8 block computes C[i, j], j along x: the 32 threads of a warp share one row i, so
// their A reads are one address (a broadcast) and their B and C accesses are 32 consecutive floats (coalesced)
// when B is not transposed. Every thread still reads 2K floats from global memory for its 2K flops: 0.25
// flop per byte, far below what the GPU needs to keep its FMA units busy (chapter 15).
__global__ void gemm_v1_naive_kernel(GemmArgs g) {
  const int64_t j = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;   // column of C
  const int64_t i = (int64_t)blockIdx.y * blockDim.y + threadIdx.y;   // row of C
  if (i >= g.M || j >= g.N) return;   // no barrier below: an idle thread may leave at once
  for (int64_t b = blockIdx.z; b < g.batch; b += gridDim.z) {
    const float* A = g.A + b * g.stride_a;
    const float* B = g.B + b * g.stride_b;
    float sum = 0.0f;
    for (int64_t k = 0; k < g.K; k++) sum += gemm_op_a(g, A, i, k) * gemm_op_b(g, B, k, j);
    gemm_store_c(g, g.C + b * g.stride_c + i * g.ldc + j, sum);
  }
}

// ---- v2: shared-memory tiles -----------------------------------------------------------------------------
//
// A 32 × 32 block computes a 32 × 32 tile of C, one element per thread, walking K in steps of 32. Per step the
// block copies a 32 × 32 tile of op(A) and of op(B) into shared memory (each thread one element of each), waits
// at a barrier, and every thread sums its 32 products from shared memory. Each float loaded from global memory
// is now used by 32 threads: 2K/32 loads per C element instead of 2K.
//
// The +1 column: shared memory has 32 banks of 4-byte words, and 32 threads reading one bank at once are
// served one after another. Without padding, smem[tx][ty] for tx = 0..31 is one column: all in one bank.
// With rows of 33 words, element [r][c] is in bank (r + c) % 32 and a column spreads over all banks.
constexpr int kGemmV2Tile = kGemmV2Tiling.block_m;   // 32 (block_n and block_k too)

__global__ void gemm_v2_smem_kernel(GemmArgs g) {
  __shared__ float smem_a[kGemmV2Tile][kGemmV2Tile + 1];   // op(A)[row0 + r, k0 + c] at [r][c]
  __shared__ float smem_b[kGemmV2Tile][kGemmV2Tile + 1];   // op(B)[k0 + r, col0 + c] at [r][c]
  const int tx = (int)threadIdx.x, ty = (int)threadIdx.y;
  const int64_t row0 = (int64_t)blockIdx.y * kGemmV2Tile, col0 = (int64_t)blockIdx.x * kGemmV2Tile;
  const int64_t i = row0 + ty, j = col0 + tx;   // this thread's C element (maybe outside C: it still loads)
  for (int64_t b = blockIdx.z; b < g.batch; b += gridDim.z) {
    const float* A = g.A + b * g.stride_a;
    const float* B = g.B + b * g.stride_b;
    float sum = 0.0f;
    for (int64_t k0 = 0; k0 < g.K; k0 += kGemmV2Tile) {
      // One element of each tile per thread. Neighbouring threads (tx) read neighbouring addresses
      // (coalesced): along k when A is [M,K], along m when A is stored transposed [K,M]; B likewise.
      if (!g.trans_a) smem_a[ty][tx] = gemm_op_a(g, A, row0 + ty, k0 + tx);
      else smem_a[tx][ty] = gemm_op_a(g, A, row0 + tx, k0 + ty);
      if (!g.trans_b) smem_b[ty][tx] = gemm_op_b(g, B, k0 + ty, col0 + tx);
      else smem_b[tx][ty] = gemm_op_b(g, B, k0 + tx, col0 + ty);
      __syncthreads();   // both tiles complete before anyone reads them
      for (int kk = 0; kk < kGemmV2Tile; kk++) sum += smem_a[ty][kk] * smem_b[kk][tx];
      __syncthreads();   // everyone has read them before the next step overwrites them
    }
    if (i < g.M && j < g.N) gemm_store_c(g, g.C + b * g.stride_c + i * g.ldc + j, sum);
  }
}

// ---- v3: a register tile per thread ----------------------------------------------------------------------
//
// v2 still does 2 shared-memory reads per FMA, and shared memory is not much faster than the FMA units. v3 gives
// each thread an 8 × 8 tile of C in registers: per k it reads 8 values of op(A) and 8 of op(B) from shared
// memory and does 64 FMAs with them (an outer product), 16 reads per 64 FMAs. 256 threads (16 × 16) then cover
// a 128 × 128 tile of C, so each global load serves 128 C elements: 2K/128 loads per C element. K is staged
// 8 deep (128 × 8 + 8 × 128 floats = 8 KiB of shared memory per step).
//
// Thread (ty, tx) owns rows ty + 16·i and columns tx + 16·j (i, j < 8) of the block's tile: strided, so that
// the 16 threads of a half-warp read 16 consecutive words of smem_b (16 banks, no conflict) and write 16
// consecutive floats of C (coalesced). smem_a is stored k-major ([k][m]) so that a thread's rows at one k
// sit in one row of smem_a. The +4 padding spreads the tile loads' stores over the banks.
constexpr int kGemmV3BlockM = kGemmV3Tiling.block_m;     // 128
constexpr int kGemmV3BlockN = kGemmV3Tiling.block_n;     // 128
constexpr int kGemmV3BlockK = kGemmV3Tiling.block_k;     // 8
constexpr int kGemmV3ThreadM = kGemmV3Tiling.thread_m;   // 8
constexpr int kGemmV3ThreadN = kGemmV3Tiling.thread_n;   // 8
constexpr int kGemmV3Threads = kGemmV3Tiling.threads;    // 256 = (128 / 8) × (128 / 8)
constexpr int kGemmV3RowsStep = kGemmV3BlockM / kGemmV3ThreadM;   // 16: blockDim.y
constexpr int kGemmV3ColsStep = kGemmV3BlockN / kGemmV3ThreadN;   // 16: blockDim.x

__global__ void gemm_v3_regtile_kernel(GemmArgs g) {
  __shared__ float smem_a[kGemmV3BlockK][kGemmV3BlockM + 4];   // op(A)[row0 + r, k0 + c] at [c][r]
  __shared__ float smem_b[kGemmV3BlockK][kGemmV3BlockN + 4];   // op(B)[k0 + r, col0 + c] at [r][c]
  const int tx = (int)threadIdx.x, ty = (int)threadIdx.y;
  const int tid = ty * kGemmV3ColsStep + tx;
  const int64_t row0 = (int64_t)blockIdx.y * kGemmV3BlockM, col0 = (int64_t)blockIdx.x * kGemmV3BlockN;
  for (int64_t b = blockIdx.z; b < g.batch; b += gridDim.z) {
    const float* A = g.A + b * g.stride_a;
    const float* B = g.B + b * g.stride_b;
    float reg_c[kGemmV3ThreadM][kGemmV3ThreadN];
    for (int i = 0; i < kGemmV3ThreadM; i++)
      for (int j = 0; j < kGemmV3ThreadN; j++) reg_c[i][j] = 0.0f;
    for (int64_t k0 = 0; k0 < g.K; k0 += kGemmV3BlockK) {
      // The block loads each tile with `l` walking it in the order memory holds it, so neighbouring
      // threads read neighbouring addresses: A [M,K] row by row (k fastest), A stored [K,M] k by k (m fastest).
      for (int l = tid; l < kGemmV3BlockM * kGemmV3BlockK; l += kGemmV3Threads) {
        const int r = g.trans_a ? l % kGemmV3BlockM : l / kGemmV3BlockK;   // m within the tile
        const int c = g.trans_a ? l / kGemmV3BlockM : l % kGemmV3BlockK;   // k within the tile
        smem_a[c][r] = gemm_op_a(g, A, row0 + r, k0 + c);
      }
      for (int l = tid; l < kGemmV3BlockK * kGemmV3BlockN; l += kGemmV3Threads) {
        const int r = g.trans_b ? l % kGemmV3BlockK : l / kGemmV3BlockN;   // k within the tile
        const int c = g.trans_b ? l / kGemmV3BlockK : l % kGemmV3BlockN;   // n within the tile
        smem_b[r][c] = gemm_op_b(g, B, k0 + r, col0 + c);
      }
      __syncthreads();
      for (int kk = 0; kk < kGemmV3BlockK; kk++) {
        float reg_a[kGemmV3ThreadM], reg_b[kGemmV3ThreadN];
        for (int i = 0; i < kGemmV3ThreadM; i++) reg_a[i] = smem_a[kk][ty + kGemmV3RowsStep * i];
        for (int j = 0; j < kGemmV3ThreadN; j++) reg_b[j] = smem_b[kk][tx + kGemmV3ColsStep * j];
        for (int i = 0; i < kGemmV3ThreadM; i++)
          for (int j = 0; j < kGemmV3ThreadN; j++) reg_c[i][j] += reg_a[i] * reg_b[j];
      }
      __syncthreads();
    }
    float* C = g.C + b * g.stride_c;
    for (int i = 0; i < kGemmV3ThreadM; i++) {
      const int64_t row = row0 + ty + kGemmV3RowsStep * i;
      if (row >= g.M) break;
      for (int j = 0; j < kGemmV3ThreadN; j++) {
        const int64_t col = col0 + tx + kGemmV3ColsStep * j;
        if (col < g.N) gemm_store_c(g, C + row * g.ldc + col, reg_c[i][j]);
      }
    }
  }
}

// ---- v4: tensor cores (nvcuda::wmma, TF32) -----------------------------------------------------------------
//
// v3's 128 × 128 block tile, but the multiply-adds go to the tensor cores: one warp instruction
// (wmma::mma_sync, m16n16k8) multiplies a 16 × 8 tile of A by an 8 × 16 tile of B into a 16 × 16 f32
// accumulator. The inputs are TF32: f32's 8-bit exponent with a 10-bit mantissa (rounded when the tiles are
// stored in shared memory), so each product carries ~2^-11 relative error while the sums stay f32.
// 8 warps as 2 (m) × 4 (n), each owning a 64 × 32 piece = 4 × 2 accumulator fragments; K staged 16 deep.
// The accumulators' layout inside a warp is opaque, so the epilogue stores each fragment to a per-warp 16 × 16
// scratch tile in shared memory and the warp's lanes then apply alpha/beta and write the in-range elements.
// wmma needs 32-byte aligned tile pointers and leading dimensions that are multiples of 4 floats: the shared
// arrays are __align__(32) and their padded rows (20, 132 floats) keep every fragment's start aligned (the
// emulation checks both at every load and store).
#if !defined(SEEKGRAD_CUDA_STUB)
constexpr int kGemmV4BlockM = kGemmV4Tiling.block_m;   // 128
constexpr int kGemmV4BlockN = kGemmV4Tiling.block_n;   // 128
constexpr int kGemmV4BlockK = kGemmV4Tiling.block_k;   // 16
constexpr int kGemmV4Threads = kGemmV4Tiling.threads;  // 256 = 8 warps
constexpr int kGemmV4WarpM = kGemmV4Tiling.reuse_m;   // 64: a warp's piece of the block tile
constexpr int kGemmV4WarpN = kGemmV4Tiling.reuse_n;   // 32
constexpr int kGemmV4FragsM = kGemmV4WarpM / 16, kGemmV4FragsN = kGemmV4WarpN / 16;   // 4 × 2
constexpr int kGemmV4WarpsN = kGemmV4BlockN / kGemmV4WarpN;                           // 4
constexpr int kGemmV4LdA = kGemmV4BlockK + 4, kGemmV4LdB = kGemmV4BlockN + 4, kGemmV4LdC = 16 + 4;

__global__ void __launch_bounds__(kGemmV4Threads) gemm_v4_mma_kernel(GemmArgs g) {
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800   // TF32 wmma exists from sm_80 (the host checks the device)
  using namespace nvcuda;
  __shared__ __align__(32) float smem_a[kGemmV4BlockM][kGemmV4LdA];   // op(A)[row0 + r, k0 + c] at [r][c]
  __shared__ __align__(32) float smem_b[kGemmV4BlockK][kGemmV4LdB];   // op(B)[k0 + r, col0 + c] at [r][c]
  __shared__ __align__(32) float smem_c[kGemmV4Threads / 32][16][kGemmV4LdC];   // one scratch tile per warp
  const int tid = (int)threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int warp_row = (warp / kGemmV4WarpsN) * kGemmV4WarpM, warp_col = (warp % kGemmV4WarpsN) * kGemmV4WarpN;
  const int64_t row0 = (int64_t)blockIdx.y * kGemmV4BlockM, col0 = (int64_t)blockIdx.x * kGemmV4BlockN;
  for (int64_t b = blockIdx.z; b < g.batch; b += gridDim.z) {
    const float* A = g.A + b * g.stride_a;
    const float* B = g.B + b * g.stride_b;
    wmma::fragment<wmma::accumulator, 16, 16, 8, float> acc[kGemmV4FragsM][kGemmV4FragsN];
    SG_UNROLL
    for (int fi = 0; fi < kGemmV4FragsM; fi++)
      SG_UNROLL
      for (int fj = 0; fj < kGemmV4FragsN; fj++) wmma::fill_fragment(acc[fi][fj], 0.0f);
    for (int64_t k0 = 0; k0 < g.K; k0 += kGemmV4BlockK) {
      for (int l = tid; l < kGemmV4BlockM * kGemmV4BlockK; l += kGemmV4Threads) {   // as v3: coalesced walks
        const int r = g.trans_a ? l % kGemmV4BlockM : l / kGemmV4BlockK;
        const int c = g.trans_a ? l / kGemmV4BlockM : l % kGemmV4BlockK;
        smem_a[r][c] = wmma::__float_to_tf32(gemm_op_a(g, A, row0 + r, k0 + c));
      }
      for (int l = tid; l < kGemmV4BlockK * kGemmV4BlockN; l += kGemmV4Threads) {
        const int r = g.trans_b ? l % kGemmV4BlockK : l / kGemmV4BlockN;
        const int c = g.trans_b ? l / kGemmV4BlockK : l % kGemmV4BlockN;
        smem_b[r][c] = wmma::__float_to_tf32(gemm_op_b(g, B, k0 + r, col0 + c));
      }
      __syncthreads();
      SG_UNROLL
      for (int kk = 0; kk < kGemmV4BlockK; kk += 8) {
        wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, wmma::row_major> frag_a[kGemmV4FragsM];
        wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, wmma::row_major> frag_b[kGemmV4FragsN];
        SG_UNROLL
        for (int fi = 0; fi < kGemmV4FragsM; fi++)
          wmma::load_matrix_sync(frag_a[fi], &smem_a[warp_row + 16 * fi][kk], kGemmV4LdA);
        SG_UNROLL
        for (int fj = 0; fj < kGemmV4FragsN; fj++)
          wmma::load_matrix_sync(frag_b[fj], &smem_b[kk][warp_col + 16 * fj], kGemmV4LdB);
        SG_UNROLL
        for (int fi = 0; fi < kGemmV4FragsM; fi++)
          SG_UNROLL
          for (int fj = 0; fj < kGemmV4FragsN; fj++) wmma::mma_sync(acc[fi][fj], frag_a[fi], frag_b[fj], acc[fi][fj]);
      }
      __syncthreads();
    }
    float* C = g.C + b * g.stride_c;
    float(*scratch)[kGemmV4LdC] = smem_c[warp];
    SG_UNROLL
    for (int fi = 0; fi < kGemmV4FragsM; fi++)
      SG_UNROLL
      for (int fj = 0; fj < kGemmV4FragsN; fj++) {
        wmma::store_matrix_sync(&scratch[0][0], acc[fi][fj], kGemmV4LdC, wmma::mem_row_major);
        __syncwarp();
        SG_UNROLL
        for (int t = lane; t < 16 * 16; t += 32) {
          const int64_t row = row0 + warp_row + 16 * fi + t / 16, col = col0 + warp_col + 16 * fj + t % 16;
          if (row < g.M && col < g.N) gemm_store_c(g, C + row * g.ldc + col, scratch[t / 16][t % 16]);
        }
        __syncwarp();   // the lanes have read the scratch tile before the next fragment overwrites it
      }
  }
#endif
}

#endif  // !SEEKGRAD_CUDA_STUB

#if defined(__CUDACC__)
// TF32 wmma needs compute capability 8.0 (A100) or newer.
inline void gemm_require_tensor_cores(const char* kernel) {
  int device = 0, major = 0, minor = 0;
  cudaGetDevice(&device);
  cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device);
  cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device);
  if (major < 8)
    throw std::runtime_error(std::string("[cuda] ") + kernel + " needs TF32 tensor cores (compute capability 8.0+); device " +
                             std::to_string(device) + " is " + std::to_string(major) + "." + std::to_string(minor));
}
#endif  // __CUDACC__

// ---- host side -------------------------------------------------------------------------------------------

// Checks g against the contract (ops/kernel_abi/gemm.h), naming the kernel; false when there is nothing to do.
inline bool gemm_check(const char* kernel, const GemmArgs& g) {
  auto fail = [&](const std::string& what) {
    throw std::runtime_error(std::string("[cuda] ") + kernel + ": " + what + " (M=" + std::to_string(g.M) +
                             ", N=" + std::to_string(g.N) + ", K=" + std::to_string(g.K) + ", trans_a=" +
                             std::to_string(g.trans_a) + ", trans_b=" + std::to_string(g.trans_b) + ", batch=" +
                             std::to_string(g.batch) + ")");
  };
  auto check_ld = [&](const char* name, int64_t ld, int64_t row) {
    if (ld < (row > 1 ? row : 1)) fail(std::string(name) + "=" + std::to_string(ld) + " is shorter than a row of " + std::to_string(row));
  };
  if (g.M < 0 || g.N < 0 || g.K < 0) fail("negative size");
  if (g.batch < 0) fail("negative batch");
  if (g.stride_a < 0 || g.stride_b < 0 || g.stride_c < 0) fail("negative batch stride");
  check_ld("lda", g.lda, g.trans_a ? g.M : g.K);   // A is stored [K,M] or [M,K]
  check_ld("ldb", g.ldb, g.trans_b ? g.K : g.N);   // B is stored [N,K] or [K,N]
  check_ld("ldc", g.ldc, g.N);
  if (g.M == 0 || g.N == 0 || g.batch == 0) return false;
  if (g.batch > 1 && g.stride_c < (g.M - 1) * g.ldc + g.N)
    fail("stride_c=" + std::to_string(g.stride_c) + " makes C's batches overlap (needs >= " +
         std::to_string((g.M - 1) * g.ldc + g.N) + ")");
  return true;
}

// Launches `kernel` over C in block tiles of `tiling`, the batches along z (a grid-stride loop past 65535);
// alpha == 0 launches gemm_scale_c instead.
inline void gemm_launch(const char* kernel_name, void (*kernel)(GemmArgs), const GemmArgs& g, const GemmTiling& tiling,
                        dim3 block) {
  if (!gemm_check(kernel_name, g)) return;
  const GemmTiling& t = g.alpha == 0.0f ? kGemmV1Tiling : tiling;
  const dim3 grid(grid_for(g.N, t.block_n), grid_for(g.M, t.block_m), (unsigned)(g.batch < 65535 ? g.batch : 65535));
  if (grid.y > 65535u)
    throw std::runtime_error(std::string("[cuda] ") + kernel_name + ": M=" + std::to_string(g.M) + " needs " +
                             std::to_string(grid.y) + " row blocks, over CUDA's 65535");
  if (g.alpha == 0.0f) return launch_kernel("gemm_scale_c", grid, dim3(32, 8), gemm_scale_c_kernel, g);
  launch_kernel(kernel_name, grid, block, kernel, g);
}

void gemm_v1_naive(const GemmArgs& g) {
  gemm_launch("gemm_v1_naive", gemm_v1_naive_kernel, g, kGemmV1Tiling, dim3(32, 8));
}
void gemm_v2_smem(const GemmArgs& g) {
  gemm_launch("gemm_v2_smem", gemm_v2_smem_kernel, g, kGemmV2Tiling, dim3(kGemmV2Tile, kGemmV2Tile));
}
void gemm_v3_regtile(const GemmArgs& g) {
  gemm_launch("gemm_v3_regtile", gemm_v3_regtile_kernel, g, kGemmV3Tiling, dim3(kGemmV3ColsStep, kGemmV3RowsStep));
}
void gemm_v4_mma(const GemmArgs& g) {
#if defined(SEEKGRAD_CUDA_STUB)
  // No kernel to launch (the stub build has no wmma); gemm_launch's checks and message, as every stub launch.
  if (!gemm_check("gemm_v4_mma", g)) return;
  throw std::runtime_error("[cuda] gemm_v4_mma: this build has no CUDA backend (configure with -DSEEKGRAD_CUDA=ON)");
#else
#if defined(__CUDACC__)
  gemm_require_tensor_cores("gemm_v4_mma");   // the emulation's tensor cores are cuda/emu/wmma.h: always there
#endif
  gemm_launch("gemm_v4_mma", gemm_v4_mma_kernel, g, kGemmV4Tiling, dim3(kGemmV4Threads));
#endif
}

// The default GEMM: the fastest exact-f32 version, or the tensor cores when the caller allows TF32.
void gemm(const GemmArgs& g) {
  switch (g.precision) {
    case GemmPrecision::fp32: return gemm_v3_regtile(g);
    case GemmPrecision::tf32: return gemm_v4_mma(g);
  }
  throw std::runtime_error("[cuda] gemm: unknown precision " + std::to_string((int)g.precision));
}

}  // namespace sg::SG_BACKEND_NS
#undef SG_UNROLL
