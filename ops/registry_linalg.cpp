// ops/registry_linalg.cpp — registry cases for ops/linalg.h: matmul (2-D, batched, broadcast batch,
// 1-D operands, transposed operand views, sizes >= 17 that run the packed SIMD GEMM's full tiles and
// edges) and linear (y = x Wᵀ with a 3-D x).
//
// The reference is the triple loop in double over Tensor::at (numpy matmul rules written out: batch
// dims broadcast right-aligned, a 1-D operand gets a temporary dim that is dropped again). It calls
// no op from ops/. The f32 value check's atol grows with K (sum of K rounded products).
#include <cmath>
#include <functional>

#include "ops/linalg.h"
#include "ops/registry.h"
#include "ops/shape.h"

namespace sg {
namespace {

using Index = std::vector<int64_t>;
using Inputs = std::vector<Tensor>;
using Reader = std::function<double(const Index&)>;  // element of a logical operand

// C = A·B for logical operands of shapes sa, sb (read through ra, rb), numpy rules.
Tensor matmul_reference(const Shape& sa, const Reader& ra, const Shape& sb, const Reader& rb) {
  bool a1 = sa.size() == 1, b1 = sb.size() == 1;
  Shape A = a1 ? Shape{1, sa[0]} : sa, B = b1 ? Shape{sb[0], 1} : sb;
  int64_t M = A[A.size() - 2], K = A.back(), N = B.back();
  // Broadcast batch shape, right-aligned.
  size_t nba = A.size() - 2, nbb = B.size() - 2, nb = std::max(nba, nbb);
  Shape batch(nb);
  for (size_t d = 0; d < nb; d++) {
    int64_t da = d + nba >= nb ? A[d + nba - nb] : 1, db = d + nbb >= nb ? B[d + nbb - nb] : 1;
    batch[d] = da == 1 ? db : da;
  }
  Shape out = batch;
  if (!a1) out.push_back(M);
  if (!b1) out.push_back(N);
  return make_reference(out, [&](const Index& o) {
    Index bi(o.begin(), o.begin() + nb);
    int64_t m = a1 ? 0 : o[nb], n = b1 ? 0 : o[nb + (a1 ? 0 : 1)];
    // Index of an operand: its own batch dims (size-1 dims pinned to 0), then its matrix dims
    // (a 1-D operand has only the K dim).
    auto operand_index = [&](const Shape& S, size_t nbs, bool one_d, int64_t r, int64_t c, int64_t k) {
      Index idx;
      for (size_t d = 0; d < nbs; d++) idx.push_back(S[d] == 1 ? 0 : bi[nb - nbs + d]);
      if (one_d) idx.push_back(k);
      else idx.insert(idx.end(), {r, c});
      return idx;
    };
    double s = 0;
    for (int64_t k = 0; k < K; k++) s += ra(operand_index(A, nba, a1, m, k, k)) * rb(operand_index(B, nbb, b1, k, n, k));
    return s;
  });
}

Reader plain(const Tensor& t) {
  return [t](const Index& i) { return t.at(i); };
}
// The transpose of the last two dims of t, read in place.
Reader transposed(const Tensor& t) {
  return [t](const Index& i) {
    Index j = i;
    std::swap(j[j.size() - 1], j[j.size() - 2]);
    return t.at(j);
  };
}
Shape swap_last2(Shape s) {
  std::swap(s[s.size() - 1], s[s.size() - 2]);
  return s;
}

// matmul(a, b) on stored inputs of shapes sa, sb, optionally seen through transpose(-1, -2).
void add_matmul(std::vector<OpCase>& cases, const std::string& name, const Shape& sa, const Shape& sb, bool trans_a = false,
                bool trans_b = false, double atol = 1e-5) {
  OpCase c;
  c.name = name;
  c.make_inputs = [sa, sb](Rng& rng) { return Inputs{rand_input(rng, sa), rand_input(rng, sb)}; };
  c.fn = [trans_a, trans_b](const Inputs& in) {
    return matmul(trans_a ? transpose(in[0], -1, -2) : in[0], trans_b ? transpose(in[1], -1, -2) : in[1]);
  };
  c.reference = [sa, sb, trans_a, trans_b](const Inputs& in) {
    return matmul_reference(trans_a ? swap_last2(sa) : sa, trans_a ? transposed(in[0]) : plain(in[0]),
                            trans_b ? swap_last2(sb) : sb, trans_b ? transposed(in[1]) : plain(in[1]));
  };
  c.atol = atol;
  cases.push_back(c);
}

// y[..., o] = Σ_i x[..., i] W[o, i]
Tensor linear_reference(const Tensor& x, const Reader& w, int64_t out_features) {
  Shape out = x.shape();
  int64_t in_features = out.back();
  out.back() = out_features;
  return make_reference(out, [&](const Index& o) {
    Index xi = o;
    double s = 0;
    for (int64_t i = 0; i < in_features; i++) {
      xi.back() = i;
      s += x.at(xi) * w({o.back(), i});
    }
    return s;
  });
}

}  // namespace

void register_linalg_cases(std::vector<OpCase>& cases) {
  add_matmul(cases, "matmul/2d", {3, 4}, {4, 5});
  add_matmul(cases, "matmul/batched_3d", {2, 3, 4}, {2, 4, 5});
  add_matmul(cases, "matmul/broadcast_b_2d", {2, 3, 4, 5}, {5, 6});
  add_matmul(cases, "matmul/broadcast_a_2d", {4, 5}, {2, 5, 6});
  add_matmul(cases, "matmul/broadcast_size1_batch", {2, 1, 3, 4}, {3, 4, 2});
  add_matmul(cases, "matmul/vec_mat", {4}, {4, 5});
  add_matmul(cases, "matmul/mat_vec", {3, 4}, {4});
  add_matmul(cases, "matmul/vec_batched", {4}, {2, 4, 3});
  add_matmul(cases, "matmul/batched_vec", {2, 3, 4}, {4});
  add_matmul(cases, "matmul/dot", {5}, {5});
  add_matmul(cases, "matmul/trans_a", {4, 3}, {4, 5}, true, false);
  add_matmul(cases, "matmul/trans_b", {3, 4}, {5, 4}, false, true);
  add_matmul(cases, "matmul/trans_both_batched", {2, 4, 3}, {2, 5, 4}, true, true);
  // The packed SIMD GEMM: M, N not multiples of the register tile, K > 32 (value check in f32
  // through gemm_f32; gradcheck in f64 through gemm_f64).
  add_matmul(cases, "matmul/gemm_33x40x29", {33, 40}, {40, 29}, false, false, 2e-5);
  add_matmul(cases, "matmul/gemm_trans_a_batched", {2, 40, 17}, {40, 19}, true, false, 2e-5);
  // a sliced (row-strided) operand: every other row of a [6,4] as a [3,4]
  {
    OpCase c;
    c.name = "matmul/sliced_rows";
    c.make_inputs = [](Rng& rng) { return Inputs{rand_input(rng, {6, 4}), rand_input(rng, {4, 5})}; };
    c.fn = [](const Inputs& in) { return matmul(slice(in[0], 0, 0, 6, 2), in[1]); };
    c.reference = [](const Inputs& in) {
      Tensor a = in[0];
      return matmul_reference({3, 4}, [a](const Index& i) { return a.at({2 * i[0], i[1]}); }, {4, 5}, plain(in[1]));
    };
    cases.push_back(c);
  }

  // ---- linear: y = x Wᵀ ----
  {
    OpCase c;
    c.name = "linear/3d_x";
    c.make_inputs = [](Rng& rng) { return Inputs{rand_input(rng, {2, 3, 4}), rand_input(rng, {5, 4})}; };
    c.fn = [](const Inputs& in) { return linear(in[0], in[1]); };
    c.reference = [](const Inputs& in) { return linear_reference(in[0], plain(in[1]), 5); };
    cases.push_back(c);
  }
  {
    OpCase c;
    c.name = "linear/2d_x";
    c.make_inputs = [](Rng& rng) { return Inputs{rand_input(rng, {3, 6}), rand_input(rng, {2, 6})}; };
    c.fn = [](const Inputs& in) { return linear(in[0], in[1]); };
    c.reference = [](const Inputs& in) { return linear_reference(in[0], plain(in[1]), 2); };
    cases.push_back(c);
  }
  {  // a weight that is itself a transposed view (a tied embedding read as [out, in])
    OpCase c;
    c.name = "linear/transposed_weight";
    c.make_inputs = [](Rng& rng) { return Inputs{rand_input(rng, {2, 2, 4}), rand_input(rng, {4, 3})}; };
    c.fn = [](const Inputs& in) { return linear(in[0], transpose(in[1], 0, 1)); };
    c.reference = [](const Inputs& in) { return linear_reference(in[0], transposed(in[1]), 3); };
    cases.push_back(c);
  }
  {  // the GEMM sizes: 2·9 tokens, in = 40, out = 21
    OpCase c;
    c.name = "linear/gemm_sizes";
    c.make_inputs = [](Rng& rng) { return Inputs{rand_input(rng, {2, 9, 40}), rand_input(rng, {21, 40})}; };
    c.fn = [](const Inputs& in) { return linear(in[0], in[1]); };
    c.reference = [](const Inputs& in) { return linear_reference(in[0], plain(in[1]), 21); };
    c.atol = 2e-5;
    cases.push_back(c);
  }
}

}  // namespace sg
