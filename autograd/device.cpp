// autograd/device.cpp — devices, pools, copies, the CUDA emulation switch. See device.h.
#include "autograd/device.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>

#include "cuda/cuda_backend.h"

namespace sg {

const char* device_name(Device d) {
  switch (d) {
    case Device::CPU: return "cpu";
    case Device::CUDA: return "cuda";
    case Device::Metal: return "metal";
  }
  return "?";
}

namespace {
// SEEKGRAD_CUDA_EMU=1, read the first time cuda_emulation() is called.
std::atomic<bool>& emulation_setting() {
  static std::atomic<bool> on{[] {
    const char* v = std::getenv("SEEKGRAD_CUDA_EMU");
    return v && *v && std::string(v) != "0";
  }()};
  return on;
}
}  // namespace

bool cuda_emulation() { return emulation_setting().load(std::memory_order_relaxed); }
void set_cuda_emulation(bool on) { emulation_setting() = on; }

Device parse_device(const std::string& name, const std::string& where) {
  if (name == "cpu") return Device::CPU;
  if (name == "cuda") {
    if (!cuda_emulation() && !cuda::available())
      throw std::runtime_error(where + ": device 'cuda' but this " +
                               std::string(cuda::device_count() > 0 ? "build has no CUDA backend"
                                                                    : "machine has no CUDA device (or the build has no CUDA backend)") +
                               "; SEEKGRAD_CUDA_EMU=1 runs the CUDA kernels in the CPU emulator (slow: for checking, "
                               "not for speed), or use device 'cpu'");
    return Device::CUDA;
  }
  if (name == "metal") throw std::runtime_error(where + ": device 'metal': this build has no Metal backend");
  throw std::runtime_error(where + ": device '" + name + "' is not one of cpu, cuda");
}

void device_synchronize(Device d) {
  if (d == Device::CUDA && !cuda_emulation()) cuda::synchronize();
}

std::string describe_device(Device d) {
  if (d != Device::CUDA) return device_name(d);
  if (cuda_emulation()) return "cuda (emulated on the CPU: SEEKGRAD_CUDA_EMU)";
  const cuda::DeviceProperties p = cuda::device_properties(0);
  char mem[32];
  std::snprintf(mem, sizeof mem, "%.1f GiB", (double)p.memory_bytes / (1024.0 * 1024.0 * 1024.0));
  return "cuda: " + p.name + " (sm_" + std::to_string(p.major) + std::to_string(p.minor) + ", " +
         std::to_string(p.sm_count) + " SMs, " + mem + ")";
}

const char* memory_pool_name(MemoryPool p) {
  switch (p) {
    case MemoryPool::cpu: return "cpu";
    case MemoryPool::cuda: return "cuda";
    case MemoryPool::cuda_emu: return "cuda (emulated)";
  }
  return "?";
}

MemoryPool memory_pool_for(Device d) {
  switch (d) {
    case Device::CPU: return MemoryPool::cpu;
    case Device::CUDA: return cuda_emulation() ? MemoryPool::cuda_emu : MemoryPool::cuda;
    case Device::Metal: break;
  }
  throw std::runtime_error("[metal] no Metal backend in this build");
}

void copy_memory(MemoryPool dst_pool, void* dst, MemoryPool src_pool, const void* src, size_t nbytes) {
  if (nbytes == 0) return;
  const bool dst_host = pool_is_host(dst_pool), src_host = pool_is_host(src_pool);
  if (dst_host && src_host) {  // cpu and emulated cuda memory are both host memory
    std::memcpy(dst, src, nbytes);
  } else if (dst_host && src_pool == MemoryPool::cuda) {
    if (dst_pool == MemoryPool::cuda_emu)
      throw std::runtime_error("[copy] cannot copy between real and emulated CUDA memory (cuda -> cuda (emulated))");
    cuda::copy_device_to_host(dst, src, nbytes);
  } else if (src_host && dst_pool == MemoryPool::cuda) {
    if (src_pool == MemoryPool::cuda_emu)
      throw std::runtime_error("[copy] cannot copy between real and emulated CUDA memory (cuda (emulated) -> cuda)");
    cuda::copy_host_to_device(dst, src, nbytes);
  } else {
    cuda::copy_device_to_device(dst, src, nbytes);
  }
}

}  // namespace sg
