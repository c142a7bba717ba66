// autograd/allocator.cpp — see allocator.h.
#include "autograd/allocator.h"

#include <cstdlib>
#include <map>
#include <mutex>
#include <new>
#include <vector>

namespace sg {

namespace {
struct CpuCache {
  std::mutex mu;
  std::map<size_t, std::vector<void*>> free_lists;  // size class -> cached blocks
  AllocatorStats stats;
  ~CpuCache() {
    for (auto& [size, blocks] : free_lists)
      for (void* p : blocks) std::free(p);
  }
};
CpuCache& cache() {
  static CpuCache c;
  return c;
}
}  // namespace

// Size classes: below 256 bytes round to 64; above, each power-of-two interval [2^k, 2^(k+1))
// is split into 4 equal steps, so at most 25% is wasted.
size_t cpu_allocator_size_class(size_t nbytes) {
  if (nbytes <= 256) return nbytes == 0 ? 64 : (nbytes + 63) / 64 * 64;
  size_t pow2 = 1;
  while (pow2 * 2 <= nbytes) pow2 *= 2;
  size_t step = pow2 / 4;
  return (nbytes + step - 1) / step * step;
}

void* cpu_allocate(size_t nbytes) {
  size_t size = cpu_allocator_size_class(nbytes);
  CpuCache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  c.stats.n_allocs++;
  void* p = nullptr;
  auto it = c.free_lists.find(size);
  if (it != c.free_lists.end() && !it->second.empty()) {
    p = it->second.back();
    it->second.pop_back();
    c.stats.cached_bytes -= (int64_t)size;
    c.stats.n_cache_hits++;
  } else {
    p = std::aligned_alloc(64, size);
    if (!p) throw std::bad_alloc();
  }
  c.stats.allocated_bytes += (int64_t)size;
  if (c.stats.allocated_bytes > c.stats.peak_bytes) c.stats.peak_bytes = c.stats.allocated_bytes;
  return p;
}

void cpu_free(void* ptr, size_t nbytes) {
  if (!ptr) return;
  size_t size = cpu_allocator_size_class(nbytes);
  CpuCache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  c.free_lists[size].push_back(ptr);
  c.stats.allocated_bytes -= (int64_t)size;
  c.stats.cached_bytes += (int64_t)size;
}

AllocatorStats cpu_allocator_stats() {
  std::lock_guard<std::mutex> lock(cache().mu);
  return cache().stats;
}

void cpu_allocator_reset_peak() {
  std::lock_guard<std::mutex> lock(cache().mu);
  cache().stats.peak_bytes = cache().stats.allocated_bytes;
}

void cpu_allocator_release_cached() {
  CpuCache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  for (auto& [size, blocks] : c.free_lists)
    for (void* p : blocks) std::free(p);
  c.free_lists.clear();
  c.stats.cached_bytes = 0;
}

}  // namespace sg
