// ops/cpu/nn.cpp — see nn.h. Each kernel is written as a function of one row (or one block of
// rows) and run by `for_rows`: one plain loop in naive mode, split over threads otherwise. A row's
// arithmetic is the same on both paths, so naive and fast results agree bit for bit.
#include "ops/cpu/nn.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "autograd/runtime.h"
#include "ops/cpu/runtime.h"
#include "ops/cpu/simd.h"
#include "ops/scalar_math.h"

namespace sg::cpu {

// Runs body(r0, r1) over [0, rows): the plain loop in naive mode, else contiguous chunks of rows on
// the thread pool, each chunk holding at least ~16K values (below that, threads cost more than they save).
template <class F> static void for_rows(int64_t rows, int64_t cols, F&& body) {
  if (naive_kernels()) {
    body(0, rows);
    return;
  }
  parallel_for(rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(cols, 1)), body);
}

template <class T> static T row_max(const T* row, int64_t cols) {
  T m = row[0];
  for (int64_t c = 1; c < cols; c++) m = row[c] > m ? row[c] : m;
  return m;
}

// ---- the row arithmetic of softmax and cross_entropy ---------------------------------------------
// These kernels spend their time in exp over whole rows (a 4096-wide vocabulary row in cross_entropy).
// f32 rows run as vectorised loops (ops/cpu/simd.h): exp_f32 instead of a scalar libm call per element,
// and sums in float over 16 lanes of partial sums. f64 rows keep std::exp and double sums. Naive mode
// calls the same row functions (it only gives up the threads), so the two modes still agree bit for bit.
// Measured on the bench-small training step (cross_entropy over 2048 × 4096 logits, softmax of the
// composite attention): cross_entropy forward + backward ~45 -> ~8 ms per step on one core.
[[gnu::always_inline]] inline float exp_of(float x) { return exp_f32(x); }
[[gnu::always_inline]] inline double exp_of(double x) { return std::exp(x); }

// max_c x[c], written as a select so it vectorises
template <class T> [[gnu::always_inline]] inline T vec_max_impl(const T* x, int64_t n) {
  T m = x[0];
#pragma omp simd reduction(max : m)
  for (int64_t c = 0; c < n; c++) m = x[c] > m ? x[c] : m;
  return m;
}
// y = exp(x − m) / Σ exp(x − m)
template <class T> [[gnu::always_inline]] inline void softmax_row_impl(const T* x, T* y, int64_t n) {
  T m = vec_max_impl(x, n), s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t c = 0; c < n; c++) {
    y[c] = exp_of(x[c] - m);
    s += y[c];
  }
  T inv = T(1) / s;
#pragma omp simd
  for (int64_t c = 0; c < n; c++) y[c] *= inv;
}
// dx = y ⊙ (dy − Σ dy ⊙ y)
template <class T> [[gnu::always_inline]] inline void softmax_backward_row_impl(const T* y, const T* dy, T* dx, int64_t n) {
  T d = 0;
#pragma omp simd reduction(+ : d)
  for (int64_t c = 0; c < n; c++) d += dy[c] * y[c];
#pragma omp simd
  for (int64_t c = 0; c < n; c++) dx[c] = y[c] * (dy[c] - d);
}
// log Σ exp(x) = m + log Σ exp(x − m)
template <class T> [[gnu::always_inline]] inline double logsumexp_row_impl(const T* x, int64_t n) {
  T m = vec_max_impl(x, n), s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t c = 0; c < n; c++) s += exp_of(x[c] - m);
  return (double)m + std::log((double)s);
}
// dx = a · exp(x − lse)   (a · softmax)
template <class T> [[gnu::always_inline]] inline void scaled_softmax_row_impl(const T* x, T lse, T a, T* dx, int64_t n) {
#pragma omp simd
  for (int64_t c = 0; c < n; c++) dx[c] = a * exp_of(x[c] - lse);
}
SG_SIMD_CLONES static void softmax_row(const float* x, float* y, int64_t n) { softmax_row_impl(x, y, n); }
static void softmax_row(const double* x, double* y, int64_t n) { softmax_row_impl(x, y, n); }
SG_SIMD_CLONES static void softmax_backward_row(const float* y, const float* dy, float* dx, int64_t n) {
  softmax_backward_row_impl(y, dy, dx, n);
}
static void softmax_backward_row(const double* y, const double* dy, double* dx, int64_t n) {
  softmax_backward_row_impl(y, dy, dx, n);
}
SG_SIMD_CLONES static double logsumexp_row(const float* x, int64_t n) { return logsumexp_row_impl(x, n); }
static double logsumexp_row(const double* x, int64_t n) { return logsumexp_row_impl(x, n); }
SG_SIMD_CLONES static void scaled_softmax_row(const float* x, float lse, float a, float* dx, int64_t n) {
  scaled_softmax_row_impl(x, lse, a, dx, n);
}
static void scaled_softmax_row(const double* x, double lse, double a, double* dx, int64_t n) {
  scaled_softmax_row_impl(x, lse, a, dx, n);
}

