// cuda/emu/attention_emu.cpp — the CPU-emulation build of cuda/kernels/attention.cuh (sg::cuda_emu).
#include "cuda/attention.h"
#include "cuda/kernels/attention.cuh"
