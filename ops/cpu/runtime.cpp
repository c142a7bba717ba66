// ops/cpu/runtime.cpp — see runtime.h.
#include "ops/cpu/runtime.h"

#include <atomic>
#include <cstdlib>

namespace sg {

namespace {
// SEEKGRAD_NAIVE=1, read the first time naive_kernels() is called.
std::atomic<bool>& naive_setting() {
  static std::atomic<bool> naive{[] {
    const char* v = std::getenv("SEEKGRAD_NAIVE");
    return v && *v && std::atoi(v) != 0;
  }()};
  return naive;
}
}  // namespace

bool naive_kernels() { return naive_setting().load(std::memory_order_relaxed); }
void set_naive_kernels(bool on) { naive_setting() = on; }

bool cpu_has_avx512() {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  static const bool has = __builtin_cpu_supports("avx512f") != 0;
  return has;
#else
  return false;
#endif
}
bool cpu_has_avx2_fma() {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  static const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return has;
#else
  return false;
#endif
}

}  // namespace sg
