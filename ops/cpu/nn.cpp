// ops/cpu/nn.cpp — see nn.h. Each kernel is written as a function of one row (or one block of
// rows) and run by `for_rows`: one plain loop in naive mode, split over threads otherwise. A row's
// arithmetic is the same on both paths, so naive and fast results agree bit for bit.
#include "ops/cpu/nn.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "ops/cpu/runtime.h"

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

// ---- softmax ------------------------------------------------------------------------------------
// y = exp(x − m) / Σ exp(x − m), m = row max (so no exp overflows; the largest term is exp(0) = 1).
template <class T> void softmax_forward(const T* x, T* y, int64_t rows, int64_t cols) {
  for_rows(rows, cols, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const T* xr = x + r * cols;
      T* yr = y + r * cols;
      T m = row_max(xr, cols);
      double s = 0;
      for (int64_t c = 0; c < cols; c++) {
        yr[c] = std::exp(xr[c] - m);
        s += yr[c];
      }
      double inv = 1.0 / s;
      for (int64_t c = 0; c < cols; c++) yr[c] = (T)(yr[c] * inv);
    }
  });
}

// dx_c = Σ_k dy_k ∂y_k/∂x_c = Σ_k dy_k y_k (δ_kc − y_c) = y_c (dy_c − Σ_k dy_k y_k)
template <class T> void softmax_backward(const T* y, const T* dy, T* dx, int64_t rows, int64_t cols) {
  for_rows(rows, cols, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const T *yr = y + r * cols, *dyr = dy + r * cols;
      T* dxr = dx + r * cols;
      double dot = 0;
      for (int64_t c = 0; c < cols; c++) dot += (double)dyr[c] * yr[c];
      T d = (T)dot;
      for (int64_t c = 0; c < cols; c++) dxr[c] = yr[c] * (dyr[c] - d);
    }
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
      T m = row_max(xr, V);
      double s = 0;
      for (int64_t c = 0; c < V; c++) s += std::exp(xr[c] - m);
      double l = (double)m + std::log(s);
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
      for (int64_t c = 0; c < V; c++) dr[c] = scale * std::exp(xr[c] - lse[r]);
      dr[targets[r]] -= scale;
    }
  });
}

// ---- rms_norm -----------------------------------------------------------------------------------
template <class T> void rms_norm_forward(const T* x, const T* weight, T* y, T* rstd, int64_t rows, int64_t D, double eps) {
  for_rows(rows, D, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const T* xr = x + r * D;
      T* yr = y + r * D;
      double ss = 0;
      for (int64_t c = 0; c < D; c++) ss += (double)xr[c] * xr[c];
      T rs = (T)(1.0 / std::sqrt(ss / (double)D + eps));
      rstd[r] = rs;
      for (int64_t c = 0; c < D; c++) yr[c] = (xr[c] * rs) * weight[c];
    }
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
    for (int64_t r = r0; r < r1; r++) {
      const T *xr = x + r * D, *dyr = dy + r * D;
      T* dxr = dx + r * D;
      double rs = rstd[r], dot = 0;
      for (int64_t c = 0; c < D; c++) dot += (double)weight[c] * dyr[c] * xr[c];
      double k = rs * rs * rs * dot / (double)D;
      for (int64_t c = 0; c < D; c++) dxr[c] = (T)(rs * (double)weight[c] * dyr[c] - (double)xr[c] * k);
    }
  });
  if (dweight) column_sums(rows, D, dweight, [&](int64_t r, int64_t c) { return (double)dy[r * D + c] * x[r * D + c] * rstd[r]; });
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
          rope_rotate<T>(xh[ia], xh[ib], cs[i], sign > 0 ? sn[i] : -sn[i], yh[ia], yh[ib]);
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
