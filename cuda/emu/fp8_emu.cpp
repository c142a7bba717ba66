// cuda/emu/fp8_emu.cpp — the CPU-emulation build of cuda/kernels/fp8.cuh (sg::cuda_emu). Built with
// -ffp-contract=off (CMakeLists.txt), as ops/cpu/fp8_gemm.cpp is, so the GEMM's separately rounded promotion
// (p·s_a)·s_b + c stays separate here too.
#include "cuda/fp8.h"
#include "cuda/kernels/fp8.cuh"
