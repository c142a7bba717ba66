// ops/cpu/nn.h — CPU kernels of the fused nn ops (ops/nn.cpp): softmax, log_softmax,
// cross_entropy, rms_norm, layer_norm, rope, topk, argmax, dropout.
//
// Every kernel is a plain function over raw, contiguous, row-major buffers; the op (ops/nn.cpp)
// moves the reduced dim last and makes its inputs contiguous first, so "a row" is always `cols`
// adjacent values. Shapes are in the comments, gradients carry a `d` prefix. Rows are split over
// threads with sg::parallel_for; with sg::naive_kernels() every kernel runs its rows in one plain
// loop on the calling thread (same arithmetic, same order inside a row, so the results agree).
//
// Precision: T is float or double; sums over a row (exp sums, means, variances, dot products)
// accumulate in double, the stored outputs are T. Exception: softmax and cross_entropy sum in T, in
// vectorised loops; their f32 rows take exp from exp_f32 (ops/cpu/simd.h, ~1e−7 relative). Exception: the fast f32 path of softmax and
// cross_entropy (vectorised loops with exp_f32 from simd.h, float sums; ~1e−6 relative to the naive loop).
//
// What this is not: autograd. These functions know nothing about Tensor or the tape.
#pragma once
#include <cstdint>

#include "autograd/rng.h"

namespace sg::cpu {

// ---- softmax / log_softmax over the last dim ----------------------------------------------------
// x, y: [rows, cols].  y = exp(x - max) / Σ exp(x - max)
template <class T> void softmax_forward(const T* x, T* y, int64_t rows, int64_t cols);
// y, dy, dx: [rows, cols].  dx = y ⊙ (dy − Σ_c dy ⊙ y)
template <class T> void softmax_backward(const T* y, const T* dy, T* dx, int64_t rows, int64_t cols);
// x, y: [rows, cols].  y = x − max − log Σ exp(x − max)
template <class T> void log_softmax_forward(const T* x, T* y, int64_t rows, int64_t cols);
// y (the log_softmax output), dy, dx: [rows, cols].  dx = dy − exp(y) ⊙ Σ_c dy
template <class T> void log_softmax_backward(const T* y, const T* dy, T* dx, int64_t rows, int64_t cols);

// ---- cross entropy ------------------------------------------------------------------------------
// logits: [rows, V], targets: [rows] (already checked to lie in [0, V) or equal ignore_index).
// lse: [rows] out, log Σ_c exp(logits[r, c]) (0 on ignored rows);
// loss: [rows] out, lse[r] − logits[r, targets[r]] (0 on ignored rows).
template <class T>
void cross_entropy_forward(const T* logits, const int64_t* targets, T* lse, T* loss, int64_t rows, int64_t V,
                           int64_t ignore_index);
// dlogits: [rows, V] out.  dlogits[r, c] = scale · (exp(logits[r, c] − lse[r]) − [c == targets[r]]),
// 0 on ignored rows; the op passes scale = dloss / n_valid.
template <class T>
void cross_entropy_backward(const T* logits, const int64_t* targets, const T* lse, T scale, T* dlogits, int64_t rows,
                            int64_t V, int64_t ignore_index);

// ---- rms_norm -----------------------------------------------------------------------------------
// x, y: [rows, D], weight: [D], rstd: [rows] out.
//   rstd[r] = 1 / sqrt(mean_c x[r, c]² + eps);   y = (x · rstd) ⊙ weight
template <class T> void rms_norm_forward(const T* x, const T* weight, T* y, T* rstd, int64_t rows, int64_t D, double eps);
// dx: [rows, D] out, dweight: [D] out (overwritten).  With g = weight ⊙ dy and r = rstd:
//   dx = r · g − x · r³ · mean_c(g ⊙ x),   dweight = Σ_rows dy ⊙ x · r
template <class T>
void rms_norm_backward(const T* x, const T* weight, const T* rstd, const T* dy, T* dx, T* dweight, int64_t rows,
                       int64_t D);

// ---- layer_norm ---------------------------------------------------------------------------------
// x, y: [rows, D], weight: [D], bias: [D] or nullptr, mean, rstd: [rows] out.
//   mean[r] = mean_c x,  rstd[r] = 1 / sqrt(mean_c (x − mean)² + eps),
//   y = (x − mean) · rstd ⊙ weight + bias
template <class T>
void layer_norm_forward(const T* x, const T* weight, const T* bias, T* y, T* mean, T* rstd, int64_t rows, int64_t D,
                        double eps);
// dx: [rows, D] out; dweight, dbias: [D] out (dbias may be nullptr).  With x̂ = (x − mean) · rstd,
// g = weight ⊙ dy:   dx = rstd · (g − mean_c g − x̂ · mean_c(g ⊙ x̂)),
//                    dweight = Σ_rows dy ⊙ x̂,   dbias = Σ_rows dy
template <class T>
void layer_norm_backward(const T* x, const T* weight, const T* mean, const T* rstd, const T* dy, T* dx, T* dweight,
                         T* dbias, int64_t rows, int64_t D);

// ---- rope ---------------------------------------------------------------------------------------
// Each pair (a, b) is rotated by angle φ of its position: (a cos φ − b sin φ, a sin φ + b cos φ), by
// scalar::rope_rotate (ops/scalar_math.h), the one function the CPU and CUDA kernels share.
// x, y: [B, S, H, dr] (H = 1 for [B, S, dr]); cos, sin: [S, dr/2].
// interleaved: pair i = (x[2i], x[2i+1]);  half_split: pair i = (x[i], x[i + dr/2]).
// sign = +1 rotates by +φ (forward), −1 by −φ (backward: dx = rope(dy, cos, −sin)).
template <class T>
void rope_forward(const T* x, const T* cos, const T* sin, T* y, int64_t B, int64_t S, int64_t H, int64_t dr,
                  bool interleaved, int sign = +1);
template <class T>
void rope_backward(const T* dy, const T* cos, const T* sin, T* dx, int64_t B, int64_t S, int64_t H, int64_t dr,
                   bool interleaved);

// ---- topk / argmax ------------------------------------------------------------------------------
// x: [rows, n]; values: [rows, k], indices: [rows, k] out. Sorted (largest first, or smallest first
// when !largest), ties broken by the lower index.
template <class T>
void topk_forward(const T* x, T* values, int64_t* indices, int64_t rows, int64_t n, int64_t k, bool largest);
// dvalues: [rows, k], indices: [rows, k]; dx: [rows, n] out (zeros elsewhere).
template <class T>
void topk_backward(const T* dvalues, const int64_t* indices, T* dx, int64_t rows, int64_t n, int64_t k);
// x: [rows, n]; out: [rows], the index of the first maximum of each row.
template <class T> void argmax_forward(const T* x, int64_t* out, int64_t rows, int64_t n);

// ---- dropout ------------------------------------------------------------------------------------
// mask: [n] out. Element i (row-major order) is kept iff the i-th draw rng.uniform() >= p; a kept
// element gets 1 / (1 − p), a dropped one 0. Sequential by construction (one RNG stream), so the
// mask depends only on the seed and n.
template <class T> void dropout_mask(Rng& rng, double p, T* mask, int64_t n);
// x, mask, y: [n].  y = x ⊙ mask (also the backward: dx = dy ⊙ mask)
template <class T> void dropout_apply(const T* x, const T* mask, T* y, int64_t n);

}  // namespace sg::cpu
