// cuda/norm.cu — the GPU build of cuda/kernels/norm.cuh (sg::cuda).
#include "cuda/norm.h"
#include "cuda/kernels/norm.cuh"
