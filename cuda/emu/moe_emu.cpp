// cuda/emu/moe_emu.cpp — the CPU-emulation build of cuda/kernels/moe.cuh (sg::cuda_emu).
#include "cuda/moe.h"
#include "cuda/kernels/moe.cuh"
