// cuda/emu/wmma.h — nvcuda::wmma (CUDA's warp matrix multiply-accumulate, <mma.h>) for the CPU emulation: the
// part the tensor-core GEMM (cuda/kernels/gemm.cuh, gemm_v4_mma) uses, the m16n16k8 shape with TF32 inputs and
// f32 accumulators. Included by gemm.cuh in the emulation build only (nvcc has the real <mma.h>; the build
// without nvcc, SEEKGRAD_CUDA_STUB, launches nothing).
//
// Why the emulation may differ from the GPU inside a fragment: CUDA documents the mapping of a fragment's
// elements to the lanes of a warp as unspecified. A kernel that touches fragments only through fill_fragment,
// load_matrix_sync, mma_sync and store_matrix_sync (and, if at all, element-wise through num_elements and x[],
// the same operation on every element) cannot observe that mapping. So here EVERY lane holds the whole tile:
//   load_matrix_sync    each lane reads all rows × cols of the tile from memory (leading dimension ldm)
//   mma_sync            each lane computes all of D = A·B + C                        (the arithmetic: below)
//   store_matrix_sync   each lane writes the whole tile; the lanes write the same values, and the emulator's
//                       lanes run one at a time, so that is no race
// num_elements is therefore rows × cols (128 or 256 floats), not the GPU's 4 or 8 per lane: a kernel that
// assumes the GPU's per-lane count relies on the layout and is wrong on some GPU too. A lane's fragments live on
// its fiber stack (256 KiB per lane, cuda/emu/emu.cpp): v4 keeps 8 accumulators and 6 operand fragments,
// 8·1 KiB + 6·512 B = 11 KiB.
//
// Each of the four functions meets the lane's warp first (a __syncwarp: every running lane of the warp arrives),
// as the GPU's *_sync functions must be reached by the whole warp together: a warp whose lanes reach them
// apart (one at __syncthreads, one at mma_sync) is the emulator's stuck-barrier error, not a silent pass.
// Like the GPU, load_matrix_sync and store_matrix_sync refuse a pointer that is not 32-byte aligned or an ldm
// that is not a multiple of 4 floats (the GPU faults or gives garbage; here it is an exception naming them).
//
// The arithmetic of mma_sync, for each (i, j):  d = C[i,j];  for k = 0..7: d = d + A[i,k]·B[k,j]   (f32, in order)
// A and B are TF32 values (the kernel rounds them with __float_to_tf32 before the load; an operand with bits in
// its low 13 is truncated to TF32 here: the CUDA documentation leaves an unconverted operand unspecified). The
// product of two TF32 values has at most 11 + 11 = 22 significant bits, so it is exact in f32 (barring underflow
// below 2^-126 and overflow), and a fused multiply-add would give the same bits: one rounding per addition.
// Over a whole GEMM this is the CPU naive loop (ops/cpu/gemm.cpp) on the TF32-rounded inputs, k ascending. Real
// tensor cores sum the 8 products in an order and with internal precision NVIDIA does not document, so the
// GPU's bits differ: the tests compare the emulation bit for bit with that loop, and the GPU within a bound.
//
// Only the one shape: any other fragment, or a function given fragments it does not support, is a compile
// error (a static_assert naming the function), not a silent wrong answer.
#pragma once
#if defined(__CUDACC__)
#error "cuda/emu/wmma.h is the CPU emulation of nvcuda::wmma; nvcc has the real <mma.h>"
#endif
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "cuda/emu/device_api.h"

namespace nvcuda::wmma {

// The fragment kinds (CUDA's tag types) and the memory layouts.
struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };
namespace precision {
struct tf32 {};
}  // namespace precision

