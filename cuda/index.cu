// cuda/index.cu — the GPU build of cuda/kernels/index.cuh (sg::cuda).
#include "cuda/index.h"
#include "cuda/kernels/index.cuh"
