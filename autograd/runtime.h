// autograd/runtime.h — how the engine runs work in parallel, in one visible place.
//
//   num_threads()    threads used by parallel_for (default: hardware threads; SEEKGRAD_THREADS=n).
//                    Precedence, highest first: the command line (--threads), the environment
//                    (SEEKGRAD_THREADS), a config file (train.threads), the default — set_num_threads(n, from)
//                    applies a setting only if nothing of higher precedence set it already.
//   parallel_for()   the ONE way seekgrad code runs in parallel: one process-wide pool of threads
//                    that wait passively (runtime.cpp says why); nothing else creates compute threads.
//
// It lives in the engine layer (autograd/, std only) because every layer above uses it: the CPU
// kernels (ops/cpu/), the optimizer kernels, the trainer's thread setting. The CPU backend's own
// switches (SEEKGRAD_NAIVE, the CPU's SIMD features) are in ops/cpu/runtime.h; the devices and the CUDA
// emulation switch (SEEKGRAD_CUDA_EMU) in autograd/device.h.
//
// Determinism (same inputs => same bits on any thread count): which thread runs a chunk never matters,
// but HOW MANY chunks [0, n) is cut into does — it follows num_threads(). So a kernel must not let a
// chunk boundary change its arithmetic: each output is computed whole inside one chunk (rows, columns,
// elements: every kernel in ops/cpu/), or, when a sum must be split (the grad norm, a GEMM cut along K),
// the kernel fixes the pieces from the problem size alone and adds them in a fixed order; the threads
// only decide who computes which piece. Never cut a sum at n·t/num_threads().
// tests/ops/test_thread_determinism.cpp and tests/train/test_thread_determinism.cpp check 1..4 threads.
//
// What this is not: a scheduler. Work is split into contiguous static chunks, which is what
// kernels over dense buffers want and what a debugger can follow.
#pragma once
#include <cstdint>
#include <functional>

namespace sg {

// Where the thread count came from, highest precedence first.
enum class ThreadsFrom : uint8_t { command_line, environment, config, default_value };
const char* threads_from_name(ThreadsFrom from);  // "--threads", "SEEKGRAD_THREADS", "train.threads", "default"

// num_threads() reads SEEKGRAD_THREADS the first time; a value that is not a positive integer throws
// "[threads] SEEKGRAD_THREADS='abc' is not a positive integer".
int num_threads();
ThreadsFrom num_threads_from();
// Sets the count unless a setting of higher precedence is in force (then returns false and changes nothing).
// n < 1 throws "[threads] <from>: n = 0 must be >= 1".
bool set_num_threads(int n, ThreadsFrom from);
// Sets the count unconditionally (a test or a benchmark that owns the setting); keeps where it came from.
void set_num_threads(int n);
// Tests only: forget where the count came from (so a test can start from any precedence and restore it after).
void set_num_threads_source_for_tests(ThreadsFrom from);

// Calls fn(begin, end) on disjoint sub-ranges covering [0, n). Ranges hold at least `grain`
// items; if n < 2*grain (or one thread) fn(0, n) runs on the calling thread.
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

}  // namespace sg
