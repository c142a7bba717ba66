// ops/cpu/moe.cpp — see moe.h. Plain loops, one thread: these are the references the GPU kernels are checked against.
#include "ops/cpu/moe.h"

#include <stdexcept>
#include <string>
#include <vector>

#include "ops/cpu/gemm.h"

namespace sg::cpu {

int64_t moe_dispatch_plan(const int64_t* indices, int64_t n_tokens, int64_t topk, int64_t n_experts, int64_t capacity,
                          int64_t* offset, int64_t* token_sorted, int64_t* slot_sorted, int64_t* slot_pos) {
  const int64_t slots = n_tokens * topk;
  // 1. count: load[e] = slots routed to expert e
  std::vector<int64_t> load(n_experts, 0);
  for (int64_t a = 0; a < slots; a++) {
    if (indices[a] < 0 || indices[a] >= n_experts)
      throw std::invalid_argument("[moe_dispatch_plan] expert " + std::to_string(indices[a]) + " of slot " + std::to_string(a) +
                                  " (token " + std::to_string(a / topk) + ") is outside [0, " + std::to_string(n_experts) + ")");
    load[indices[a]]++;
  }
  // 2. kept per expert, and its segment's start (exclusive prefix sum)
  std::vector<int64_t> kept(n_experts), fill(n_experts, 0);
  offset[0] = 0;
  for (int64_t e = 0; e < n_experts; e++) {
    kept[e] = capacity < 0 || load[e] < capacity ? load[e] : capacity;
    offset[e + 1] = offset[e] + kept[e];
  }
  // 3. place, walking the slots in token order (a stable sort: a full expert drops the latest)
  int64_t dropped = 0;
  for (int64_t a = 0; a < slots; a++) {
    const int64_t e = indices[a];
    if (fill[e] == kept[e]) {
      slot_pos[a] = -1;
      dropped++;
      continue;
    }
    const int64_t p = offset[e] + fill[e]++;
    token_sorted[p] = a / topk;
    slot_sorted[p] = a;
    slot_pos[a] = p;
  }
  return dropped;
}

void moe_permute_forward(const float* x, const int64_t* token_sorted, float* x_sorted, int64_t rows, int64_t dim) {
  for (int64_t p = 0; p < rows; p++)
    for (int64_t c = 0; c < dim; c++) x_sorted[p * dim + c] = x[token_sorted[p] * dim + c];
}

void moe_grouped_gemm_forward(const float* x, const float* w, const int64_t* offset, float* y, int64_t n_experts,
                              int64_t in_dim, int64_t out_dim) {
  for (int64_t e = 0; e < n_experts; e++) {
    const int64_t rows_e = offset[e + 1] - offset[e];
    if (rows_e == 0) continue;
    // y_e [rows_e, out_dim] = x_e [rows_e, in_dim] · W_eᵀ, W_e stored [out_dim, in_dim]
    gemm_f32(false, true, rows_e, out_dim, in_dim, 1.0f, x + offset[e] * in_dim, in_dim, w + e * out_dim * in_dim, in_dim,
             0.0f, y + offset[e] * out_dim, out_dim);
  }
}

void moe_unpermute_forward(const float* y_sorted, const int64_t* slot_pos, const float* weights, float* out,
                           int64_t n_tokens, int64_t topk, int64_t dim) {
  for (int64_t t = 0; t < n_tokens; t++)
    for (int64_t c = 0; c < dim; c++) {
      float acc = out[t * dim + c];
      for (int64_t k = 0; k < topk; k++) {
        const int64_t p = slot_pos[t * topk + k];
        if (p < 0) continue;   // dropped by the capacity
        const float term = weights[t * topk + k] * y_sorted[p * dim + c];   // rounded on its own, then added
        acc += term;
      }
      out[t * dim + c] = acc;
    }
}

}  // namespace sg::cpu
