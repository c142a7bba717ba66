// train/schedule.h — learning-rate schedules: linear warmup, then cosine decay to min_lr (the
// nanoGPT / Chinchilla recipe) or a constant.
//
// `step` is the 0-based index of the update about to be taken (the first call is lr_at(0)):
//   step < warmup_steps:          lr = max_lr · (step + 1) / warmup_steps     (reaches max_lr at the
//                                                                              last warmup step)
//   warmup_steps <= step < total: progress = (step − warmup) / (total − warmup) ∈ [0, 1)
//                                 lr = min_lr + ½ (1 + cos(π · progress)) · (max_lr − min_lr)
//   step >= total_steps:          lr = min_lr
// The constant schedule keeps the same warmup and then stays at max_lr.
//
// What this is not: DeepSeek-V3's exact multi-stage schedule (warmup, constant, cosine, two
// constant tails); these two shapes are what the small runs here need.
#pragma once
#include <cstdint>
#include <string>

namespace sg {

class LrSchedule {
 public:
  enum class Kind { Constant, WarmupCosine };

  static LrSchedule constant(double lr, int64_t warmup_steps = 0);
  static LrSchedule warmup_cosine(double max_lr, double min_lr, int64_t warmup_steps, int64_t total_steps);

  double lr_at(int64_t step) const;
  std::string describe() const;  // "warmup 10 + cosine 3e-3 -> 3e-4 over 1000 steps"

  Kind kind() const { return kind_; }
  double max_lr() const { return max_lr_; }
  double min_lr() const { return min_lr_; }
  int64_t warmup_steps() const { return warmup_; }
  int64_t total_steps() const { return total_; }

 private:
  Kind kind_ = Kind::Constant;
  double max_lr_ = 0, min_lr_ = 0;
  int64_t warmup_ = 0, total_ = 0;
};

}  // namespace sg
