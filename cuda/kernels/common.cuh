// cuda/kernels/common.cuh — what every kernel header includes: the CUDA names, one launch function, and the
// namespace its host functions land in.
//
// Each cuda/kernels/<family>.cuh holds a family's __global__ kernels AND the host functions that launch them
// (`void rms_norm_forward(const RmsNormArgs<float>&)`), written once and compiled twice:
//   by nvcc, from cuda/<family>.cu            -> namespace sg::cuda      (the GPU backend; pointers are device memory)
//   by g++,  from cuda/emu/<family>_emu.cpp   -> namespace sg::cuda_emu  (the same code on the CPU, fibers per lane;
//                                                                        pointers are host memory)
// (and in a build without nvcc, cuda/<family>.cu is compiled by g++ with SEEKGRAD_CUDA_STUB: sg::cuda's
// functions exist and each launch throws "this build has no CUDA backend").
// SG_BACKEND_NS is that namespace: the one macro this needs, so the two copies never collide in one binary.
// The kernels' arguments are the plain structs of ops/kernel_abi/*.h, shared with the CPU kernels' dispatch.
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>

#if defined(__CUDACC__)
#include <cuda_runtime.h>
#define SG_BACKEND_NS cuda
#elif defined(SEEKGRAD_CUDA_STUB)
#include "cuda/emu/device_api.h"   // a build with no nvcc: sg::cuda's launches say so (CMakeLists.txt)
#define SG_BACKEND_NS cuda
#else
#include "cuda/emu/emu.h"
#define SG_BACKEND_NS cuda_emu
#endif

#include "ops/scalar_math.h"

namespace sg::SG_BACKEND_NS {

// Launches kernel<<<grid, block>>>(args...) on the GPU (checked: a launch error names the kernel), or runs it
// through the fiber emulator (cuda/emu/emu.h) on the CPU.
template <class... KernelArgs, class... Args>
void launch_kernel(const char* name, dim3 grid, dim3 block, void (*kernel)(KernelArgs...), Args... args) {
#if defined(__CUDACC__)
  kernel<<<grid, block>>>(args...);
  cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) throw std::runtime_error(std::string("[cuda] ") + name + " launch: " + cudaGetErrorString(err));
#elif defined(SEEKGRAD_CUDA_STUB)
  throw std::runtime_error(std::string("[cuda] ") + name + ": this build has no CUDA backend (configure with -DSEEKGRAD_CUDA=ON)");
#else
  sg::emu::launch(name, grid, block, kernel, args...);
#endif
}

// ceil(n / d) as the unsigned grid dimension CUDA takes; n = 0 still launches one block (kernels check bounds).
inline unsigned grid_for(int64_t n, int64_t d) {
  int64_t g = (n + d - 1) / d;
  if (g < 1) g = 1;
  if (g > 0x7fffffff) throw std::runtime_error("[cuda] a grid of " + std::to_string(g) + " blocks is over CUDA's limit");
  return (unsigned)g;
}

}  // namespace sg::SG_BACKEND_NS
