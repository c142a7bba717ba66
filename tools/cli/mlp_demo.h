// tools/cli/mlp_demo.h — chapter 1's story as functions, shared by `ch01_autograd` and the
// `seekgrad pipeline` main job: a 2-layer MLP on a toy task (3-class spirals), its tape, one
// traced backward sweep, a float64 gradcheck, and SGD training with the loss printed as it falls.
#pragma once
#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

#include "autograd/tensor.h"

namespace sg::demo {

struct SpiralData {
  Tensor x;        // [N, 2] f32 points
  Tensor labels;   // [N] i64 class ids in [0, classes)
};
// N = classes * points_per_class points on `classes` interleaved noisy spiral arms.
SpiralData make_spirals(int64_t points_per_class, int64_t classes, uint64_t seed);

struct Mlp {
  Tensor w1, b1, w2, b2;   // w1 [hidden, 2], b1 [hidden], w2 [classes, hidden], b2 [classes]
};
Mlp make_mlp(int64_t hidden, int64_t classes, uint64_t seed, DType dtype = DType::f32);
// logits = W2 · gelu(W1 · x + b1) + b2, recorded under the scopes "mlp.fc1", "mlp.fc2".
Tensor mlp_forward(const Mlp& m, const Tensor& x);
Tensor mlp_loss(const Mlp& m, const Tensor& x, const Tensor& labels);   // mean cross-entropy
double accuracy(const Mlp& m, const Tensor& x, const Tensor& labels);

struct TrainResult {
  std::vector<double> losses;   // one per step
  double final_accuracy = 0;
  double seconds = 0;
};
// Full-batch SGD with momentum; prints "step  loss  accuracy" every `print_every` steps to `out`.
TrainResult train_mlp(Mlp& m, const SpiralData& data, int steps, double lr, int print_every, std::ostream& out);

// What run_chapter1 measured, for the chapter's checks (ch01_autograd.md states each one).
struct Chapter1Numbers {
  int64_t tape_nodes = 0;           // nodes of one forward pass's tape
  double loss_grad = 0;             // d loss / d loss, the first gradient of the backward sweep
  bool gradcheck_ok = false;
  double gradcheck_max_error = 0;   // max |analytic − numeric| over every parameter element (float64)
  double first_loss = 0, last_loss = 0;
  double initial_accuracy = 0, final_accuracy = 0;
};

// Parts 1 and 2 of the chapter: one forward pass's tape (tape_to_text; dot_path non-empty: also tape_to_dot there)
// and one backward sweep with the trace on, printed to `out`. Leaves the gradients in m.
struct Chapter1Trace {
  int64_t tape_nodes = 0;
  double loss_grad = 0;  // d loss / d loss, the sweep's first gradient (1)
};
Chapter1Trace trace_mlp(const Mlp& m, const SpiralData& data, const std::string& dot_path, std::ostream& out);
// `seekgrad trace ch01`: parts 1 and 2 on the chapter's data and untrained model. Returns 0 (1 if the sweep's first
// gradient is not 1).
int trace_chapter1(const std::string& dot_path, std::ostream& out);

// The whole chapter-1 demo: tape, traced backward, gradcheck, training. Returns 0 on success, 1 if
// the gradcheck fails or the loss did not fall below half its starting value. `numbers`, when given,
// receives what was measured.
int run_chapter1(int steps, const std::string& dot_path, std::ostream& out, Chapter1Numbers* numbers = nullptr);

}  // namespace sg::demo
