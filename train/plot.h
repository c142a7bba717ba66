// train/plot.h — PNG line plots, bar charts and heat maps, drawn pixel by pixel into an RGB buffer and saved
// with stb_image_write. Loss curves with the ln(V) chance line, learning-rate schedules, rewards,
// expert load histograms: what a chapter or a pipeline stage shows at its end.
//
// The drawing is all here: axes, "nice" ticks (1, 2, 5 × 10^k; powers of ten on a log axis) with
// their numbers, light grid lines, one 2-px polyline per series (NaN/Inf points — and non-positive
// ones on a log axis — break the line), an optional dashed horizontal reference line with its label,
// a legend (in the plot corner where it hides the least), and text in a built-in 5×7 bitmap font
// (digits, letters, common punctuation; anything else prints as '?').
//
// stb: train/plot.cpp holds the ONE `#define STB_IMAGE_WRITE_IMPLEMENTATION` of the project. Other
// files may `#include <stb/stb_image_write.h>` and call stbi_write_* (linking seekgrad_train), but
// must NOT define STB_IMAGE_WRITE_IMPLEMENTATION again (duplicate symbols), or should use write_png.
//
// Files are written to `path + ".tmp"` and renamed over `path`: a reader never sees half a PNG.
// What this is not: a plotting library (no subplots, markers, or text rotation; the y label is
// written horizontally above the axis).
#pragma once
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sg {

struct Rgb {
  uint8_t r = 0, g = 0, b = 0;
  bool operator==(const Rgb&) const = default;
};

// matplotlib's default cycle ("tab10"), so plots look familiar.
namespace colors {
constexpr Rgb blue{31, 119, 180}, orange{255, 127, 14}, green{44, 160, 44}, red{214, 39, 40},
    purple{148, 103, 189}, brown{140, 86, 75}, pink{227, 119, 194}, gray{127, 127, 127},
    olive{188, 189, 34}, cyan{23, 190, 207}, black{0, 0, 0}, white{255, 255, 255};
// The i-th color of the cycle (wraps around).
Rgb cycle(size_t i);
}  // namespace colors

struct Series {
  std::string name;
  std::vector<double> xs, ys;  // same length
  Rgb color = colors::blue;
};

// A dashed horizontal line across the plot, e.g. {std::log(vocab_size), "ln(V) chance"}.
struct ReferenceLine {
  double y = 0;
  std::string label;
  Rgb color = colors::red;
};

struct LinePlotOptions {
  std::string title;
  std::string x_label = "step";
  std::string y_label;
  std::optional<ReferenceLine> reference;
  bool log_y = false;
  int width = 800, height = 500;
};

struct BarChartOptions {
  std::string title, x_label, y_label;
  std::vector<std::string> labels;  // one per bar; empty = the bar indices 0, 1, 2, ...
  Rgb color = colors::blue;
  std::optional<ReferenceLine> reference;  // e.g. the mean load of all experts
  int width = 800, height = 500;
};

// An RGB image, row-major, 3 bytes per pixel, (0, 0) at the top left.
struct Image {
  int width = 0, height = 0;
  std::vector<uint8_t> rgb;

  Image() = default;
  Image(int w, int h, Rgb fill = colors::white);
  Rgb pixel(int x, int y) const;
  void set(int x, int y, Rgb c);  // ignores points outside the image
  bool contains(Rgb c) const;     // any pixel of exactly this color?
};

Image render_line_plot(const std::vector<Series>& series, const LinePlotOptions& opt);
void write_line_plot_png(const std::string& path, const std::vector<Series>& series, const LinePlotOptions& opt);
// The short form: a title, an optional reference line and a log-y switch.
void write_line_plot_png(const std::string& path, const std::vector<Series>& series, const std::string& title,
                         const std::optional<ReferenceLine>& reference = std::nullopt, bool log_y = false);

Image render_bar_chart(const std::vector<double>& values, const BarChartOptions& opt);
void write_bar_chart_png(const std::string& path, const std::vector<double>& values, const BarChartOptions& opt);

// A heat map of a rows × cols matrix (e.g. attention: row = query, column = key), one square cell per entry,
// row 0 at the top, with a colour bar. NaN cells get nan_color (e.g. the future keys of a causal row).
struct HeatmapOptions {
  std::string title, x_label, y_label;
  double lo = NAN, hi = NAN;           // the colour scale's range (values clamped into it); NaN = the finite min / max
  Rgb nan_color{225, 225, 225};
  int cell = 0;                        // pixels per cell; 0 = max(1, 480 / max(rows, cols))
};

// The colour of t in [0, 1] (clamped): piecewise linear through black, dark purple, red, orange and pale yellow
// ("inferno"-like: dark = little, bright = much, and still ordered in grey scale).
Rgb heat_color(double t);
// values[r·cols + c]. Throws "[plot] ..." if values.size() != rows·cols or rows, cols <= 0.
Image render_heatmap(const std::vector<double>& values, int rows, int cols, const HeatmapOptions& opt);
void write_heatmap_png(const std::string& path, const std::vector<double>& values, int rows, int cols,
                       const HeatmapOptions& opt);

// Counts of xs in `bins` equal bins over [lo, hi] (values outside are clamped into the end bins;
// NaN is skipped), for write_bar_chart_png; bin_labels() gives each bin's lower edge.
std::vector<double> histogram(const std::vector<double>& xs, int bins, double lo, double hi);
std::vector<std::string> bin_labels(int bins, double lo, double hi);

// Saves an image as PNG (path + ".tmp", then rename). Throws "[plot] <path>: ..." on failure.
void write_png(const std::string& path, const Image& image);

// The 5×7 font: each glyph is 5 pixels wide and 7 tall (descenders of g p q y 2 more), drawn
// `scale` times larger, 6·scale apart.
void draw_text(Image& img, int x, int y, std::string_view text, Rgb color, int scale = 1);
int text_width(std::string_view text, int scale = 1);

}  // namespace sg
