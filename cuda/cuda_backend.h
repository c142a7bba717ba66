// cuda/cuda_backend.h — the CUDA backend's entry points. Built from cuda/*.cu when
// SEEKGRAD_CUDA=ON (nvcc found); otherwise cuda/no_cuda.cpp provides the same functions, each
// throwing "[cuda] this build has no CUDA backend (configure with -DSEEKGRAD_CUDA=ON)".
//
// The device plumbing (devices, memory, copies). The engine reaches it through autograd/device.h (copies) and
// autograd/allocator.h (the caching allocator for device memory); the kernels are cuda/<family>.h, dispatched
// by ops/kernels.h. Launches and copies go to the default stream, so they run in the order they are issued, and
// every copy to the host waits for the kernels before it.
#pragma once
#include <cstddef>
#include <string>

namespace sg::cuda {

bool available();                 // built with CUDA and at least one device present
int device_count();               // 0 when no driver/device
std::string device_name(int device);
void* device_malloc(size_t nbytes);
void device_free(void* ptr);
void copy_host_to_device(void* dst, const void* src, size_t nbytes);
void copy_device_to_host(void* dst, const void* src, size_t nbytes);
void copy_device_to_device(void* dst, const void* src, size_t nbytes);
// y[i] = a * x[i] + y[i] on the device; the smallest kernel that proves the toolchain end to end.
void saxpy(size_t n, float a, const float* x, float* y);

}  // namespace sg::cuda
