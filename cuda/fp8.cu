// cuda/fp8.cu — the GPU build of cuda/kernels/fp8.cuh (sg::cuda).
#include "cuda/fp8.h"
#include "cuda/kernels/fp8.cuh"
