// tests/cuda/emu_test_util.h — what the kernel-vs-CPU emulation tests (tests/cuda/test_*_emu.cpp) share:
// random inputs, a bit-for-bit comparison, and a scope that switches the CPU kernels to their plain loops.
#pragma once
#include <cstdint>
#include <cstring>
#include <vector>

#include "autograd/rng.h"
#include "ops/cpu/runtime.h"

namespace sg::test::emu {

// n floats uniform in [lo, hi) from `seed` (never all zero for lo < hi).
inline std::vector<float> random_values(int64_t n, uint64_t seed, double lo, double hi) {
  sg::Rng rng(seed);
  std::vector<float> v((size_t)n);
  for (float& x : v) x = (float)rng.uniform(lo, hi);
  return v;
}

template <class T> bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
  // (empty: no memcmp, whose pointers must not be null even for 0 bytes — UBSan)
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0);
}

// SEEKGRAD_NAIVE for the scope's lifetime (the CPU kernels' plain loops), restored after.
struct NaiveScope {
  bool saved = sg::naive_kernels();
  explicit NaiveScope(bool on) { sg::set_naive_kernels(on); }
  ~NaiveScope() { sg::set_naive_kernels(saved); }
  NaiveScope(const NaiveScope&) = delete;
  NaiveScope& operator=(const NaiveScope&) = delete;
};

}  // namespace sg::test::emu
