// train/distill_loss.cpp — logit distillation's loss (train/distill_loss.h), composed from differentiable ops
// (index_select, mul, log_softmax, sub, sum): the student's gradient T·(q − p)/M is the ops' own backward, nothing
// written by hand here.
#include "train/distill_loss.h"

#include <stdexcept>
#include <string>
#include <vector>

#include "autograd/node.h"
#include "ops/ops.h"

namespace sg {

namespace {

std::string describe(const Tensor& t) { return t.defined() ? t.describe() : std::string("undefined"); }

}  // namespace

KDLossOutput kd_loss(const Tensor& student_logits, const Tensor& teacher_logits, double temperature, const Tensor& mask) {
  const char* op = "[kd_loss] ";
  if (!student_logits.defined() || student_logits.dim() != 2 || student_logits.size(0) == 0 || student_logits.size(1) == 0 ||
      (student_logits.dtype() != DType::f32 && student_logits.dtype() != DType::f64))
    throw std::invalid_argument(std::string(op) + "student_logits must be [N,V] f32/f64 with N, V >= 1, got " + describe(student_logits));
  if (!teacher_logits.defined() || teacher_logits.shape() != student_logits.shape())
    throw std::invalid_argument(std::string(op) + "teacher_logits " + describe(teacher_logits) + " must have student_logits' shape " +
                                student_logits.describe());
  if (!(temperature > 0)) throw std::invalid_argument(std::string(op) + "temperature must be > 0, got " + std::to_string(temperature));
  const int64_t N = student_logits.size(0);
  if (mask.defined() && (mask.dim() != 1 || mask.size(0) != N))
    throw std::invalid_argument(std::string(op) + "mask " + mask.describe() + " must be [N] with N = " + std::to_string(N) +
                                " (student_logits " + student_logits.describe() + ")");
  const DType dt = student_logits.dtype();
  const Device dev = student_logits.device();

  // The selected rows, read on the host: M of them, in order.
  std::vector<int64_t> rows;
  if (mask.defined()) {
    const std::vector<double> m = mask.to_f64_vector();
    for (int64_t i = 0; i < N; i++)
      if (m[(size_t)i] != 0) rows.push_back(i);
  } else {
    for (int64_t i = 0; i < N; i++) rows.push_back(i);
  }
  if (rows.empty()) throw std::invalid_argument(std::string(op) + "the mask selects no position (of " + std::to_string(N) + ")");
  const int64_t M = (int64_t)rows.size();
  const Tensor index = Tensor::from_vector(rows, {M}).to(dev);
  const double inv_t = 1.0 / temperature;

  Tensor p, log_p, teacher_top;  // the teacher's softened distribution [M,V]: constants of the loss
  {
    NoGradGuard no_grad;
    const Tensor zt = mul(index_select(to_dtype(teacher_logits.detach(), dt).to(dev), 0, index), inv_t);
    log_p = log_softmax(zt, -1);
    p = softmax(zt, -1);
    teacher_top = argmax(zt, -1);
  }
  const Tensor log_q = log_softmax(mul(index_select(student_logits, 0, index), inv_t), -1);  // [M,V] on the tape
  // T² · (1/M) Σ_i Σ_v p (log p − log q)
  KDLossOutput out;
  out.loss = mul(sum(mul(p, sub(log_p, log_q))), temperature * temperature / (double)M);
  out.kl = out.loss.item() / (temperature * temperature);
  out.positions = M;
  {
    NoGradGuard no_grad;
    const std::vector<int64_t> s = argmax(log_q, -1).to_i64_vector(), t = teacher_top.to_i64_vector();
    int64_t same = 0;
    for (int64_t i = 0; i < M; i++) same += s[(size_t)i] == t[(size_t)i];
    out.agreement = (double)same / (double)M;
  }
  return out;
}

}  // namespace sg
