// cuda/topk.cu — the GPU build of cuda/kernels/topk.cuh (sg::cuda).
#include "cuda/topk.h"
#include "cuda/kernels/topk.cuh"
