// cuda/no_cuda.cpp — the CUDA backend when the build has none: every call explains how to get one.
#include <stdexcept>

#include "cuda/cuda_backend.h"

namespace sg::cuda {

[[noreturn]] static void no_cuda() {
  throw std::runtime_error("[cuda] this build has no CUDA backend (configure with -DSEEKGRAD_CUDA=ON)");
}

bool available() { return false; }
int device_count() { return 0; }
std::string device_name(int) { no_cuda(); }
void* device_malloc(size_t) { no_cuda(); }
void device_free(void*) { no_cuda(); }
void copy_host_to_device(void*, const void*, size_t) { no_cuda(); }
void copy_device_to_host(void*, const void*, size_t) { no_cuda(); }
void copy_device_to_device(void*, const void*, size_t) { no_cuda(); }
void synchronize() { no_cuda(); }
DeviceProperties device_properties(int) { no_cuda(); }
void saxpy(size_t, float, const float*, float*) { no_cuda(); }

}  // namespace sg::cuda
