// ops/cpu/attention.h — CPU kernels of the fused causal attention op (ops/attention.cpp):
//   O = softmax(Q Kᵀ · scale + mask) V, per (batch b, query head h), with grouped kv heads.
//
// Two versions side by side, behind one switch (attention_forward / attention_backward):
//   v1_naive  one query row at a time, the textbook three passes (scores, max and Σexp, weighted sum
//             of V); one thread. The reference the fast version is tested against. SEEKGRAD_NAIVE=1.
//   v2_flash  FlashAttention-style: a block of query rows at a time, key blocks streamed through an
//             ONLINE softmax (running max m, running sum l, accumulator rescaled by exp(m_old − m_new)),
//             key blocks wholly above the causal diagonal (or, packed, before the rows' segments) skipped;
//             threads over (b, h). The block products S = Q Kᵀ and O += P V are calls to the project's
//             GEMM (ops/cpu/gemm.h); a block of one query row (decoding) uses dot products and axpys instead.
// Both save lse = m + log l per query row, so the backward recomputes P = exp(S − lse) block by
// block instead of storing the [S, T] probability matrix (memory O(S) instead of O(S·T)).
//
// Layout, GQA head mapping, causal offset and packed-sequence mask: the argument struct AttentionArgs, in
// ops/kernel_abi/attention.h (shared with the CUDA kernels, cuda/attention.h). Without packed
// segments (first_key = nullptr) these kernels add no per-element work for that mask.
//
// Precision: T is float or double. v1 accumulates in double with std::exp; v2 accumulates in T (float
// for f32; the running max is subtracted, which keeps every exponential in (0, 1]) and, for float, takes
// exp from a vectorisable polynomial (Cephes expf, ~1 ulp). The two agree to ~1e-6 in f32, ~1e-15 in f64.
//
// What this is not: autograd. These functions know nothing about Tensor or the tape.
#pragma once
#include <cstdint>

#include "ops/kernel_abi/attention.h"

namespace sg::cpu {

using sg::AttentionArgs;  // the kernel ABI's struct (ops/kernel_abi/attention.h), shared by every backend

// The block sizes of v2_flash: a block of query rows × a block of keys. 112 = 8 register tiles of the
// AVX-512 GEMM micro-kernel (14 rows), 128 = 4 of its 32-column tiles; the score block (56 KiB f32), a
// K and a V block (D = 64: 32 KiB each) sit in L2. Measured on the 2-core Zen 5 against 64 × 64 and
// 56 × 128 (prefill T = 4096, H = 8, D = 32, one thread): ~57 vs ~40 and ~53 GFLOP/s.
constexpr int64_t kAttnBlockQ = 112;
constexpr int64_t kAttnBlockK = 128;

// ---- forward ------------------------------------------------------------------------------------
// For every (b, h, s):  S_t = scale · q_s · k_t   (first_visible_key(b, s) ≤ t < visible_keys(s)),
//   lse_s = log Σ_t exp(S_t),   o_s = Σ_t exp(S_t − lse_s) v_t.
template <class T> void attention_forward(const AttentionArgs& a, const T* q, const T* k, const T* v, T* o, T* lse);
template <class T> void attention_forward_v1_naive(const AttentionArgs& a, const T* q, const T* k, const T* v, T* o, T* lse);
template <class T> void attention_forward_v2_flash(const AttentionArgs& a, const T* q, const T* k, const T* v, T* o, T* lse);

// ---- backward -----------------------------------------------------------------------------------
// do_, o: [B, H, S, Dv] contiguous; lse: [B, H, S]; dq [B, H, S, D], dk [B, Hkv, T, D],
// dv [B, Hkv, T, Dv]: contiguous outputs (overwritten). With P_st = exp(scale · q_s·k_t − lse_s) and
// Δ_s = Σ_d do_s ⊙ o_s  (= Σ_t P_st dP_st, the softmax backward's row sum):
//   dV_t += Σ_s P_st do_s                 (dV = Pᵀ dO)
//   dP_st = do_s · v_t                    (dP = dO Vᵀ)
//   dS_st = P_st (dP_st − Δ_s)            (softmax backward)
//   dq_s  = scale Σ_t dS_st k_t           (dQ = dS K · scale)
//   dK_t += scale Σ_s dS_st q_s           (dK = dSᵀ Q · scale)
// summed over the H/Hkv query heads that share a kv head.
template <class T>
void attention_backward(const AttentionArgs& a, const T* q, const T* k, const T* v, const T* o, const T* lse,
                        const T* do_, T* dq, T* dk, T* dv);
template <class T>
void attention_backward_v1_naive(const AttentionArgs& a, const T* q, const T* k, const T* v, const T* o, const T* lse,
                                 const T* do_, T* dq, T* dk, T* dv);
template <class T>
void attention_backward_v2_flash(const AttentionArgs& a, const T* q, const T* k, const T* v, const T* o, const T* lse,
                                 const T* do_, T* dq, T* dk, T* dv);

}  // namespace sg::cpu
