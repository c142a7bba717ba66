// autograd/runtime.h — how the engine runs work in parallel, in one visible place.
//
//   num_threads()    threads used by parallel_for (default: hardware threads; SEEKGRAD_THREADS=n).
//   parallel_for()   the ONE way seekgrad code runs in parallel: one process-wide pool of threads
//                    that wait passively (runtime.cpp says why); nothing else creates compute threads.
//
// It lives in the engine layer (autograd/, std only) because every layer above uses it: the CPU
// kernels (ops/cpu/), the optimizer kernels, the trainer's thread setting. The CPU backend's own
// switches (SEEKGRAD_NAIVE, the CPU's SIMD features) are in ops/cpu/runtime.h.
//
// Determinism: parallel_for cuts [0, n) into the same contiguous chunks whatever thread runs them,
// and a kernel that reduces across chunks adds the partial results in chunk order; kernels that
// must give the same numbers on any thread count (grad norm) fix their chunking themselves instead
// of deriving it from num_threads().
//
// What this is not: a scheduler. Work is split into contiguous static chunks, which is what
// kernels over dense buffers want and what a debugger can follow.
#pragma once
#include <cstdint>
#include <functional>

namespace sg {

int num_threads();
void set_num_threads(int n);

// Calls fn(begin, end) on disjoint sub-ranges covering [0, n). Ranges hold at least `grain`
// items; if n < 2*grain (or one thread) fn(0, n) runs on the calling thread.
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

}  // namespace sg
