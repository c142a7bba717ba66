// ops/cpu/fp8_index.h — DeepSeek-V3.2's lightning-indexer score on FP8 operands (the official fp8_index
// kernel), as a plain CPU loop over raw, contiguous, row-major pointers. One sequence at a time:
//   q codes [S, H, D] (E4M3 bits) with q scales [S, H, nb],  nb = ceil(D / block) (one per 1×block tile)
//   k codes [T, D]    (E4M3 bits) with k scales [T, nb]
//   weights [S, H] f32 (weights_proj(x) · H^-1/2 · D^-1/2, the per-head weight w of models/dsa.h)
//   score[s, t] = Σ_h weights[s, h] · ReLU( Σ_b q_scale[s, h, b] · k_scale[t, b] · Σ_{d ∈ tile b} e4m3(q[s,h,d]) · e4m3(k[t,d]) )
// The dot of the E4M3 values accumulates in f32 (the official kernel's fp8×fp8 → f32 GEMM; a product of
// two E4M3 values is exact in f32), tile by tile. With one tile (D <= block: the official d_I = 128)
// this is the official k_scale[t] · Σ_h (weights · q_scale)[s, h] · ReLU(dot) — the same numbers (with
// ue8m0 the scales are powers of two and the reordered products are exact; otherwise up to f32
// rounding). With several tiles (D > block) the tiles' scaled partial dots are summed before the ReLU.
//
// What it is not: the causal mask or the top-k (models/dsa.cpp adds those), a quantizer
// (ops/cpu/fp8_quant.h act_quant_f32 makes the codes and scales), autograd, or a fast kernel.
#pragma once
#include <cstdint>

namespace sg::cpu {

// scores [S, T] as above. k_codes / k_scales are read for rows [0, T) (a cache buffer can be passed
// as is: rows beyond T are not read).
void fp8_index_scores_f32(const uint8_t* q_codes, const float* q_scales, const float* weights,
                          const uint8_t* k_codes, const float* k_scales, int64_t S, int64_t H, int64_t D,
                          int64_t T, int64_t block, float* scores);

}  // namespace sg::cpu
