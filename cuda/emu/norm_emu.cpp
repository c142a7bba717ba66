// cuda/emu/norm_emu.cpp — the CPU-emulation build of cuda/kernels/norm.cuh (sg::cuda_emu).
#include "cuda/norm.h"
#include "cuda/kernels/norm.cuh"
