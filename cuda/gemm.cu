// cuda/gemm.cu — the GPU build of cuda/kernels/gemm.cuh (sg::cuda).
#include "cuda/gemm.h"
#include "cuda/kernels/gemm.cuh"
