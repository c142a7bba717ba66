// cuda/cuda_backend.h — the CUDA backend's entry points. Built from cuda/*.cu when
// SEEKGRAD_CUDA=ON (nvcc found); otherwise cuda/no_cuda.cpp provides the same functions, each
// throwing "[cuda] this build has no CUDA backend (configure with -DSEEKGRAD_CUDA=ON)".
//
// The device plumbing (devices, memory, copies, synchronize, properties). The engine reaches it through autograd/device.h
// (copies) and autograd/allocator.h (the caching allocator for device memory); the kernels are cuda/<family>.h,
// dispatched by ops/kernels.h. Launches and copies go to the default stream, so they run in the order they are issued, and
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
// Waits until every kernel launched so far has finished, and rethrows an error one of them hit. Kernel
// launches return at once: time a kernel as synchronize(); start clock; launch; synchronize(); stop clock.
void synchronize();

// What a device is, for computing its peak throughput (chapter 15): SMs × clock × work per SM per clock.
struct DeviceProperties {
  std::string name;
  int sm_count = 0;            // streaming multiprocessors
  int clock_khz = 0;           // the peak (boost) SM clock
  int major = 0, minor = 0;    // compute capability (8.0 = A100, 9.0 = H100)
  size_t memory_bytes = 0;     // global memory
};
DeviceProperties device_properties(int device);
// y[i] = a * x[i] + y[i] on the device; the smallest kernel that proves the toolchain end to end.
void saxpy(size_t n, float a, const float* x, float* y);

}  // namespace sg::cuda
