// cuda/emu/reduce_emu.cpp — the CPU-emulation build of cuda/kernels/reduce.cuh (sg::cuda_emu).
#include "cuda/reduce.h"
#include "cuda/kernels/reduce.cuh"
