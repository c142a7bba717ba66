// ops/cpu/optim.cpp — see optim.h. Each kernel's loop body is written once (a *_range function over
// [i0, i1)); v1 runs it over [0, n) on the calling thread, v2 over parallel_for's chunks.
#include "ops/cpu/optim.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "autograd/runtime.h"
#include "ops/cpu/runtime.h"
#include "ops/cpu/simd.h"

namespace sg::cpu {

// Elements per thread chunk of the element-wise kernels: they are memory bound (AdamW reads 4 and
// writes 3 floats per element), so a chunk must be large enough to pay for waking a thread.
static constexpr int64_t kGrain = 1 << 14;

// ---- AdamW ------------------------------------------------------------------------------------

// The scalars are copied into locals (here and below): read through a reference they could alias
// p[i], and the compiler would reload them every element instead of vectorising the loop.
static void adamw_range(float* p, const float* g, float* m, float* v, int64_t i0, int64_t i1, const AdamWUpdateArgs& args) {
  const AdamWUpdateArgs a = args;
  for (int64_t i = i0; i < i1; ++i) {
    p[i] *= a.decay_factor;
    m[i] = a.beta1 * m[i] + (1.0f - a.beta1) * g[i];
    v[i] = a.beta2 * v[i] + (1.0f - a.beta2) * g[i] * g[i];
    const float denom = std::sqrt(v[i]) / a.bias_correction2_sqrt + a.eps;
    p[i] -= a.step_size * m[i] / denom;
  }
}

// The same body as a vector loop (ops/cpu/simd.h): one clone per instruction set. sqrt and division are
// correctly rounded in SIMD as in scalar code, and this file is built with -ffp-contract=off (no a·b + c
// fused into an FMA), so every element gets the bits adamw_range gives it. Vectorising std::sqrt needs
// -fno-math-errno (also set for this file in CMakeLists.txt; nothing reads errno).
SG_SIMD_CLONES static void adamw_range_simd(float* p, const float* g, float* m, float* v, int64_t i0, int64_t i1,
                                            const AdamWUpdateArgs& args) {
  const AdamWUpdateArgs a = args;
#pragma omp simd
  for (int64_t i = i0; i < i1; ++i) {
    p[i] *= a.decay_factor;
    m[i] = a.beta1 * m[i] + (1.0f - a.beta1) * g[i];
    v[i] = a.beta2 * v[i] + (1.0f - a.beta2) * g[i] * g[i];
    const float denom = std::sqrt(v[i]) / a.bias_correction2_sqrt + a.eps;
    p[i] -= a.step_size * m[i] / denom;
  }
}

void adamw_update_f32_v1_naive(float* p, const float* g, float* m, float* v, int64_t n, const AdamWUpdateArgs& a) {
  adamw_range(p, g, m, v, 0, n, a);
}
void adamw_update_f32_v2_parallel(float* p, const float* g, float* m, float* v, int64_t n, const AdamWUpdateArgs& a) {
  parallel_for(n, kGrain, [&](int64_t i0, int64_t i1) { adamw_range_simd(p, g, m, v, i0, i1, a); });
}
void adamw_update_f32(float* p, const float* g, float* m, float* v, int64_t n, const AdamWUpdateArgs& a) {
  if (naive_kernels()) return adamw_update_f32_v1_naive(p, g, m, v, n, a);
  adamw_update_f32_v2_parallel(p, g, m, v, n, a);
}

// ---- SGD --------------------------------------------------------------------------------------

static void sgd_range(float* p, const float* g, float* buf, int64_t i0, int64_t i1, const SGDUpdateArgs& args) {
  const SGDUpdateArgs a = args;
  for (int64_t i = i0; i < i1; ++i) {
    float d = g[i] + a.weight_decay * p[i];
    if (buf) {
      buf[i] = a.first ? d : a.momentum * buf[i] + d;
      d = a.nesterov ? d + a.momentum * buf[i] : buf[i];
    }
    p[i] -= a.lr * d;
  }
}

SG_SIMD_CLONES static void sgd_range_simd(float* p, const float* g, float* buf, int64_t i0, int64_t i1,
                                          const SGDUpdateArgs& args) {
  const SGDUpdateArgs a = args;
  if (!buf) {
#pragma omp simd
    for (int64_t i = i0; i < i1; ++i) p[i] -= a.lr * (g[i] + a.weight_decay * p[i]);
    return;
  }
#pragma omp simd
  for (int64_t i = i0; i < i1; ++i) {
    const float d = g[i] + a.weight_decay * p[i];
    buf[i] = a.first ? d : a.momentum * buf[i] + d;
    p[i] -= a.lr * (a.nesterov ? d + a.momentum * buf[i] : buf[i]);
  }
}

void sgd_update_f32_v1_naive(float* p, const float* g, float* buf, int64_t n, const SGDUpdateArgs& a) {
  sgd_range(p, g, buf, 0, n, a);
}
void sgd_update_f32_v2_parallel(float* p, const float* g, float* buf, int64_t n, const SGDUpdateArgs& a) {
  parallel_for(n, kGrain, [&](int64_t i0, int64_t i1) { sgd_range_simd(p, g, buf, i0, i1, a); });
}
void sgd_update_f32(float* p, const float* g, float* buf, int64_t n, const SGDUpdateArgs& a) {
  if (naive_kernels()) return sgd_update_f32_v1_naive(p, g, buf, n, a);
  sgd_update_f32_v2_parallel(p, g, buf, n, a);
}

// ---- sum of squares ---------------------------------------------------------------------------

// Σ x[j]², j < n, in element order, in double: one chunk's sum.
static double chunk_sum_squares(const float* x, int64_t n) {
  double acc = 0.0;
  for (int64_t j = 0; j < n; ++j) acc += (double)x[j] * (double)x[j];
  return acc;
}

double sum_squares_f32_v1_naive(const float* const* x, const int64_t* n, int64_t count) {
  double total = 0.0;
  for (int64_t i = 0; i < count; ++i)
    for (int64_t j = 0; j < n[i]; j += kSumSquaresChunk)
      total += chunk_sum_squares(x[i] + j, std::min(kSumSquaresChunk, n[i] - j));
  return total;
}

// v2's chunk sum: 8 running sums, lane j taking the elements i ≡ j (mod 8), added in lane order at the
// end, then the tail. The order is fixed here, not by the vector width of the clone that runs, so every
// machine gets the same bits; it differs from v1's element order by rounding only (~1e-16 relative).
SG_SIMD_CLONES static double chunk_sum_squares_lanes(const float* x, int64_t n) {
  double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) acc[j] += (double)x[i + j] * (double)x[i + j];
  double total = 0.0;
  for (int j = 0; j < 8; ++j) total += acc[j];
  for (; i < n; ++i) total += (double)x[i] * (double)x[i];
  return total;
}

