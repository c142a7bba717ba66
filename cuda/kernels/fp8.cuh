// cuda/kernels/fp8.cuh — DeepSeek-V3's fine-grained FP8 (E4M3) on the device (report §3.3): activation
// quantization per 1×block tile, weight quantization per block×block block, both dequantizations, and the
// blockwise FP8 GEMM with one f32 promotion per K block. Compiled by nvcc (cuda/fp8.cu) and by g++ for the
// emulation (cuda/emu/fp8_emu.cpp); see cuda/kernels/common.cuh.
//
// Every result is the CPU naive kernels' bits (ops/cpu/fp8_quant.cpp, ops/cpu/fp8_gemm.cpp):
//   - the codes come from the same scalar encoder, lowp::f32_to_e4m3 (ops/fp8.h, host and device), of the same
//     quotient x / scale (IEEE division, __fdiv_rn);
//   - a tile's amax is a max of |x|, which does not depend on the order it is taken in (no NaN ever wins:
//     `a < b ? b : a` is std::max, and a NaN compares false), so a shared-memory tree gives the CPU loop's amax,
//     and fp8_tile_scale below is the CPU's formula on the same bits;
//   - the GEMM gives each C element to ONE thread, which walks K in the CPU's order: for each K block, the
//     products in k order into p (each product of two E4M3 values is exact in f32), then c += (p·s_a)·s_b,
//     with every operation rounded on its own (__fmul_rn / __fadd_rn: nvcc would fuse (p·s_a)·s_b + c into an
//     FMA). The limited modes truncate after every addition as the CPU does (lowp::truncate_to_bits).
// The GEMM stages 16×32 slices of A and B, decoded to f32, in shared memory for a 16×16 tile of C; that
// changes where operands are read from, not what is added in which order. It is a correct, simple kernel, not a
// fast one (no tensor cores: their FP8 MMA accumulates in its own order and precision, so it could not give the
// CPU's bits).
#pragma once
#include "cuda/kernels/common.cuh"
#include "ops/fp8.h"
#include "ops/kernel_abi/fp8.h"

