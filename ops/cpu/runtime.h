// ops/cpu/runtime.h — the CPU backend's run-time switches, in one visible place.
//
//   naive_kernels()  true when SEEKGRAD_NAIVE=1: every CPU kernel takes its plain loop,
//                    so a student can step through the simple version in gdb.
//   num_threads()    threads used by parallel_for (default: hardware threads; SEEKGRAD_THREADS=n).
//   cpu_has_avx512() / cpu_has_avx2_fma(): the CPU's features, read once at run time, so one
//                    binary runs the widest SIMD micro-kernel the machine has.
//   parallel_for()   the ONE way CPU code runs in parallel: one process-wide pool of threads that
//                    wait passively (runtime.cpp says why); nothing else creates compute threads.
//
// What this is not: a scheduler. Work is split into contiguous static chunks, which is what
// kernels over dense buffers want and what a debugger can follow.
#pragma once
#include <cstdint>
#include <functional>

namespace sg {

bool naive_kernels();
void set_naive_kernels(bool on);

int num_threads();
void set_num_threads(int n);

bool cpu_has_avx512();
bool cpu_has_avx2_fma();

// Calls fn(begin, end) on disjoint sub-ranges covering [0, n). Ranges hold at least `grain`
// items; if n < 2*grain (or one thread) fn(0, n) runs on the calling thread.
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

}  // namespace sg
