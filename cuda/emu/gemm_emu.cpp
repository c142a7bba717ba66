// cuda/emu/gemm_emu.cpp — the CPU-emulation build of cuda/kernels/gemm.cuh (sg::cuda_emu).
#include "cuda/gemm.h"
#include "cuda/kernels/gemm.cuh"
