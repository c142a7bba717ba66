// ops/cpu/attention.cpp — see attention.h. v1_naive first (read it first), then v2_flash.
#include "ops/cpu/attention.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "autograd/runtime.h"
#include "ops/cpu/gemm.h"
#include "ops/cpu/runtime.h"
#include "ops/cpu/simd.h"  // SG_SIMD_CLONES: per-instruction-set builds of the f32 loops; exp_f32

namespace sg::cpu {

namespace {

template <class T> inline T dot(const T* a, const T* b, int64_t n) {
  T s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; i++) s += a[i] * b[i];
  return s;
}

// y += alpha · x
template <class T> inline void axpy(T alpha, const T* x, T* y, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; i++) y[i] += alpha * x[i];
}

// max_j x[j] (−∞ for n = 0), written as a select (which vectorises; std::max does not). The f32 version is
// compiled per instruction set: with SSE only, the vectoriser keeps the running maxima in memory.
template <class T> [[gnu::always_inline]] inline T row_max_impl(const T* x, int64_t n) {
  T m = -std::numeric_limits<T>::infinity();
#pragma omp simd reduction(max : m)
  for (int64_t j = 0; j < n; j++) m = x[j] > m ? x[j] : m;
  return m;
}
SG_SIMD_CLONES float row_max(const float* x, int64_t n) { return row_max_impl(x, n); }
double row_max(const double* x, int64_t n) { return row_max_impl(x, n); }

// Base pointers of one (b, h) pair: its query rows, and the rows of its kv head g = h / group.
template <class T> struct HeadView {
  const T *q, *k, *v;
  HeadView(const AttentionArgs& a, const T* q_, const T* k_, const T* v_, int64_t b, int64_t h) {
    int64_t g = h / a.group();
    q = q_ + b * a.q_sb + h * a.q_sh;
    k = k_ + b * a.k_sb + g * a.k_sh;
    v = v_ + b * a.v_sb + g * a.v_sh;
  }
};

}  // namespace

// =================================================================================================
// v1_naive — one query row at a time, three passes over its visible keys.
// =================================================================================================
template <class T>
void attention_forward_v1_naive(const AttentionArgs& a, const T* q, const T* k, const T* v, T* o, T* lse) {
  std::vector<double> p(a.T), acc(a.Dv);
  for (int64_t b = 0; b < a.B; b++)
    for (int64_t h = 0; h < a.H; h++) {
      HeadView<T> hv(a, q, k, v, b, h);
      for (int64_t s = 0; s < a.S; s++) {
        const T* qs = hv.q + s * a.q_ss;
        T* os = o + ((b * a.H + h) * a.S + s) * a.Dv;
        int64_t lo = a.first_visible_key(b, s), n = a.visible_keys(s);  // keys [lo, n)
        // pass 1: scores S_t = scale · q_s · k_t, and their max m
        double m = -std::numeric_limits<double>::infinity();
        for (int64_t t = lo; t < n; t++) {
          const T* kt = hv.k + t * a.k_ss;
          double d = 0;
          for (int64_t c = 0; c < a.D; c++) d += (double)qs[c] * kt[c];
          p[t] = d * a.scale;
          m = std::max(m, p[t]);
        }
        // pass 2: p_t = exp(S_t − m), l = Σ p_t
        double l = 0;
        for (int64_t t = lo; t < n; t++) {
          p[t] = std::exp(p[t] - m);
          l += p[t];
        }
        // pass 3: o_s = Σ_t p_t v_t / l
        std::fill(acc.begin(), acc.end(), 0.0);
        for (int64_t t = lo; t < n; t++) {
          const T* vt = hv.v + t * a.v_ss;
          for (int64_t c = 0; c < a.Dv; c++) acc[c] += p[t] * vt[c];
        }
        // (a row that sees no key — only possible without causal and T = 0 — gets o = 0, lse = −∞;
        //  written as l == 0 so that a NaN sum still reaches the output)
        for (int64_t c = 0; c < a.Dv; c++) os[c] = l == 0 ? T(0) : (T)(acc[c] / l);
        lse[(b * a.H + h) * a.S + s] = l == 0 ? -std::numeric_limits<T>::infinity() : (T)(m + std::log(l));
      }
    }
}

