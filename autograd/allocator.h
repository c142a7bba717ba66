// autograd/allocator.h — the caching allocator behind every tensor's storage, one cache per memory pool.
//
// Why: freeing a multi-megabyte buffer returns it to the OS (munmap) and the next allocation of the
// same size page-faults every page again. A training step allocates the same sizes every step, so
// we keep freed blocks in per-size free lists and hand them back out (README.md, Design §3: this cost
// PyTorch 1.4–1.7x on this machine). On a GPU the reason is stronger still: cudaMalloc and cudaFree
// synchronize the device. Sizes are rounded up to a size class (powers of two split in 4 steps).
//
// The pools (autograd/device.h): cpu (host memory, 64-byte aligned: one cache line, enough for AVX-512
// loads), cuda (device memory from sg::cuda::device_malloc, 256-byte aligned by CUDA), cuda_emu (host memory
// for the CUDA emulation, 64-byte aligned). Each has its own free lists and statistics; all three use the
// same size classes. A block goes back to the pool it came from (Storage remembers the pool).
//
// What it is not: a general-purpose malloc. Small blocks are not packed into pages, and nothing is
// ever split or coalesced. One mutex per pool; allocation is rare compared to kernel work.
#pragma once
#include <cstddef>
#include <cstdint>

#include "autograd/device.h"

namespace sg {

struct AllocatorStats {
  int64_t allocated_bytes = 0;   // bytes handed out and not yet freed (size-class rounded)
  int64_t peak_bytes = 0;        // max of allocated_bytes since start or reset_peak()
  int64_t cached_bytes = 0;      // bytes held in free lists, ready for reuse
  int64_t n_allocs = 0;          // allocate() calls
  int64_t n_cache_hits = 0;      // of those, served from a free list
};

size_t allocator_size_class(size_t nbytes);

// A block of at least nbytes from `pool`: from its free list, else from the OS (or cudaMalloc). When
// cudaMalloc fails, the cuda pool returns its cached blocks to the device and tries once more.
void* pool_allocate(MemoryPool pool, size_t nbytes);
void pool_free(MemoryPool pool, void* ptr, size_t nbytes);   // into the pool's free list
AllocatorStats allocator_stats(MemoryPool pool);
void allocator_reset_peak(MemoryPool pool);
void allocator_release_cached(MemoryPool pool);   // every cached block back to the OS / the device

// The same, for the pool that serves new tensors on `d` now (memory_pool_for: under the CUDA emulation,
// Device::CUDA is the cuda_emu pool).
inline AllocatorStats allocator_stats(Device d) { return allocator_stats(memory_pool_for(d)); }
inline void allocator_reset_peak(Device d) { allocator_reset_peak(memory_pool_for(d)); }
inline void allocator_release_cached(Device d) { allocator_release_cached(memory_pool_for(d)); }

// The CPU pool under its original names.
void* cpu_allocate(size_t nbytes);
void cpu_free(void* ptr, size_t nbytes);
AllocatorStats cpu_allocator_stats();
void cpu_allocator_reset_peak();
void cpu_allocator_release_cached();  // return every cached block to the OS
size_t cpu_allocator_size_class(size_t nbytes);

}  // namespace sg
