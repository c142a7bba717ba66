// cuda/softmax.cu — the GPU build of cuda/kernels/softmax.cuh (sg::cuda).
#include "cuda/softmax.h"
#include "cuda/kernels/softmax.cuh"