template <class T>
void attention_backward_v1_naive(const AttentionArgs& a, const T* q, const T* k, const T* v, const T* o, const T* lse,
                                 const T* do_, T* dq, T* dk, T* dv) {
  std::fill(dk, dk + a.B * a.Hkv * a.T * a.D, T(0));
  std::fill(dv, dv + a.B * a.Hkv * a.T * a.Dv, T(0));
  std::vector<double> p(a.T), ds(a.T), dqs(a.D);
  for (int64_t b = 0; b < a.B; b++)
    for (int64_t h = 0; h < a.H; h++) {
      HeadView<T> hv(a, q, k, v, b, h);
      int64_t g = h / a.group();
      T* dkg = dk + (b * a.Hkv + g) * a.T * a.D;   // all H/Hkv query heads of kv head g add into it
      T* dvg = dv + (b * a.Hkv + g) * a.T * a.Dv;
      for (int64_t s = 0; s < a.S; s++) {
        int64_t row = (b * a.H + h) * a.S + s;
        const T* qs = hv.q + s * a.q_ss;
        const T* os = o + row * a.Dv;
        const T* dos = do_ + row * a.Dv;
        T* dqr = dq + row * a.D;
        int64_t lo = a.first_visible_key(b, s), n = a.visible_keys(s);  // keys [lo, n)
        // P_st = exp(scale · q_s·k_t − lse_s)  (recomputed, never stored)
        for (int64_t t = lo; t < n; t++) {
          const T* kt = hv.k + t * a.k_ss;
          double d = 0;
          for (int64_t c = 0; c < a.D; c++) d += (double)qs[c] * kt[c];
          p[t] = std::exp(d * a.scale - (double)lse[row]);
        }
        // Δ_s = Σ_c do_s ⊙ o_s
        double delta = 0;
        for (int64_t c = 0; c < a.Dv; c++) delta += (double)dos[c] * os[c];
        // dP_st = do_s · v_t;  dS_st = P_st (dP_st − Δ_s);  dV_t += P_st do_s
        for (int64_t t = lo; t < n; t++) {
          const T* vt = hv.v + t * a.v_ss;
          double dp = 0;
          for (int64_t c = 0; c < a.Dv; c++) dp += (double)dos[c] * vt[c];
          ds[t] = p[t] * (dp - delta);
          for (int64_t c = 0; c < a.Dv; c++) dvg[t * a.Dv + c] += (T)(p[t] * dos[c]);
        }
        // dq_s = scale Σ_t dS_st k_t;  dK_t += scale dS_st q_s
        std::fill(dqs.begin(), dqs.end(), 0.0);
        for (int64_t t = lo; t < n; t++) {
          const T* kt = hv.k + t * a.k_ss;
          for (int64_t c = 0; c < a.D; c++) {
            dqs[c] += ds[t] * kt[c];
            dkg[t * a.D + c] += (T)(a.scale * ds[t] * qs[c]);
          }
        }
        for (int64_t c = 0; c < a.D; c++) dqr[c] = (T)(a.scale * dqs[c]);
      }
    }
}

// =================================================================================================
// v2_flash — blocks of query rows × blocks of keys, online softmax, threads over (b, h).
// The two products of a block — S = Q Kᵀ and O += P V — are GEMMs (ops/cpu/gemm.h), reading K and V
// rows in place through their row strides; everything between them is the online softmax.
// =================================================================================================

