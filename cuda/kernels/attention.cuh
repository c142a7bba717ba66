// cuda/kernels/attention.cuh — fused causal attention, forward and backward, FlashAttention-2 style, f32 on the
// CUDA cores (no tensor cores): the GPU twin of ops/cpu/attention.h's v2_flash, with the same arguments
// (AttentionArgs, ops/kernel_abi/attention.h: strides, GQA/MQA, causal offset start_pos, packed first_key).
// Compiled by nvcc (cuda/attention.cu) and by g++ for the emulation (cuda/emu/attention_emu.cpp).
//
// Forward, one block per (b, h, tile of BQ query rows); the Q tile sits in shared memory for the whole block:
//   for each tile of BK keys the rows can see (tiles wholly above the diagonal, or before the rows' segments, are
//   never visited):
//     S = scale · Q Kᵀ                [BQ, BK]   K tile in shared memory, a register micro-tile per thread
//     online softmax, one thread a row: m' = max(m, max_j S_j), α = exp(m − m'), P = exp(S − m') (0 where masked),
//                                      l = l·α + Σ_j P_j
//     O = O·α + P V                    [BQ, Dv]   V tile in the same shared buffer; O in registers
//   o = O / l, lse = m + log l.
// Backward, two kernels, each thread owning its outputs (no atomics: the same bits on every run):
//   dK/dV: one block per (b, kv head g, tile of BK keys); K, V tiles stay in shared memory, dK, dV in registers;
//          it walks the H/Hkv query heads of g in order, and their query tiles that can see the keys:
//            P = exp(scale · Q Kᵀ − lse)  (0 where masked),  dP = dO Vᵀ,  dS = P ⊙ (dP − Δ),  Δ = rowsum(dO ⊙ O)
//            dV += Pᵀ dO,   dK += dSᵀ Q          and at the end dK ·= scale.
//   dQ:    one block per (b, h, tile of BQ query rows); Q, dO tiles stay, dQ in registers; over the key tiles:
//            the same P and dS (the same code, so the same bits as the dK/dV kernel's),  dQ += dS K,  dQ ·= scale.
//   Δ is recomputed per query tile from O and dO (BQ·Dv multiply-adds against the tile's BQ·BK·(2D + 2Dv)), so the
//   backward needs no scratch buffer and keeps the CPU kernel's arguments.
//
// Threads in a product: the [ROWS, COLS] output of a tile product is split over a TY × TX thread grid (TileMap);
// thread (ty, tx) owns rows ty + TY·r and columns tx + TX·c — strided, so that within a warp the TX threads read
// TX different shared rows (odd row length DMAX + 1: different banks) and the few ty rows are broadcasts.
// Shared tiles hold DMAX columns of zeros past D (or Dv) and zero rows past the tile's end: a product reads them
// and adds exact zeros, and those outputs are never written back.
//
// Tile sizes per head-dim class DMAX ∈ {32, 64, 128, 256} (the smallest ≥ max(D, Dv)): AttentionTiles, sized so
// each kernel's static shared memory fits 48 KiB and each thread keeps ≤ 64 accumulators. The emulator runs
// these same sizes (an emulated block is cheap: 128 fibers), so what the tests check is what the GPU runs.
//
// What this is not: a tensor-core kernel (mma.sync, ldmatrix, cp.async pipelining) — that is the next version;
// this one is the readable port the CPU kernel's contract is checked against. ptxas (sm_80): 72..128 registers a
// thread, no spills, 32.6..41.8 KiB shared per kernel. Speed: not yet measured on a GPU.
#pragma once
#include <cmath>
#include <string>

#include "cuda/kernels/common.cuh"
#include "ops/kernel_abi/attention.h"

