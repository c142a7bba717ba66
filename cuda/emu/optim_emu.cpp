// cuda/emu/optim_emu.cpp — the CPU-emulation build of cuda/kernels/optim.cuh (sg::cuda_emu). Built with
// -ffp-contract=off (CMakeLists.txt), as ops/cpu/optim.cpp is, so the kernels' separately rounded products
// and sums stay separate here too.
#include "cuda/optim.h"
#include "cuda/kernels/optim.cuh"
