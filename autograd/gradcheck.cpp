// autograd/gradcheck.cpp — see gradcheck.h.
#include "autograd/gradcheck.h"

#include <cmath>
#include <sstream>
#include <stdexcept>

#include "autograd/node.h"

namespace sg {

static double weighted_sum(const Tensor& out, const std::vector<double>& w) {
  std::vector<double> v = out.to_f64_vector();
  double s = 0;
  for (size_t i = 0; i < v.size(); i++) s += v[i] * w[i];
  return s;
}

GradcheckResult gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& f, const std::vector<Tensor>& inputs,
                          const GradcheckOptions& opt) {
  GradcheckResult result;
  for (const Tensor& in : inputs)
    if (in.defined() && in.requires_grad() && in.dtype() != DType::f64)
      throw std::runtime_error("[gradcheck] input " + in.describe() + " must be f64");

  // Analytic gradients from one backward with a random seed.
  for (const Tensor& in : inputs)
    if (in.defined()) in.impl()->grad.reset();
  Tensor out = f(inputs);
  if (out.dtype() != DType::f64) throw std::runtime_error("[gradcheck] output " + out.describe() + " must be f64");
  Rng rng(opt.seed);
  std::vector<double> w(out.numel());
  for (double& x : w) x = rng.uniform(-1.0, 1.0);
  if (out.requires_grad()) out.backward(Tensor::from_vector(w, out.shape()));

  NoGradGuard no_grad;
  for (size_t k = 0; k < inputs.size(); k++) {
    Tensor in = inputs[k];
    if (!in.defined() || !in.requires_grad()) continue;
    Tensor analytic = in.grad();
    int64_t n = in.numel();
    int64_t step = std::max<int64_t>(1, n / opt.max_elements_per_input);
    std::vector<int64_t> index(in.dim(), 0);
    for (int64_t flat = 0; flat < n; flat += step) {
      int64_t r = flat;  // flat -> multi-index (row-major)
      for (int64_t d = in.dim() - 1; d >= 0; d--) {
        index[d] = r % in.shape()[d];
        r /= in.shape()[d];
      }
      double x0 = in.at(index);
      in.set_at(index, x0 + opt.eps);
      double fp = weighted_sum(f(inputs), w);
      in.set_at(index, x0 - opt.eps);
      double fm = weighted_sum(f(inputs), w);
      in.set_at(index, x0);
      double numeric = (fp - fm) / (2 * opt.eps);
      double a = analytic.defined() ? analytic.at(index) : 0.0;
      double err = std::abs(a - numeric);
      result.max_abs_error = std::max(result.max_abs_error, err);
      if (result.ok && !(err <= opt.atol + opt.rtol * std::abs(numeric))) {
        std::ostringstream os;
        os << "input " << k << " " << in.describe() << " element " << shape_str(index) << ": analytic " << a
           << " vs numeric " << numeric << " (error " << err << ")";
        result.ok = false;
        result.message = os.str();
      }
    }
  }
  return result;
}

}  // namespace sg
