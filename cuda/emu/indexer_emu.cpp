// cuda/emu/indexer_emu.cpp — the CPU-emulation build of cuda/kernels/indexer.cuh (sg::cuda_emu). Built with
// -ffp-contract=off (CMakeLists.txt), as the CPU kernels' bits assume, so the score's separately rounded
// (q_scale · k_scale) · dot + logit stays separate on a CPU with FMA too, as on the GPU.
#include "cuda/indexer.h"
#include "cuda/kernels/indexer.cuh"
