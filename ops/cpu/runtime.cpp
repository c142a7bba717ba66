// ops/cpu/runtime.cpp — see runtime.h.
#include "ops/cpu/runtime.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <thread>
#ifdef _OPENMP
#include <omp.h>
#endif

namespace sg {

namespace {
int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  return std::atoi(v);
}
// Settings live in one struct, initialised from the environment the first time they are read.
struct CpuRuntime {
  std::atomic<bool> naive{env_int("SEEKGRAD_NAIVE", 0) != 0};
  std::atomic<int> threads{std::max(1, env_int("SEEKGRAD_THREADS", (int)std::max(1u, std::thread::hardware_concurrency())))};
};
CpuRuntime& runtime() {
  static CpuRuntime r;
  return r;
}
}  // namespace

bool naive_kernels() { return runtime().naive.load(std::memory_order_relaxed); }
void set_naive_kernels(bool on) { runtime().naive = on; }
int num_threads() { return runtime().threads.load(std::memory_order_relaxed); }
void set_num_threads(int n) { runtime().threads = std::max(1, n); }

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

void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  int64_t threads = std::min<int64_t>(num_threads(), n / grain);
#ifdef _OPENMP
  if (threads >= 2 && !omp_in_parallel()) {
#pragma omp parallel num_threads((int)threads)
    {
      int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
      int64_t begin = n * t / nt, end = n * (t + 1) / nt;
      if (begin < end) fn(begin, end);
    }
    return;
  }
#endif
  (void)threads;
  fn(0, n);
}

}  // namespace sg
