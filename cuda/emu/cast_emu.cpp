// cuda/emu/cast_emu.cpp — the CPU-emulation build of cuda/kernels/cast.cuh (sg::cuda_emu).
#include "cuda/cast.h"
#include "cuda/kernels/cast.cuh"