// ---- softmax ------------------------------------------------------------------------------------
// y = exp(x − m) / Σ exp(x − m), m = row max (so no exp overflows; the largest term is exp(0) = 1).
template <class T> void softmax_forward(const T* x, T* y, int64_t rows, int64_t cols) {
  for_rows(rows, cols, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) softmax_row(x + r * cols, y + r * cols, cols);
  });
}

// dx_c = Σ_k dy_k ∂y_k/∂x_c = Σ_k dy_k y_k (δ_kc − y_c) = y_c (dy_c − Σ_k dy_k y_k)
template <class T> void softmax_backward(const T* y, const T* dy, T* dx, int64_t rows, int64_t cols) {
  for_rows(rows, cols, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) softmax_backward_row(y + r * cols, dy + r * cols, dx + r * cols, cols);
  });
}

// ---- log_softmax --------------------------------------------------------------------------------
// y = x − m − log Σ exp(x − m)
template <class T> void log_softmax_forward(const T* x, T* y, int64_t rows, int64_t cols) {
  for_rows(rows, cols, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const T* xr = x + r * cols;
      T* yr = y + r * cols;
      T m = row_max(xr, cols);
      double s = 0;
      for (int64_t c = 0; c < cols; c++) s += std::exp(xr[c] - m);
      T log_s = (T)std::log(s);
      for (int64_t c = 0; c < cols; c++) yr[c] = xr[c] - m - log_s;
    }
  });
}

// dx_c = Σ_k dy_k (δ_kc − softmax_c) = dy_c − exp(y_c) Σ_k dy_k
template <class T> void log_softmax_backward(const T* y, const T* dy, T* dx, int64_t rows, int64_t cols) {
  for_rows(rows, cols, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const T *yr = y + r * cols, *dyr = dy + r * cols;
      T* dxr = dx + r * cols;
      double s = 0;
      for (int64_t c = 0; c < cols; c++) s += dyr[c];
      T st = (T)s;
      for (int64_t c = 0; c < cols; c++) dxr[c] = dyr[c] - std::exp(yr[c]) * st;
    }
  });
}

// ---- cross entropy ------------------------------------------------------------------------------
// loss_r = −log softmax(x_r)[t_r] = lse_r − x_r[t_r],  lse_r = m + log Σ exp(x_r − m)
template <class T>
void cross_entropy_forward(const T* logits, const int64_t* targets, T* lse, T* loss, int64_t rows, int64_t V,
                           int64_t ignore_index) {
  for_rows(rows, V, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      if (targets[r] == ignore_index) {
        lse[r] = T(0);
        loss[r] = T(0);
        continue;
      }
      const T* xr = logits + r * V;
      double l = logsumexp_row(xr, V);
      lse[r] = (T)l;
      loss[r] = (T)(l - (double)xr[targets[r]]);
    }
  });
}

