// cuda/attention.cu — the GPU build of cuda/kernels/attention.cuh (sg::cuda).
#include "cuda/attention.h"
#include "cuda/kernels/attention.cuh"
