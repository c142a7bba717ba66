// autograd/allocator.h — the caching allocator behind every tensor's storage.
//
// Why: freeing a multi-megabyte buffer returns it to the OS (munmap) and the next allocation of the
// same size page-faults every page again. A training step allocates the same sizes every step, so
// we keep freed blocks in per-size free lists and hand them back out (README.md, Design §3: this cost
// PyTorch 1.4–1.7x on this machine). Sizes are rounded up to a size class (powers of two split in
// 4 steps), blocks are 64-byte aligned (one cache line, enough for AVX-512 loads).
//
// What it is not: a general-purpose malloc. Small blocks are not packed into pages, and nothing is
// ever split or coalesced. One mutex guards it; allocation is rare compared to kernel work.
#pragma once
#include <cstddef>
#include <cstdint>

namespace sg {

struct AllocatorStats {
  int64_t allocated_bytes = 0;   // bytes handed out and not yet freed (size-class rounded)
  int64_t peak_bytes = 0;        // max of allocated_bytes since start or reset_peak()
  int64_t cached_bytes = 0;      // bytes held in free lists, ready for reuse
  int64_t n_allocs = 0;          // allocate() calls
  int64_t n_cache_hits = 0;      // of those, served from a free list
};

void* cpu_allocate(size_t nbytes);
void cpu_free(void* ptr, size_t nbytes);
AllocatorStats cpu_allocator_stats();
void cpu_allocator_reset_peak();
void cpu_allocator_release_cached();  // return every cached block to the OS
size_t cpu_allocator_size_class(size_t nbytes);

}  // namespace sg
