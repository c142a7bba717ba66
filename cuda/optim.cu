// cuda/optim.cu — the GPU build of cuda/kernels/optim.cuh (sg::cuda).
#include "cuda/optim.h"
#include "cuda/kernels/optim.cuh"