namespace sg::SG_BACKEND_NS {

// The scale of one tile from its amax: max(amax, 1e-4) / 448, with ue8m0 the smallest power of two ≥ that,
// from the f32 bits (ops/cpu/fp8_quant.cpp fp8_tile_scale, the same formula).
__device__ __forceinline__ float fp8_tile_scale(float amax, bool ue8m0) {
  const float s = __fdiv_rn(amax < 1e-4f ? 1e-4f : amax, 448.0f);
  if (!ue8m0) return s;
  const uint32_t b = lowp::detail::bits_of(s);
  if ((b & 0x007FFFFFu) == 0u) return s;
  return lowp::detail::float_of((b & 0x7F800000u) + 0x00800000u);
}

constexpr int kFp8QuantThreads = 128;  // threads per tile / block of the quantization kernels

// The block's kFp8QuantThreads maxima in `s` reduced as a fixed tree; the max ends in s[0].
__device__ __forceinline__ void block_tree_max(float* s) {
  const int t = threadIdx.x;
  __syncthreads();
  for (int stride = kFp8QuantThreads / 2; stride > 0; stride /= 2) {
    if (t < stride) s[t] = s[t] < s[t + stride] ? s[t + stride] : s[t];
    __syncthreads();
  }
}

// One block per 1×block tile (row r, tile t = blockIdx.x % nb). Thread j takes the tile's elements j, j + 128, ...
__global__ void act_quant_kernel(Fp8ActQuantArgs a) {
  __shared__ float amax_of[kFp8QuantThreads];
  __shared__ float tile_scale;
  const int j = threadIdx.x;
  const int64_t nb = (a.K + a.block - 1) / a.block;
  const int64_t r = blockIdx.x / nb, t = blockIdx.x % nb;
  const int64_t k0 = t * a.block, k1 = k0 + a.block < a.K ? k0 + a.block : a.K;
  const float* xr = a.x + r * a.K;
  float amax = 0.0f;
  for (int64_t k = k0 + j; k < k1; k += kFp8QuantThreads) {
    const float v = std::fabs(xr[k]);
    amax = amax < v ? v : amax;
  }
  amax_of[j] = amax;
  block_tree_max(amax_of);
  if (j == 0) {
    tile_scale = fp8_tile_scale(amax_of[0], a.ue8m0 != 0);
    a.scales[r * nb + t] = tile_scale;
  }
  __syncthreads();
  const float s = tile_scale;
  for (int64_t k = k0 + j; k < k1; k += kFp8QuantThreads) a.codes[r * a.K + k] = lowp::f32_to_e4m3(__fdiv_rn(xr[k], s));
}

// One block per block×block weight block (bn, bk) = (blockIdx.x / nbk, blockIdx.x % nbk); thread j takes the
// block's elements j, j + 128, ... in row-major order within the block.
__global__ void weight_quant_kernel(Fp8WeightQuantArgs a) {
  __shared__ float amax_of[kFp8QuantThreads];
  __shared__ float block_scale;
  const int j = threadIdx.x;
  const int64_t nbk = (a.K + a.block - 1) / a.block;
  const int64_t bn = blockIdx.x / nbk, bk = blockIdx.x % nbk;
  const int64_t n0 = bn * a.block, n1 = n0 + a.block < a.N ? n0 + a.block : a.N;
  const int64_t k0 = bk * a.block, k1 = k0 + a.block < a.K ? k0 + a.block : a.K;
  const int64_t width = k1 - k0, count = (n1 - n0) * width;
  float amax = 0.0f;
  for (int64_t e = j; e < count; e += kFp8QuantThreads) {
    const float v = std::fabs(a.w[(n0 + e / width) * a.K + k0 + e % width]);
    amax = amax < v ? v : amax;
  }
  amax_of[j] = amax;
  block_tree_max(amax_of);
  if (j == 0) {
    block_scale = fp8_tile_scale(amax_of[0], false);
    a.scale_inv[bn * nbk + bk] = block_scale;
  }
  __syncthreads();
  const float s = block_scale;
  for (int64_t e = j; e < count; e += kFp8QuantThreads) {
    const int64_t i = (n0 + e / width) * a.K + k0 + e % width;
    a.codes[i] = lowp::f32_to_e4m3(__fdiv_rn(a.w[i], s));
  }
}

// One thread per element, grid-stride loops: out = decoded code · its tile's (block's) scale.
__global__ void act_dequant_kernel(Fp8ActDequantArgs a) {
  const int64_t n = a.rows * a.K, nb = (a.K + a.block - 1) / a.block;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t r = i / a.K, k = i % a.K;
    a.out[i] = __fmul_rn(lowp::e4m3_to_f32(a.codes[i]), a.scales[r * nb + k / a.block]);
  }
}

__global__ void weight_dequant_kernel(Fp8WeightDequantArgs a) {
  const int64_t n = a.N * a.K, nbk = (a.K + a.block - 1) / a.block;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t row = i / a.K, k = i % a.K;
    a.out[i] = __fmul_rn(lowp::e4m3_to_f32(a.codes[i]), a.scale_inv[(row / a.block) * nbk + k / a.block]);
  }
}

// The GEMM's tile: kFp8GemmTile × kFp8GemmTile threads, one C element each (threadIdx.x: the column n,
// threadIdx.y: the row m), and K slices of kFp8GemmSlice columns staged in shared memory.
constexpr int kFp8GemmTile = 16;
constexpr int kFp8GemmSlice = 32;

