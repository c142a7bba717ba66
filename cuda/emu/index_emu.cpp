// cuda/emu/index_emu.cpp — the CPU-emulation build of cuda/kernels/index.cuh (sg::cuda_emu).
#include "cuda/index.h"
#include "cuda/kernels/index.cuh"
