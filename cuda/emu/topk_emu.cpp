// cuda/emu/topk_emu.cpp — the CPU-emulation build of cuda/kernels/topk.cuh (sg::cuda_emu).
#include "cuda/topk.h"
#include "cuda/kernels/topk.cuh"
