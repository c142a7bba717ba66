// cuda/cast.cu — the GPU build of cuda/kernels/cast.cuh (sg::cuda).
#include "cuda/cast.h"
#include "cuda/kernels/cast.cuh"