// Rounds f32 to TF32 (1 sign, 8 exponent, 10 mantissa bits), returned as the f32 whose low 13 bits are zero.
// CUDA's __float_to_tf32 is PTX `cvt.rna.tf32.f32` (crt/mma.h in the CUDA toolkit): .rna is round to nearest,
// ties AWAY from zero (not ties to even, as f32 arithmetic rounds). On the bits of a finite value that is:
// add half of the dropped 13 bits' place (0x1000) to the magnitude and clear them — the carry runs into the
// exponent when the mantissa is all ones (1.9995 → 2), subnormals round on the same uniform grid (and the largest
// ones up into the smallest normal), and values at or above max_tf32 + half an ulp become infinity.
// Infinity stays infinity. NaN stays a NaN (quiet, sign and high payload kept): our choice, since masking
// alone would turn a NaN whose payload lies only in the low 13 bits into infinity, and the PTX documentation
// does not promise a NaN's payload.
inline float __float_to_tf32(float in) {
  uint32_t u;
  std::memcpy(&u, &in, sizeof u);
  if ((u & 0x7f800000u) == 0x7f800000u) {          // infinity or NaN
    if (u & 0x007fffffu) u = (u & 0xffffe000u) | 0x00400000u;
  } else {
    u = (u + 0x1000u) & 0xffffe000u;
  }
  float out;
  std::memcpy(&out, &u, sizeof out);
  return out;
}

namespace detail {

template <class Use, int M, int N, int K, class T, class Layout>
constexpr bool kOperand = M == 16 && N == 16 && K == 8 && (std::is_same_v<Use, matrix_a> || std::is_same_v<Use, matrix_b>) &&
                          std::is_same_v<T, precision::tf32> &&
                          (std::is_same_v<Layout, row_major> || std::is_same_v<Layout, col_major>);
template <class Use, int M, int N, int K, class T, class Layout>
constexpr bool kAccumulator = M == 16 && N == 16 && K == 8 && std::is_same_v<Use, accumulator> && std::is_same_v<T, float> &&
                              std::is_same_v<Layout, void>;

// The value as the tensor core reads a TF32 operand: the low 13 bits dropped.
inline float tf32_bits(float v) {
  uint32_t u;
  std::memcpy(&u, &v, sizeof u);
  u &= 0xffffe000u;
  std::memcpy(&v, &u, sizeof v);
  return v;
}

// The GPU requires a 256-bit aligned tile pointer and ldm a multiple of 16 bytes (4 floats) for f32 and TF32.
inline void check_tile(const char* fn, const void* p, unsigned ldm, int min_ldm) {
  if (reinterpret_cast<uintptr_t>(p) % 32 != 0)
    throw std::runtime_error(std::string("wmma::") + fn + ": the tile pointer is not 32-byte aligned (CUDA requires 256 bits)");
  if (ldm % 4 != 0 || (int)ldm < min_ldm)
    throw std::runtime_error(std::string("wmma::") + fn + ": ldm=" + std::to_string(ldm) +
                             " is not a multiple of 4 floats of at least " + std::to_string(min_ldm));
}

}  // namespace detail

// One warp's tile: matrix_a is M × K, matrix_b is K × N, the accumulator M × N, all of it in every lane.
template <class Use, int M, int N, int K, class T, class Layout = void>
class fragment {
  static_assert(detail::kOperand<Use, M, N, K, T, Layout> || detail::kAccumulator<Use, M, N, K, T, Layout>,
                "wmma::fragment (CPU emulation, cuda/emu/wmma.h): only m16n16k8 with precision::tf32 matrix_a / "
                "matrix_b (row_major or col_major) and a float accumulator (no layout)");

 public:
  static constexpr int rows = std::is_same_v<Use, matrix_b> ? K : M;
  static constexpr int cols = std::is_same_v<Use, matrix_a> ? K : N;
  enum { num_elements = rows * cols };
  using element_type = T;
  using storage_element_type = float;
  float x[num_elements];   // row-major [rows][cols] here; on the GPU each lane holds an unspecified few of them
};

template <class Use, int M, int N, int K, class T, class Layout, class V>
inline void fill_fragment(fragment<Use, M, N, K, T, Layout>& f, const V& v) {
  __syncwarp();
  for (int e = 0; e < f.num_elements; e++) f.x[e] = (float)v;
}

