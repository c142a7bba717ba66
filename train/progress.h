// train/progress.h — a one-line progress display for a training loop:
//
//   pretrain [####............] 512/2000  25.6%  41.2k tok/s  loss 3.2170  lr 3e-04  mem 48.0 MiB  ETA 1m12s
//
// ("mem" is the tensor memory in use, from the caching allocator: autograd/allocator.h.)
//
// On a terminal the line is redrawn in place with '\r' (at most 10 times a second, plus the last
// step); when the output is a file or a pipe (CI, `| tee`), one plain line is printed every
// `every` steps and at the last one, so logs stay readable. tokens/s and the ETA are measured from
// the first update() of this object (which also absorbs the slow first step), so a resumed run
// does not count the steps it skipped.
//
// What this is not: a logger (metrics.csv is the record); nothing here is needed for correctness.
#pragma once
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace sg {

class ProgressBar {
 public:
  // out: stdout by default; `every`: lines printed every `every` steps when out is not a terminal.
  ProgressBar(int64_t total_steps, std::string label = "", int64_t every = 10, std::FILE* out = stdout);
  ~ProgressBar();  // ends the line if finish() was not called

  // After step `step` (1-based: steps done so far) with `tokens_seen` tokens consumed in total.
  // `extra` is appended as it is (e.g. "lr 3e-04").
  void update(int64_t step, int64_t tokens_seen, double loss, const std::string& extra = "");
  void finish();  // prints a newline on a terminal

  bool is_tty() const { return tty_; }

  // The line itself, from measured numbers (a pure function, for tests): tokens_per_s or eta_s
  // < 0 print as "-"; mem_bytes < 0 leaves "mem" out.
  static std::string format(const std::string& label, int64_t step, int64_t total, double tokens_per_s,
                            double loss, double eta_s, const std::string& extra, int64_t mem_bytes = -1,
                            int bar_width = 16);
  static std::string format_duration(double seconds);  // "42s", "3m05s", "2h07m"

 private:
  int64_t total_, every_;
  std::string label_;
  std::FILE* out_;
  bool tty_;
  bool started_ = false, open_line_ = false;
  int64_t first_step_ = 0, first_tokens_ = 0;
  std::chrono::steady_clock::time_point t0_, last_draw_;
  size_t last_len_ = 0;
};

}  // namespace sg