// ∂loss_r/∂x_r[c] = softmax(x_r)[c] − [c == t_r]
template <class T>
void cross_entropy_backward(const T* logits, const int64_t* targets, const T* lse, T scale, T* dlogits, int64_t rows,
                            int64_t V, int64_t ignore_index) {
  for_rows(rows, V, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const T* xr = logits + r * V;
      T* dr = dlogits + r * V;
      if (targets[r] == ignore_index) {
        for (int64_t c = 0; c < V; c++) dr[c] = T(0);
        continue;
      }
      scaled_softmax_row(xr, lse[r], scale, dr, V);
      dr[targets[r]] -= scale;
    }
  });
}

// ---- rms_norm -----------------------------------------------------------------------------------
// One row of each, in double as before; marked `omp simd` and, for f32, compiled per instruction set
// (simd.h), so the double sums run 8 lanes wide instead of one value at a time. Both modes call the same
// functions. Measured on the bench-small step (17 rms_norms of [2048, ≤256]): ~17 -> ~6 ms on one core.
template <class T>
[[gnu::always_inline]] inline T rms_norm_row_impl(const T* x, const T* weight, T* y, int64_t D, double eps) {
  double ss = 0;
#pragma omp simd reduction(+ : ss)
  for (int64_t c = 0; c < D; c++) ss += (double)x[c] * x[c];
  T rs = (T)(1.0 / std::sqrt(ss / (double)D + eps));
#pragma omp simd
  for (int64_t c = 0; c < D; c++) y[c] = (x[c] * rs) * weight[c];
  return rs;
}
template <class T>
[[gnu::always_inline]] inline void rms_norm_backward_row_impl(const T* x, const T* weight, double rs, const T* dy, T* dx,
                                                              int64_t D) {
  double dot = 0;
#pragma omp simd reduction(+ : dot)
  for (int64_t c = 0; c < D; c++) dot += (double)weight[c] * dy[c] * x[c];
  double k = rs * rs * rs * dot / (double)D;
#pragma omp simd
  for (int64_t c = 0; c < D; c++) dx[c] = (T)(rs * (double)weight[c] * dy[c] - (double)x[c] * k);
}
// dweight[c0, c1) = Σ_rows dy x rstd, one column block (each thread owns its columns, so the sums are
// deterministic and need no reduction across threads).
template <class T>
[[gnu::always_inline]] inline void rms_norm_dweight_impl(const T* x, const T* rstd, const T* dy, T* dweight, int64_t rows,
                                                         int64_t D, int64_t c0, int64_t c1, double* acc) {
  for (int64_t c = c0; c < c1; c++) acc[c - c0] = 0;
  for (int64_t r = 0; r < rows; r++) {
    const T *xr = x + r * D, *dyr = dy + r * D;
    double rs = rstd[r];
#pragma omp simd
    for (int64_t c = c0; c < c1; c++) acc[c - c0] += (double)dyr[c] * xr[c] * rs;
  }
  for (int64_t c = c0; c < c1; c++) dweight[c] = (T)acc[c - c0];
}
SG_SIMD_CLONES static float rms_norm_row(const float* x, const float* w, float* y, int64_t D, double eps) {
  return rms_norm_row_impl(x, w, y, D, eps);
}
static double rms_norm_row(const double* x, const double* w, double* y, int64_t D, double eps) {
  return rms_norm_row_impl(x, w, y, D, eps);
}
SG_SIMD_CLONES static void rms_norm_backward_row(const float* x, const float* w, double rs, const float* dy, float* dx,
                                                 int64_t D) {
  rms_norm_backward_row_impl(x, w, rs, dy, dx, D);
}
static void rms_norm_backward_row(const double* x, const double* w, double rs, const double* dy, double* dx, int64_t D) {
  rms_norm_backward_row_impl(x, w, rs, dy, dx, D);
}
SG_SIMD_CLONES static void rms_norm_dweight(const float* x, const float* rstd, const float* dy, float* dweight,
                                            int64_t rows, int64_t D, int64_t c0, int64_t c1, double* acc) {
  rms_norm_dweight_impl(x, rstd, dy, dweight, rows, D, c0, c1, acc);
}
static void rms_norm_dweight(const double* x, const double* rstd, const double* dy, double* dweight, int64_t rows,
                             int64_t D, int64_t c0, int64_t c1, double* acc) {
  rms_norm_dweight_impl(x, rstd, dy, dweight, rows, D, c0, c1, acc);
}

