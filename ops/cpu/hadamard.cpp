// ops/cpu/hadamard.cpp — the fast Walsh–Hadamard rotation of ops/cpu/hadamard.h.
#include "ops/cpu/hadamard.h"

#include <cmath>
#include <stdexcept>
#include <string>

namespace sg::cpu {

bool is_power_of_two(int64_t n) { return n > 0 && (n & (n - 1)) == 0; }

namespace {

template <class T>
void rotate(const char* fn, const T* x, int64_t rows, int64_t n, T* y) {
  if (rows < 0 || !is_power_of_two(n))
    throw std::invalid_argument(std::string(fn) + ": n = " + std::to_string(n) + " (rows " + std::to_string(rows) +
                                ") is not a power of two; the Sylvester Hadamard matrix H_n exists for n = 2^m only");
  const T scale = T(1) / std::sqrt(T(n));
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = x + r * n;
    T* yr = y + r * n;
    if (yr != xr)
      for (int64_t i = 0; i < n; ++i) yr[i] = xr[i];
    // Pass h: within every block of 2h, (a, b) = (y[i], y[i+h]) -> (a + b, a − b). After the passes
    // h = 1, 2, ..., n/2 the row is x · H_n (Sylvester order; H is symmetric, so x·H = H·x).
    for (int64_t h = 1; h < n; h *= 2)
      for (int64_t i0 = 0; i0 < n; i0 += 2 * h)
        for (int64_t i = i0; i < i0 + h; ++i) {
          const T a = yr[i], b = yr[i + h];
          yr[i] = a + b;
          yr[i + h] = a - b;
        }
    for (int64_t i = 0; i < n; ++i) yr[i] *= scale;
  }
}

}  // namespace

void hadamard_rotate_f32(const float* x, int64_t rows, int64_t n, float* y) {
  rotate("hadamard_rotate_f32", x, rows, n, y);
}
void hadamard_rotate_f64(const double* x, int64_t rows, int64_t n, double* y) {
  rotate("hadamard_rotate_f64", x, rows, n, y);
}

}  // namespace sg::cpu
