// autograd/device.h — where a tensor's numbers live: the devices, the memory pools behind them, the copies
// between them, and the CUDA emulation switch, in one visible place.
//
//   Device        CPU | CUDA | Metal: what a tensor says about itself (Tensor::device()).
//   MemoryPool    which memory a Storage was allocated from (autograd/allocator.h keeps one cache per pool):
//                   cpu       host memory                                   (Device::CPU)
//                   cuda      GPU memory from sg::cuda::device_malloc       (Device::CUDA)
//                   cuda_emu  host memory standing in for GPU memory        (Device::CUDA under emulation)
//                 Metal has no pool: this build has no Metal backend, and asking for one says so.
//   copy_memory   bytes between two pools: memcpy on the host, cudaMemcpy for real device memory.
//
// CUDA EMULATION (SEEKGRAD_CUDA_EMU=1, or set_cuda_emulation / CudaEmulationScope). With it on, a Device::CUDA
// tensor's storage is host memory from the cuda_emu pool (its own cache and statistics), copies are memcpy, and
// the kernel dispatch (ops/kernels.h) runs the CUDA kernels through the CPU fiber emulator (sg::cuda_emu::,
// cuda/README.md) instead of launching them on a GPU. It is an EMULATION: the same kernel source stepped lane by
// lane on one CPU thread, for testing and debugging with no GPU — no GPU runs, and its speed says nothing about one.
// A storage remembers its pool, so turning the switch off frees and copies an emulated tensor correctly; a kernel
// asked to run on a tensor from the other pool refuses by name (Tensor::device_data).
//
// What this is not: a device index. One CUDA device (the current one) serves Device::CUDA.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace sg {

enum class Device : uint8_t { CPU, CUDA, Metal };
const char* device_name(Device d);   // "cpu", "cuda", "metal"

// "cpu" -> CPU, "cuda" -> CUDA (a config's or a flag's value); anything else throws naming `where` and the choices.
// Asking for cuda checks that it can run: a GPU is present, or the emulation is on — else the error says how to get
// one ("... no CUDA device ...; SEEKGRAD_CUDA_EMU=1 runs the CUDA kernels in the CPU emulator").
Device parse_device(const std::string& name, const std::string& where);
// One line for logs: "cpu", "cuda: NVIDIA H100 80GB HBM3 (132 SMs, 79.1 GiB)", "cuda (emulated on the CPU)".
std::string describe_device(Device d);

// Waits until every kernel launched on `d` so far has finished (cuda::synchronize on a GPU; nothing to wait for on
// the CPU or under the emulation, whose kernels run to the end when launched). Timers call it before reading a clock.
void device_synchronize(Device d);

// The CUDA emulation switch (process-wide; read from SEEKGRAD_CUDA_EMU the first time it is asked).
bool cuda_emulation();
void set_cuda_emulation(bool on);

// Turns the emulation on (or off) for one scope, e.g. a test case, and restores the previous setting after it.
class CudaEmulationScope {
 public:
  explicit CudaEmulationScope(bool on = true) : prev_(cuda_emulation()) { set_cuda_emulation(on); }
  ~CudaEmulationScope() { set_cuda_emulation(prev_); }
  CudaEmulationScope(const CudaEmulationScope&) = delete;
  CudaEmulationScope& operator=(const CudaEmulationScope&) = delete;

 private:
  bool prev_;
};

enum class MemoryPool : uint8_t { cpu, cuda, cuda_emu };
constexpr int kMemoryPools = 3;
const char* memory_pool_name(MemoryPool p);   // "cpu", "cuda", "cuda (emulated)"
inline bool pool_is_host(MemoryPool p) { return p != MemoryPool::cuda; }
// The pool a NEW tensor on `d` is allocated from now: cpu; cuda or, under emulation, cuda_emu;
// Metal throws "[metal] no Metal backend in this build".
MemoryPool memory_pool_for(Device d);

// dst[0, nbytes) = src[0, nbytes) between memory of two pools (host <-> device, device <-> device, host <-> host).
// Real and emulated CUDA memory never meet: that copy throws.
void copy_memory(MemoryPool dst_pool, void* dst, MemoryPool src_pool, const void* src, size_t nbytes);

}  // namespace sg
