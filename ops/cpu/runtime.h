// ops/cpu/runtime.h — the CPU backend's run-time switches, in one visible place.
//
//   naive_kernels()  true when SEEKGRAD_NAIVE=1: every CPU kernel takes its plain loop,
//                    so a student can step through the simple version in gdb.
//   cpu_has_avx512() / cpu_has_avx2_fma(): the CPU's features, read once at run time, so one
//                    binary runs the widest SIMD micro-kernel the machine has.
//
// Threads (num_threads, parallel_for) are the engine's, not the CPU backend's: autograd/runtime.h.
//
// What this is not: a configuration system. Two switches and two feature bits.
#pragma once

namespace sg {

bool naive_kernels();
void set_naive_kernels(bool on);

bool cpu_has_avx512();
bool cpu_has_avx2_fma();

}  // namespace sg