static void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                 const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  gemm_f32(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}
static void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha, const double* A, int64_t lda,
                 const double* B, int64_t ldb, double beta, double* C, int64_t ldc) {
  gemm_f64(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

// x[j] = exp(x[j] − shift) for j < n; returns Σ_j x[j]. Arguments are ≤ 0 here (shift is the max).
// float: exp_f32 (simd.h), the Cephes expf polynomial as branch-free arithmetic, so the loop vectorises;
// a NaN argument gives NaN (anomaly mode must still see it). double: std::exp.
SG_SIMD_CLONES static float exp_shifted_sum(float* x, int64_t n, float shift) {
  float sum = 0;
#pragma omp simd reduction(+ : sum)
  for (int64_t j = 0; j < n; j++) {
    x[j] = exp_f32(x[j] - shift);
    sum += x[j];
  }
  return sum;
}
static double exp_shifted_sum(double* x, int64_t n, double shift) {
  double sum = 0;
  for (int64_t j = 0; j < n; j++) {
    x[j] = std::exp(x[j] - shift);
    sum += x[j];
  }
  return sum;
}

// One query row (decoding): s[j] = scale · q·k_j for j < n, then acc += Σ_j p_j v_j. Written over a
// fixed-width array of 16 lanes (one AVX-512 register) so the compiler vectorises them without a
// reduction clause: lane l sums the products at d ≡ l (mod 16), then the lanes are added in a tree.
// The f32 versions are compiled per instruction set (SG_SIMD_CLONES).
constexpr int64_t kLanes = 16;
template <class T>
[[gnu::always_inline]] inline void one_row_scores_impl(const T* q, const T* k, int64_t k_ss, int64_t n, int64_t D, T scale, T* s) {
  const int64_t D16 = D - D % kLanes;
  for (int64_t j = 0; j < n; j++) {
    const T* kj = k + j * k_ss;
    T lane[kLanes] = {};
    for (int64_t d0 = 0; d0 < D16; d0 += kLanes)
      for (int64_t l = 0; l < kLanes; l++) lane[l] += q[d0 + l] * kj[d0 + l];
    for (int64_t d = D16; d < D; d++) lane[d - D16] += q[d] * kj[d];
    for (int64_t l = 0; l < 8; l++) lane[l] += lane[l + 8];  // the tree, written out so it unrolls
    for (int64_t l = 0; l < 4; l++) lane[l] += lane[l + 4];
    for (int64_t l = 0; l < 2; l++) lane[l] += lane[l + 2];
    s[j] = scale * (lane[0] + lane[1]);
  }
}
template <class T>
[[gnu::always_inline]] inline void one_row_mix_impl(const T* p, const T* v, int64_t v_ss, int64_t n, int64_t Dv, T* acc) {
  const int64_t D16 = Dv - Dv % kLanes;
  for (int64_t c0 = 0; c0 < D16; c0 += kLanes) {  // 16 output columns held in a register across all keys
    T lane[kLanes];
    for (int64_t l = 0; l < kLanes; l++) lane[l] = acc[c0 + l];
    for (int64_t j = 0; j < n; j++)
      for (int64_t l = 0; l < kLanes; l++) lane[l] += p[j] * v[j * v_ss + c0 + l];
    for (int64_t l = 0; l < kLanes; l++) acc[c0 + l] = lane[l];
  }
  for (int64_t j = 0; j < n; j++)
    for (int64_t c = D16; c < Dv; c++) acc[c] += p[j] * v[j * v_ss + c];
}
SG_SIMD_CLONES static void one_row_scores(const float* q, const float* k, int64_t k_ss, int64_t n, int64_t D, float scale, float* s) {
  one_row_scores_impl(q, k, k_ss, n, D, scale, s);
}
static void one_row_scores(const double* q, const double* k, int64_t k_ss, int64_t n, int64_t D, double scale, double* s) {
  one_row_scores_impl(q, k, k_ss, n, D, scale, s);
}
SG_SIMD_CLONES static void one_row_mix(const float* p, const float* v, int64_t v_ss, int64_t n, int64_t Dv, float* acc) {
  one_row_mix_impl(p, v, v_ss, n, Dv, acc);
}
static void one_row_mix(const double* p, const double* v, int64_t v_ss, int64_t n, int64_t Dv, double* acc) {
  one_row_mix_impl(p, v, v_ss, n, Dv, acc);
}

// (b, h) pairs per thread: enough that one thread's share holds >= ~256K multiply-adds (~0.1 ms), below
// which waking a second thread costs more than it saves (more so on a busy machine).
static int64_t heads_grain(const AttentionArgs& a) {
  double per_head = (double)a.S * (double)a.T * (double)(a.D + a.Dv);
  return std::max<int64_t>(1, (int64_t)std::ceil(2.5e5 / std::max(per_head, 1.0)));
}

template <class T>
void attention_forward_v2_flash(const AttentionArgs& a, const T* q, const T* k, const T* v, T* o, T* lse) {
  const int64_t BQ = kAttnBlockQ, BK = kAttnBlockK;
  parallel_for(a.B * a.H, heads_grain(a), [&](int64_t bh0, int64_t bh1) {
    // this thread's scratch: a score block, the accumulator rows, the running statistics
    std::vector<T> sc(BQ * BK), acc(BQ * a.Dv), m(BQ), l(BQ);
    std::vector<int64_t> row_end(BQ);
    for (int64_t bh = bh0; bh < bh1; bh++) {
      const int64_t b = bh / a.H;
      HeadView<T> hv(a, q, k, v, b, bh % a.H);
      for (int64_t i0 = 0; i0 < a.S; i0 += BQ) {
        int64_t nq = std::min(BQ, a.S - i0);
        const T* q_blk = hv.q + i0 * a.q_ss;
        std::fill(m.begin(), m.end(), -std::numeric_limits<T>::infinity());
        std::fill(l.begin(), l.end(), T(0));
        std::fill(acc.begin(), acc.end(), T(0));
        // Keys past the last row's horizon are masked for the whole block: those blocks are skipped; so are
        // the keys before the first row's segment (packed sequences; first_visible_key is 0 without them).
        int64_t kbeg = a.first_visible_key(b, i0), kend = a.visible_keys(i0 + nq - 1);
        for (int64_t j0 = kbeg; j0 < kend; j0 += BK) {
          int64_t nk = std::min(BK, kend - j0);
          const T* k_blk = hv.k + j0 * a.k_ss;
          const T* v_blk = hv.v + j0 * a.v_ss;
          // S = scale · Q_blk K_blkᵀ   [nq, nk]  (one query row, as in decoding: nk dot products)
          if (nq == 1)
            one_row_scores(q_blk, k_blk, a.k_ss, nk, a.D, (T)a.scale, sc.data());
          else
            gemm(false, true, nq, nk, a.D, (T)a.scale, q_blk, a.q_ss, k_blk, a.k_ss, T(0), sc.data(), BK);
          // The online softmax. Row i has seen keys [0, j0) with max m_i, sum l_i = Σ exp(S − m_i) and
          // accumulator acc_i = Σ exp(S − m_i) v. A new block with max m_b moves the max to
          // m' = max(m_i, m_b): old terms are rescaled by α = exp(m_i − m'), new ones enter as exp(S − m').
          for (int64_t i = 0; i < nq; i++) {
            T* si = sc.data() + i * BK;
            // keys [lo, n) of the block are the ones row i sees (lo > 0 only before its segment's start)
            int64_t n = std::clamp<int64_t>(a.visible_keys(i0 + i) - j0, 0, nk);
            int64_t lo = a.first_key ? std::clamp<int64_t>(a.first_visible_key(b, i0 + i) - j0, 0, n) : 0;
            std::fill(si + n, si + nk, T(0));  // masked: P = 0
            std::fill(si, si + lo, T(0));
            if (n == lo) continue;
            T m_block = row_max(si + lo, n - lo);
            T m_new = std::max(m[i], m_block);
            T alpha = std::exp(m[i] - m_new);  // 0 on the row's first block (m = −∞)
            l[i] = l[i] * alpha + exp_shifted_sum(si + lo, n - lo, m_new);
            m[i] = m_new;
            T* ai = acc.data() + i * a.Dv;
#pragma omp simd
            for (int64_t c = 0; c < a.Dv; c++) ai[c] *= alpha;
          }
          // acc += P V_blk   [nq, Dv]
          if (nq == 1)
            one_row_mix(sc.data(), v_blk, a.v_ss, nk, a.Dv, acc.data());
          else
            gemm(false, false, nq, a.Dv, nk, T(1), sc.data(), BK, v_blk, a.v_ss, T(1), acc.data(), a.Dv);
        }
        // o = acc / l, lse = m + log l
        for (int64_t i = 0; i < nq; i++) {
          int64_t row = bh * a.S + i0 + i;
          T* os = o + row * a.Dv;
          const T* ai = acc.data() + i * a.Dv;
          T inv = l[i] == 0 ? T(0) : T(1) / l[i];  // l == 0: the row saw no key (o = 0); NaN stays NaN
          for (int64_t c = 0; c < a.Dv; c++) os[c] = ai[c] * inv;
          lse[row] = l[i] == 0 ? -std::numeric_limits<T>::infinity() : m[i] + std::log(l[i]);
        }
      }
    }
  });
}

// FlashAttention-2's loop order: key blocks outside (their dK, dV rows stay in cache), query blocks
// inside, starting at the first row whose horizon reaches the key block. Per block, five GEMMs:
//   S = scale Q Kᵀ,  P = exp(S − lse),  dV += Pᵀ dO,  dP = dO Vᵀ,  dS = P ⊙ (dP − Δ),
//   dQ += scale dS K,  dK += scale dSᵀ Q.
// Threads over (b, g) kv heads: a thread runs the H/Hkv query heads of its kv head one after the other,
// adding straight into that kv head's dK/dV rows, and writes those heads' dQ rows — so threads never write
// the same memory, and GQA/MQA need no per-query-head scratch copy of dK/dV and no summing pass after it
// (bench-small's MQA attention, B 8, H 4, S 256, D 96: backward ~12.9 -> ~9 ms per layer, one core).
template <class T>
void attention_backward_v2_flash(const AttentionArgs& a, const T* q, const T* k, const T* v, const T* o, const T* lse,
                                 const T* do_, T* dq, T* dk, T* dv) {
  const int64_t BQ = kAttnBlockQ, BK = kAttnBlockK;
  const T scale = (T)a.scale;
  const int64_t group = a.group();
  const int64_t kend = a.visible_keys(a.S - 1);
  const int64_t kv_grain = std::max<int64_t>(1, (heads_grain(a) + group - 1) / group);
  parallel_for(a.B * a.Hkv, kv_grain, [&](int64_t bg0, int64_t bg1) {
    std::vector<T> p(BQ * BK), ds(BQ * BK), delta(a.S);
    for (int64_t bg = bg0; bg < bg1; bg++) {
      T* dkg = dk + bg * a.T * a.D;
      T* dvg = dv + bg * a.T * a.Dv;
      std::fill(dkg, dkg + a.T * a.D, T(0));
      std::fill(dvg, dvg + a.T * a.Dv, T(0));
      for (int64_t r = 0; r < group; r++) {
        int64_t b = bg / a.Hkv, h = (bg % a.Hkv) * group + r, bh = b * a.H + h;
        HeadView<T> hv(a, q, k, v, b, h);
        T* dq_h = dq + bh * a.S * a.D;
        const T* do_h = do_ + bh * a.S * a.Dv;
        std::fill(dq_h, dq_h + a.S * a.D, T(0));
        for (int64_t s = 0; s < a.S; s++) delta[s] = dot(do_h + s * a.Dv, o + (bh * a.S + s) * a.Dv, a.Dv);  // Δ_s
        for (int64_t j0 = 0; j0 < kend; j0 += BK) {
          int64_t nk = std::min(BK, kend - j0);
          const T* k_blk = hv.k + j0 * a.k_ss;
          const T* v_blk = hv.v + j0 * a.v_ss;
          int64_t s_first = a.causal ? std::max<int64_t>(0, j0 - a.start_pos) : 0;
          // Packed sequences: rows whose segment starts at or after the block's end see none of its keys;
          // first_key is non-decreasing, so they are the rows from the first such one on.
          int64_t s_end = a.S;
          if (a.first_key) {
            const int64_t* fk = a.first_key + b * a.S;
            s_end = std::max(s_first, (int64_t)(std::partition_point(fk + s_first, fk + a.S,
                                                                     [&](int64_t f) { return f < j0 + nk; }) - fk));
          }
          for (int64_t i0 = s_first; i0 < s_end; i0 += BQ) {
            int64_t nq = std::min(BQ, s_end - i0);
            const T* q_blk = hv.q + i0 * a.q_ss;
            const T* do_blk = do_h + i0 * a.Dv;
            // P = exp(scale · Q Kᵀ − lse), 0 where masked   [nq, nk]
            gemm(false, true, nq, nk, a.D, scale, q_blk, a.q_ss, k_blk, a.k_ss, T(0), p.data(), BK);
            for (int64_t i = 0; i < nq; i++) {
              T* pi = p.data() + i * BK;
              int64_t n = std::clamp<int64_t>(a.visible_keys(i0 + i) - j0, 0, nk);
              int64_t lo = a.first_key ? std::clamp<int64_t>(a.first_visible_key(b, i0 + i) - j0, 0, n) : 0;
              exp_shifted_sum(pi + lo, n - lo, lse[bh * a.S + i0 + i]);
              std::fill(pi, pi + lo, T(0));
              std::fill(pi + n, pi + nk, T(0));
            }
            // dV_blk += Pᵀ dO   [nk, Dv]
            gemm(true, false, nk, a.Dv, nq, T(1), p.data(), BK, do_blk, a.Dv, T(1), dvg + j0 * a.Dv, a.Dv);
            // dP = dO V_blkᵀ   [nq, nk];  dS = P ⊙ (dP − Δ)
            gemm(false, true, nq, nk, a.Dv, T(1), do_blk, a.Dv, v_blk, a.v_ss, T(0), ds.data(), BK);
            for (int64_t i = 0; i < nq; i++) {
              T* dsi = ds.data() + i * BK;
              const T* pi = p.data() + i * BK;
              T d = delta[i0 + i];
              for (int64_t j = 0; j < nk; j++) dsi[j] = pi[j] * (dsi[j] - d);
            }
            // dQ += scale · dS K_blk   [nq, D];   dK_blk += scale · dSᵀ Q   [nk, D]
            gemm(false, false, nq, a.D, nk, scale, ds.data(), BK, k_blk, a.k_ss, T(1), dq_h + i0 * a.D, a.D);
            gemm(true, false, nk, a.D, nq, scale, ds.data(), BK, q_blk, a.q_ss, T(1), dkg + j0 * a.D, a.D);
          }
        }
      }
    }
  });
}

// =================================================================================================
// The switch: SEEKGRAD_NAIVE=1 (sg::naive_kernels()) takes v1.
// =================================================================================================
template <class T> void attention_forward(const AttentionArgs& a, const T* q, const T* k, const T* v, T* o, T* lse) {
  if (naive_kernels()) attention_forward_v1_naive(a, q, k, v, o, lse);
  else attention_forward_v2_flash(a, q, k, v, o, lse);
}

template <class T>
void attention_backward(const AttentionArgs& a, const T* q, const T* k, const T* v, const T* o, const T* lse,
                        const T* do_, T* dq, T* dk, T* dv) {
  if (naive_kernels()) attention_backward_v1_naive(a, q, k, v, o, lse, do_, dq, dk, dv);
  else attention_backward_v2_flash(a, q, k, v, o, lse, do_, dq, dk, dv);
}

#define SG_ATTENTION_INSTANTIATE(T)                                                                                  \
  template void attention_forward<T>(const AttentionArgs&, const T*, const T*, const T*, T*, T*);                  \
  template void attention_forward_v1_naive<T>(const AttentionArgs&, const T*, const T*, const T*, T*, T*);         \
  template void attention_forward_v2_flash<T>(const AttentionArgs&, const T*, const T*, const T*, T*, T*);         \
  template void attention_backward<T>(const AttentionArgs&, const T*, const T*, const T*, const T*, const T*,      \
                                      const T*, T*, T*, T*);                                                       \
  template void attention_backward_v1_naive<T>(const AttentionArgs&, const T*, const T*, const T*, const T*,       \
                                               const T*, const T*, T*, T*, T*);                                    \
  template void attention_backward_v2_flash<T>(const AttentionArgs&, const T*, const T*, const T*, const T*,       \
                                               const T*, const T*, T*, T*, T*);
SG_ATTENTION_INSTANTIATE(float)
SG_ATTENTION_INSTANTIATE(double)
#undef SG_ATTENTION_INSTANTIATE

}  // namespace sg::cpu
