// cuda/moe.cu — the GPU build of cuda/kernels/moe.cuh (sg::cuda).
#include "cuda/moe.h"
#include "cuda/kernels/moe.cuh"