__global__ void fp8_gemm_kernel(Fp8GemmArgs g) {
  // +1 column: thread (x, y) reads b_slice[x][k]; a stride of 33 floats puts the 16 rows in 16 banks.
  __shared__ float a_slice[kFp8GemmTile][kFp8GemmSlice + 1];
  __shared__ float b_slice[kFp8GemmTile][kFp8GemmSlice + 1];
  const int tx = threadIdx.x, ty = threadIdx.y, tid = ty * kFp8GemmTile + tx;
  const int64_t m0 = (int64_t)blockIdx.y * kFp8GemmTile, n0 = (int64_t)blockIdx.x * kFp8GemmTile;
  const int64_t m = m0 + ty, n = n0 + tx;
  const bool mine = m < g.M && n < g.N;  // threads past the edge still stage operands and meet the barriers
  const int64_t KB = (g.K + g.block - 1) / g.block;
  const float* sa = g.a_scale + (mine ? m / g.a_scale_rows : 0) * KB;
  const float* sb = g.b_scale + (mine ? n / g.b_scale_rows : 0) * KB;
  const bool limited = g.accumulation == Fp8Accumulation::limited;
  const bool limited_promoted = g.accumulation == Fp8Accumulation::limited_promoted;
  float c = 0.0f;
  for (int64_t kb = 0; kb < KB; kb++) {
    const int64_t k0 = kb * g.block, k1 = k0 + g.block < g.K ? k0 + g.block : g.K;
    const float s = mine && limited ? __fmul_rn(sa[kb], sb[kb]) : 0.0f;
    float p = 0.0f;
    for (int64_t kk = k0; kk < k1; kk += kFp8GemmSlice) {
      const int kw = (int)(k1 - kk < kFp8GemmSlice ? k1 - kk : kFp8GemmSlice);
      for (int e = tid; e < kFp8GemmTile * kFp8GemmSlice; e += kFp8GemmTile * kFp8GemmTile) {
        const int row = e / kFp8GemmSlice, col = e % kFp8GemmSlice;
        const bool in_k = col < kw;
        a_slice[row][col] = in_k && m0 + row < g.M ? lowp::e4m3_to_f32(g.a[(m0 + row) * g.K + kk + col]) : 0.0f;
        b_slice[row][col] = in_k && n0 + row < g.N ? lowp::e4m3_to_f32(g.b[(n0 + row) * g.K + kk + col]) : 0.0f;
      }
      __syncthreads();
      if (mine) {
        for (int k = 0; k < kw; k++) {
          const float prod = __fmul_rn(a_slice[ty][k], b_slice[tx][k]);
          if (limited) {
            c = lowp::truncate_to_bits(__fadd_rn(c, __fmul_rn(prod, s)), g.accum_bits);
          } else {
            p = __fadd_rn(p, prod);
            if (limited_promoted) p = lowp::truncate_to_bits(p, g.accum_bits);
          }
        }
      }
      __syncthreads();  // the slices are overwritten next
    }
    if (mine && !limited) c = __fadd_rn(c, __fmul_rn(__fmul_rn(p, sa[kb]), sb[kb]));
  }
  if (mine) g.c[m * g.N + n] = c;
}

inline void fp8_check(bool ok, const char* kernel, const std::string& what) {
  if (!ok) throw std::runtime_error(std::string("[cuda] ") + kernel + ": " + what);
}

inline void fp8_check_dims(const char* kernel, int64_t a, int64_t b, int64_t block) {
  fp8_check(a >= 0 && b >= 0 && block >= 1, kernel,
            "need non-negative sizes and block >= 1, got [" + std::to_string(a) + ", " + std::to_string(b) +
                "] with block " + std::to_string(block));
}

// At most 65535 blocks for the dequantization kernels; the grid-stride loops cover the rest.
constexpr int kFp8DequantThreads = 256;
inline unsigned fp8_dequant_grid(int64_t n) {
  const unsigned g = grid_for(n, kFp8DequantThreads);
  return g > 65535u ? 65535u : g;
}

