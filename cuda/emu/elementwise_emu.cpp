// cuda/emu/elementwise_emu.cpp — the CPU-emulation build of cuda/kernels/elementwise.cuh (sg::cuda_emu).
#include "cuda/elementwise.h"
#include "cuda/kernels/elementwise.cuh"