// The chunks of all buffers are listed first, so many small gradients and a few large ones are split
// over the threads in one parallel region; each chunk's sum lands in its own slot, and the slots are
// added in chunk order, as in v1. (Serial, this loop over 10M values cost ~30 ms of a
// bench-small training step.)
double sum_squares_f32_v2_parallel(const float* const* x, const int64_t* n, int64_t count) {
  struct Chunk {
    const float* data;
    int64_t n;
  };
  std::vector<Chunk> chunks;
  for (int64_t i = 0; i < count; ++i)
    for (int64_t j = 0; j < n[i]; j += kSumSquaresChunk) chunks.push_back({x[i] + j, std::min(kSumSquaresChunk, n[i] - j)});
  std::vector<double> partial(chunks.size(), 0.0);
  parallel_for((int64_t)chunks.size(), 4, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) partial[c] = chunk_sum_squares_lanes(chunks[c].data, chunks[c].n);
  });
  double total = 0.0;
  for (double s : partial) total += s;
  return total;
}

double sum_squares_f32(const float* const* x, const int64_t* n, int64_t count) {
  if (naive_kernels()) return sum_squares_f32_v1_naive(x, n, count);
  return sum_squares_f32_v2_parallel(x, n, count);
}

// ---- scale ------------------------------------------------------------------------------------

static void scale_range(float* x, int64_t i0, int64_t i1, float c) {
  for (int64_t i = i0; i < i1; ++i) x[i] *= c;
}
SG_SIMD_CLONES static void scale_range_simd(float* x, int64_t i0, int64_t i1, float c) {
#pragma omp simd
  for (int64_t i = i0; i < i1; ++i) x[i] *= c;
}
void scale_f32_v1_naive(float* x, int64_t n, float c) { scale_range(x, 0, n, c); }
void scale_f32_v2_parallel(float* x, int64_t n, float c) {
  parallel_for(n, kGrain, [&](int64_t i0, int64_t i1) { scale_range_simd(x, i0, i1, c); });
}
void scale_f32(float* x, int64_t n, float c) {
  if (naive_kernels()) return scale_f32_v1_naive(x, n, c);
  scale_f32_v2_parallel(x, n, c);
}

}  // namespace sg::cpu
