// ops/registry_nn.cpp — registry cases of the fused nn ops (ops/nn.h): softmax, log_softmax,
// cross_entropy, rms_norm, layer_norm, rope, topk, argmax, dropout.
//
// Every reference below is an independent plain loop over Tensor::at in double — it never calls
// ops/ — so a mistake in a kernel cannot hide in its own reference. Index outputs (topk indices,
// argmax) are compared exactly and not gradchecked.
#include <algorithm>
#include <cmath>
#include <functional>

#include "ops/nn.h"
#include "ops/registry.h"
#include "ops/shape.h"

namespace sg {

namespace {

using Inputs = std::vector<Tensor>;
using Index = std::vector<int64_t>;

// Calls fn(j, index_with_j_at_dim) for j = 0 .. shape[dim]−1, with the other coordinates of `index`.
void along(const Tensor& x, const Index& index, int64_t dim, const std::function<void(int64_t, const Index&)>& fn) {
  Index i = index;
  for (int64_t j = 0; j < x.shape()[dim]; j++) {
    i[dim] = j;
    fn(j, i);
  }
}

// softmax (or log_softmax) of x along dim, element by element: max, Σ exp(x − max), then the formula.
Tensor ref_softmax(const Tensor& x, int64_t dim, bool log) {
  if (dim < 0) dim += x.dim();
  return make_reference(x.shape(), [&](const Index& idx) {
    double m = -INFINITY, s = 0;
    along(x, idx, dim, [&](int64_t, const Index& i) { m = std::max(m, x.at(i)); });
    along(x, idx, dim, [&](int64_t, const Index& i) { s += std::exp(x.at(i) - m); });
    return log ? x.at(idx) - m - std::log(s) : std::exp(x.at(idx) - m) / s;
  });
}

// mean over rows with target != ignore of −log softmax(logits_row)[target]
Tensor ref_cross_entropy(const Tensor& logits, const Tensor& targets, int64_t ignore_index) {
  int64_t V = logits.shape().back();
  double total = 0;
  int64_t n = 0;
  for_each_index(targets.shape(), [&](const Index& ti) {
    int64_t t = (int64_t)targets.at(ti);
    if (t == ignore_index) return;
    Index i = ti;
    i.push_back(0);
    double m = -INFINITY, s = 0;
    for (int64_t c = 0; c < V; c++) {
      i.back() = c;
      m = std::max(m, logits.at(i));
    }
    for (int64_t c = 0; c < V; c++) {
      i.back() = c;
      s += std::exp(logits.at(i) - m);
    }
    i.back() = t;
    total += m + std::log(s) - logits.at(i);
    n++;
  });
  return make_reference({}, [&](const Index&) { return n ? total / (double)n : 0.0; });
}

Tensor ref_rms_norm(const Tensor& x, const Tensor& w, double eps) {
  int64_t last = x.dim() - 1, D = x.shape()[last];
  return make_reference(x.shape(), [&](const Index& idx) {
    double ss = 0;
    along(x, idx, last, [&](int64_t, const Index& i) { ss += x.at(i) * x.at(i); });
    return w.at({idx[last]}) * x.at(idx) / std::sqrt(ss / (double)D + eps);
  });
}

Tensor ref_layer_norm(const Tensor& x, const Tensor& w, const Tensor& b, double eps) {
  int64_t last = x.dim() - 1, D = x.shape()[last];
  return make_reference(x.shape(), [&](const Index& idx) {
    double mu = 0, var = 0;
    along(x, idx, last, [&](int64_t, const Index& i) { mu += x.at(i); });
    mu /= (double)D;
    along(x, idx, last, [&](int64_t, const Index& i) { var += (x.at(i) - mu) * (x.at(i) - mu); });
    var /= (double)D;
    double y = (x.at(idx) - mu) / std::sqrt(var + eps) * w.at({idx[last]});
    return b.defined() ? y + b.at({idx[last]}) : y;
  });
}

// y[..., i] = Σ_j x[..., j] · (−1)^popcount(i & j) / √n: the Hadamard entry from its closed form, not the
// butterflies of the kernel.
Tensor ref_hadamard_rotate(const Tensor& x) {
  int64_t last = x.dim() - 1, n = x.shape()[last];
  return make_reference(x.shape(), [&](const Index& idx) {
    double y = 0;
    along(x, idx, last, [&](int64_t j, const Index& i) {
      y += (__builtin_popcountll((unsigned long long)(idx[last] & j)) % 2 ? -1.0 : 1.0) * x.at(i);
    });
    return y / std::sqrt((double)n);
  });
}

// Each output element from its pair partner, with the rotation written out (models/README.md §3):
//   interleaved: y[2i] = x[2i] c − x[2i+1] s,  y[2i+1] = x[2i] s + x[2i+1] c
//   half_split:  y[i]  = x[i] c − x[i+h] s,    y[i+h]  = x[i] s + x[i+h] c   (h = dr/2)
Tensor ref_rope(const Tensor& x, const Tensor& cos, const Tensor& sin, RopeLayout layout) {
  int64_t last = x.dim() - 1, dr = x.shape()[last], h = dr / 2;
  return make_reference(x.shape(), [&](const Index& idx) {
    int64_t k = idx[last], s = idx[1];
    bool interleaved = layout == RopeLayout::interleaved;
    bool first = interleaved ? k % 2 == 0 : k < h;  // is this element the first of its pair?
    int64_t i = interleaved ? k / 2 : (first ? k : k - h);
    int64_t partner = interleaved ? (first ? k + 1 : k - 1) : (first ? k + h : k - h);
    Index j = idx;
    j[last] = partner;
    double c = cos.at({s, i}), sn = sin.at({s, i}), self = x.at(idx), other = x.at(j);
    return first ? self * c - other * sn : other * sn + self * c;
  });
}

// Position of each element in the sorted order along dim: the number of elements that come
// before it (better value, or equal value and lower index).
int64_t rank_along(const Tensor& x, const Index& idx, int64_t dim, bool largest) {
  double v = x.at(idx);
  int64_t rank = 0;
  along(x, idx, dim, [&](int64_t j, const Index& i) {
    double u = x.at(i);
    if ((largest ? u > v : u < v) || (u == v && j < idx[dim])) rank++;
  });
  return rank;
}

// topk values (want_indices = false, f64) or indices (true, i64) along dim, found by rank.
Tensor ref_topk(const Tensor& x, int64_t k, int64_t dim, bool largest, bool want_indices) {
  if (dim < 0) dim += x.dim();
  Shape shape = x.shape();
  shape[dim] = k;
  Tensor values = Tensor::zeros(shape, DType::f64), indices = Tensor::zeros(shape, DType::i64);
  for_each_index(x.shape(), [&](const Index& idx) {
    int64_t r = rank_along(x, idx, dim, largest);
    if (r >= k) return;
    Index o = idx;
    o[dim] = r;
    values.set_at(o, x.at(idx));
    indices.set_at(o, (double)idx[dim]);
  });
  return want_indices ? indices : values;
}

Tensor ref_argmax(const Tensor& x, int64_t dim, bool keepdim) {
  Shape shape = x.shape();
  if (keepdim) shape[dim] = 1;
  else shape.erase(shape.begin() + dim);
  Tensor out = Tensor::zeros(shape, DType::i64);
  for_each_index(shape, [&](const Index& o) {
    Index i = o;
    if (!keepdim) i.insert(i.begin() + dim, 0);
    int64_t best = 0;
    double bv = -INFINITY;
    along(x, i, dim, [&](int64_t j, const Index& ij) {
      if (x.at(ij) > bv) bv = x.at(ij), best = j;
    });
    out.set_at(o, (double)best);
  });
  return out;
}

// Regenerates the mask from the seed: the k-th element in row-major order is kept iff the k-th
// uniform draw is >= p, and a kept element is scaled by 1/(1−p).
Tensor ref_dropout(const Tensor& x, double p, uint64_t seed) {
  Rng rng(seed);
  return make_reference(x.shape(), [&](const Index& idx) { return rng.uniform() >= p ? x.at(idx) / (1.0 - p) : 0.0; });
}

// The angle table φ(s, i) = (s + 1) · 0.8^i + 0.3 i, as cos and sin [S, dr/2], constants (no grad).
Inputs rope_tables(int64_t S, int64_t half) {
  Tensor c = Tensor::empty({S, half}, DType::f64), s = Tensor::empty({S, half}, DType::f64);
  for (int64_t p = 0; p < S; p++)
    for (int64_t i = 0; i < half; i++) {
      double phi = (double)(p + 1) * std::pow(0.8, (double)i) + 0.3 * (double)i;
      c.set_at({p, i}, std::cos(phi));
      s.set_at({p, i}, std::sin(phi));
    }
  return {c, s};
}

// Rows of distinct values (a shuffled ladder with spacing 2/n, jittered by less than a step), so
// the sorted order survives the f32 cast and gradcheck's ±eps.
Tensor distinct_input(Rng& rng, const Shape& shape, int64_t dim) {
  Tensor x = Tensor::empty(shape, DType::f64);
  int64_t n = shape[dim];
  for_each_index(shape, [&](const Index& idx) {
    if (idx[dim] != 0) return;
    std::vector<int64_t> order(n);
    for (int64_t j = 0; j < n; j++) order[j] = j;
    for (int64_t j = n - 1; j > 0; j--) std::swap(order[j], order[rng.randint(j + 1)]);
    Index i = idx;
    for (int64_t j = 0; j < n; j++) {
      i[dim] = j;
      x.set_at(i, -1.0 + 2.0 * ((double)order[j] + 0.25 + 0.5 * rng.uniform()) / (double)n);
    }
  });
  return x.requires_grad_();
}

Tensor targets_of(Rng& rng, const Shape& shape, int64_t V) { return Tensor::randint(shape, rng, 0, V, DType::i64); }

}  // namespace

void register_nn_cases(std::vector<OpCase>& cases) {
  // ---- softmax / log_softmax ----
  cases.push_back({"softmax/last_dim", [](Rng& r) { return Inputs{rand_input(r, {3, 5}, -3, 3)}; },
                   [](const Inputs& in) { return softmax(in[0], -1); },
                   [](const Inputs& in) { return ref_softmax(in[0], -1, false); }});
  cases.push_back({"softmax/middle_dim", [](Rng& r) { return Inputs{rand_input(r, {2, 4, 3}, -3, 3)}; },
                   [](const Inputs& in) { return softmax(in[0], 1); },
                   [](const Inputs& in) { return ref_softmax(in[0], 1, false); }});
  cases.push_back({"softmax/permuted", [](Rng& r) { return Inputs{rand_input(r, {4, 3, 5}, -3, 3)}; },
                   [](const Inputs& in) { return softmax(permute(in[0], {2, 0, 1}), -1); },
                   [](const Inputs& in) { return ref_softmax(permute(in[0].detach(), {2, 0, 1}), -1, false); }});
  cases.push_back({"softmax/large_logits", [](Rng& r) { return Inputs{rand_input(r, {2, 6}, 500, 520)}; },
                   [](const Inputs& in) { return softmax(in[0], -1); },
                   [](const Inputs& in) { return ref_softmax(in[0], -1, false); }, 1e-5, 1e-4, true, 1e-6, 1e-6, 1e-4});
  cases.push_back({"log_softmax/last_dim", [](Rng& r) { return Inputs{rand_input(r, {3, 6}, -3, 3)}; },
                   [](const Inputs& in) { return log_softmax(in[0], -1); },
                   [](const Inputs& in) { return ref_softmax(in[0], -1, true); }});
  cases.push_back({"log_softmax/dim0_transposed", [](Rng& r) { return Inputs{rand_input(r, {5, 4}, -3, 3)}; },
                   [](const Inputs& in) { return log_softmax(transpose(in[0], 0, 1), 0); },
                   [](const Inputs& in) { return ref_softmax(transpose(in[0].detach(), 0, 1), 0, true); }});

  // ---- cross_entropy ----
  cases.push_back({"cross_entropy/basic",
                   [](Rng& r) { return Inputs{rand_input(r, {4, 5}, -2, 2), targets_of(r, {4}, 5)}; },
                   [](const Inputs& in) { return cross_entropy(in[0], in[1]); },
                   [](const Inputs& in) { return ref_cross_entropy(in[0], in[1], -100); }});
  cases.push_back({"cross_entropy/ignored_targets",
                   [](Rng& r) {
                     Tensor t = targets_of(r, {6}, 7);
                     t.set_at({1}, -100);
                     t.set_at({4}, -100);
                     return Inputs{rand_input(r, {6, 7}, -2, 2), t};
                   },
                   [](const Inputs& in) { return cross_entropy(in[0], in[1]); },
                   [](const Inputs& in) { return ref_cross_entropy(in[0], in[1], -100); }});
  cases.push_back({"cross_entropy/3d_logits_ignore_index_0",
                   [](Rng& r) { return Inputs{rand_input(r, {2, 3, 7}, -2, 2), targets_of(r, {2, 3}, 7)}; },
                   [](const Inputs& in) { return cross_entropy(in[0], in[1], 0); },
                   [](const Inputs& in) { return ref_cross_entropy(in[0], in[1], 0); }});
  cases.push_back({"cross_entropy/all_ignored",
                   [](Rng& r) { return Inputs{rand_input(r, {3, 4}, -2, 2), Tensor::full({3}, -1, DType::i64)}; },
                   [](const Inputs& in) { return cross_entropy(in[0], in[1], -1); },
                   [](const Inputs& in) { return ref_cross_entropy(in[0], in[1], -1); }});

  // ---- rms_norm / layer_norm ----
  cases.push_back({"rms_norm/3d",
                   [](Rng& r) { return Inputs{rand_input(r, {2, 3, 8}), rand_input(r, {8}, 0.5, 1.5)}; },
                   [](const Inputs& in) { return rms_norm(in[0], in[1], 1e-6); },
                   [](const Inputs& in) { return ref_rms_norm(in[0], in[1], 1e-6); }});
  cases.push_back({"rms_norm/transposed_x",
                   [](Rng& r) { return Inputs{rand_input(r, {4, 6}), rand_input(r, {4}, 0.5, 1.5)}; },
                   [](const Inputs& in) { return rms_norm(transpose(in[0], 0, 1), in[1], 1e-5); },
                   [](const Inputs& in) { return ref_rms_norm(transpose(in[0].detach(), 0, 1), in[1], 1e-5); }});
  cases.push_back({"layer_norm/bias",
                   [](Rng& r) {
                     return Inputs{rand_input(r, {2, 3, 6}), rand_input(r, {6}, 0.5, 1.5), rand_input(r, {6})};
                   },
                   [](const Inputs& in) { return layer_norm(in[0], in[1], in[2], 1e-5); },
                   [](const Inputs& in) { return ref_layer_norm(in[0], in[1], in[2], 1e-5); }});
  cases.push_back({"layer_norm/no_bias",
                   [](Rng& r) { return Inputs{rand_input(r, {4, 5}), rand_input(r, {5}, 0.5, 1.5)}; },
                   [](const Inputs& in) { return layer_norm(in[0], in[1], Tensor(), 1e-5); },
                   [](const Inputs& in) { return ref_layer_norm(in[0], in[1], Tensor(), 1e-5); }});

  // ---- hadamard_rotate ----
  cases.push_back({"hadamard_rotate/3d_n8",
                   [](Rng& r) { return Inputs{rand_input(r, {2, 3, 8})}; },
                   [](const Inputs& in) { return hadamard_rotate(in[0]); },
                   [](const Inputs& in) { return ref_hadamard_rotate(in[0]); }});
  cases.push_back({"hadamard_rotate/transposed_n4",
                   [](Rng& r) { return Inputs{rand_input(r, {4, 5})}; },
                   [](const Inputs& in) { return hadamard_rotate(transpose(in[0], 0, 1)); },
                   [](const Inputs& in) { return ref_hadamard_rotate(transpose(in[0].detach(), 0, 1)); }});
  cases.push_back({"hadamard_rotate/n1",
                   [](Rng& r) { return Inputs{rand_input(r, {3, 1})}; },
                   [](const Inputs& in) { return hadamard_rotate(in[0]); },
                   [](const Inputs& in) { return ref_hadamard_rotate(in[0]); }});

  // ---- rope: inputs x, cos, sin (cos/sin are constants) ----
  for (RopeLayout layout : {RopeLayout::interleaved, RopeLayout::half_split}) {
    std::string tag = layout == RopeLayout::interleaved ? "interleaved" : "half_split";
    cases.push_back({"rope/" + tag + "_4d",
                     [](Rng& r) {
                       Inputs t = rope_tables(3, 4);
                       return Inputs{rand_input(r, {2, 3, 2, 8}), t[0], t[1]};
                     },
                     [layout](const Inputs& in) { return rope(in[0], in[1], in[2], layout); },
                     [layout](const Inputs& in) { return ref_rope(in[0], in[1], in[2], layout); }});
    cases.push_back({"rope/" + tag + "_3d",
                     [](Rng& r) {
                       Inputs t = rope_tables(4, 3);
                       return Inputs{rand_input(r, {2, 4, 6}), t[0], t[1]};
                     },
                     [layout](const Inputs& in) { return rope(in[0], in[1], in[2], layout); },
                     [layout](const Inputs& in) { return ref_rope(in[0], in[1], in[2], layout); }});
    // The rope part of a wider head, as MLA slices q_pe out of q: a non-contiguous x.
    cases.push_back({"rope/" + tag + "_sliced_head",
                     [](Rng& r) {
                       Inputs t = rope_tables(3, 4);
                       return Inputs{rand_input(r, {1, 3, 2, 12}), t[0], t[1]};
                     },
                     [layout](const Inputs& in) { return rope(slice(in[0], 3, 4, 12), in[1], in[2], layout); },
                     [layout](const Inputs& in) {
                       return ref_rope(slice(in[0].detach(), 3, 4, 12), in[1], in[2], layout);
                     }});
  }

  // ---- topk / argmax ----
  cases.push_back({"topk/largest_values", [](Rng& r) { return Inputs{distinct_input(r, {3, 7}, 1)}; },
                   [](const Inputs& in) { return topk(in[0], 3, -1, true).values; },
                   [](const Inputs& in) { return ref_topk(in[0], 3, -1, true, false); }});
  cases.push_back({"topk/smallest_values_dim0", [](Rng& r) { return Inputs{distinct_input(r, {6, 4}, 0)}; },
                   [](const Inputs& in) { return topk(in[0], 2, 0, false).values; },
                   [](const Inputs& in) { return ref_topk(in[0], 2, 0, false, false); }});
  OpCase idx{"topk/largest_indices", [](Rng& r) { return Inputs{distinct_input(r, {3, 7}, 1)}; },
             [](const Inputs& in) { return topk(in[0], 4, 1, true).indices; },
             [](const Inputs& in) { return ref_topk(in[0], 4, 1, true, true); }};
  idx.gradcheck = false;
  cases.push_back(idx);
  idx.name = "topk/smallest_indices_middle_dim";
  idx.make_inputs = [](Rng& r) { return Inputs{distinct_input(r, {2, 5, 3}, 1)}; };
  idx.fn = [](const Inputs& in) { return topk(in[0], 3, 1, false).indices; };
  idx.reference = [](const Inputs& in) { return ref_topk(in[0], 3, 1, false, true); };
  cases.push_back(idx);
  // Values on a grid of 0.25 so rows hold ties: argmax must return the FIRST maximum.
  auto grid = [](Rng& r, const Shape& s) {
    Tensor x = Tensor::empty(s, DType::f64);
    for (int64_t i = 0; i < x.numel(); i++) x.data<double>()[i] = 0.25 * (double)r.randint(4);
    return Inputs{x};
  };
  idx.name = "argmax/dim1_ties";
  idx.make_inputs = [grid](Rng& r) { return grid(r, {4, 6}); };
  idx.fn = [](const Inputs& in) { return argmax(in[0], 1, false); };
  idx.reference = [](const Inputs& in) { return ref_argmax(in[0], 1, false); };
  cases.push_back(idx);
  idx.name = "argmax/dim0_keepdim";
  idx.make_inputs = [grid](Rng& r) { return grid(r, {5, 3, 2}); };
  idx.fn = [](const Inputs& in) { return argmax(in[0], 0, true); };
  idx.reference = [](const Inputs& in) { return ref_argmax(in[0], 0, true); };
  cases.push_back(idx);

  // ---- dropout: the Rng is created inside fn, so every call (f32, f64, gradcheck's) draws the same mask ----
  cases.push_back({"dropout/p0.3", [](Rng& r) { return Inputs{rand_input(r, {4, 25})}; },
                   [](const Inputs& in) {
                     Rng rng(42);
                     return dropout(in[0], 0.3, rng, true);
                   },
                   [](const Inputs& in) { return ref_dropout(in[0], 0.3, 42); }});
  cases.push_back({"dropout/transposed_p0.5", [](Rng& r) { return Inputs{rand_input(r, {6, 5})}; },
                   [](const Inputs& in) {
                     Rng rng(7);
                     return dropout(transpose(in[0], 0, 1), 0.5, rng, true);
                   },
                   [](const Inputs& in) { return ref_dropout(transpose(in[0].detach(), 0, 1), 0.5, 7); }});
  cases.push_back({"dropout/not_training", [](Rng& r) { return Inputs{rand_input(r, {3, 4})}; },
                   [](const Inputs& in) {
                     Rng rng(1);
                     return dropout(in[0], 0.5, rng, false);
                   },
                   [](const Inputs& in) { return make_reference(in[0].shape(), [&](const Index& i) { return in[0].at(i); }); }});
}

}  // namespace sg
