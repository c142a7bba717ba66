// train/progress.cpp — see progress.h.
#include "train/progress.h"

#include <unistd.h>

#include <cmath>

#include "autograd/allocator.h"

namespace sg {

ProgressBar::ProgressBar(int64_t total_steps, std::string label, int64_t every, std::FILE* out)
    : total_(total_steps), every_(every < 1 ? 1 : every), label_(std::move(label)), out_(out),
      tty_(out && ::isatty(::fileno(out))) {}

ProgressBar::~ProgressBar() {
  if (open_line_) finish();
}

std::string ProgressBar::format_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "-";
  char buf[32];
  const long long t = (long long)std::llround(s);
  if (t < 60) std::snprintf(buf, sizeof buf, "%llds", t);
  else if (t < 3600) std::snprintf(buf, sizeof buf, "%lldm%02llds", t / 60, t % 60);
  else std::snprintf(buf, sizeof buf, "%lldh%02lldm", t / 3600, (t % 3600) / 60);
  return buf;
}

std::string ProgressBar::format(const std::string& label, int64_t step, int64_t total, double tokens_per_s,
                                double loss, double eta_s, const std::string& extra, int64_t mem_bytes,
                                int bar_width) {
  const double frac = total > 0 ? std::min(1.0, std::max(0.0, (double)step / (double)total)) : 0.0;
  const int filled = (int)std::floor(frac * bar_width);
  std::string bar = "[" + std::string(filled, '#') + std::string(bar_width - filled, '.') + "]";
  char tps[32];
  if (tokens_per_s < 0 || !std::isfinite(tokens_per_s)) std::snprintf(tps, sizeof tps, "- tok/s");
  else if (tokens_per_s >= 1e6) std::snprintf(tps, sizeof tps, "%.2fM tok/s", tokens_per_s / 1e6);
  else if (tokens_per_s >= 1e3) std::snprintf(tps, sizeof tps, "%.1fk tok/s", tokens_per_s / 1e3);
  else std::snprintf(tps, sizeof tps, "%.0f tok/s", tokens_per_s);
  char buf[256];
  std::snprintf(buf, sizeof buf, "%s%s%s %lld/%lld  %.1f%%  %s  loss %.4f", label.c_str(), label.empty() ? "" : " ",
                bar.c_str(), (long long)step, (long long)total, 100.0 * frac, tps, loss);
  std::string line = buf;
  if (!extra.empty()) line += "  " + extra;
  if (mem_bytes >= 0) {
    std::snprintf(buf, sizeof buf, "  mem %.1f MiB", (double)mem_bytes / (1024.0 * 1024.0));
    line += buf;
  }
  line += "  ETA " + format_duration(eta_s);
  return line;
}

void ProgressBar::update(int64_t step, int64_t tokens_seen, double loss, const std::string& extra) {
  if (!out_) return;
  const auto now = std::chrono::steady_clock::now();
  if (!started_) {
    // The first update starts the clock (it also absorbs the first, slower step): rates are
    // measured over the steps after it.
    started_ = true;
    first_step_ = step;
    first_tokens_ = tokens_seen;
    t0_ = now;
    last_draw_ = now - std::chrono::seconds(1);
  }
  const double elapsed = std::chrono::duration<double>(now - t0_).count();
  const int64_t done = step - first_step_;
  const double tps = done > 0 && elapsed > 0 ? (double)(tokens_seen - first_tokens_) / elapsed : -1;
  const double eta = done > 0 && elapsed > 0 ? elapsed / (double)done * (double)(total_ - step) : -1;
  const bool last = step >= total_;
  const int64_t mem = cpu_allocator_stats().allocated_bytes;

  if (tty_) {
    if (!last && now - last_draw_ < std::chrono::milliseconds(100)) return;
    last_draw_ = now;
    std::string line = format(label_, step, total_, tps, loss, eta, extra, mem);
    const size_t len = line.size();
    if (len < last_len_) line += std::string(last_len_ - len, ' ');  // erase the rest of a longer line
    last_len_ = len;
    std::fprintf(out_, "\r%s", line.c_str());
    open_line_ = true;
    if (last) finish();
  } else if (step % every_ == 0 || last) {
    std::fprintf(out_, "%s\n", format(label_, step, total_, tps, loss, eta, extra, mem).c_str());
  }
  std::fflush(out_);
}

void ProgressBar::finish() {
  if (out_ && open_line_) {
    std::fputc('\n', out_);
    std::fflush(out_);
  }
  open_line_ = false;
}

}  // namespace sg
