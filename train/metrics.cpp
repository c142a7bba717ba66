// train/metrics.cpp — metrics.csv writer and reader (see metrics.h).
#include "train/metrics.h"

#include <charconv>
#include <cmath>
#include <filesystem>
#include <limits>
#include <sstream>
#include <stdexcept>

namespace fs = std::filesystem;

namespace sg {

namespace {

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + v[i];
  return s;
}

std::vector<std::string> split(const std::string& line) {
  std::vector<std::string> out;
  std::string cell;
  std::istringstream in(line);
  while (std::getline(in, cell, ',')) out.push_back(cell);
  if (!line.empty() && line.back() == ',') out.push_back("");
  return out;
}

double parse_number(const std::string& s, const std::string& path, size_t line) {
  if (s == "nan" || s == "-nan") return std::numeric_limits<double>::quiet_NaN();
  if (s == "inf") return std::numeric_limits<double>::infinity();
  if (s == "-inf") return -std::numeric_limits<double>::infinity();
  double v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size())
    throw std::runtime_error("[metrics] " + path + ":" + std::to_string(line) + ": '" + s + "' is not a number");
  return v;
}

std::string first_line(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

}  // namespace

std::string format_number(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, end);
}

MetricsLogger::MetricsLogger(std::string path, std::vector<std::string> columns)
    : path_(std::move(path)), columns_(std::move(columns)) {
  if (columns_.empty()) throw std::invalid_argument("[metrics] " + path_ + ": no columns");
  for (const std::string& c : columns_)
    if (c.empty() || c.find_first_of(",\n\r\"") != std::string::npos)
      throw std::invalid_argument("[metrics] " + path_ + ": bad column name '" + c + "'");
  const fs::path p(path_);
  if (p.has_parent_path()) fs::create_directories(p.parent_path());
  const bool fresh = !fs::exists(p) || fs::file_size(p) == 0;
  if (!fresh) {
    const std::string header = first_line(path_);
    if (header != join(columns_))
      throw std::runtime_error("[metrics] " + path_ + ": existing header '" + header + "' differs from the columns '" +
                               join(columns_) + "'; use another file or delete it");
  }
  out_.open(path_, std::ios::app);
  if (!out_) throw std::runtime_error("[metrics] " + path_ + ": cannot open for appending");
  if (fresh) out_ << join(columns_) << "\n" << std::flush;
}

void MetricsLogger::log(const std::vector<double>& values) {
  if (values.size() != columns_.size())
    throw std::invalid_argument("[metrics] " + path_ + ": row has " + std::to_string(values.size()) +
                                " values for " + std::to_string(columns_.size()) + " columns (" + join(columns_) + ")");
  std::string row;
  for (size_t i = 0; i < values.size(); ++i) row += (i ? "," : "") + format_number(values[i]);
  out_ << row << "\n" << std::flush;
  if (!out_) throw std::runtime_error("[metrics] " + path_ + ": write failed");
}

void MetricsLogger::truncate_after(double last) {
  out_.close();
  std::ifstream in(path_);
  const std::string tmp = path_ + ".tmp";
  {
    std::ofstream o(tmp, std::ios::trunc);
    std::string line;
    size_t n = 0;
    while (std::getline(in, line)) {
      ++n;
      if (n > 1 && !line.empty() && parse_number(split(line).at(0), path_, n) > last) continue;
      o << line << "\n";
    }
    o.close();
    if (!o) throw std::runtime_error("[metrics] " + tmp + ": write failed");
  }
  fs::rename(tmp, path_);
  out_.open(path_, std::ios::app);
  if (!out_) throw std::runtime_error("[metrics] " + path_ + ": cannot open for appending");
}

std::vector<double> MetricsTable::column(const std::string& name) const {
  for (size_t c = 0; c < columns.size(); ++c)
    if (columns[c] == name) {
      std::vector<double> v;
      v.reserve(rows.size());
      for (const auto& r : rows) v.push_back(r[c]);
      return v;
    }
  std::string all;
  for (const auto& c : columns) all += (all.empty() ? "" : ", ") + c;
  throw std::invalid_argument("[metrics] no column '" + name + "' (columns: " + all + ")");
}

MetricsTable read_metrics_csv(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("[metrics] " + path + ": cannot open");
  MetricsTable t;
  std::string line;
  if (!std::getline(in, line)) throw std::runtime_error("[metrics] " + path + ": empty file (no header)");
  t.columns = split(line);
  for (size_t n = 2; std::getline(in, line); ++n) {
    if (line.empty()) continue;
    std::vector<std::string> cells = split(line);
    if (cells.size() != t.columns.size())
      throw std::runtime_error("[metrics] " + path + ":" + std::to_string(n) + ": " + std::to_string(cells.size()) +
                               " values for " + std::to_string(t.columns.size()) + " columns");
    std::vector<double> row;
    for (const std::string& c : cells) row.push_back(parse_number(c, path, n));
    t.rows.push_back(std::move(row));
  }
  return t;
}

}  // namespace sg
