// ops/attention.h — the fused attention op: softmax(Q Kᵀ · scale + causal mask) V in one kernel
// (ops/cpu/attention.cpp, FlashAttention-style online softmax), with its own backward kernel.
//
//   q [B, H,   S, D ]   query heads
//   k [B, Hkv, T, D ]   key heads;    Hkv divides H (GQA: query head h reads kv head h / (H/Hkv);
//   v [B, Hkv, T, Dv]   value heads                  Hkv = H is MHA, Hkv = 1 is MQA)
//   -> [B, H, S, Dv]
//
// causal: query row s sits at absolute position start_pos + s and attends keys t ≤ start_pos + s.
// start_pos defaults to T − S: the queries are the LAST S of the T positions (prefill: S = T,
// start_pos 0; decode with a KV cache: S = 1, start_pos = T − 1). Ignored when !causal.
//
// Packed sequences (segment_ids, optional): several sequences share one row of T positions, and
// attention stays inside each of them. segment_ids [B, T] i64 gives every key position its sequence
// (segment) id; the query at absolute position p = start_pos + s has segment segment_ids[b, p], and
//   query p attends key t  iff  t ≤ p (causal)  AND  segment_ids[b, t] == segment_ids[b, p].
// Each id must occupy ONE contiguous run of positions in its row (e.g. 0 0 0 1 1 2 2 2; ids need not be
// sorted or consecutive): the kernel then sees a band [start of p's run, p] per query, with its own key
// always in it — a fully masked row cannot happen. A repeated id (0 0 1 0) is an error. Needs causal.
// Undefined segment_ids = one sequence per row, the plain causal op (no extra work per element).
// Why no position reset is needed: the callers rotate q and k with RoPE at their absolute positions, and
// a rotated q_p · k_t depends on the positions only through p − t, so a sequence packed at positions
// [a, a + L) attends exactly as it would alone at [0, L) (up to the rounding of the rotation angles).
// The backward respects the same mask (tests/ops/test_attention.cpp: against the composite twin with an
// additive mask, gradcheck, and packed == each sequence alone).
//
// The inputs may be views whose last dim is contiguous (e.g. a permuted [B, T, Hkv, D] KV cache):
// the kernel reads them through their strides, without a copy. The backward keeps those views: a KV
// cache must not be overwritten at the positions a graph read before that graph's backward().
//
// Its composite twin — matmul, masked_fill, softmax, matmul with kv heads expanded — is what the
// tests (tests/ops/test_attention.cpp) check it against, values and gradients.
#pragma once
#include <optional>

#include "autograd/tensor.h"

namespace sg {

Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v, double scale, bool causal,
                                    std::optional<int64_t> start_pos = std::nullopt,
                                    const Tensor& segment_ids = Tensor());

}  // namespace sg
