// ops/registry_reduce.cpp — registry cases for every op in ops/reduce.h: sum, mean, max, min, var
// over all axes, one axis, several axes, a negative axis, keepdim on/off and a permuted input; sum_to.
//
// The reference gathers, for every output element, the values of its reduction set with plain loops
// over Tensor::at, and folds them with the textbook formula in double. It calls no op from ops/.
// max/min inputs hold distinct values (spaced 2/n apart), so the argmax is unique and a
// finite-difference step cannot change it.
#include <algorithm>
#include <cmath>
#include <functional>

#include "ops/reduce.h"
#include "ops/registry.h"
#include "ops/shape.h"

namespace sg {
namespace {

using Index = std::vector<int64_t>;
using Inputs = std::vector<Tensor>;
using Fold = std::function<double(const std::vector<double>&)>;  // the values of one reduction set -> result

// Reduces the logical tensor `read` (of `shape`) over `axes` (empty = all), keeping size-1 dims if keepdim.
Tensor reduce_reference(const Shape& shape, const std::function<double(const Index&)>& read, std::vector<int64_t> axes,
                        bool keepdim, const Fold& fold) {
  int64_t nd = (int64_t)shape.size();
  std::vector<bool> reduced(nd, axes.empty());
  for (int64_t a : axes) reduced[a < 0 ? a + nd : a] = true;
  Shape out_shape, set_shape;  // set_shape: the sizes of the reduced dims, in order
  for (int64_t d = 0; d < nd; d++) {
    if (!reduced[d]) out_shape.push_back(shape[d]);
    else {
      set_shape.push_back(shape[d]);
      if (keepdim) out_shape.push_back(1);
    }
  }
  return make_reference(out_shape, [&](const Index& out_idx) {
    // Kept dims come from the output index (skipping the 1s keepdim inserted), reduced dims from the set.
    Index full(nd);
    int64_t o = 0;
    for (int64_t d = 0; d < nd; d++) {
      if (!reduced[d]) full[d] = out_idx[o++];
      else if (keepdim) o++;
    }
    std::vector<double> values;
    for_each_index(set_shape, [&](const Index& set_idx) {
      int64_t s = 0;
      for (int64_t d = 0; d < nd; d++)
        if (reduced[d]) full[d] = set_idx[s++];
      values.push_back(read(full));
    });
    return fold(values);
  });
}

double fold_sum(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return s;
}
double fold_mean(const std::vector<double>& v) { return fold_sum(v) / (double)v.size(); }
double fold_max(const std::vector<double>& v) { return *std::max_element(v.begin(), v.end()); }
double fold_min(const std::vector<double>& v) { return *std::min_element(v.begin(), v.end()); }
Fold fold_var(int64_t correction) {
  return [correction](const std::vector<double>& v) {
    double m = fold_mean(v), s = 0;
    for (double x : v) s += (x - m) * (x - m);
    return s / (double)((int64_t)v.size() - correction);
  };
}

// Distinct values -1 + 2 (k + 0.5) / n for k a random permutation of 0..n-1 (Fisher–Yates).
Tensor distinct_input(Rng& rng, const Shape& shape) {
  int64_t n = shape_numel(shape);
  std::vector<int64_t> k(n);
  for (int64_t i = 0; i < n; i++) k[i] = i;
  for (int64_t i = n - 1; i > 0; i--) std::swap(k[i], k[rng.randint(i + 1)]);
  std::vector<double> v(n);
  for (int64_t i = 0; i < n; i++) v[i] = -1.0 + 2.0 * ((double)k[i] + 0.5) / (double)n;
  Tensor t = Tensor::from_vector(v, shape);
  t.requires_grad_();
  return t;
}

using ReduceFn = std::function<Tensor(const Tensor&, const std::vector<int64_t>&, bool)>;

// The standard set of reduction cases for one op. The stored input is [3,4,5]; "permuted" stores
// [5,3,4] and fn sees permute(x, {1,2,0}) = [3,4,5], i.e. view[i0,i1,i2] = x[i2,i0,i1].
void add_reduce(std::vector<OpCase>& cases, const std::string& op, const ReduceFn& f, const Fold& fold, bool distinct) {
  struct Variant {
    const char* name;
    std::vector<int64_t> axes;
    bool keepdim, permuted;
  };
  const std::vector<Variant> variants = {
      {"all", {}, false, false},          {"axis1", {1}, false, false},         {"axes02", {0, 2}, false, false},
      {"neg_axis", {-1}, false, false},   {"keepdim", {1}, true, false},        {"keepdim_axes02", {0, 2}, true, false},
      {"keepdim_all", {}, true, false},   {"permuted", {-1}, false, true},      {"permuted_axes01", {0, 1}, true, true},
  };
  for (const Variant& v : variants) {
    OpCase c;
    c.name = op + "/" + v.name;
    Shape stored = v.permuted ? Shape{5, 3, 4} : Shape{3, 4, 5};
    c.make_inputs = [stored, distinct](Rng& rng) {
      return Inputs{distinct ? distinct_input(rng, stored) : rand_input(rng, stored)};
    };
    c.fn = [v, f](const Inputs& in) { return f(v.permuted ? permute(in[0], {1, 2, 0}) : in[0], v.axes, v.keepdim); };
    c.reference = [v, fold](const Inputs& in) {
      const Tensor& x = in[0];
      auto read = [&](const Index& i) { return v.permuted ? x.at({i[2], i[0], i[1]}) : x.at(i); };
      return reduce_reference({3, 4, 5}, read, v.axes, v.keepdim, fold);
    };
    cases.push_back(c);
  }
}

}  // namespace

void register_reduce_cases(std::vector<OpCase>& cases) {
  add_reduce(cases, "sum", [](const Tensor& x, const std::vector<int64_t>& a, bool k) { return sum(x, a, k); }, fold_sum, false);
  add_reduce(cases, "mean", [](const Tensor& x, const std::vector<int64_t>& a, bool k) { return mean(x, a, k); }, fold_mean, false);
  add_reduce(cases, "max", [](const Tensor& x, const std::vector<int64_t>& a, bool k) { return max(x, a, k); }, fold_max, true);
  add_reduce(cases, "min", [](const Tensor& x, const std::vector<int64_t>& a, bool k) { return min(x, a, k); }, fold_min, true);
  add_reduce(cases, "var", [](const Tensor& x, const std::vector<int64_t>& a, bool k) { return var(x, a, k); }, fold_var(1), false);

  // The one-argument overloads (all elements -> 0-d scalar).
  {
    OpCase c;
    c.name = "sum/scalar_overload";
    c.make_inputs = [](Rng& rng) { return Inputs{rand_input(rng, {2, 3})}; };
    c.fn = [](const Inputs& in) { return sum(in[0]); };
    c.reference = [](const Inputs& in) {
      return reduce_reference({2, 3}, [&](const Index& i) { return in[0].at(i); }, {}, false, fold_sum);
    };
    cases.push_back(c);
  }
  {
    OpCase c;
    c.name = "mean/scalar_overload";
    c.make_inputs = [](Rng& rng) { return Inputs{rand_input(rng, {2, 3})}; };
    c.fn = [](const Inputs& in) { return mean(in[0]); };
    c.reference = [](const Inputs& in) {
      return reduce_reference({2, 3}, [&](const Index& i) { return in[0].at(i); }, {}, false, fold_mean);
    };
    cases.push_back(c);
  }
  {  // population variance (correction 0) over a negative pair of axes
    OpCase c;
    c.name = "var/correction0";
    c.make_inputs = [](Rng& rng) { return Inputs{rand_input(rng, {3, 4, 5})}; };
    c.fn = [](const Inputs& in) { return var(in[0], {-1, -3}, false, 0); };
    c.reference = [](const Inputs& in) {
      return reduce_reference({3, 4, 5}, [&](const Index& i) { return in[0].at(i); }, {-1, -3}, false, fold_var(0));
    };
    cases.push_back(c);
  }

  // ---- sum_to: the reduction that undoes broadcasting ----
  struct SumTo {
    const char* name;
    Shape target;
  };
  for (const SumTo& s : std::vector<SumTo>{{"col", {3, 1}}, {"row", {1, 4}}, {"trailing", {4}}, {"scalar", {}}, {"same", {2, 3, 4}}}) {
    OpCase c;
    c.name = std::string("sum_to/") + s.name;
    c.make_inputs = [](Rng& rng) { return Inputs{rand_input(rng, {2, 3, 4})}; };
    Shape target = s.target;
    c.fn = [target](const Inputs& in) { return sum_to(in[0], target); };
    c.reference = [target](const Inputs& in) {
      // out[j] = Σ g[i] over every i of [2,3,4] that broadcasts onto j (numpy rules, right-aligned).
      Tensor out = make_reference(target, [](const Index&) { return 0.0; });
      int64_t lead = 3 - (int64_t)target.size();
      for_each_index({2, 3, 4}, [&](const Index& i) {
        Index j(target.size());
        for (size_t d = 0; d < target.size(); d++) j[d] = target[d] == 1 ? 0 : i[lead + d];
        out.set_at(j, out.at(j) + in[0].at(i));
      });
      return out;
    };
    cases.push_back(c);
  }
}

}  // namespace sg