namespace sg::SG_BACKEND_NS {

__host__ __device__ __forceinline__ int64_t attn_min(int64_t x, int64_t y) { return x < y ? x : y; }
__host__ __device__ __forceinline__ int64_t attn_max(int64_t x, int64_t y) { return x > y ? x : y; }
__host__ __device__ __forceinline__ int64_t attn_clamp(int64_t x, int64_t lo, int64_t hi) { return attn_min(attn_max(x, lo), hi); }

// The thread grid of one [ROWS, COLS] tile product over NT threads (see the top of the file). TX is at least 8
// (fewer distinct shared rows per warp) and large enough that TY = NT / TX fits the rows.
template <int ROWS, int COLS, int NT> struct TileMap {
  static constexpr int kMinTx = COLS < 8 ? COLS : 8;
  static constexpr int TX = NT / ROWS > kMinTx ? NT / ROWS : kMinTx;
  static constexpr int TY = NT / TX;
  static constexpr int RM = ROWS / TY;  // rows per thread
  static constexpr int RN = COLS / TX;  // columns per thread
  static_assert(TX * TY == NT && TY <= ROWS && TX <= COLS && ROWS % TY == 0 && COLS % TX == 0,
                "a tile product needs a thread grid that divides it");
};

// smem[r][c] = g[r·ld + c] for r < nrows, c < ncols, and 0 for the rest of [ROWS][DMAX]. All NT threads take part,
// consecutive threads on consecutive columns (coalesced reads of a row).
template <int ROWS, int DMAX, int NT>
__device__ __forceinline__ void load_tile(float (*smem)[DMAX + 1], const float* g, int64_t ld, int64_t nrows, int64_t ncols) {
  for (int idx = threadIdx.x; idx < ROWS * DMAX; idx += NT) {
    const int r = idx / DMAX, c = idx % DMAX;
    smem[r][c] = (r < nrows && c < ncols) ? g[(int64_t)r * ld + c] : 0.0f;
  }
}

// =================================================================================================
// forward
// =================================================================================================
template <int BQ, int BK, int DMAX, int NT>
__global__ void attention_forward_kernel(AttentionArgs a, const float* q, const float* k, const float* v, float* o, float* lse) {
  using SMap = TileMap<BQ, BK, NT>;    // S = Q Kᵀ, P    [BQ, BK]
  using OMap = TileMap<BQ, DMAX, NT>;  // O accumulator  [BQ, DMAX]
  __shared__ float smem_q[BQ][DMAX + 1];
  __shared__ float smem_kv[BK][DMAX + 1];  // the K tile, then the V tile
  __shared__ float smem_p[BQ][BK + 1];     // S, then P
  __shared__ float smem_m[BQ], smem_l[BQ], smem_alpha[BQ];

  const int64_t n_qtiles = (a.S + BQ - 1) / BQ;
  if ((int64_t)blockIdx.x >= a.B * a.H * n_qtiles) return;
  const int64_t bh = blockIdx.x / n_qtiles, b = bh / a.H, h = bh % a.H, g = h / a.group();
  const int64_t i0 = (blockIdx.x % n_qtiles) * BQ, nq = attn_min(BQ, a.S - i0);
  const float* k_head = k + b * a.k_sb + g * a.k_sh;
  const float* v_head = v + b * a.v_sb + g * a.v_sh;
  const int tid = threadIdx.x;
  const int s_tx = tid % SMap::TX, s_ty = tid / SMap::TX;
  const int o_tx = tid % OMap::TX, o_ty = tid / OMap::TX;
  const float scale = (float)a.scale;

  load_tile<BQ, DMAX, NT>(smem_q, q + b * a.q_sb + h * a.q_sh + i0 * a.q_ss, a.q_ss, nq, a.D);
  if (tid < BQ) {
    smem_m[tid] = -INFINITY;
    smem_l[tid] = 0.0f;
  }
  float acc[OMap::RM][OMap::RN] = {};

  // Keys past the last row's horizon are masked for the whole tile, so are the keys before the first row's segment.
  const int64_t kbeg = a.first_visible_key(b, i0), kend = a.visible_keys(i0 + nq - 1);
  for (int64_t j0 = kbeg; j0 < kend; j0 += BK) {
    const int64_t nk = attn_min(BK, kend - j0);
    __syncthreads();  // the previous tile's readers of smem_kv and smem_p are done
    load_tile<BK, DMAX, NT>(smem_kv, k_head + j0 * a.k_ss, a.k_ss, nk, a.D);
    __syncthreads();

    // S = scale · Q Kᵀ
    {
      float s[SMap::RM][SMap::RN] = {};
      for (int d = 0; d < (int)a.D; d++) {
        float q_reg[SMap::RM], k_reg[SMap::RN];
        for (int r = 0; r < SMap::RM; r++) q_reg[r] = smem_q[s_ty + SMap::TY * r][d];
        for (int c = 0; c < SMap::RN; c++) k_reg[c] = smem_kv[s_tx + SMap::TX * c][d];
        for (int r = 0; r < SMap::RM; r++)
          for (int c = 0; c < SMap::RN; c++) s[r][c] += q_reg[r] * k_reg[c];
      }
      for (int r = 0; r < SMap::RM; r++)
        for (int c = 0; c < SMap::RN; c++) smem_p[s_ty + SMap::TY * r][s_tx + SMap::TX * c] = scale * s[r][c];
    }
    __syncthreads();  // S complete; every thread is done reading K

    load_tile<BK, DMAX, NT>(smem_kv, v_head + j0 * a.v_ss, a.v_ss, nk, a.Dv);
    // The online softmax of row i. It has seen keys before j0 with max m, sum l = Σ exp(S − m) and accumulator
    // O = Σ exp(S − m) v; this tile's max moves the max to m' = max(m, m_tile): old terms are rescaled by
    // α = exp(m − m'), new ones enter as exp(S − m'). Keys [lo, n) of the tile are the ones row i sees.
    if (tid < BQ) {
      const int i = tid;
      float* p = smem_p[i];
      int64_t lo = 0, n = 0;
      if (i < nq) {
        n = attn_clamp(a.visible_keys(i0 + i) - j0, 0, nk);
        lo = attn_clamp(a.first_visible_key(b, i0 + i) - j0, 0, n);
      }
      if (n == lo) {  // nothing visible here (or a row past the end): O and l unchanged
        for (int j = 0; j < BK; j++) p[j] = 0.0f;
        smem_alpha[i] = 1.0f;
      } else {
        float m_tile = -INFINITY;
        for (int64_t j = lo; j < n; j++) m_tile = p[j] > m_tile ? p[j] : m_tile;
        const float m_old = smem_m[i], m_new = m_tile > m_old ? m_tile : m_old;
        const float alpha = std::exp(m_old - m_new);  // 0 on the row's first tile (m = −∞)
        float sum = 0.0f;
        for (int j = 0; j < BK; j++) {
          const float e = (j >= lo && j < n) ? std::exp(p[j] - m_new) : 0.0f;
          p[j] = e;
          sum += e;
        }
        smem_l[i] = smem_l[i] * alpha + sum;
        smem_m[i] = m_new;
        smem_alpha[i] = alpha;
      }
    }
    __syncthreads();  // P, α and the V tile are in place

    // O = O·α + P V
    for (int r = 0; r < OMap::RM; r++) {
      const float alpha = smem_alpha[o_ty + OMap::TY * r];
      for (int c = 0; c < OMap::RN; c++) acc[r][c] *= alpha;
    }
    for (int j = 0; j < (int)nk; j++) {
      float p_reg[OMap::RM], v_reg[OMap::RN];
      for (int r = 0; r < OMap::RM; r++) p_reg[r] = smem_p[o_ty + OMap::TY * r][j];
      for (int c = 0; c < OMap::RN; c++) v_reg[c] = smem_kv[j][o_tx + OMap::TX * c];
      for (int r = 0; r < OMap::RM; r++)
        for (int c = 0; c < OMap::RN; c++) acc[r][c] += p_reg[r] * v_reg[c];
    }
  }
  __syncthreads();  // m, l final (also when no tile ran: their initial values)

  // o = O / l, lse = m + log l   (l == 0: the row saw no key, o = 0 and lse = −∞; a NaN l stays NaN)
  for (int r = 0; r < OMap::RM; r++) {
    const int i = o_ty + OMap::TY * r;
    if (i >= nq) continue;
    const float l = smem_l[i], inv = l == 0.0f ? 0.0f : 1.0f / l;
    float* o_row = o + (bh * a.S + i0 + i) * a.Dv;
    for (int c = 0; c < OMap::RN; c++) {
      const int col = o_tx + OMap::TX * c;
      if (col < a.Dv) o_row[col] = acc[r][c] * inv;
    }
  }
  if (tid < nq) {
    const float l = smem_l[tid];
    lse[bh * a.S + i0 + tid] = l == 0.0f ? -INFINITY : smem_m[tid] + std::log(l);
  }
}

// =================================================================================================
// backward
// =================================================================================================

// Per query row of a tile (one thread a row): lse, Δ = Σ_c dO ⊙ O, and the keys [lo, hi) the row sees.
// Rows past the tile's end see nothing.
__device__ __forceinline__ void backward_row_stats(const AttentionArgs& a, int64_t b, int64_t bh, int64_t s, bool valid,
                                                   const float* o, const float* lse, const float* do_, float* lse_out,
                                                   float* delta_out, int64_t* lo_out, int64_t* hi_out) {
  if (!valid) {
    *lse_out = 0.0f, *delta_out = 0.0f, *lo_out = 0, *hi_out = 0;
    return;
  }
  const int64_t row = bh * a.S + s;
  float delta = 0.0f;
  for (int64_t c = 0; c < a.Dv; c++) delta += do_[row * a.Dv + c] * o[row * a.Dv + c];
  *lse_out = lse[row];
  *delta_out = delta;
  *lo_out = a.first_visible_key(b, s);
  *hi_out = a.visible_keys(s);
}

// This thread's share of one [BQ, BK] tile (key j of the tile is key j0 + j):
//   P = exp(scale · Q Kᵀ − lse)  where the row sees the key, else 0;   dS = P ⊙ (dO Vᵀ − Δ).
// The dK/dV and the dQ kernel both call it, so both get the same P and dS bits for a (query, key) pair.
template <int BQ, int BK, int DMAX, int NT>
__device__ __forceinline__ void backward_probs(const AttentionArgs& a, int64_t j0, float (*smem_q)[DMAX + 1],
                                               float (*smem_do)[DMAX + 1], float (*smem_k)[DMAX + 1],
                                               float (*smem_v)[DMAX + 1], const float* smem_lse, const float* smem_delta,
                                               const int64_t* smem_lo, const int64_t* smem_hi,
                                               float (&p)[TileMap<BQ, BK, NT>::RM][TileMap<BQ, BK, NT>::RN],
                                               float (&ds)[TileMap<BQ, BK, NT>::RM][TileMap<BQ, BK, NT>::RN]) {
  using SMap = TileMap<BQ, BK, NT>;
  const int tx = threadIdx.x % SMap::TX, ty = threadIdx.x / SMap::TX;
  float s[SMap::RM][SMap::RN] = {}, dp[SMap::RM][SMap::RN] = {};
  for (int d = 0; d < (int)a.D; d++) {
    float q_reg[SMap::RM], k_reg[SMap::RN];
    for (int r = 0; r < SMap::RM; r++) q_reg[r] = smem_q[ty + SMap::TY * r][d];
    for (int c = 0; c < SMap::RN; c++) k_reg[c] = smem_k[tx + SMap::TX * c][d];
    for (int r = 0; r < SMap::RM; r++)
      for (int c = 0; c < SMap::RN; c++) s[r][c] += q_reg[r] * k_reg[c];
  }
  for (int d = 0; d < (int)a.Dv; d++) {
    float do_reg[SMap::RM], v_reg[SMap::RN];
    for (int r = 0; r < SMap::RM; r++) do_reg[r] = smem_do[ty + SMap::TY * r][d];
    for (int c = 0; c < SMap::RN; c++) v_reg[c] = smem_v[tx + SMap::TX * c][d];
    for (int r = 0; r < SMap::RM; r++)
      for (int c = 0; c < SMap::RN; c++) dp[r][c] += do_reg[r] * v_reg[c];
  }
  const float scale = (float)a.scale;
  for (int r = 0; r < SMap::RM; r++) {
    const int i = ty + SMap::TY * r;
    for (int c = 0; c < SMap::RN; c++) {
      const int64_t t = j0 + tx + SMap::TX * c;
      const bool seen = t >= smem_lo[i] && t < smem_hi[i];
      p[r][c] = seen ? std::exp(scale * s[r][c] - smem_lse[i]) : 0.0f;
      ds[r][c] = p[r][c] * (dp[r][c] - smem_delta[i]);
    }
  }
}

// dK, dV of one key tile, summed over the query heads of its kv head (in order h = g·group, ..., g·group + group − 1)
// and their query rows. do_, o, dk, dv contiguous (see ops/cpu/attention.h).
template <int BQ, int BK, int DMAX, int NT>
__global__ void attention_backward_dkdv_kernel(AttentionArgs a, const float* q, const float* k, const float* v,
                                               const float* o, const float* lse, const float* do_, float* dk, float* dv) {
  using SMap = TileMap<BQ, BK, NT>;    // P, dS            [BQ, BK]
  using KMap = TileMap<BK, DMAX, NT>;  // dK, dV accumulators [BK, DMAX]
  __shared__ float smem_k[BK][DMAX + 1], smem_v[BK][DMAX + 1];
  __shared__ float smem_q[BQ][DMAX + 1], smem_do[BQ][DMAX + 1];
  __shared__ float smem_p[BQ][BK + 1], smem_ds[BQ][BK + 1];
  __shared__ float smem_lse[BQ], smem_delta[BQ];
  __shared__ int64_t smem_lo[BQ], smem_hi[BQ];

  const int64_t n_ktiles = (a.T + BK - 1) / BK;
  if ((int64_t)blockIdx.x >= a.B * a.Hkv * n_ktiles) return;
  const int64_t bg = blockIdx.x / n_ktiles, b = bg / a.Hkv, g = bg % a.Hkv, group = a.group();
  const int64_t j0 = (blockIdx.x % n_ktiles) * BK, nk = attn_min(BK, a.T - j0);
  const int tid = threadIdx.x;
  const int s_tx = tid % SMap::TX, s_ty = tid / SMap::TX;
  const int k_tx = tid % KMap::TX, k_ty = tid / KMap::TX;

  load_tile<BK, DMAX, NT>(smem_k, k + b * a.k_sb + g * a.k_sh + j0 * a.k_ss, a.k_ss, nk, a.D);
  load_tile<BK, DMAX, NT>(smem_v, v + b * a.v_sb + g * a.v_sh + j0 * a.v_ss, a.v_ss, nk, a.Dv);
  float dk_acc[KMap::RM][KMap::RN] = {}, dv_acc[KMap::RM][KMap::RN] = {};

  // The query rows that can see a key of this tile: causal, from the first row whose horizon reaches j0; packed,
  // up to the first row whose segment starts at or after the tile's end (first_key is non-decreasing in s).
  const int64_t s_first = a.causal ? attn_max(0, j0 - a.start_pos) : 0;
  int64_t s_end = a.S;
  if (a.first_key) {
    int64_t lo = s_first, hi = a.S;  // binary search: the first s in [s_first, S) with first_key ≥ j0 + nk
    while (lo < hi) {
      const int64_t mid = lo + (hi - lo) / 2;
      if (a.first_key[b * a.S + mid] < j0 + nk) lo = mid + 1;
      else hi = mid;
    }
    s_end = attn_max(s_first, lo);
  }

  for (int64_t r_head = 0; r_head < group; r_head++) {
    const int64_t h = g * group + r_head, bh = b * a.H + h;
    const float* q_head = q + b * a.q_sb + h * a.q_sh;
    for (int64_t i0 = s_first; i0 < s_end; i0 += BQ) {
      const int64_t nq = attn_min(BQ, s_end - i0);
      __syncthreads();  // the previous tile's readers are done (and, the first time, K and V are loaded)
      load_tile<BQ, DMAX, NT>(smem_q, q_head + i0 * a.q_ss, a.q_ss, nq, a.D);
      load_tile<BQ, DMAX, NT>(smem_do, do_ + (bh * a.S + i0) * a.Dv, a.Dv, nq, a.Dv);
      if (tid < BQ)
        backward_row_stats(a, b, bh, i0 + tid, tid < nq, o, lse, do_, &smem_lse[tid], &smem_delta[tid], &smem_lo[tid],
                           &smem_hi[tid]);
      __syncthreads();

      float p[SMap::RM][SMap::RN], ds[SMap::RM][SMap::RN];
      backward_probs<BQ, BK, DMAX, NT>(a, j0, smem_q, smem_do, smem_k, smem_v, smem_lse, smem_delta, smem_lo, smem_hi, p, ds);
      for (int r = 0; r < SMap::RM; r++)
        for (int c = 0; c < SMap::RN; c++) {
          smem_p[s_ty + SMap::TY * r][s_tx + SMap::TX * c] = p[r][c];
          smem_ds[s_ty + SMap::TY * r][s_tx + SMap::TX * c] = ds[r][c];
        }
      __syncthreads();

      // dV += Pᵀ dO,  dK += dSᵀ Q   (rows of this thread: keys k_ty + TY·r; columns: head dims)
      for (int i = 0; i < (int)nq; i++) {
        float p_reg[KMap::RM], ds_reg[KMap::RM], do_reg[KMap::RN], q_reg[KMap::RN];
        for (int r = 0; r < KMap::RM; r++) {
          p_reg[r] = smem_p[i][k_ty + KMap::TY * r];
          ds_reg[r] = smem_ds[i][k_ty + KMap::TY * r];
        }
        for (int c = 0; c < KMap::RN; c++) {
          do_reg[c] = smem_do[i][k_tx + KMap::TX * c];
          q_reg[c] = smem_q[i][k_tx + KMap::TX * c];
        }
        for (int r = 0; r < KMap::RM; r++)
          for (int c = 0; c < KMap::RN; c++) {
            dv_acc[r][c] += p_reg[r] * do_reg[c];
            dk_acc[r][c] += ds_reg[r] * q_reg[c];
          }
      }
    }
  }

  // dK = scale · Σ dSᵀ Q;  keys no query row sees get 0
  const float scale = (float)a.scale;
  for (int r = 0; r < KMap::RM; r++) {
    const int j = k_ty + KMap::TY * r;
    if (j >= nk) continue;
    float* dk_row = dk + (bg * a.T + j0 + j) * a.D;
    float* dv_row = dv + (bg * a.T + j0 + j) * a.Dv;
    for (int c = 0; c < KMap::RN; c++) {
      const int col = k_tx + KMap::TX * c;
      if (col < a.D) dk_row[col] = scale * dk_acc[r][c];
      if (col < a.Dv) dv_row[col] = dv_acc[r][c];
    }
  }
}

// dQ of one query tile: over the key tiles its rows see, dQ += dS K; at the end dQ ·= scale.
template <int BQ, int BK, int DMAX, int NT>
__global__ void attention_backward_dq_kernel(AttentionArgs a, const float* q, const float* k, const float* v,
                                             const float* o, const float* lse, const float* do_, float* dq) {
  using QMap = TileMap<BQ, DMAX, NT>;  // dQ accumulator [BQ, DMAX]
  using SMap = TileMap<BQ, BK, NT>;
  __shared__ float smem_q[BQ][DMAX + 1], smem_do[BQ][DMAX + 1];
  __shared__ float smem_k[BK][DMAX + 1], smem_v[BK][DMAX + 1];
  __shared__ float smem_ds[BQ][BK + 1];
  __shared__ float smem_lse[BQ], smem_delta[BQ];
  __shared__ int64_t smem_lo[BQ], smem_hi[BQ];

  const int64_t n_qtiles = (a.S + BQ - 1) / BQ;
  if ((int64_t)blockIdx.x >= a.B * a.H * n_qtiles) return;
  const int64_t bh = blockIdx.x / n_qtiles, b = bh / a.H, h = bh % a.H, g = h / a.group();
  const int64_t i0 = (blockIdx.x % n_qtiles) * BQ, nq = attn_min(BQ, a.S - i0);
  const float* k_head = k + b * a.k_sb + g * a.k_sh;
  const float* v_head = v + b * a.v_sb + g * a.v_sh;
  const int tid = threadIdx.x;
  const int s_tx = tid % SMap::TX, s_ty = tid / SMap::TX;
  const int q_tx = tid % QMap::TX, q_ty = tid / QMap::TX;

  load_tile<BQ, DMAX, NT>(smem_q, q + b * a.q_sb + h * a.q_sh + i0 * a.q_ss, a.q_ss, nq, a.D);
  load_tile<BQ, DMAX, NT>(smem_do, do_ + (bh * a.S + i0) * a.Dv, a.Dv, nq, a.Dv);
  if (tid < BQ)
    backward_row_stats(a, b, bh, i0 + tid, tid < nq, o, lse, do_, &smem_lse[tid], &smem_delta[tid], &smem_lo[tid], &smem_hi[tid]);
  float acc[QMap::RM][QMap::RN] = {};

  const int64_t kbeg = a.first_visible_key(b, i0), kend = a.visible_keys(i0 + nq - 1);
  for (int64_t j0 = kbeg; j0 < kend; j0 += BK) {
    const int64_t nk = attn_min(BK, kend - j0);
    __syncthreads();  // the previous tile's readers are done (and, the first time, Q, dO and the row stats are in)
    load_tile<BK, DMAX, NT>(smem_k, k_head + j0 * a.k_ss, a.k_ss, nk, a.D);
    load_tile<BK, DMAX, NT>(smem_v, v_head + j0 * a.v_ss, a.v_ss, nk, a.Dv);
    __syncthreads();

    float p[SMap::RM][SMap::RN], ds[SMap::RM][SMap::RN];
    backward_probs<BQ, BK, DMAX, NT>(a, j0, smem_q, smem_do, smem_k, smem_v, smem_lse, smem_delta, smem_lo, smem_hi, p, ds);
    for (int r = 0; r < SMap::RM; r++)
      for (int c = 0; c < SMap::RN; c++) smem_ds[s_ty + SMap::TY * r][s_tx + SMap::TX * c] = ds[r][c];
    __syncthreads();

    // dQ += dS K
    for (int j = 0; j < (int)nk; j++) {
      float ds_reg[QMap::RM], k_reg[QMap::RN];
      for (int r = 0; r < QMap::RM; r++) ds_reg[r] = smem_ds[q_ty + QMap::TY * r][j];
      for (int c = 0; c < QMap::RN; c++) k_reg[c] = smem_k[j][q_tx + QMap::TX * c];
      for (int r = 0; r < QMap::RM; r++)
        for (int c = 0; c < QMap::RN; c++) acc[r][c] += ds_reg[r] * k_reg[c];
    }
  }

  const float scale = (float)a.scale;
  for (int r = 0; r < QMap::RM; r++) {
    const int i = q_ty + QMap::TY * r;
    if (i >= nq) continue;
    float* dq_row = dq + (bh * a.S + i0 + i) * a.D;
    for (int c = 0; c < QMap::RN; c++) {
      const int col = q_tx + QMap::TX * c;
      if (col < a.D) dq_row[col] = scale * acc[r][c];
    }
  }
}

// =================================================================================================
// host side: tile sizes, argument checks, launches
// =================================================================================================

// Tile sizes per head-dim class (fwd: forward; kv: the dK/dV kernel; dq: the dQ kernel): BQ query rows, BK keys,
// NT threads. Static shared memory (f32, rows padded to DMAX + 1), all under the 48 KiB a block may declare:
//   DMAX  fwd BQ×BK  KiB    kv BQ×BK  KiB    dq BQ×BK  KiB
//    32    64×64    33.5    32×64    41.8    64×32    34.5
//    64    64×32    33.4    32×32    41.5    32×32    37.4
//   128    32×32    36.8    16×16    34.8    16×16    33.7
//   256    16×16    33.4     8× 8    32.9     8× 8    32.6   (64 threads in the backward)
// (powers of two; the backward holds a K and a V tile of its own, the forward one shared K/V buffer).
template <int DMAX> struct AttentionTiles;
template <> struct AttentionTiles<32> {
  static constexpr int fwd_q = 64, fwd_k = 64, fwd_threads = 128;
  static constexpr int kv_q = 32, kv_k = 64, kv_threads = 128;
  static constexpr int dq_q = 64, dq_k = 32, dq_threads = 128;
};
template <> struct AttentionTiles<64> {
  static constexpr int fwd_q = 64, fwd_k = 32, fwd_threads = 128;
  static constexpr int kv_q = 32, kv_k = 32, kv_threads = 128;
  static constexpr int dq_q = 32, dq_k = 32, dq_threads = 128;
};
template <> struct AttentionTiles<128> {
  static constexpr int fwd_q = 32, fwd_k = 32, fwd_threads = 128;
  static constexpr int kv_q = 16, kv_k = 16, kv_threads = 128;
  static constexpr int dq_q = 16, dq_k = 16, dq_threads = 128;
};
template <> struct AttentionTiles<256> {
  static constexpr int fwd_q = 16, fwd_k = 16, fwd_threads = 128;
  static constexpr int kv_q = 8, kv_k = 8, kv_threads = 64;
  static constexpr int dq_q = 8, dq_k = 8, dq_threads = 64;
};
constexpr int64_t kAttentionMaxHeadDim = 256;

// The kernels' static shared bytes, checked against the 48 KiB here (nvcc would refuse a kernel over it; the
// emulator would not).
constexpr int64_t attn_fwd_smem(int BQ, int BK, int DMAX) { return 4 * ((BQ + BK) * (DMAX + 1) + BQ * (BK + 1) + 3 * BQ); }
constexpr int64_t attn_kv_smem(int BQ, int BK, int DMAX) {
  return 4 * (2 * (BK + BQ) * (DMAX + 1) + 2 * BQ * (BK + 1) + 2 * BQ) + 16 * BQ;
}
constexpr int64_t attn_dq_smem(int BQ, int BK, int DMAX) {
  return 4 * (2 * (BK + BQ) * (DMAX + 1) + BQ * (BK + 1) + 2 * BQ) + 16 * BQ;
}
template <int DMAX> constexpr bool attn_tiles_fit() {
  using Tl = AttentionTiles<DMAX>;
  return attn_fwd_smem(Tl::fwd_q, Tl::fwd_k, DMAX) <= 48 * 1024 && attn_kv_smem(Tl::kv_q, Tl::kv_k, DMAX) <= 48 * 1024 &&
         attn_dq_smem(Tl::dq_q, Tl::dq_k, DMAX) <= 48 * 1024;
}
static_assert(attn_tiles_fit<32>() && attn_tiles_fit<64>() && attn_tiles_fit<128>() && attn_tiles_fit<256>(),
              "an attention kernel's shared memory is over 48 KiB");

// The sizes the kernels need; each failure names the kernel.
inline void check_attention_args(const char* kernel, const AttentionArgs& a) {
  auto fail = [&](const std::string& what) { throw std::runtime_error(std::string("[cuda] ") + kernel + ": " + what); };
  auto dims = [&] {
    return " (B " + std::to_string(a.B) + ", H " + std::to_string(a.H) + ", Hkv " + std::to_string(a.Hkv) + ", S " +
           std::to_string(a.S) + ", T " + std::to_string(a.T) + ", D " + std::to_string(a.D) + ", Dv " + std::to_string(a.Dv) + ")";
  };
  if (a.B < 0 || a.H < 0 || a.Hkv < 0 || a.S < 0 || a.T < 0 || a.D < 0 || a.Dv < 0) fail("a negative size" + dims());
  if (a.Hkv == 0 || a.H % a.Hkv != 0) fail("the query heads cannot be split into groups over the kv heads (Hkv must divide H)" + dims());
  if (a.D > kAttentionMaxHeadDim || a.Dv > kAttentionMaxHeadDim)
    fail("head dims over the kernels' limit of " + std::to_string(kAttentionMaxHeadDim) + dims());
  if (a.causal && a.start_pos < 0) fail("causal start_pos " + std::to_string(a.start_pos) + " < 0" + dims());
  if (a.first_key && !a.causal) fail("first_key (packed sequences) needs causal attention" + dims());
}

inline int attention_dmax(const AttentionArgs& a) {
  const int64_t d = a.D > a.Dv ? a.D : a.Dv;
  return d <= 32 ? 32 : d <= 64 ? 64 : d <= 128 ? 128 : 256;
}

template <int DMAX>
void attention_forward_launch(const AttentionArgs& a, const float* q, const float* k, const float* v, float* o, float* lse) {
  using Tl = AttentionTiles<DMAX>;
  const int64_t blocks = a.B * a.H * ((a.S + Tl::fwd_q - 1) / Tl::fwd_q);
  if (blocks == 0) return;
  launch_kernel("attention_forward", dim3(grid_for(blocks, 1)), dim3(Tl::fwd_threads),
                attention_forward_kernel<Tl::fwd_q, Tl::fwd_k, DMAX, Tl::fwd_threads>, a, q, k, v, o, lse);
}

template <int DMAX>
void attention_backward_launch(const AttentionArgs& a, const float* q, const float* k, const float* v, const float* o,
                               const float* lse, const float* do_, float* dq, float* dk, float* dv) {
  using Tl = AttentionTiles<DMAX>;
  const int64_t kv_blocks = a.B * a.Hkv * ((a.T + Tl::kv_k - 1) / Tl::kv_k);
  if (kv_blocks > 0)
    launch_kernel("attention_backward_dkdv", dim3(grid_for(kv_blocks, 1)), dim3(Tl::kv_threads),
                  attention_backward_dkdv_kernel<Tl::kv_q, Tl::kv_k, DMAX, Tl::kv_threads>, a, q, k, v, o, lse, do_, dk, dv);
  const int64_t q_blocks = a.B * a.H * ((a.S + Tl::dq_q - 1) / Tl::dq_q);
  if (q_blocks > 0)
    launch_kernel("attention_backward_dq", dim3(grid_for(q_blocks, 1)), dim3(Tl::dq_threads),
                  attention_backward_dq_kernel<Tl::dq_q, Tl::dq_k, DMAX, Tl::dq_threads>, a, q, k, v, o, lse, do_, dq);
}

void attention_forward(const AttentionArgs& a, const float* q, const float* k, const float* v, float* o, float* lse) {
  check_attention_args("attention_forward", a);
  switch (attention_dmax(a)) {
    case 32: attention_forward_launch<32>(a, q, k, v, o, lse); break;
    case 64: attention_forward_launch<64>(a, q, k, v, o, lse); break;
    case 128: attention_forward_launch<128>(a, q, k, v, o, lse); break;
    default: attention_forward_launch<256>(a, q, k, v, o, lse); break;
  }
}

void attention_backward(const AttentionArgs& a, const float* q, const float* k, const float* v, const float* o,
                        const float* lse, const float* do_, float* dq, float* dk, float* dv) {
  check_attention_args("attention_backward", a);
  switch (attention_dmax(a)) {
    case 32: attention_backward_launch<32>(a, q, k, v, o, lse, do_, dq, dk, dv); break;
    case 64: attention_backward_launch<64>(a, q, k, v, o, lse, do_, dq, dk, dv); break;
    case 128: attention_backward_launch<128>(a, q, k, v, o, lse, do_, dq, dk, dv); break;
    default: attention_backward_launch<256>(a, q, k, v, o, lse, do_, dq, dk, dv); break;
  }
}

}  // namespace sg::SG_BACKEND_NS
