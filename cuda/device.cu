// cuda/device.cu — CUDA device plumbing: devices, memory, copies, and one checked kernel.
// Every CUDA error becomes an exception naming the call: "[cuda] cudaMalloc(1048576 bytes): out of memory".
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "cuda/cuda_backend.h"

namespace sg::cuda {

static void check(cudaError_t err, const std::string& what) {
  if (err != cudaSuccess) throw std::runtime_error("[cuda] " + what + ": " + cudaGetErrorString(err));
}

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) return 0;
  return n;
}

bool available() { return device_count() > 0; }

std::string device_name(int device) {
  cudaDeviceProp prop{};
  check(cudaGetDeviceProperties(&prop, device), "cudaGetDeviceProperties(" + std::to_string(device) + ")");
  return prop.name;
}

void* device_malloc(size_t nbytes) {
  void* p = nullptr;
  check(cudaMalloc(&p, nbytes), "cudaMalloc(" + std::to_string(nbytes) + " bytes)");
  return p;
}

void device_free(void* ptr) { check(cudaFree(ptr), "cudaFree"); }

void copy_host_to_device(void* dst, const void* src, size_t nbytes) {
  check(cudaMemcpy(dst, src, nbytes, cudaMemcpyHostToDevice), "cudaMemcpy host->device");
}

void copy_device_to_host(void* dst, const void* src, size_t nbytes) {
  check(cudaMemcpy(dst, src, nbytes, cudaMemcpyDeviceToHost), "cudaMemcpy device->host");
}

void copy_device_to_device(void* dst, const void* src, size_t nbytes) {
  check(cudaMemcpy(dst, src, nbytes, cudaMemcpyDeviceToDevice), "cudaMemcpy device->device");
}

void synchronize() { check(cudaDeviceSynchronize(), "cudaDeviceSynchronize"); }

DeviceProperties device_properties(int device) {
  DeviceProperties p;
  p.name = device_name(device);
  const std::string where = "(device " + std::to_string(device) + ")";
  check(cudaDeviceGetAttribute(&p.sm_count, cudaDevAttrMultiProcessorCount, device), "cudaDevAttrMultiProcessorCount" + where);
  check(cudaDeviceGetAttribute(&p.clock_khz, cudaDevAttrClockRate, device), "cudaDevAttrClockRate" + where);
  check(cudaDeviceGetAttribute(&p.major, cudaDevAttrComputeCapabilityMajor, device), "cudaDevAttrComputeCapabilityMajor" + where);
  check(cudaDeviceGetAttribute(&p.minor, cudaDevAttrComputeCapabilityMinor, device), "cudaDevAttrComputeCapabilityMinor" + where);
  cudaDeviceProp prop{};
  check(cudaGetDeviceProperties(&prop, device), "cudaGetDeviceProperties" + where);
  p.memory_bytes = prop.totalGlobalMem;
  return p;
}

// y[i] += a x[i]; one thread per element, grid-stride loop.
__global__ void saxpy_kernel(size_t n, float a, const float* x, float* y) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
    y[i] = a * x[i] + y[i];
}

void saxpy(size_t n, float a, const float* x, float* y) {
  int block = 256;
  int grid = (int)std::min<size_t>((n + block - 1) / block, 65535);
  saxpy_kernel<<<grid, block>>>(n, a, x, y);
  check(cudaGetLastError(), "saxpy launch");
  check(cudaDeviceSynchronize(), "saxpy");
}

}  // namespace sg::cuda
