// ops/registry_index.cpp — registry cases for every op in ops/index.h.
//
// Each case's `reference` is written here from the definition, in double, with plain loops over
// Tensor::at / set_at / make_reference: it never calls an op from ops/. Where `fn` permutes a stored
// input, the reference reads the same element by index arithmetic (read_permuted).
// The cases repeat indices on purpose, so the backward's accumulation (index_add / scatter_add into
// one row or element twice) is what the gradcheck sees; i32 and i64 indices and negative dims appear.
//
// What this is not: the test. tests/ops/test_registry.cpp walks these cases (value check in f32 against
// the reference, float64 gradcheck); tests/ops/test_index.cpp has the hand-computed and error cases.
#include <functional>

#include "ops/index.h"
#include "ops/registry.h"
#include "ops/shape.h"

namespace sg {
namespace {

using Index = std::vector<int64_t>;
using Inputs = std::vector<Tensor>;

Tensor i64_index(const std::vector<int64_t>& values, const Shape& shape) { return Tensor::from_vector(values, shape); }
Tensor i32_index(const std::vector<int32_t>& values, const Shape& shape) { return Tensor::from_vector(values, shape); }

// The element of permute(t, dims) at view index i:  t[j] with j[dims[a]] = i[a].  Empty dims = t itself.
double read_permuted(const Tensor& t, const std::vector<int64_t>& dims, const Index& i) {
  if (dims.empty()) return t.at(i);
  Index j(i.size());
  for (size_t a = 0; a < dims.size(); a++) j[dims[a]] = i[a];
  return t.at(j);
}
Tensor view_permuted(const Tensor& t, const std::vector<int64_t>& dims) { return dims.empty() ? t : permute(t, dims); }
Shape permuted_shape(const Shape& stored, const std::vector<int64_t>& dims) {
  if (dims.empty()) return stored;
  Shape s(dims.size());
  for (size_t a = 0; a < dims.size(); a++) s[a] = stored[dims[a]];
  return s;
}
int64_t positive_dim(int64_t dim, int64_t ndim) { return dim < 0 ? dim + ndim : dim; }

// ---- embedding ---------------------------------------------------------------------------------
// y[p.., e] = weight[ids[p..], e]
void add_embedding(std::vector<OpCase>& cases, const char* name, Shape weight_stored, std::vector<int64_t> perm,
                   std::function<Tensor()> make_ids) {
  OpCase c;
  c.name = std::string("embedding/") + name;
  c.make_inputs = [weight_stored, make_ids](Rng& rng) { return Inputs{rand_input(rng, weight_stored), make_ids()}; };
  c.fn = [perm](const Inputs& in) { return embedding(view_permuted(in[0], perm), in[1]); };
  c.reference = [weight_stored, perm](const Inputs& in) {
    const Tensor &w = in[0], &ids = in[1];
    Shape out_shape = ids.shape();
    out_shape.push_back(permuted_shape(weight_stored, perm)[1]);
    return make_reference(out_shape, [&](const Index& i) {
      Index p(i.begin(), i.end() - 1);
      return read_permuted(w, perm, {(int64_t)ids.at(p), i.back()});
    });
  };
  cases.push_back(c);
}

// ---- index_select ------------------------------------------------------------------------------
// y[.., j, ..] = x[.., index[j], ..]
void add_index_select(std::vector<OpCase>& cases, const char* name, Shape x_stored, std::vector<int64_t> perm,
                      int64_t dim, std::function<Tensor()> make_index) {
  OpCase c;
  c.name = std::string("index_select/") + name;
  c.make_inputs = [x_stored, make_index](Rng& rng) { return Inputs{rand_input(rng, x_stored), make_index()}; };
  c.fn = [perm, dim](const Inputs& in) { return index_select(view_permuted(in[0], perm), dim, in[1]); };
  c.reference = [x_stored, perm, dim](const Inputs& in) {
    const Tensor &x = in[0], &index = in[1];
    Shape out_shape = permuted_shape(x_stored, perm);
    int64_t d = positive_dim(dim, (int64_t)out_shape.size());
    out_shape[d] = index.numel();
    return make_reference(out_shape, [&](const Index& i) {
      Index j = i;
      j[d] = (int64_t)index.at({i[d]});
      return read_permuted(x, perm, j);
    });
  };
  cases.push_back(c);
}

// ---- index_add ---------------------------------------------------------------------------------
// y = x;  y[.., index[j], ..] += src[.., j, ..]
void add_index_add(std::vector<OpCase>& cases, const char* name, Shape x_stored, std::vector<int64_t> perm, int64_t dim,
                   std::function<Tensor()> make_index) {
  OpCase c;
  c.name = std::string("index_add/") + name;
  Shape x_shape = permuted_shape(x_stored, perm);
  c.make_inputs = [x_stored, x_shape, dim, make_index](Rng& rng) {
    Tensor index = make_index();
    Shape src_shape = x_shape;
    src_shape[positive_dim(dim, (int64_t)x_shape.size())] = index.numel();
    Tensor x = rand_input(rng, x_stored);
    return Inputs{x, index, rand_input(rng, src_shape)};
  };
  c.fn = [perm, dim](const Inputs& in) { return index_add(view_permuted(in[0], perm), dim, in[1], in[2]); };
  c.reference = [x_shape, perm, dim](const Inputs& in) {
    const Tensor &x = in[0], &index = in[1], &src = in[2];
    int64_t d = positive_dim(dim, (int64_t)x_shape.size());
    Tensor out = make_reference(x_shape, [&](const Index& i) { return read_permuted(x, perm, i); });
    for_each_index(src.shape(), [&](const Index& i) {
      Index j = i;
      j[d] = (int64_t)index.at({i[d]});
      out.set_at(j, out.at(j) + src.at(i));
    });
    return out;
  };
  cases.push_back(c);
}

// ---- gather ------------------------------------------------------------------------------------
// y[i] = x[i with i[dim] replaced by index[i]]
void add_gather(std::vector<OpCase>& cases, const char* name, Shape x_stored, std::vector<int64_t> perm, int64_t dim,
                std::function<Tensor(Rng&)> make_index) {
  OpCase c;
  c.name = std::string("gather/") + name;
  c.make_inputs = [x_stored, make_index](Rng& rng) {
    Tensor x = rand_input(rng, x_stored);
    return Inputs{x, make_index(rng)};
  };
  c.fn = [perm, dim](const Inputs& in) { return gather(view_permuted(in[0], perm), dim, in[1]); };
  c.reference = [perm, dim](const Inputs& in) {
    const Tensor &x = in[0], &index = in[1];
    int64_t d = positive_dim(dim, index.dim());
    return make_reference(index.shape(), [&](const Index& i) {
      Index j = i;
      j[d] = (int64_t)index.at(i);
      return read_permuted(x, perm, j);
    });
  };
  cases.push_back(c);
}

// ---- scatter_add -------------------------------------------------------------------------------
// y = x;  y[i with i[dim] replaced by index[i]] += src[i]
void add_scatter_add(std::vector<OpCase>& cases, const char* name, Shape x_stored, std::vector<int64_t> perm, int64_t dim,
                     std::function<Tensor(Rng&)> make_index) {
  OpCase c;
  c.name = std::string("scatter_add/") + name;
  Shape x_shape = permuted_shape(x_stored, perm);
  c.make_inputs = [x_stored, make_index](Rng& rng) {
    Tensor x = rand_input(rng, x_stored);
    Tensor index = make_index(rng);
    return Inputs{x, index, rand_input(rng, index.shape())};
  };
  c.fn = [perm, dim](const Inputs& in) { return scatter_add(view_permuted(in[0], perm), dim, in[1], in[2]); };
  c.reference = [x_shape, perm, dim](const Inputs& in) {
    const Tensor &x = in[0], &index = in[1], &src = in[2];
    int64_t d = positive_dim(dim, (int64_t)x_shape.size());
    Tensor out = make_reference(x_shape, [&](const Index& i) { return read_permuted(x, perm, i); });
    for_each_index(index.shape(), [&](const Index& i) {
      Index j = i;
      j[d] = (int64_t)index.at(i);
      out.set_at(j, out.at(j) + src.at(i));
    });
    return out;
  };
  cases.push_back(c);
}

}  // namespace

void register_index_cases(std::vector<OpCase>& cases) {
  // ids with repeats: row 5 twice, row 2 twice -> dweight rows accumulate
  add_embedding(cases, "i64_repeated_2d_ids", {6, 4}, {}, [] { return i64_index({5, 0, 5, 2, 2, 1}, {2, 3}); });
  add_embedding(cases, "i32_repeated_1d_ids", {6, 4}, {}, [] { return i32_index({3, 3, 0, 1, 3}, {5}); });
  // weight stored (4, 6) and used as its transpose (6, 4): a non-contiguous table
  add_embedding(cases, "transposed_weight", {4, 6}, {1, 0}, [] { return i64_index({0, 5, 5, 3}, {4}); });

  add_index_select(cases, "dim0_repeated", {5, 3}, {}, 0, [] { return i64_index({4, 0, 4, 2}, {4}); });
  add_index_select(cases, "dim1_i32", {3, 5, 2}, {}, 1, [] { return i32_index({1, 1, 4}, {3}); });
  // x stored (4, 3, 5), viewed as permute {2, 0, 1} -> (5, 4, 3); dim -1 has size 3
  add_index_select(cases, "negdim_permuted", {4, 3, 5}, {2, 0, 1}, -1, [] { return i64_index({2, 0, 2, 2, 1}, {5}); });

  add_index_add(cases, "dim0_repeated", {5, 3}, {}, 0, [] { return i64_index({4, 0, 4, 2}, {4}); });
  add_index_add(cases, "dim1_i32_same_row", {2, 4, 3}, {}, 1, [] { return i32_index({3, 3, 3}, {3}); });
  // x stored (3, 4, 2), viewed as permute {2, 0, 1} -> (2, 3, 4); dim -1 has size 4
  add_index_add(cases, "negdim_permuted", {3, 4, 2}, {2, 0, 1}, -1, [] { return i64_index({0, 3, 0, 1, 0}, {5}); });

  // index (3, 5) into a dim of size 4: every row repeats at least one position
  add_gather(cases, "dim1_repeated", {3, 4}, {}, 1, [](Rng& rng) { return Tensor::randint({3, 5}, rng, 0, 4); });
  // index smaller than x in the other dim (2 <= 5)
  add_gather(cases, "dim0_i32_smaller_index", {4, 5}, {}, 0, [](Rng&) { return i32_index({3, 0, 3, 3, 1, 0}, {3, 2}); });
  // x stored (3, 4, 5), viewed as permute {1, 2, 0} -> (4, 5, 3); gather along dim -2 (size 5)
  add_gather(cases, "negdim_permuted", {3, 4, 5}, {1, 2, 0}, -2, [](Rng& rng) { return Tensor::randint({2, 6, 3}, rng, 0, 5); });

  add_scatter_add(cases, "dim1_repeated", {3, 4}, {}, 1, [](Rng& rng) { return Tensor::randint({3, 5}, rng, 0, 4); });
  add_scatter_add(cases, "dim0_i32_smaller_index", {4, 3}, {}, 0, [](Rng&) { return i32_index({1, 2, 1, 2}, {2, 2}); });
  // x stored (5, 3, 4), viewed as permute {1, 2, 0} -> (3, 4, 5); scatter along dim -1 (size 5)
  add_scatter_add(cases, "negdim_permuted", {5, 3, 4}, {1, 2, 0}, -1,
                  [](Rng& rng) { return Tensor::randint({2, 3, 7}, rng, 0, 5); });
}

}  // namespace sg