template <class T> void rms_norm_forward(const T* x, const T* weight, T* y, T* rstd, int64_t rows, int64_t D, double eps) {
  for_rows(rows, D, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) rstd[r] = rms_norm_row(x + r * D, weight, y + r * D, D, eps);
  });
}

// Column sums Σ_rows f(r, c) into out[D], split over column blocks (each thread owns its columns,
// so the sums are deterministic and need no reduction across threads).
template <class T, class F> static void column_sums(int64_t rows, int64_t D, T* out, F&& f) {
  auto body = [&](int64_t c0, int64_t c1) {
    std::vector<double> acc(c1 - c0, 0.0);
    for (int64_t r = 0; r < rows; r++)
      for (int64_t c = c0; c < c1; c++) acc[c - c0] += f(r, c);
    for (int64_t c = c0; c < c1; c++) out[c] = (T)acc[c - c0];
  };
  if (naive_kernels()) body(0, D);
  else parallel_for(D, std::max<int64_t>(16, 16384 / std::max<int64_t>(rows, 1)), body);
}

// y_c = w_c x_c r,  r = (mean_k x_k² + eps)^(−1/2),  ∂r/∂x_c = −r³ x_c / D
// dx_c = Σ_k dy_k w_k (δ_kc r + x_k ∂r/∂x_c) = r g_c − x_c r³ mean_k(g_k x_k),  g = w ⊙ dy
// dw_c = Σ_rows dy_c x_c r
template <class T>
void rms_norm_backward(const T* x, const T* weight, const T* rstd, const T* dy, T* dx, T* dweight, int64_t rows,
                       int64_t D) {
  for_rows(rows, D, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) rms_norm_backward_row(x + r * D, weight, (double)rstd[r], dy + r * D, dx + r * D, D);
  });
  if (!dweight) return;
  auto body = [&](int64_t c0, int64_t c1) {
    std::vector<double> acc(c1 - c0);
    rms_norm_dweight(x, rstd, dy, dweight, rows, D, c0, c1, acc.data());
  };
  if (naive_kernels()) body(0, D);
  else parallel_for(D, std::max<int64_t>(16, 16384 / std::max<int64_t>(rows, 1)), body);
}

// ---- layer_norm ---------------------------------------------------------------------------------
template <class T>
void layer_norm_forward(const T* x, const T* weight, const T* bias, T* y, T* mean, T* rstd, int64_t rows, int64_t D,
                        double eps) {
  for_rows(rows, D, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const T* xr = x + r * D;
      T* yr = y + r * D;
      double s = 0;
      for (int64_t c = 0; c < D; c++) s += xr[c];
      double mu = s / (double)D, v = 0;
      for (int64_t c = 0; c < D; c++) v += ((double)xr[c] - mu) * ((double)xr[c] - mu);
      double rs = 1.0 / std::sqrt(v / (double)D + eps);
      mean[r] = (T)mu;
      rstd[r] = (T)rs;
      for (int64_t c = 0; c < D; c++) {
        T xhat = (T)(((double)xr[c] - mu) * rs);
        yr[c] = xhat * weight[c] + (bias ? bias[c] : T(0));
      }
    }
  });
}