void act_quant_f32(const Fp8ActQuantArgs& a) {
  fp8_check_dims("act_quant_f32", a.rows, a.K, a.block);
  if (a.rows == 0 || a.K == 0) return;
  fp8_check(a.x && a.codes && a.scales, "act_quant_f32", "x, codes and scales must not be null");
  const int64_t tiles = a.rows * ((a.K + a.block - 1) / a.block);
  launch_kernel("act_quant_f32", dim3(grid_for(tiles, 1)), dim3(kFp8QuantThreads), act_quant_kernel, a);
}

void weight_quant_f32(const Fp8WeightQuantArgs& a) {
  fp8_check_dims("weight_quant_f32", a.N, a.K, a.block);
  if (a.N == 0 || a.K == 0) return;
  fp8_check(a.w && a.codes && a.scale_inv, "weight_quant_f32", "w, codes and scale_inv must not be null");
  const int64_t blocks = ((a.N + a.block - 1) / a.block) * ((a.K + a.block - 1) / a.block);
  launch_kernel("weight_quant_f32", dim3(grid_for(blocks, 1)), dim3(kFp8QuantThreads), weight_quant_kernel, a);
}

void act_dequant_f32(const Fp8ActDequantArgs& a) {
  fp8_check_dims("act_dequant_f32", a.rows, a.K, a.block);
  if (a.rows == 0 || a.K == 0) return;
  fp8_check(a.codes && a.scales && a.out, "act_dequant_f32", "codes, scales and out must not be null");
  launch_kernel("act_dequant_f32", dim3(fp8_dequant_grid(a.rows * a.K)), dim3(kFp8DequantThreads), act_dequant_kernel, a);
}

void weight_dequant_f32(const Fp8WeightDequantArgs& a) {
  fp8_check_dims("weight_dequant_f32", a.N, a.K, a.block);
  if (a.N == 0 || a.K == 0) return;
  fp8_check(a.codes && a.scale_inv && a.out, "weight_dequant_f32", "codes, scale_inv and out must not be null");
  launch_kernel("weight_dequant_f32", dim3(fp8_dequant_grid(a.N * a.K)), dim3(kFp8DequantThreads), weight_dequant_kernel,
                a);
}

// The CPU's argument rules (ops/cpu/fp8_gemm.cpp check_fp8_gemm_args), as "[cuda] fp8_gemm: ..." errors; and
// a grid of at most 65535 tile rows (M ≤ 1048560).
void fp8_gemm(const Fp8GemmArgs& g) {
  const char* k = "fp8_gemm";
  fp8_check(g.M >= 0 && g.N >= 0 && g.K >= 0, k,
            "negative size M=" + std::to_string(g.M) + " N=" + std::to_string(g.N) + " K=" + std::to_string(g.K));
  fp8_check(g.block >= 1, k, "block must be >= 1, got " + std::to_string(g.block));
  fp8_check(g.a_scale_rows == 1 || g.a_scale_rows == g.block, k,
            "a_scale_rows must be 1 or block (" + std::to_string(g.block) + "), got " + std::to_string(g.a_scale_rows));
  fp8_check(g.b_scale_rows == 1 || g.b_scale_rows == g.block, k,
            "b_scale_rows must be 1 or block (" + std::to_string(g.block) + "), got " + std::to_string(g.b_scale_rows));
  fp8_check(g.accum_bits >= 1, k, "accum_bits must be >= 1, got " + std::to_string(g.accum_bits));
  if (g.M == 0 || g.N == 0) return;
  fp8_check(g.c != nullptr, k, "c is null");
  fp8_check(g.K == 0 || (g.a && g.b && g.a_scale && g.b_scale), k, "an operand or scale pointer is null");
  const unsigned tile_rows = grid_for(g.M, kFp8GemmTile);
  fp8_check(tile_rows <= 65535u, k, "M = " + std::to_string(g.M) + " is over the kernel's limit of 65535 tiles of 16 rows");
  launch_kernel("fp8_gemm", dim3(grid_for(g.N, kFp8GemmTile), tile_rows), dim3(kFp8GemmTile, kFp8GemmTile), fp8_gemm_kernel, g);
}

}  // namespace sg::SG_BACKEND_NS
