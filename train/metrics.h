// train/metrics.h — metrics.csv: one row per logged step, numbers only.
//
//   step,loss,lr,grad_norm,tokens_per_s
//   1,10.3734,3e-05,4.21,51234
//
// The header is written once, when the file is new or empty. Reopening an existing file (a resumed
// run) checks that its header is the same columns and appends; truncate_after(step) first drops the
// rows a crashed run logged after its last checkpoint, so the resumed rows are not doubled. Each
// row is flushed as it is written, so `tail -f metrics.csv` and a crash both see every step.
// Numbers are written in the shortest form that reads back to the same double (nan, inf, -inf for
// the non-finite ones).
//
// What this is not: TensorBoard or a string-valued log; read_metrics_csv() reads the file back for
// plots and tests.
#pragma once
#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

namespace sg {

class MetricsLogger {
 public:
  MetricsLogger(std::string path, std::vector<std::string> columns);

  // One row, one value per column in the constructor's order.
  void log(const std::vector<double>& values);
  // Keeps the header and the rows whose first column is <= last (rewritten via a .tmp file).
  void truncate_after(double last);

  const std::string& path() const { return path_; }
  const std::vector<std::string>& columns() const { return columns_; }

 private:
  std::string path_;
  std::vector<std::string> columns_;
  std::ofstream out_;
};

struct MetricsTable {
  std::vector<std::string> columns;
  std::vector<std::vector<double>> rows;
  // The values of one column, in row order; throws naming the column and the file's columns.
  std::vector<double> column(const std::string& name) const;
};
MetricsTable read_metrics_csv(const std::string& path);

// Shortest decimal form that reads back as the same double ("0.1", "1e-05", "nan").
std::string format_number(double v);

}  // namespace sg
