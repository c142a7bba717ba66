// autograd/allocator.cpp — see allocator.h.
#include "autograd/allocator.h"

#include <bit>
#include <cstdlib>
#include <map>
#include <mutex>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include "cuda/cuda_backend.h"

namespace sg {

namespace {

// Where a pool's blocks come from and go back to.
void* os_allocate(MemoryPool pool, size_t size) {
  if (pool == MemoryPool::cuda) return cuda::device_malloc(size);
  void* p = std::aligned_alloc(64, size);
  if (!p) throw std::bad_alloc();
  return p;
}
void os_free(MemoryPool pool, void* p) {
  if (pool == MemoryPool::cuda) cuda::device_free(p);
  else std::free(p);
}

struct Cache {
  explicit Cache(MemoryPool p) : pool(p) {}
  MemoryPool pool;
  std::mutex mu;
  std::map<size_t, std::vector<void*>> free_lists;  // size class -> cached blocks
  AllocatorStats stats;

  // Holds mu. Every cached block back to the OS / the device.
  void release_cached_locked() {
    for (auto& [size, blocks] : free_lists)
      for (void* p : blocks) os_free(pool, p);
    free_lists.clear();
    stats.cached_bytes = 0;
  }
  // At exit the host pools free their blocks. The cuda pool leaves them to the driver, which frees a process's
  // device memory when it ends: cudaFree during static destruction may run after the CUDA runtime shut down.
  ~Cache() {
    if (pool_is_host(pool)) release_cached_locked();
  }
};

Cache& cache(MemoryPool pool) {
  static Cache caches[kMemoryPools] = {Cache(MemoryPool::cpu), Cache(MemoryPool::cuda), Cache(MemoryPool::cuda_emu)};
  return caches[(int)pool];
}

}  // namespace

// Size classes: below 256 bytes round to 64; above, each power-of-two interval [2^k, 2^(k+1))
// is split into 4 equal steps, so at most 25% is wasted. Sizes near SIZE_MAX have no class: the
// rounding up would wrap around to a small size (std::bit_floor, not a doubling loop, which would
// never end past 2^63).
size_t allocator_size_class(size_t nbytes) {
  if (nbytes <= 256) return nbytes == 0 ? 64 : (nbytes + 63) / 64 * 64;
  const size_t step = std::bit_floor(nbytes) / 4;
  size_t rounded;
  if (__builtin_add_overflow(nbytes, step - 1, &rounded))
    throw std::overflow_error("[allocator] " + std::to_string(nbytes) + " bytes: no size class (rounding up overflows size_t)");
  return rounded / step * step;
}

void* pool_allocate(MemoryPool pool, size_t nbytes) {
  size_t size = allocator_size_class(nbytes);
  Cache& c = cache(pool);
  std::lock_guard<std::mutex> lock(c.mu);
  void* p = nullptr;
  bool hit = false;
  auto it = c.free_lists.find(size);
  if (it != c.free_lists.end() && !it->second.empty()) {
    p = it->second.back();
    it->second.pop_back();
    c.stats.cached_bytes -= (int64_t)size;
    hit = true;
  } else if (pool == MemoryPool::cuda) {
    try {
      p = os_allocate(pool, size);
    } catch (const std::exception&) {
      if (c.stats.cached_bytes == 0) throw;  // nothing to give back: the device is full (or absent)
      c.release_cached_locked();
      p = os_allocate(pool, size);
    }
  } else {
    p = os_allocate(pool, size);
  }
  // Counted once the block exists, so a failed allocation leaves the statistics as they were.
  c.stats.n_allocs++;
  if (hit) c.stats.n_cache_hits++;
  c.stats.allocated_bytes += (int64_t)size;
  if (c.stats.allocated_bytes > c.stats.peak_bytes) c.stats.peak_bytes = c.stats.allocated_bytes;
  return p;
}

void pool_free(MemoryPool pool, void* ptr, size_t nbytes) {
  if (!ptr) return;
  size_t size = allocator_size_class(nbytes);
  Cache& c = cache(pool);
  std::lock_guard<std::mutex> lock(c.mu);
  c.free_lists[size].push_back(ptr);
  c.stats.allocated_bytes -= (int64_t)size;
  c.stats.cached_bytes += (int64_t)size;
}

AllocatorStats allocator_stats(MemoryPool pool) {
  Cache& c = cache(pool);
  std::lock_guard<std::mutex> lock(c.mu);
  return c.stats;
}

void allocator_reset_peak(MemoryPool pool) {
  Cache& c = cache(pool);
  std::lock_guard<std::mutex> lock(c.mu);
  c.stats.peak_bytes = c.stats.allocated_bytes;
}

void allocator_release_cached(MemoryPool pool) {
  Cache& c = cache(pool);
  std::lock_guard<std::mutex> lock(c.mu);
  c.release_cached_locked();
}

void* cpu_allocate(size_t nbytes) { return pool_allocate(MemoryPool::cpu, nbytes); }
void cpu_free(void* ptr, size_t nbytes) { pool_free(MemoryPool::cpu, ptr, nbytes); }
AllocatorStats cpu_allocator_stats() { return allocator_stats(MemoryPool::cpu); }
void cpu_allocator_reset_peak() { allocator_reset_peak(MemoryPool::cpu); }
void cpu_allocator_release_cached() { allocator_release_cached(MemoryPool::cpu); }
size_t cpu_allocator_size_class(size_t nbytes) { return allocator_size_class(nbytes); }

}  // namespace sg
