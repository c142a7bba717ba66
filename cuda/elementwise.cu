// cuda/elementwise.cu — the GPU build of cuda/kernels/elementwise.cuh (sg::cuda).
#include "cuda/elementwise.h"
#include "cuda/kernels/elementwise.cuh"
