// cuda/reduce.cu — the GPU build of cuda/kernels/reduce.cuh (sg::cuda).
#include "cuda/reduce.h"
#include "cuda/kernels/reduce.cuh"
