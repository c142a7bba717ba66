// ops/nn.h — fused neural-network ops with their own backward kernels: softmax, log_softmax,
// cross_entropy, rms_norm, layer_norm, hadamard_rotate, rope, topk, argmax, dropout. Each fused op is tested against
// its composite twin (built from elementwise/reduce ops), values and gradients.
#pragma once
#include "autograd/rng.h"
#include "autograd/tensor.h"

namespace sg {

Tensor softmax(const Tensor& x, int64_t dim = -1);
Tensor log_softmax(const Tensor& x, int64_t dim = -1);
// logits [..., V], targets [...] integer -> scalar: mean over targets != ignore_index of
// -log softmax(logits)[target]. Fused and stable (log-sum-exp with the row max subtracted).
Tensor cross_entropy(const Tensor& logits, const Tensor& targets, int64_t ignore_index = -100);
// y = w ⊙ x / sqrt(mean(x², last dim) + eps), accumulated in fp32 (f64 for f64 inputs). weight [D].
Tensor rms_norm(const Tensor& x, const Tensor& weight, double eps = 1e-6);
// y = (x - mean) / sqrt(var + eps) ⊙ weight + bias over the last dim; bias may be undefined.
Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps = 1e-5);
// y = x · H_n / √n over the last dim n (a power of two; Sylvester-order Hadamard matrix, ops/cpu/hadamard.h):
// the V3.2 indexer's rotate_activation. H_n/√n is symmetric and orthonormal, so dx = dy · H_n / √n.
Tensor hadamard_rotate(const Tensor& x);

// Rotary embedding of the last dim (dr) of x, from a table of angles.
//   x: [B, S, H, dr] or [B, S, dr];  cos, sin: [S, dr/2] (row s = position of x's s-th token).
//   interleaved: pairs (x[2i], x[2i+1]) -> (x0 cos - x1 sin, x0 sin + x1 cos)  (MLA, models/README.md §3)
//   half_split:  pairs (x[i], x[i+dr/2]), same rotation                     (DSA indexer, NeoX style)
// Backward is the rotation by -angle.
enum class RopeLayout { interleaved, half_split };
Tensor rope(const Tensor& x, const Tensor& cos, const Tensor& sin, RopeLayout layout);

// k largest (or smallest) along dim, sorted, ties broken by the lower index. Values are
// differentiable (gradient scattered back to the chosen positions); indices (i64) are not.
struct TopK {
  Tensor values, indices;
};
TopK topk(const Tensor& x, int64_t k, int64_t dim = -1, bool largest = true);
Tensor argmax(const Tensor& x, int64_t dim = -1, bool keepdim = false);   // i64, first maximum
// Inverted dropout: zero with probability p, scale survivors by 1/(1-p); mask from rng (seeded).
Tensor dropout(const Tensor& x, double p, Rng& rng, bool training = true);

}  // namespace sg
