// ops/cpu/moe.h — CPU reference kernels for the three Mixture-of-Experts primitives, and the routing plan they read.
//
// models/moe.cpp (dispatch_experts) builds an MoE layer out of index_select, one expert call per expert and
// index_add. A GPU wants the same thing as three launches over ALL experts at once; these are their plain-loop
// references (the CUDA versions, cuda/kernels/moe.cuh, are tested against them):
//
//   plan        counting sort of the (token, k) assignments by expert — dispatch_experts steps 1–3, same layout:
//               expert e's rows are offset[e]..offset[e+1] of the sorted buffer, in token order; a full expert
//               (capacity) drops its latest assignments. Plus slot_pos, the inverse: where each slot went.
//   permute     x_sorted[p] = x[token_sorted[p]]                        (the gather into expert order)
//   grouped GEMM  y[p] = x_sorted[p] · W_eᵀ  for offset[e] <= p < offset[e+1], every expert in one call
//   unpermute   out[t] += Σ_k weights[t, k] · y[slot_pos[t·K + k]]      (the weighted sum back on the tokens)
//
// A slot is an assignment a = t·K + k: token t's k-th choice, indices[a] its expert, weights[a] its gate weight.
//
// Order of the unpermute sum: per token, k = 0..K−1 (slot order), each term rounded (w·y) then added: the
// order a one-thread-per-(token, channel) GPU kernel takes without a sort. dispatch_experts' index_add adds the
// same rounded terms in sorted-row order (by expert), so the two agree only up to float reassociation when a
// token's experts are not in increasing order (K ≥ 2).
//
// What this is not: the gate, the SwiGLU between the GEMMs, or a backward (each primitive's backward is
// another of them: permute ↔ unpermute with unit weights, the GEMM's is two grouped GEMMs).
#pragma once
#include <cstdint>

namespace sg::cpu {

// indices: [n_tokens, topk] expert ids in [0, n_experts) (checked: throws std::invalid_argument naming the slot).
// capacity < 0 keeps every assignment, else each expert keeps its first `capacity` in token order.
// Out: offset [n_experts + 1] (offset[0] = 0, offset[n_experts] = rows kept), token_sorted and slot_sorted
// [n_tokens·topk] (the first `rows` used: row p is slot slot_sorted[p] of token token_sorted[p]), slot_pos
// [n_tokens·topk] (the row of each slot, −1 when dropped). Returns the number of dropped assignments.
int64_t moe_dispatch_plan(const int64_t* indices, int64_t n_tokens, int64_t topk, int64_t n_experts, int64_t capacity,
                          int64_t* offset, int64_t* token_sorted, int64_t* slot_sorted, int64_t* slot_pos);

// x_sorted[p, c] = x[token_sorted[p], c]
// x is (n_tokens, dim), token_sorted is (rows), x_sorted is (rows, dim)
void moe_permute_forward(const float* x, const int64_t* token_sorted, float* x_sorted, int64_t rows, int64_t dim);

// y[p, :] = x[p, :] · W_eᵀ   for offset[e] <= p < offset[e+1], each expert e (none for an expert with no rows)
// x is (offset[n_experts], in_dim), w is (n_experts, out_dim, in_dim) (W_e = w[e], as a linear layer's weight),
// y is (offset[n_experts], out_dim). One sg::cpu::gemm_f32 per expert that has rows.
void moe_grouped_gemm_forward(const float* x, const float* w, const int64_t* offset, float* y, int64_t n_experts,
                              int64_t in_dim, int64_t out_dim);

// out[t, c] += Σ_{k < topk, slot_pos[t·topk + k] >= 0} weights[t·topk + k] · y_sorted[slot_pos[t·topk + k], c]
// y_sorted is (rows, dim), slot_pos and weights are (n_tokens, topk), out is (n_tokens, dim) and already holds
// what the experts' sum is added to (zeros, or the shared experts' output). The sum runs in increasing k.
void moe_unpermute_forward(const float* y_sorted, const int64_t* slot_pos, const float* weights, float* out,
                           int64_t n_tokens, int64_t topk, int64_t dim);

}  // namespace sg::cpu