// x̂ = (x − μ) r;  ∂x̂_k/∂x_c = r (δ_kc − 1/D − x̂_k x̂_c / D)
// dx_c = Σ_k g_k ∂x̂_k/∂x_c = r (g_c − mean(g) − x̂_c mean(g ⊙ x̂)),  g = w ⊙ dy
// dw = Σ_rows dy ⊙ x̂,  db = Σ_rows dy
template <class T>
void layer_norm_backward(const T* x, const T* weight, const T* mean, const T* rstd, const T* dy, T* dx, T* dweight,
                         T* dbias, int64_t rows, int64_t D) {
  for_rows(rows, D, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const T *xr = x + r * D, *dyr = dy + r * D;
      T* dxr = dx + r * D;
      double mu = mean[r], rs = rstd[r], sg = 0, sgx = 0;
      for (int64_t c = 0; c < D; c++) {
        double g = (double)weight[c] * dyr[c], xhat = ((double)xr[c] - mu) * rs;
        sg += g;
        sgx += g * xhat;
      }
      sg /= (double)D;
      sgx /= (double)D;
      for (int64_t c = 0; c < D; c++) {
        double g = (double)weight[c] * dyr[c], xhat = ((double)xr[c] - mu) * rs;
        dxr[c] = (T)(rs * (g - sg - xhat * sgx));
      }
    }
  });
  if (dweight)
    column_sums(rows, D, dweight, [&](int64_t r, int64_t c) {
      return (double)dy[r * D + c] * (((double)x[r * D + c] - (double)mean[r]) * (double)rstd[r]);
    });
  if (dbias) column_sums(rows, D, dbias, [&](int64_t r, int64_t c) { return (double)dy[r * D + c]; });
}

// ---- rope ---------------------------------------------------------------------------------------
template <class T>
void rope_forward(const T* x, const T* cos, const T* sin, T* y, int64_t B, int64_t S, int64_t H, int64_t dr,
                  bool interleaved, int sign) {
  int64_t half = dr / 2;
  // one "row" = one token (b, s): H heads of dr values, all rotated by the angles of position s
  for_rows(B * S, H * dr, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; t++) {
      int64_t s = t % S;
      const T *cs = cos + s * half, *sn = sin + s * half;
      for (int64_t h = 0; h < H; h++) {
        const T* xh = x + (t * H + h) * dr;
        T* yh = y + (t * H + h) * dr;
        for (int64_t i = 0; i < half; i++) {
          int64_t ia = interleaved ? 2 * i : i, ib = interleaved ? 2 * i + 1 : i + half;
          scalar::rope_rotate<T>(xh[ia], xh[ib], cs[i], sign > 0 ? sn[i] : -sn[i], yh[ia], yh[ib]);
        }
      }
    }
  });
}

// A rotation is orthogonal: its transpose is the rotation by −φ, so dx = rope(dy, cos, −sin).
template <class T>
void rope_backward(const T* dy, const T* cos, const T* sin, T* dx, int64_t B, int64_t S, int64_t H, int64_t dr,
                   bool interleaved) {
  rope_forward(dy, cos, sin, dx, B, S, H, dr, interleaved, -1);
}

// ---- topk / argmax ------------------------------------------------------------------------------
// A total order with NaN above every number (so a NaN is "largest", as in PyTorch).
template <class T> static bool value_less(T a, T b) {
  bool na = std::isnan(a), nb = std::isnan(b);
  if (na || nb) return !na && nb;
  return a < b;
}

template <class T>
void topk_forward(const T* x, T* values, int64_t* indices, int64_t rows, int64_t n, int64_t k, bool largest) {
  for_rows(rows, n, [&](int64_t r0, int64_t r1) {
    std::vector<int64_t> order(n);
    std::vector<char> taken;
    for (int64_t r = r0; r < r1; r++) {
      const T* xr = x + r * n;
      // `a` comes before `b` in the result: better value, or equal value and lower index.
      auto before = [&](int64_t a, int64_t b) {
        bool lt = value_less(xr[a], xr[b]), gt = value_less(xr[b], xr[a]);
        if (lt || gt) return largest ? gt : lt;
        return a < b;
      };
      if (naive_kernels()) {  // k selection passes, each picks the best position not taken yet
        taken.assign(n, 0);
        for (int64_t j = 0; j < k; j++) {
          int64_t best = -1;
          for (int64_t c = 0; c < n; c++)
            if (!taken[c] && (best < 0 || before(c, best))) best = c;
          taken[best] = 1;
          order[j] = best;
        }
      } else {
        std::iota(order.begin(), order.end(), int64_t(0));
        std::partial_sort(order.begin(), order.begin() + k, order.end(), before);
      }
      for (int64_t j = 0; j < k; j++) {
        values[r * k + j] = xr[order[j]];
        indices[r * k + j] = order[j];
      }
    }
  });
}

