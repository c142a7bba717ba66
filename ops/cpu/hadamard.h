// ops/cpu/hadamard.h — the Walsh–Hadamard rotation of DeepSeek-V3.2's lightning indexer
// (rotate_activation: x · H_n / √n before FP8 quantization, models/README.md §9) as a plain CPU loop
// over raw, contiguous, row-major pointers.
//
//   H_1 = [1],  H_2n = [[H_n, H_n], [H_n, −H_n]]   (Sylvester order: H[i][j] = (−1)^popcount(i & j))
//   y[r, :] = x[r, :] · H_n / √n   for each of `rows` rows of n values, n a power of two
//
// H_n / √n is symmetric and orthonormal, so the rotation is its own inverse and its own transpose: it
// keeps every dot product (q·k unchanged in exact arithmetic) and spreads an outlier channel over all
// n channels, which is what makes a per-128 FP8 scale fit the values. Computed as the fast transform
// (log2 n butterfly passes (a, b) → (a + b, a − b), then one multiply by 1/√n): O(n log n) per row.
// Sums in the element type (float / double); deterministic and single-threaded.
//
// What it is not: an autograd op (ops/nn.h hadamard_rotate is), or a transform for n not a power of
// two (refused with an error naming n).
#pragma once
#include <cstdint>

namespace sg::cpu {

// True for n = 1, 2, 4, 8, ...
bool is_power_of_two(int64_t n);

// y [rows, n] = x [rows, n] · H_n / √n. x and y may be the same buffer. Throws std::invalid_argument
// ("hadamard_rotate: n = 6 is not a power of two ...") for n not a power of two.
void hadamard_rotate_f32(const float* x, int64_t rows, int64_t n, float* y);
void hadamard_rotate_f64(const double* x, int64_t rows, int64_t n, double* y);

}  // namespace sg::cpu
