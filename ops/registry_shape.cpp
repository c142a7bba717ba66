// ops/registry_shape.cpp — registry cases for every op in ops/shape.h: reshape, view, permute,
// transpose, expand, slice, narrow, squeeze, unsqueeze, flatten, contiguous, cat, stack, split,
// split_sizes, chunk.
//
// Every reference maps an output index to the input element it must hold, by index arithmetic
// written out here (row-major flat positions for reshape-like ops, explicit index shuffles for
// permutes, offsets for slices and cat), read with Tensor::at. It calls no op from ops/.
// Ops that return several pieces (split, chunk) are tested through one piece, or through a cat of
// the pieces scaled by different weights so every piece's gradient is distinct.
#include <functional>

#include "ops/elementwise.h"
#include "ops/registry.h"
#include "ops/shape.h"

namespace sg {
namespace {

using Index = std::vector<int64_t>;
using Inputs = std::vector<Tensor>;

// Row-major position of `idx` in `shape`, and back.
int64_t flat_of(const Index& idx, const Shape& shape) {
  int64_t f = 0;
  for (size_t d = 0; d < shape.size(); d++) f = f * shape[d] + idx[d];
  return f;
}
Index index_of(int64_t flat, const Shape& shape) {
  Index idx(shape.size());
  for (int64_t d = (int64_t)shape.size() - 1; d >= 0; d--) {
    idx[d] = flat % shape[d];
    flat /= shape[d];
  }
  return idx;
}

// One single-input case: x of `in_shape`, fn, and the reference as "output index -> x element".
void add_map_case(std::vector<OpCase>& cases, const std::string& name, const Shape& in_shape, const Shape& out_shape,
                  std::function<Tensor(const Tensor&)> f, std::function<double(const Tensor&, const Index&)> read) {
  OpCase c;
  c.name = name;
  c.make_inputs = [in_shape](Rng& rng) { return Inputs{rand_input(rng, in_shape)}; };
  c.fn = [f](const Inputs& in) { return f(in[0]); };
  c.reference = [out_shape, read](const Inputs& in) { return make_reference(out_shape, [&](const Index& i) { return read(in[0], i); }); };
  cases.push_back(c);
}

// A reshape-like case: the output holds the input's elements in the same row-major order.
// `in_read` reads the (possibly permuted) logical input of `logical_shape` at a logical index.
void add_reshape_case(std::vector<OpCase>& cases, const std::string& name, const Shape& stored, const Shape& logical_shape,
                      const Shape& out_shape, std::function<Tensor(const Tensor&)> f,
                      std::function<double(const Tensor&, const Index&)> in_read) {
  add_map_case(cases, name, stored, out_shape, f, [logical_shape, out_shape, in_read](const Tensor& x, const Index& i) {
    return in_read(x, index_of(flat_of(i, out_shape), logical_shape));
  });
}

double read_plain(const Tensor& x, const Index& i) { return x.at(i); }

}  // namespace

void register_shape_cases(std::vector<OpCase>& cases) {
  // ---- reshape / view / flatten / squeeze / unsqueeze: same row-major order, other shape ----
  add_reshape_case(cases, "reshape/contiguous", {2, 3, 4}, {2, 3, 4}, {6, 4}, [](const Tensor& x) { return reshape(x, {6, 4}); }, read_plain);
  add_reshape_case(cases, "reshape/infer", {2, 3, 4}, {2, 3, 4}, {4, 6}, [](const Tensor& x) { return reshape(x, {4, -1}); }, read_plain);
  // permuted [3,4] (stored [4,3]) cannot be viewed as [2,6]: reshape copies
  add_reshape_case(cases, "reshape/permuted_copy", {4, 3}, {3, 4}, {2, 6}, [](const Tensor& x) { return reshape(permute(x, {1, 0}), {2, 6}); },
                   [](const Tensor& x, const Index& i) { return x.at({i[1], i[0]}); });
  add_reshape_case(cases, "view/split_last", {2, 3, 4}, {2, 3, 4}, {2, 3, 2, 2}, [](const Tensor& x) { return view(x, {2, 3, 2, 2}); }, read_plain);
  add_reshape_case(cases, "view/merge", {2, 3, 4}, {2, 3, 4}, {6, 4}, [](const Tensor& x) { return view(x, {-1, 4}); }, read_plain);
  // permute(x [2,3,4], {1,0,2}) = [3,2,4] has strides (4,12,1): its last dim can be split without a copy
  add_reshape_case(cases, "view/permuted_split", {2, 3, 4}, {3, 2, 4}, {3, 2, 2, 2},
                   [](const Tensor& x) { return view(permute(x, {1, 0, 2}), {3, 2, 2, 2}); },
                   [](const Tensor& x, const Index& i) { return x.at({i[1], i[0], i[2]}); });
  // columns 2..5 of a [3,8] (strides (8,1), offset 2): rows are still contiguous runs of 4
  add_reshape_case(cases, "view/sliced", {3, 8}, {3, 4}, {3, 2, 2}, [](const Tensor& x) { return view(slice(x, 1, 2, 6), {3, 2, 2}); },
                   [](const Tensor& x, const Index& i) { return x.at({i[0], 2 + i[1]}); });
  add_reshape_case(cases, "flatten/from1", {2, 3, 4}, {2, 3, 4}, {2, 12}, [](const Tensor& x) { return flatten(x, 1); }, read_plain);
  add_reshape_case(cases, "flatten/all", {2, 3, 4}, {2, 3, 4}, {24}, [](const Tensor& x) { return flatten(x); }, read_plain);
  add_reshape_case(cases, "flatten/middle_permuted", {3, 2, 4}, {2, 3, 4}, {6, 4}, [](const Tensor& x) { return flatten(permute(x, {1, 0, 2}), 0, 1); },
                   [](const Tensor& x, const Index& i) { return x.at({i[1], i[0], i[2]}); });
  add_reshape_case(cases, "squeeze/middle", {3, 1, 4}, {3, 1, 4}, {3, 4}, [](const Tensor& x) { return squeeze(x, 1); }, read_plain);
  add_reshape_case(cases, "squeeze/neg_dim", {3, 4, 1}, {3, 4, 1}, {3, 4}, [](const Tensor& x) { return squeeze(x, -1); }, read_plain);
  add_reshape_case(cases, "unsqueeze/middle", {3, 4}, {3, 4}, {3, 1, 4}, [](const Tensor& x) { return unsqueeze(x, 1); }, read_plain);
  add_reshape_case(cases, "unsqueeze/front", {3, 4}, {3, 4}, {1, 3, 4}, [](const Tensor& x) { return unsqueeze(x, 0); }, read_plain);
  add_reshape_case(cases, "unsqueeze/neg_dim", {3, 4}, {3, 4}, {3, 4, 1}, [](const Tensor& x) { return unsqueeze(x, -1); }, read_plain);

  // ---- permute / transpose / contiguous ----
  add_map_case(cases, "permute/3d", {2, 3, 4}, {4, 2, 3}, [](const Tensor& x) { return permute(x, {2, 0, 1}); },
               [](const Tensor& x, const Index& i) { return x.at({i[1], i[2], i[0]}); });
  add_map_case(cases, "permute/neg_dims", {2, 3, 4}, {3, 4, 2}, [](const Tensor& x) { return permute(x, {-2, -1, 0}); },
               [](const Tensor& x, const Index& i) { return x.at({i[2], i[0], i[1]}); });
  add_map_case(cases, "transpose/2d", {3, 4}, {4, 3}, [](const Tensor& x) { return transpose(x, 0, 1); },
               [](const Tensor& x, const Index& i) { return x.at({i[1], i[0]}); });
  add_map_case(cases, "transpose/neg_dims", {2, 3, 4}, {4, 3, 2}, [](const Tensor& x) { return transpose(x, -1, -3); },
               [](const Tensor& x, const Index& i) { return x.at({i[2], i[1], i[0]}); });
  add_map_case(cases, "contiguous/permuted", {2, 3, 4}, {4, 3, 2}, [](const Tensor& x) { return contiguous(permute(x, {2, 1, 0})); },
               [](const Tensor& x, const Index& i) { return x.at({i[2], i[1], i[0]}); });
  add_map_case(cases, "contiguous/sliced", {3, 8}, {3, 3}, [](const Tensor& x) { return contiguous(slice(x, 1, 1, 8, 3)); },
               [](const Tensor& x, const Index& i) { return x.at({i[0], 1 + 3 * i[1]}); });
  add_map_case(cases, "contiguous/already", {3, 4}, {3, 4}, [](const Tensor& x) { return contiguous(x); }, read_plain);

  // ---- expand ----
  add_map_case(cases, "expand/new_leading", {3, 1}, {2, 3, 4}, [](const Tensor& x) { return expand(x, {2, 3, 4}); },
               [](const Tensor& x, const Index& i) { return x.at({i[1], 0}); });
  add_map_case(cases, "expand/keep_minus1", {1, 4}, {3, 4}, [](const Tensor& x) { return expand(x, {3, -1}); },
               [](const Tensor& x, const Index& i) { return x.at({0, i[1]}); });
  add_map_case(cases, "expand/permuted", {1, 3}, {2, 3, 4}, [](const Tensor& x) { return expand(permute(x, {1, 0}), {2, 3, 4}); },
               [](const Tensor& x, const Index& i) { return x.at({0, i[1]}); });

  // ---- slice / narrow ----
  add_map_case(cases, "slice/step2", {3, 8}, {3, 3}, [](const Tensor& x) { return slice(x, 1, 1, 7, 2); },
               [](const Tensor& x, const Index& i) { return x.at({i[0], 1 + 2 * i[1]}); });
  add_map_case(cases, "slice/step3_dim0", {7, 2}, {3, 2}, [](const Tensor& x) { return slice(x, 0, 0, 7, 3); },
               [](const Tensor& x, const Index& i) { return x.at({3 * i[0], i[1]}); });
  add_map_case(cases, "slice/negative_bounds", {5, 3}, {3, 3}, [](const Tensor& x) { return slice(x, -2, -4, -1); },
               [](const Tensor& x, const Index& i) { return x.at({1 + i[0], i[1]}); });
  add_map_case(cases, "slice/of_permuted", {4, 6}, {3, 4}, [](const Tensor& x) { return slice(permute(x, {1, 0}), 0, 0, 6, 2); },
               [](const Tensor& x, const Index& i) { return x.at({i[1], 2 * i[0]}); });
  add_map_case(cases, "narrow/dim1", {3, 6}, {3, 3}, [](const Tensor& x) { return narrow(x, 1, 2, 3); },
               [](const Tensor& x, const Index& i) { return x.at({i[0], 2 + i[1]}); });
  add_map_case(cases, "narrow/neg_dim", {2, 5, 3}, {2, 2, 3}, [](const Tensor& x) { return narrow(x, -2, 3, 2); },
               [](const Tensor& x, const Index& i) { return x.at({i[0], 3 + i[1], i[2]}); });

  // ---- cat / stack ----
  {  // three inputs along the middle dim: [2,1,3] ++ [2,3,3] ++ [2,2,3] -> [2,6,3]
    OpCase c;
    c.name = "cat/three_middle";
    c.make_inputs = [](Rng& rng) { return Inputs{rand_input(rng, {2, 1, 3}), rand_input(rng, {2, 3, 3}), rand_input(rng, {2, 2, 3})}; };
    c.fn = [](const Inputs& in) { return cat(in, 1); };
    c.reference = [](const Inputs& in) {
      return make_reference({2, 6, 3}, [&](const Index& i) {
        int64_t j = i[1];
        if (j < 1) return in[0].at({i[0], j, i[2]});
        if (j < 4) return in[1].at({i[0], j - 1, i[2]});
        return in[2].at({i[0], j - 4, i[2]});
      });
    };
    cases.push_back(c);
  }
  {  // a permuted input and a negative dim: [3,2] (stored [2,3]) ++ [3,4] along -1 -> [3,6]
    OpCase c;
    c.name = "cat/permuted_neg_dim";
    c.make_inputs = [](Rng& rng) { return Inputs{rand_input(rng, {2, 3}), rand_input(rng, {3, 4})}; };
    c.fn = [](const Inputs& in) { return cat({permute(in[0], {1, 0}), in[1]}, -1); };
    c.reference = [](const Inputs& in) {
      return make_reference({3, 6}, [&](const Index& i) { return i[1] < 2 ? in[0].at({i[1], i[0]}) : in[1].at({i[0], i[1] - 2}); });
    };
    cases.push_back(c);
  }
  {  // the same tensor twice along dim 0: its gradient is the sum of both slices
    OpCase c;
    c.name = "cat/same_input_twice";
    c.make_inputs = [](Rng& rng) { return Inputs{rand_input(rng, {2, 3})}; };
    c.fn = [](const Inputs& in) { return cat({in[0], in[0]}, 0); };
    c.reference = [](const Inputs& in) { return make_reference({4, 3}, [&](const Index& i) { return in[0].at({i[0] % 2, i[1]}); }); };
    cases.push_back(c);
  }
  {  // three [2,3] along dim 1 -> [2,3,3]
    OpCase c;
    c.name = "stack/dim1";
    c.make_inputs = [](Rng& rng) { return Inputs{rand_input(rng, {2, 3}), rand_input(rng, {2, 3}), rand_input(rng, {2, 3})}; };
    c.fn = [](const Inputs& in) { return stack(in, 1); };
    c.reference = [](const Inputs& in) { return make_reference({2, 3, 3}, [&](const Index& i) { return in[i[1]].at({i[0], i[2]}); }); };
    cases.push_back(c);
  }
  {  // two [2,3] along the new last dim (-1) -> [2,3,2]
    OpCase c;
    c.name = "stack/neg_dim";
    c.make_inputs = [](Rng& rng) { return Inputs{rand_input(rng, {2, 3}), rand_input(rng, {2, 3})}; };
    c.fn = [](const Inputs& in) { return stack(in, -1); };
    c.reference = [](const Inputs& in) { return make_reference({2, 3, 2}, [&](const Index& i) { return in[i[2]].at({i[0], i[1]}); }); };
    cases.push_back(c);
  }

  // ---- split / split_sizes / chunk ----
  // x [2,7,3] split into 3 + 3 + 1 along dim 1; fn = cat(1·p0, 2·p1, 3·p2) so each piece's gradient differs.
  {
    OpCase c;
    c.name = "split/weighted_cat";
    c.make_inputs = [](Rng& rng) { return Inputs{rand_input(rng, {2, 7, 3})}; };
    c.fn = [](const Inputs& in) {
      std::vector<Tensor> p = split(in[0], 3, 1);
      return cat({mul(p[0], 1.0), mul(p[1], 2.0), mul(p[2], 3.0)}, 1);
    };
    c.reference = [](const Inputs& in) {
      return make_reference({2, 7, 3}, [&](const Index& i) { return (double)(1 + i[1] / 3) * in[0].at(i); });
    };
    cases.push_back(c);
  }
  add_map_case(cases, "split/last_piece", {2, 7, 3}, {2, 1, 3}, [](const Tensor& x) { return split(x, 3, 1)[2]; },
               [](const Tensor& x, const Index& i) { return x.at({i[0], 6, i[2]}); });
  add_map_case(cases, "split_sizes/middle_piece", {2, 7, 3}, {2, 4, 3}, [](const Tensor& x) { return split_sizes(x, {2, 4, 1}, 1)[1]; },
               [](const Tensor& x, const Index& i) { return x.at({i[0], 2 + i[1], i[2]}); });
  {
    OpCase c;
    c.name = "split_sizes/weighted_cat";
    c.make_inputs = [](Rng& rng) { return Inputs{rand_input(rng, {7, 2})}; };
    c.fn = [](const Inputs& in) {
      std::vector<Tensor> p = split_sizes(in[0], {2, 4, 1}, 0);
      return cat({mul(p[2], -1.0), mul(p[0], 0.5), mul(p[1], 2.0)}, 0);  // reordered on purpose
    };
    c.reference = [](const Inputs& in) {
      return make_reference({7, 2}, [&](const Index& i) {
        int64_t r = i[0];
        if (r == 0) return -1.0 * in[0].at({6, i[1]});
        if (r < 3) return 0.5 * in[0].at({r - 1, i[1]});
        return 2.0 * in[0].at({r - 3 + 2, i[1]});
      });
    };
    cases.push_back(c);
  }
  // chunk(x [7,2], 3, 0) -> sizes 3, 3, 1
  add_map_case(cases, "chunk/middle_piece", {7, 2}, {3, 2}, [](const Tensor& x) { return chunk(x, 3, 0)[1]; },
               [](const Tensor& x, const Index& i) { return x.at({3 + i[0], i[1]}); });
  {  // chunk(x [2,6], 2, -1) -> two [2,3]; fn = 3·c0 - c1 (sub of the pieces; both gradients flow)
    OpCase c;
    c.name = "chunk/combined";
    c.make_inputs = [](Rng& rng) { return Inputs{rand_input(rng, {2, 6})}; };
    c.fn = [](const Inputs& in) {
      std::vector<Tensor> p = chunk(in[0], 2, -1);
      return sub(mul(p[0], 3.0), p[1]);
    };
    c.reference = [](const Inputs& in) {
      return make_reference({2, 3}, [&](const Index& i) { return 3.0 * in[0].at({i[0], i[1]}) - in[0].at({i[0], 3 + i[1]}); });
    };
    cases.push_back(c);
  }
}

}  // namespace sg