// values_j = x[indices_j]  =>  dx[indices_j] = dvalues_j, 0 elsewhere
template <class T>
void topk_backward(const T* dvalues, const int64_t* indices, T* dx, int64_t rows, int64_t n, int64_t k) {
  for_rows(rows, n, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      T* dxr = dx + r * n;
      for (int64_t c = 0; c < n; c++) dxr[c] = T(0);
      for (int64_t j = 0; j < k; j++) dxr[indices[r * k + j]] += dvalues[r * k + j];
    }
  });
}

template <class T> void argmax_forward(const T* x, int64_t* out, int64_t rows, int64_t n) {
  for_rows(rows, n, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const T* xr = x + r * n;
      int64_t best = 0;
      for (int64_t c = 1; c < n; c++)
        if (value_less(xr[best], xr[c])) best = c;
      out[r] = best;
    }
  });
}

// ---- dropout ------------------------------------------------------------------------------------
template <class T> void dropout_mask(Rng& rng, double p, T* mask, int64_t n) {
  T keep = (T)(1.0 / (1.0 - p));
  for (int64_t i = 0; i < n; i++) mask[i] = rng.uniform() >= p ? keep : T(0);
}

template <class T> void dropout_apply(const T* x, const T* mask, T* y, int64_t n) {
  for_rows(n, 1, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; i++) y[i] = x[i] * mask[i];
  });
}

// ---- instantiations -----------------------------------------------------------------------------
#define SG_NN_KERNELS(T)                                                                                              \
  template void softmax_forward<T>(const T*, T*, int64_t, int64_t);                                                   \
  template void softmax_backward<T>(const T*, const T*, T*, int64_t, int64_t);                                        \
  template void log_softmax_forward<T>(const T*, T*, int64_t, int64_t);                                               \
  template void log_softmax_backward<T>(const T*, const T*, T*, int64_t, int64_t);                                    \
  template void cross_entropy_forward<T>(const T*, const int64_t*, T*, T*, int64_t, int64_t, int64_t);               \
  template void cross_entropy_backward<T>(const T*, const int64_t*, const T*, T, T*, int64_t, int64_t, int64_t);     \
  template void rms_norm_forward<T>(const T*, const T*, T*, T*, int64_t, int64_t, double);                           \
  template void rms_norm_backward<T>(const T*, const T*, const T*, const T*, T*, T*, int64_t, int64_t);              \
  template void layer_norm_forward<T>(const T*, const T*, const T*, T*, T*, T*, int64_t, int64_t, double);           \
  template void layer_norm_backward<T>(const T*, const T*, const T*, const T*, const T*, T*, T*, T*, int64_t, int64_t); \
  template void rope_forward<T>(const T*, const T*, const T*, T*, int64_t, int64_t, int64_t, int64_t, bool, int);    \
  template void rope_backward<T>(const T*, const T*, const T*, T*, int64_t, int64_t, int64_t, int64_t, bool);        \
  template void topk_forward<T>(const T*, T*, int64_t*, int64_t, int64_t, int64_t, bool);                            \
  template void topk_backward<T>(const T*, const int64_t*, T*, int64_t, int64_t, int64_t);                           \
  template void argmax_forward<T>(const T*, int64_t*, int64_t, int64_t);                                              \
  template void dropout_mask<T>(Rng&, double, T*, int64_t);                                                           \
  template void dropout_apply<T>(const T*, const T*, T*, int64_t);
SG_NN_KERNELS(float)
SG_NN_KERNELS(double)
#undef SG_NN_KERNELS

}  // namespace sg::cpu
