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
                                    std::optional<int64_t> start_pos = std::nullopt);

}  // namespace sg
