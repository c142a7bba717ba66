// ops/kernel_abi/moe.h — the MoE primitives' arguments (ops/cpu/moe.h), one plain struct per kernel.
//
// The layout is the routing plan's (sg::cpu::moe_dispatch_plan, = models/moe.cpp dispatch_experts): expert e's
// rows are offset[e]..offset[e+1] of the expert-sorted buffer, row p came from token token_sorted[p], and slot
// a = t·topk + k (token t's k-th choice) landed on row slot_pos[a] (−1 when a capacity dropped it).
// The plan is valid (offset non-decreasing from 0 to rows, rows and tokens in range): kernels cannot check it.
#pragma once
#include <cstdint>

namespace sg {

// x_sorted[p, c] = x[token_sorted[p], c]
// x is (n_tokens, dim), token_sorted is (rows), x_sorted is (rows, dim)
template <class T> struct MoePermuteArgs {
  int64_t rows, dim;
  const T* x;
  const int64_t* token_sorted;
  T* x_sorted;
};

// y[p, :] = x[p, :] · W_eᵀ   for offset[e] <= p < offset[e+1], every expert e in one launch
// offset is (n_experts + 1) with offset[n_experts] = rows (device memory on the GPU: `rows` is its last entry, for
// the host to size the grid); x is (rows, in_dim), w is (n_experts, out_dim, in_dim), y is (rows, out_dim)
template <class T> struct MoeGroupedGemmArgs {
  int64_t n_experts, rows, in_dim, out_dim;
  const int64_t* offset;
  const T* x;
  const T* w;
  T* y;
};

// out[t, c] += Σ_{k < topk, slot_pos[t·topk + k] >= 0} weights[t·topk + k] · y_sorted[slot_pos[t·topk + k], c]  (increasing k)
// y_sorted is (rows, dim), slot_pos and weights are (n_tokens, topk), out is (n_tokens, dim) and already holds x
template <class T> struct MoeUnpermuteArgs {
  int64_t n_tokens, topk, dim;
  const T* y_sorted;
  const int64_t* slot_pos;
  const T* weights;
  T* out;
};

}  // namespace sg
