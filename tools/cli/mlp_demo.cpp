// tools/cli/mlp_demo.cpp — see mlp_demo.h.
#include "tools/cli/mlp_demo.h"

#include <chrono>
#include <cmath>
#include <fstream>
#include <iomanip>
#include <iostream>

#include "autograd/gradcheck.h"
#include "ops/ops.h"

namespace sg::demo {

SpiralData make_spirals(int64_t per_class, int64_t classes, uint64_t seed) {
  Rng rng(seed);
  int64_t n = per_class * classes;
  std::vector<float> x(n * 2);
  std::vector<int64_t> y(n);
  for (int64_t c = 0; c < classes; c++) {
    for (int64_t i = 0; i < per_class; i++) {
      double r = (double)i / per_class;                          // radius 0 -> 1
      double t = 4.0 * r + 2.0 * M_PI * c / classes + 0.2 * rng.normal();  // angle: arm c, winding with r
      int64_t k = c * per_class + i;
      x[2 * k] = (float)(r * std::cos(t));
      x[2 * k + 1] = (float)(r * std::sin(t));
      y[k] = c;
    }
  }
  return {Tensor::from_vector(x, {n, 2}), Tensor::from_vector(y, {n})};
}

Mlp make_mlp(int64_t hidden, int64_t classes, uint64_t seed, DType dtype) {
  Rng rng(seed);
  Mlp m;
  m.w1 = Tensor::randn({hidden, 2}, rng, 1.0, dtype).set_name("mlp.fc1.weight");   // std 1: inputs are 2-D
  m.b1 = Tensor::zeros({hidden}, dtype).set_name("mlp.fc1.bias");
  m.w2 = Tensor::randn({classes, hidden}, rng, 1.0 / std::sqrt((double)hidden), dtype).set_name("mlp.fc2.weight");
  m.b2 = Tensor::zeros({classes}, dtype).set_name("mlp.fc2.bias");
  for (Tensor* p : {&m.w1, &m.b1, &m.w2, &m.b2}) p->requires_grad_();
  return m;
}

Tensor mlp_forward(const Mlp& m, const Tensor& x) {
  ScopeGuard mlp("mlp");
  Tensor h;
  {
    ScopeGuard s("fc1");
    h = gelu(add(linear(x, m.w1), m.b1)).set_name("mlp.hidden");
  }
  ScopeGuard s("fc2");
  return add(linear(h, m.w2), m.b2).set_name("logits");
}

Tensor mlp_loss(const Mlp& m, const Tensor& x, const Tensor& labels) {
  Tensor logits = mlp_forward(m, x);
  ScopeGuard s("loss");
  return cross_entropy(logits, labels).set_name("loss");
}

double accuracy(const Mlp& m, const Tensor& x, const Tensor& labels) {
  NoGradGuard no_grad;
  std::vector<int64_t> pred = argmax(mlp_forward(m, x), -1).to_i64_vector();
  std::vector<int64_t> truth = labels.to_i64_vector();
  int64_t correct = 0;
  for (size_t i = 0; i < pred.size(); i++) correct += pred[i] == truth[i];
  return (double)correct / (double)pred.size();
}

TrainResult train_mlp(Mlp& m, const SpiralData& data, int steps, double lr, int print_every, std::ostream& out) {
  TrainResult result;
  std::vector<Tensor*> params = {&m.w1, &m.b1, &m.w2, &m.b2};
  std::vector<std::vector<float>> velocity;
  for (Tensor* p : params) velocity.emplace_back(p->numel(), 0.0f);
  const float momentum = 0.9f;
  auto t0 = std::chrono::steady_clock::now();
  out << "  step       loss   accuracy\n";
  for (int step = 0; step < steps; step++) {
    for (Tensor* p : params) p->zero_grad();
    Tensor loss = mlp_loss(m, data.x, data.labels);
    loss.backward();
    result.losses.push_back(loss.item());
    // SGD with momentum, written out: v = μ v + g;  p -= lr v
    for (size_t k = 0; k < params.size(); k++) {
      float* p = params[k]->data<float>();
      const float* g = params[k]->grad().data<float>();
      for (int64_t i = 0; i < params[k]->numel(); i++) {
        velocity[k][i] = momentum * velocity[k][i] + g[i];
        p[i] -= (float)lr * velocity[k][i];
      }
    }
    if (step % print_every == 0 || step == steps - 1)
      out << std::setw(6) << step << std::setw(11) << std::fixed << std::setprecision(4) << result.losses.back()
          << std::setw(11) << accuracy(m, data.x, data.labels) << "\n";
  }
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  result.final_accuracy = accuracy(m, data.x, data.labels);
  return result;
}

Chapter1Trace trace_mlp(const Mlp& m, const SpiralData& data, const std::string& dot_path, std::ostream& out) {
  // 1. The tape: what the forward pass recorded.
  Tensor loss = mlp_loss(m, data.x, data.labels);
  Chapter1Trace t;
  t.tape_nodes = (int64_t)topological_order(loss).size();
  out << "1. The tape of one forward pass (" << t.tape_nodes << " nodes):\n" << tape_to_text(loss) << "\n";
  if (!dot_path.empty()) {
    std::ofstream(dot_path) << tape_to_dot(loss);
    out << "   (Graphviz: dot -Tpng " << dot_path << " -o tape.png)\n\n";
  }

  // 2. One backward sweep with the trace on.
  out << "2. backward() with the gradient trace on:\n";
  {
    TraceGuard trace(&out);
    loss.retain_grad();  // keep d loss / d loss (the seed, 1) for the chapter's check
    loss.backward();
  }
  out << "\n";
  t.loss_grad = loss.grad().item();
  return t;
}

int trace_chapter1(const std::string& dot_path, std::ostream& out) {
  out << "== Chapter 1: the tape and one traced backward sweep ==\n\n";
  Chapter1Trace t = trace_mlp(make_mlp(/*hidden=*/32, /*classes=*/3, /*seed=*/1), make_spirals(100, 3, /*seed=*/7),
                              dot_path, out);
  return t.loss_grad == 1.0 ? 0 : 1;
}

int run_chapter1(int steps, const std::string& dot_path, std::ostream& out, Chapter1Numbers* numbers) {
  out << "== Chapter 1: the autograd engine ==\n\n";
  SpiralData data = make_spirals(100, 3, /*seed=*/7);
  Mlp m = make_mlp(/*hidden=*/32, /*classes=*/3, /*seed=*/1);
  out << "Task: classify 300 points on 3 spiral arms with a 2-layer MLP (2 -> 32 -> 3, GELU).\n"
      << "Chance accuracy is 1/3; chance loss is ln 3 = " << std::setprecision(4) << std::log(3.0) << ".\n\n";
  const Chapter1Trace traced = trace_mlp(m, data, dot_path, out);  // 1. the tape, 2. the traced sweep
  const int64_t tape_nodes = traced.tape_nodes;
  const double loss_grad = traced.loss_grad;

  // 3. Gradcheck the same network in float64 on a few points.
  Mlp m64 = make_mlp(8, 3, 3, DType::f64);
  SpiralData small = make_spirals(4, 3, 11);
  Tensor x64 = to_dtype(small.x, DType::f64);
  GradcheckResult gc = gradcheck(
      [&](const std::vector<Tensor>& p) {
        Mlp mm{p[0], p[1], p[2], p[3]};
        return mlp_loss(mm, x64, small.labels);
      },
      {m64.w1, m64.b1, m64.w2, m64.b2});
  out << "3. float64 gradcheck of every parameter (central differences): " << (gc.ok ? "PASS" : "FAIL")
      << ", max |analytic - numeric| = " << std::scientific << std::setprecision(2) << gc.max_abs_error << std::defaultfloat
      << (gc.ok ? "" : "  " + gc.message) << "\n\n";

  // 4. Train.
  const double initial_accuracy = accuracy(m, data.x, data.labels);
  out << "4. Training " << steps << " steps of full-batch SGD (lr 0.5, momentum 0.9):\n";
  TrainResult r = train_mlp(m, data, steps, 0.5, std::max(1, steps / 10), out);
  double first = r.losses.front(), last = r.losses.back();
  out << "\n   loss " << std::fixed << std::setprecision(4) << first << " -> " << last << ", accuracy "
      << r.final_accuracy * 100 << "%, " << std::setprecision(1) << steps / r.seconds << " steps/s\n";
  if (numbers) *numbers = {tape_nodes, loss_grad, gc.ok, gc.max_abs_error, first, last, initial_accuracy, r.final_accuracy};
  bool ok = gc.ok && last < 0.5 * first;
  out << (ok ? "   chapter 1 OK\n" : "   chapter 1 FAILED: gradcheck or training did not converge\n");
  return ok ? 0 : 1;
}

}  // namespace sg::demo
