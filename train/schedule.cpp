// train/schedule.cpp — the two learning-rate shapes of schedule.h.
#include "train/schedule.h"

#include <cmath>
#include <cstdio>
#include <stdexcept>

namespace sg {

LrSchedule LrSchedule::constant(double lr, int64_t warmup_steps) {
  if (!(lr >= 0) || warmup_steps < 0)
    throw std::invalid_argument("[schedule] constant: need lr >= 0 and warmup_steps >= 0");
  LrSchedule s;
  s.kind_ = Kind::Constant;
  s.max_lr_ = s.min_lr_ = lr;
  s.warmup_ = warmup_steps;
  return s;
}

LrSchedule LrSchedule::warmup_cosine(double max_lr, double min_lr, int64_t warmup_steps, int64_t total_steps) {
  if (!(max_lr >= 0) || !(min_lr >= 0) || min_lr > max_lr)
    throw std::invalid_argument("[schedule] warmup_cosine: need 0 <= min_lr <= max_lr (got " + std::to_string(min_lr) +
                                ", " + std::to_string(max_lr) + ")");
  if (warmup_steps < 0 || total_steps < warmup_steps)
    throw std::invalid_argument("[schedule] warmup_cosine: need 0 <= warmup_steps <= total_steps (got " +
                                std::to_string(warmup_steps) + ", " + std::to_string(total_steps) + ")");
  LrSchedule s;
  s.kind_ = Kind::WarmupCosine;
  s.max_lr_ = max_lr;
  s.min_lr_ = min_lr;
  s.warmup_ = warmup_steps;
  s.total_ = total_steps;
  return s;
}

double LrSchedule::lr_at(int64_t step) const {
  if (step < 0) step = 0;
  if (step < warmup_) return max_lr_ * (double)(step + 1) / (double)warmup_;
  if (kind_ == Kind::Constant) return max_lr_;
  if (step >= total_) return min_lr_;
  const double progress = (double)(step - warmup_) / (double)(total_ - warmup_);
  return min_lr_ + 0.5 * (1.0 + std::cos(M_PI * progress)) * (max_lr_ - min_lr_);
}

std::string LrSchedule::describe() const {
  char buf[160];
  if (kind_ == Kind::Constant)
    std::snprintf(buf, sizeof buf, "warmup %lld + constant %g", (long long)warmup_, max_lr_);
  else
    std::snprintf(buf, sizeof buf, "warmup %lld + cosine %g -> %g over %lld steps", (long long)warmup_, max_lr_,
                  min_lr_, (long long)total_);
  return buf;
}

}  // namespace sg
