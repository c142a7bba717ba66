// cuda/indexer.cu — the GPU build of cuda/kernels/indexer.cuh (sg::cuda).
#include "cuda/indexer.h"
#include "cuda/kernels/indexer.cuh"
