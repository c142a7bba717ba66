// models/kv_cache.h — the two operations every cache in models/ (KVCache, MLACache, the DSA
// indexer's key cache) is built from. A cache is a preallocated tensor [max_batch, max_seq, ...].
#pragma once
#include <cstdint>

#include "autograd/tensor.h"

namespace sg {

// cache[0:B, start_pos:start_pos+S, ...] = values [B,S,...]. A value copy, outside the tape.
void write_cache_rows(const Tensor& cache, const Tensor& values, int64_t start_pos);

// The rows the queries attend over: [B, start_pos + S, ...].
//   grad mode off: the cache rows [0, start_pos + S), just written — a view, no copy.
//   grad mode on:  cat(cache rows [0, start_pos) as constants, `current` with its history), so a
//                  prefill through the cache stays differentiable.
Tensor read_cache_rows(const Tensor& cache, const Tensor& current, int64_t start_pos);

}  // namespace sg
