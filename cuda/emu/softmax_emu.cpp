// cuda/emu/softmax_emu.cpp — the CPU-emulation build of cuda/kernels/softmax.cuh (sg::cuda_emu).
#include "cuda/softmax.h"
#include "cuda/kernels/softmax.cuh"