// An operand tile: element (r, c) at p[r·ldm + c] (row_major) or p[c·ldm + r] (col_major).
template <class Use, int M, int N, int K, class T, class Layout>
inline void load_matrix_sync(fragment<Use, M, N, K, T, Layout>& f, const float* p, unsigned ldm) {
  static_assert(detail::kOperand<Use, M, N, K, T, Layout>,
                "wmma::load_matrix_sync(fragment, p, ldm) (CPU emulation): a matrix_a / matrix_b fragment; an "
                "accumulator needs the layout argument");
  using F = fragment<Use, M, N, K, T, Layout>;
  constexpr bool row = std::is_same_v<Layout, row_major>;
  __syncwarp();
  detail::check_tile("load_matrix_sync", p, ldm, row ? F::cols : F::rows);
  for (int r = 0; r < F::rows; r++)
    for (int c = 0; c < F::cols; c++) f.x[r * F::cols + c] = row ? p[(int64_t)r * ldm + c] : p[(int64_t)c * ldm + r];
}

// An accumulator tile, its memory layout given at run time.
template <class Use, int M, int N, int K, class T, class Layout>
inline void load_matrix_sync(fragment<Use, M, N, K, T, Layout>& f, const float* p, unsigned ldm, layout_t layout) {
  static_assert(detail::kAccumulator<Use, M, N, K, T, Layout>,
                "wmma::load_matrix_sync(fragment, p, ldm, layout) (CPU emulation): an m16n16k8 float accumulator");
  using F = fragment<Use, M, N, K, T, Layout>;
  __syncwarp();
  detail::check_tile("load_matrix_sync", p, ldm, layout == mem_row_major ? F::cols : F::rows);
  for (int r = 0; r < F::rows; r++)
    for (int c = 0; c < F::cols; c++)
      f.x[r * F::cols + c] = layout == mem_row_major ? p[(int64_t)r * ldm + c] : p[(int64_t)c * ldm + r];
}

template <class Use, int M, int N, int K, class T, class Layout>
inline void store_matrix_sync(float* p, const fragment<Use, M, N, K, T, Layout>& f, unsigned ldm, layout_t layout) {
  static_assert(detail::kAccumulator<Use, M, N, K, T, Layout>,
                "wmma::store_matrix_sync (CPU emulation): an m16n16k8 float accumulator");
  using F = fragment<Use, M, N, K, T, Layout>;
  __syncwarp();
  detail::check_tile("store_matrix_sync", p, ldm, layout == mem_row_major ? F::cols : F::rows);
  for (int r = 0; r < F::rows; r++)
    for (int c = 0; c < F::cols; c++)
      (layout == mem_row_major ? p[(int64_t)r * ldm + c] : p[(int64_t)c * ldm + r]) = f.x[r * F::cols + c];
}

// D = A·B + C, each element d = C[i,j] + Σ_k A[i,k]·B[k,j] summed k = 0..K-1 in f32 (the top of this file says
// why that order and why it is the exact-product sum). d may be c (v4 accumulates in place): element (i, j) of C
// is read once, before element (i, j) of D is written, and no other element of D reads it.
template <int M, int N, int K, class LayoutA, class LayoutB>
inline void mma_sync(fragment<accumulator, M, N, K, float>& d, const fragment<matrix_a, M, N, K, precision::tf32, LayoutA>& a,
                     const fragment<matrix_b, M, N, K, precision::tf32, LayoutB>& b,
                     const fragment<accumulator, M, N, K, float>& c) {
  static_assert(detail::kOperand<matrix_a, M, N, K, precision::tf32, LayoutA> &&
                    detail::kOperand<matrix_b, M, N, K, precision::tf32, LayoutB>,
                "wmma::mma_sync (CPU emulation): m16n16k8, TF32 operands, a float accumulator");
  __syncwarp();
  float at[M * K], bt[K * N];
  for (int e = 0; e < M * K; e++) at[e] = detail::tf32_bits(a.x[e]);
  for (int e = 0; e < K * N; e++) bt[e] = detail::tf32_bits(b.x[e]);
  for (int i = 0; i < M; i++)
    for (int j = 0; j < N; j++) {
      float sum = c.x[i * N + j];
      for (int k = 0; k < K; k++) sum = sum + at[i * K + k] * bt[k * N + j];
      d.x[i * N + j] = sum;
    }
}

}  // namespace nvcuda::wmma
