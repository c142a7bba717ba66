// train/plot.cpp — the pixel drawing behind plot.h: a 5×7 font, Bresenham lines with a square
// brush, nice ticks, line plots and bar charts; PNG encoding by stb_image_write.
//
// THE one STB_IMAGE_WRITE_IMPLEMENTATION of the project lives here (see plot.h).
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb/stb_image_write.h>

#include "train/plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <stdexcept>

namespace sg {

// ---- the 5×7 font -----------------------------------------------------------------------------
// Each glyph: 7 rows, top to bottom; bit 4 of a row is the leftmost pixel. Capitals and digits
// fill rows 0..6, lower case x-height is rows 2..6, descenders reach row 8. (After the HD44780 LCD
// character set.)
namespace {

struct Glyph {
  char c;
  uint8_t rows[7];
  int shift = 0;  // rows moved down: 2 for the descenders g, p, q, y (drawn over rows 2..8)
};

constexpr Glyph kGlyphs[] = {
    {' ', {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}}, {'0', {0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E}},
    {'1', {0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E}}, {'2', {0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F}},
    {'3', {0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E}}, {'4', {0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02}},
    {'5', {0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E}}, {'6', {0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E}},
    {'7', {0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08}}, {'8', {0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E}},
    {'9', {0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C}},
    {'A', {0x0E, 0x11, 0x11, 0x11, 0x1F, 0x11, 0x11}}, {'B', {0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E}},
    {'C', {0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E}}, {'D', {0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C}},
    {'E', {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F}}, {'F', {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10}},
    {'G', {0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F}}, {'H', {0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11}},
    {'I', {0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E}}, {'J', {0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C}},
    {'K', {0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11}}, {'L', {0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F}},
    {'M', {0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11}}, {'N', {0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11}},
    {'O', {0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E}}, {'P', {0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10}},
    {'Q', {0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D}}, {'R', {0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11}},
    {'S', {0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E}}, {'T', {0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04}},
    {'U', {0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E}}, {'V', {0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04}},
    {'W', {0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A}}, {'X', {0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11}},
    {'Y', {0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04}}, {'Z', {0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F}},
    {'a', {0x00, 0x00, 0x0E, 0x01, 0x0F, 0x11, 0x0F}}, {'b', {0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x1E}},
    {'c', {0x00, 0x00, 0x0E, 0x10, 0x10, 0x11, 0x0E}}, {'d', {0x01, 0x01, 0x0D, 0x13, 0x11, 0x11, 0x0F}},
    {'e', {0x00, 0x00, 0x0E, 0x11, 0x1F, 0x10, 0x0E}}, {'f', {0x06, 0x09, 0x08, 0x1C, 0x08, 0x08, 0x08}},
    {'g', {0x0F, 0x11, 0x11, 0x11, 0x0F, 0x01, 0x0E}, 2}, {'h', {0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x11}},
    {'i', {0x04, 0x00, 0x0C, 0x04, 0x04, 0x04, 0x0E}}, {'j', {0x02, 0x00, 0x06, 0x02, 0x02, 0x12, 0x0C}},
    {'k', {0x10, 0x10, 0x12, 0x14, 0x18, 0x14, 0x12}}, {'l', {0x0C, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E}},
    {'m', {0x00, 0x00, 0x1A, 0x15, 0x15, 0x11, 0x11}}, {'n', {0x00, 0x00, 0x16, 0x19, 0x11, 0x11, 0x11}},
    {'o', {0x00, 0x00, 0x0E, 0x11, 0x11, 0x11, 0x0E}}, {'p', {0x1E, 0x11, 0x11, 0x11, 0x1E, 0x10, 0x10}, 2},
    {'q', {0x0F, 0x11, 0x11, 0x11, 0x0F, 0x01, 0x01}, 2}, {'r', {0x00, 0x00, 0x16, 0x19, 0x10, 0x10, 0x10}},
    {'s', {0x00, 0x00, 0x0E, 0x10, 0x0E, 0x01, 0x1E}}, {'t', {0x08, 0x08, 0x1C, 0x08, 0x08, 0x09, 0x06}},
    {'u', {0x00, 0x00, 0x11, 0x11, 0x11, 0x13, 0x0D}}, {'v', {0x00, 0x00, 0x11, 0x11, 0x11, 0x0A, 0x04}},
    {'w', {0x00, 0x00, 0x11, 0x11, 0x15, 0x15, 0x0A}}, {'x', {0x00, 0x00, 0x11, 0x0A, 0x04, 0x0A, 0x11}},
    {'y', {0x11, 0x11, 0x11, 0x11, 0x0F, 0x01, 0x0E}, 2}, {'z', {0x00, 0x00, 0x1F, 0x02, 0x04, 0x08, 0x1F}},
    {'.', {0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C}}, {',', {0x00, 0x00, 0x00, 0x00, 0x0C, 0x04, 0x08}},
    {'-', {0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00}}, {'+', {0x00, 0x04, 0x04, 0x1F, 0x04, 0x04, 0x00}},
    {'(', {0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02}}, {')', {0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08}},
    {'[', {0x0E, 0x08, 0x08, 0x08, 0x08, 0x08, 0x0E}}, {']', {0x0E, 0x02, 0x02, 0x02, 0x02, 0x02, 0x0E}},
    {':', {0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00}}, {'/', {0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x00}},
    {'_', {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1F}}, {'=', {0x00, 0x00, 0x1F, 0x00, 0x1F, 0x00, 0x00}},
    {'%', {0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03}}, {'*', {0x00, 0x04, 0x15, 0x0E, 0x15, 0x04, 0x00}},
    {'<', {0x02, 0x04, 0x08, 0x10, 0x08, 0x04, 0x02}}, {'>', {0x08, 0x04, 0x02, 0x01, 0x02, 0x04, 0x08}},
    {'|', {0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04}}, {'!', {0x04, 0x04, 0x04, 0x04, 0x00, 0x00, 0x04}},
    {'?', {0x0E, 0x11, 0x01, 0x02, 0x04, 0x00, 0x04}}, {'#', {0x0A, 0x0A, 0x1F, 0x0A, 0x1F, 0x0A, 0x0A}},
    {'\'', {0x0C, 0x04, 0x08, 0x00, 0x00, 0x00, 0x00}}, {'"', {0x0A, 0x0A, 0x0A, 0x00, 0x00, 0x00, 0x00}},
    {'^', {0x04, 0x0A, 0x11, 0x00, 0x00, 0x00, 0x00}}, {'~', {0x00, 0x00, 0x08, 0x15, 0x02, 0x00, 0x00}},
    {'&', {0x0C, 0x12, 0x14, 0x08, 0x15, 0x12, 0x0D}}, {'@', {0x0E, 0x11, 0x01, 0x0D, 0x15, 0x15, 0x0E}},
    {'$', {0x04, 0x0F, 0x14, 0x0E, 0x05, 0x1E, 0x04}}, {';', {0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x04, 0x08}},
};

const Glyph& glyph(char c) {
  static const std::vector<const Glyph*> table = [] {
    std::vector<const Glyph*> t(128, nullptr);
    for (const Glyph& g : kGlyphs) t[(unsigned char)g.c] = &g;
    return t;
  }();
  const unsigned char u = (unsigned char)c;
  if (u < 128 && table[u]) return *table[u];
  return *table['?'];
}

}  // namespace

int text_width(std::string_view text, int scale) {
  return text.empty() ? 0 : (int)text.size() * 6 * scale - scale;
}

void draw_text(Image& img, int x, int y, std::string_view text, Rgb color, int scale) {
  for (char c : text) {
    const Glyph& g = glyph(c);
    for (int r = 0; r < 7; ++r)
      for (int col = 0; col < 5; ++col)
        if (g.rows[r] & (0x10 >> col))
          for (int dy = 0; dy < scale; ++dy)
            for (int dx = 0; dx < scale; ++dx) img.set(x + col * scale + dx, y + (r + g.shift) * scale + dy, color);
    x += 6 * scale;
  }
}

// ---- the image --------------------------------------------------------------------------------

Rgb colors::cycle(size_t i) {
  static constexpr Rgb kCycle[] = {blue, orange, green, red, purple, brown, pink, gray, olive, cyan};
  return kCycle[i % 10];
}

Image::Image(int w, int h, Rgb fill) : width(w), height(h), rgb((size_t)w * h * 3) {
  if (w <= 0 || h <= 0) throw std::invalid_argument("[plot] image size must be positive");
  for (size_t i = 0; i < rgb.size(); i += 3) {
    rgb[i] = fill.r;
    rgb[i + 1] = fill.g;
    rgb[i + 2] = fill.b;
  }
}

Rgb Image::pixel(int x, int y) const {
  const size_t i = ((size_t)y * width + x) * 3;
  return {rgb.at(i), rgb.at(i + 1), rgb.at(i + 2)};
}

void Image::set(int x, int y, Rgb c) {
  if (x < 0 || y < 0 || x >= width || y >= height) return;
  const size_t i = ((size_t)y * width + x) * 3;
  rgb[i] = c.r;
  rgb[i + 1] = c.g;
  rgb[i + 2] = c.b;
}

bool Image::contains(Rgb c) const {
  for (size_t i = 0; i < rgb.size(); i += 3)
    if (rgb[i] == c.r && rgb[i + 1] == c.g && rgb[i + 2] == c.b) return true;
  return false;
}

void write_png(const std::string& path, const Image& image) {
  const std::filesystem::path p(path);
  if (p.has_parent_path()) std::filesystem::create_directories(p.parent_path());
  const std::string tmp = path + ".tmp";
  if (!stbi_write_png(tmp.c_str(), image.width, image.height, 3, image.rgb.data(), image.width * 3)) {
    std::error_code ec;
    std::filesystem::remove(tmp, ec);
    throw std::runtime_error("[plot] " + path + ": cannot write the PNG (stbi_write_png failed on " + tmp + ")");
  }
  std::filesystem::rename(tmp, path);
}

// ---- drawing primitives -----------------------------------------------------------------------
namespace {

constexpr Rgb kAxis{0, 0, 0}, kGrid{225, 225, 225}, kText{30, 30, 30}, kLegendBorder{180, 180, 180};

struct Rect {
  int x0, y0, x1, y1;  // inclusive
  bool inside(int x, int y) const { return x >= x0 && x <= x1 && y >= y0 && y <= y1; }
};

void fill_rect(Image& img, int x0, int y0, int x1, int y1, Rgb c) {
  for (int y = std::min(y0, y1); y <= std::max(y0, y1); ++y)
    for (int x = std::min(x0, x1); x <= std::max(x0, x1); ++x) img.set(x, y, c);
}

// Bresenham from (x0, y0) to (x1, y1), each point stamped with a width×width square, clipped to
// `clip`. dash > 0 draws `dash` pixels on, `dash` off.
void draw_line(Image& img, int x0, int y0, int x1, int y1, Rgb c, int width, const Rect& clip, int dash = 0) {
  const int dx = std::abs(x1 - x0), dy = -std::abs(y1 - y0);
  const int sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1;
  int err = dx + dy;
  for (int n = 0;; ++n) {
    if (dash == 0 || (n / dash) % 2 == 0)
      for (int a = 0; a < width; ++a)
        for (int b = 0; b < width; ++b) {
          const int px = x0 + a - width / 2, py = y0 + b - width / 2;
          if (clip.inside(px, py)) img.set(px, py, c);
        }
    if (x0 == x1 && y0 == y1) break;
    const int e2 = 2 * err;
    if (e2 >= dy) {
      err += dy;
      x0 += sx;
    }
    if (e2 <= dx) {
      err += dx;
      y0 += sy;
    }
  }
}

// Ticks at "nice" values (1, 2 or 5 × 10^k apart) inside [lo, hi], about `target` of them.
std::vector<double> nice_ticks(double lo, double hi, int target) {
  const double raw = (hi - lo) / std::max(1, target);
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (m * mag >= raw) {
      step = m * mag;
      break;
    }
  std::vector<double> ticks;
  for (double k = std::ceil(lo / step - 1e-9); k * step <= hi + step * 1e-9 && ticks.size() < 50; k += 1) {
    double v = k * step;
    if (std::abs(v) < step * 1e-9) v = 0;  // no "-1.4e-17"
    ticks.push_back(v);
  }
  return ticks;
}

// Ticks of a log10 axis, given lo, hi in log10 units: the powers of ten, plus 2× and 5× when the
// range spans less than three decades. Returned in log10 units.
std::vector<double> log_ticks(double lo, double hi) {
  std::vector<double> ticks;
  const bool fine = hi - lo < 3;
  for (double k = std::floor(lo); k <= std::ceil(hi); k += 1)
    for (double m : fine ? std::vector<double>{1, 2, 5} : std::vector<double>{1}) {
      const double v = k + std::log10(m);
      if (v >= lo - 1e-9 && v <= hi + 1e-9) ticks.push_back(v);
    }
  if (ticks.size() < 2) return nice_ticks(lo, hi, 4);  // less than one tick: label log10 values as 10^x anyway
  return ticks;
}

std::string format_tick(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4g", v);
  return buf;
}

// A data → pixel mapping for one axis.
struct Axis {
  double lo = 0, hi = 1;  // data range (log10 units on a log axis)
  int p0 = 0, p1 = 1;     // pixel positions of lo and hi
  double to_pixel(double v) const { return p0 + (v - lo) / (hi - lo) * (p1 - p0); }
};

void widen(double& lo, double& hi) {
  if (!(hi > lo)) {
    const double pad = lo == 0 ? 1.0 : std::abs(lo) * 0.1;
    lo -= pad;
    hi += pad;
  }
}

struct LegendEntry {
  std::string name;
  Rgb color;
  bool dashed;
};

// The legend box goes into the plot corner where it covers the fewest drawn pixels (anything but
// the background and the grid), so it hides as little of the data as it can.
void draw_legend(Image& img, const Rect& plot, const std::vector<LegendEntry>& entries) {
  if (entries.empty()) return;
  const int scale = 2, row = 9 * scale + 4;
  int w = 0;
  for (const auto& e : entries) w = std::max(w, text_width(e.name, scale));
  w += 24 + 8 + 12;
  const int h = (int)entries.size() * row + 8;
  const int left = plot.x0 + 8, right = plot.x1 - w - 8, top = plot.y0 + 8, bottom = plot.y1 - h - 8;
  int x0 = right, y0 = top;
  long best = -1;
  for (auto [cx, cy] : {std::pair{right, top}, std::pair{left, top}, std::pair{right, bottom}, std::pair{left, bottom}}) {
    long covered = 0;
    for (int y = cy; y <= cy + h; ++y)
      for (int x = cx; x <= cx + w; ++x)
        if (x >= 0 && y >= 0 && x < img.width && y < img.height) {
          const Rgb p = img.pixel(x, y);
          covered += !(p == colors::white) && !(p == kGrid);
        }
    if (best < 0 || covered < best) best = covered, x0 = cx, y0 = cy;
  }
  fill_rect(img, x0, y0, x0 + w, y0 + h, colors::white);
  const Rect all{0, 0, img.width - 1, img.height - 1};
  draw_line(img, x0, y0, x0 + w, y0, kLegendBorder, 1, all);
  draw_line(img, x0, y0 + h, x0 + w, y0 + h, kLegendBorder, 1, all);
  draw_line(img, x0, y0, x0, y0 + h, kLegendBorder, 1, all);
  draw_line(img, x0 + w, y0, x0 + w, y0 + h, kLegendBorder, 1, all);
  for (size_t i = 0; i < entries.size(); ++i) {
    const int y = y0 + 6 + (int)i * row;
    draw_line(img, x0 + 6, y + 7, x0 + 30, y + 7, entries[i].color, 2, all, entries[i].dashed ? 4 : 0);
    draw_text(img, x0 + 36, y, entries[i].name, kText, scale);
  }
}

// Frame, title, axis labels; returns the plot rectangle.
Rect draw_frame(Image& img, const std::string& title, const std::string& x_label, const std::string& y_label) {
  const Rect plot{90, 50, img.width - 24, img.height - 64};
  if (plot.x1 - plot.x0 < 50 || plot.y1 - plot.y0 < 50)
    throw std::invalid_argument("[plot] image " + std::to_string(img.width) + "x" + std::to_string(img.height) +
                                " is too small (need at least 170x170)");
  draw_text(img, (img.width - text_width(title, 2)) / 2, 14, title, kText, 2);
  draw_text(img, (plot.x0 + plot.x1 - text_width(x_label, 2)) / 2, img.height - 24, x_label, kText, 2);
  draw_text(img, 8, plot.y0 - 22, y_label, kText, 2);
  return plot;
}

void draw_axes(Image& img, const Rect& plot) {
  const Rect all{0, 0, img.width - 1, img.height - 1};
  draw_line(img, plot.x0, plot.y1, plot.x1, plot.y1, kAxis, 1, all);
  draw_line(img, plot.x0, plot.y0, plot.x0, plot.y1, kAxis, 1, all);
}

// Horizontal grid lines, tick marks and numbers of the y axis. On a log axis the ticks are log10
// values and print as 10^v.
void draw_y_ticks(Image& img, const Rect& plot, const Axis& y, const std::vector<double>& ticks, bool log) {
  const Rect all{0, 0, img.width - 1, img.height - 1};
  for (double t : ticks) {
    const int py = (int)std::lround(y.to_pixel(t));
    draw_line(img, plot.x0 + 1, py, plot.x1, py, kGrid, 1, plot);
    draw_line(img, plot.x0 - 5, py, plot.x0, py, kAxis, 1, all);
    const std::string s = format_tick(log ? std::pow(10.0, t) : t);
    draw_text(img, plot.x0 - 9 - text_width(s, 2), py - 7, s, kText, 2);
  }
}

// The dashed line; with_label also writes its label above its right end.
void draw_reference(Image& img, const Rect& plot, const Axis& y, const ReferenceLine& ref, double value,
                    bool with_label) {
  const int py = (int)std::lround(y.to_pixel(value));
  draw_line(img, plot.x0 + 1, py, plot.x1, py, ref.color, 2, plot, 8);
  if (!with_label) return;
  const int tw = text_width(ref.label, 2);
  const int ty = py - 20 >= plot.y0 ? py - 20 : py + 6;
  draw_text(img, plot.x1 - tw - 6, ty, ref.label, ref.color, 2);
}

}  // namespace

// ---- line plot --------------------------------------------------------------------------------

Image render_line_plot(const std::vector<Series>& series, const LinePlotOptions& opt) {
  for (const Series& s : series)
    if (s.xs.size() != s.ys.size())
      throw std::invalid_argument("[plot] series '" + s.name + "' has " + std::to_string(s.xs.size()) + " x and " +
                                  std::to_string(s.ys.size()) + " y values");
  auto ty = [&](double v) { return opt.log_y ? (v > 0 ? std::log10(v) : NAN) : v; };
  auto usable = [&](double x, double y) { return std::isfinite(x) && std::isfinite(ty(y)); };

  // Data ranges over every usable point (and the reference line).
  double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
  for (const Series& s : series)
    for (size_t i = 0; i < s.xs.size(); ++i)
      if (usable(s.xs[i], s.ys[i])) {
        xlo = std::min(xlo, s.xs[i]);
        xhi = std::max(xhi, s.xs[i]);
        ylo = std::min(ylo, ty(s.ys[i]));
        yhi = std::max(yhi, ty(s.ys[i]));
      }
  double ref_y = NAN;
  if (opt.reference) {
    ref_y = ty(opt.reference->y);
    if (std::isfinite(ref_y)) {
      ylo = std::min(ylo, ref_y);
      yhi = std::max(yhi, ref_y);
    }
  }
  if (!std::isfinite(xlo)) xlo = 0, xhi = 1;
  if (!std::isfinite(ylo)) ylo = 0, yhi = 1;
  widen(xlo, xhi);
  widen(ylo, yhi);
  const double pad = 0.05 * (yhi - ylo);
  ylo -= pad;
  yhi += pad;

  Image img(opt.width, opt.height);
  const Rect plot = draw_frame(img, opt.title, opt.x_label, opt.log_y ? (opt.y_label.empty() ? "log scale" : opt.y_label + " (log scale)") : opt.y_label);
  const Axis x{xlo, xhi, plot.x0, plot.x1}, y{ylo, yhi, plot.y1, plot.y0};

  // Grid and ticks.
  const Rect all{0, 0, img.width - 1, img.height - 1};
  for (double t : nice_ticks(xlo, xhi, 6)) {
    const int px = (int)std::lround(x.to_pixel(t));
    draw_line(img, px, plot.y0, px, plot.y1 - 1, kGrid, 1, plot);
    draw_line(img, px, plot.y1, px, plot.y1 + 5, kAxis, 1, all);
    const std::string s = format_tick(t);
    draw_text(img, px - text_width(s, 2) / 2, plot.y1 + 10, s, kText, 2);
  }
  draw_y_ticks(img, plot, y, opt.log_y ? log_ticks(ylo, yhi) : nice_ticks(ylo, yhi, 6), opt.log_y);
  draw_axes(img, plot);

  // The reference line under the data, then each series as a polyline broken at unusable points.
  if (opt.reference && std::isfinite(ref_y)) draw_reference(img, plot, y, *opt.reference, ref_y, true);
  for (const Series& s : series) {
    bool have_prev = false;
    int px = 0, py = 0;
    for (size_t i = 0; i < s.xs.size(); ++i) {
      if (!usable(s.xs[i], s.ys[i])) {
        have_prev = false;
        continue;
      }
      const int cx = (int)std::lround(x.to_pixel(s.xs[i])), cy = (int)std::lround(y.to_pixel(ty(s.ys[i])));
      draw_line(img, have_prev ? px : cx, have_prev ? py : cy, cx, cy, s.color, 2, plot);
      px = cx, py = cy, have_prev = true;
    }
  }

  std::vector<LegendEntry> legend;
  for (const Series& s : series)
    if (!s.name.empty()) legend.push_back({s.name, s.color, false});
  if (opt.reference && !opt.reference->label.empty())
    legend.push_back({opt.reference->label, opt.reference->color, true});
  draw_legend(img, plot, legend);
  return img;
}

void write_line_plot_png(const std::string& path, const std::vector<Series>& series, const LinePlotOptions& opt) {
  write_png(path, render_line_plot(series, opt));
}

void write_line_plot_png(const std::string& path, const std::vector<Series>& series, const std::string& title,
                         const std::optional<ReferenceLine>& reference, bool log_y) {
  LinePlotOptions opt;
  opt.title = title;
  opt.reference = reference;
  opt.log_y = log_y;
  write_line_plot_png(path, series, opt);
}

// ---- bar chart --------------------------------------------------------------------------------

Image render_bar_chart(const std::vector<double>& values, const BarChartOptions& opt) {
  if (values.empty()) throw std::invalid_argument("[plot] bar chart '" + opt.title + "' has no values");
  if (!opt.labels.empty() && opt.labels.size() != values.size())
    throw std::invalid_argument("[plot] bar chart '" + opt.title + "': " + std::to_string(opt.labels.size()) +
                                " labels for " + std::to_string(values.size()) + " bars");
  double ylo = 0, yhi = 0;
  for (double v : values)
    if (std::isfinite(v)) ylo = std::min(ylo, v), yhi = std::max(yhi, v);
  if (opt.reference && std::isfinite(opt.reference->y))
    ylo = std::min(ylo, opt.reference->y), yhi = std::max(yhi, opt.reference->y);
  widen(ylo, yhi);
  yhi += 0.05 * (yhi - ylo);

  Image img(opt.width, opt.height);
  const Rect plot = draw_frame(img, opt.title, opt.x_label, opt.y_label);
  const Axis y{ylo, yhi, plot.y1, plot.y0};
  draw_y_ticks(img, plot, y, nice_ticks(ylo, yhi, 6), false);

  const int n = (int)values.size();
  const double slot = (double)(plot.x1 - plot.x0) / n;
  int widest = 0;
  std::vector<std::string> labels = opt.labels;
  if (labels.empty())
    for (int i = 0; i < n; ++i) labels.push_back(std::to_string(i));
  for (const auto& l : labels) widest = std::max(widest, text_width(l, 2));
  const int every = std::max(1, (int)std::ceil((widest + 8) / slot));  // label every k-th bar so they fit
  const int zero = (int)std::lround(y.to_pixel(0.0));
  const Rect all{0, 0, img.width - 1, img.height - 1};
  for (int i = 0; i < n; ++i) {
    const int bx0 = plot.x0 + (int)std::lround(i * slot + slot * 0.1);
    const int bx1 = plot.x0 + (int)std::lround((i + 1) * slot - slot * 0.1) - 1;
    if (std::isfinite(values[i])) fill_rect(img, bx0, zero, std::max(bx0, bx1), (int)std::lround(y.to_pixel(values[i])), opt.color);
    if (i % every == 0) {
      const int cx = plot.x0 + (int)std::lround((i + 0.5) * slot);
      draw_line(img, cx, plot.y1, cx, plot.y1 + 5, kAxis, 1, all);
      draw_text(img, cx - text_width(labels[i], 2) / 2, plot.y1 + 10, labels[i], kText, 2);
    }
  }
  draw_axes(img, plot);
  if (opt.reference && std::isfinite(opt.reference->y)) {
    draw_reference(img, plot, y, *opt.reference, opt.reference->y, false);  // named in the legend
    if (!opt.reference->label.empty()) draw_legend(img, plot, {{opt.reference->label, opt.reference->color, true}});
  }
  return img;
}

void write_bar_chart_png(const std::string& path, const std::vector<double>& values, const BarChartOptions& opt) {
  write_png(path, render_bar_chart(values, opt));
}

std::vector<double> histogram(const std::vector<double>& xs, int bins, double lo, double hi) {
  if (bins <= 0 || !(hi > lo)) throw std::invalid_argument("[plot] histogram needs bins > 0 and hi > lo");
  std::vector<double> counts(bins, 0.0);
  for (double v : xs) {
    if (std::isnan(v)) continue;
    int b = (int)std::floor((v - lo) / (hi - lo) * bins);
    counts[std::clamp(b, 0, bins - 1)] += 1;
  }
  return counts;
}

std::vector<std::string> bin_labels(int bins, double lo, double hi) {
  std::vector<std::string> out;
  for (int i = 0; i < bins; ++i) out.push_back(format_tick(lo + (hi - lo) * i / bins));
  return out;
}

// ---- heat map ---------------------------------------------------------------------------------

Rgb heat_color(double t) {
  static const double anchors[5][3] = {{0, 0, 4}, {60, 15, 110}, {185, 50, 80}, {245, 140, 30}, {252, 250, 165}};
  t = std::clamp(std::isnan(t) ? 0.0 : t, 0.0, 1.0) * 4.0;
  const int i = std::min(3, (int)t);
  const double f = t - i;
  auto mix = [&](int c) { return (uint8_t)std::lround(anchors[i][c] * (1 - f) + anchors[i + 1][c] * f); };
  return {mix(0), mix(1), mix(2)};
}

Image render_heatmap(const std::vector<double>& values, int rows, int cols, const HeatmapOptions& opt) {
  if (rows <= 0 || cols <= 0 || values.size() != (size_t)rows * (size_t)cols)
    throw std::invalid_argument("[plot] heat map '" + opt.title + "': " + std::to_string(values.size()) +
                                " values for " + std::to_string(rows) + " x " + std::to_string(cols) + " cells");
  double lo = opt.lo, hi = opt.hi;
  if (std::isnan(lo) || std::isnan(hi)) {
    double mn = INFINITY, mx = -INFINITY;
    for (double v : values)
      if (std::isfinite(v)) mn = std::min(mn, v), mx = std::max(mx, v);
    if (!std::isfinite(mn)) mn = 0, mx = 1;
    if (std::isnan(lo)) lo = mn;
    if (std::isnan(hi)) hi = mx;
  }
  widen(lo, hi);
  const int cell = opt.cell > 0 ? opt.cell : std::max(1, 480 / std::max(rows, cols));
  const int left = 90, top = 66, bar_w = 20, bar_gap = 24, right = 110, bottom = 64;
  const int pw = cols * cell, ph = rows * cell;
  const int width = std::max(left + pw + bar_gap + bar_w + right, 20 + text_width(opt.title, 2));
  Image img(width, top + std::max(ph, 120) + bottom);
  const Rect plot{left, top, left + pw - 1, top + ph - 1};
  draw_text(img, (img.width - text_width(opt.title, 2)) / 2, 14, opt.title, kText, 2);
  draw_text(img, (plot.x0 + plot.x1 - text_width(opt.x_label, 2)) / 2, img.height - 24, opt.x_label, kText, 2);
  draw_text(img, 8, plot.y0 - 22, opt.y_label, kText, 2);
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c) {
      const double v = values[(size_t)r * cols + c];
      const Rgb color = std::isnan(v) ? opt.nan_color : heat_color((v - lo) / (hi - lo));
      fill_rect(img, plot.x0 + c * cell, plot.y0 + r * cell, plot.x0 + (c + 1) * cell - 1, plot.y0 + (r + 1) * cell - 1,
                color);
    }
  // Index ticks on both axes (cell centres), nice numbers of rows / columns.
  const Rect all{0, 0, img.width - 1, img.height - 1};
  for (double t : nice_ticks(0, cols - 1, 6)) {
    if (t < 0 || t > cols - 1 || t != std::floor(t)) continue;
    const int px = plot.x0 + (int)t * cell + cell / 2;
    draw_line(img, px, plot.y1 + 1, px, plot.y1 + 5, kAxis, 1, all);
    const std::string s = format_tick(t);
    draw_text(img, px - text_width(s, 2) / 2, plot.y1 + 10, s, kText, 2);
  }
  for (double t : nice_ticks(0, rows - 1, 6)) {
    if (t < 0 || t > rows - 1 || t != std::floor(t)) continue;
    const int py = plot.y0 + (int)t * cell + cell / 2;
    draw_line(img, plot.x0 - 5, py, plot.x0 - 1, py, kAxis, 1, all);
    const std::string s = format_tick(t);
    draw_text(img, plot.x0 - 9 - text_width(s, 2), py - 7, s, kText, 2);
  }
  // The colour bar: hi at the top, lo at the bottom.
  const int bx0 = plot.x1 + 1 + bar_gap, bx1 = bx0 + bar_w - 1, by0 = plot.y0, by1 = plot.y0 + std::max(ph, 120) - 1;
  for (int y = by0; y <= by1; ++y) fill_rect(img, bx0, y, bx1, y, heat_color((double)(by1 - y) / (by1 - by0)));
  draw_text(img, bx1 + 6, by0, format_tick(hi), kText, 2);
  draw_text(img, bx1 + 6, by1 - 14, format_tick(lo), kText, 2);
  return img;
}

void write_heatmap_png(const std::string& path, const std::vector<double>& values, int rows, int cols,
                       const HeatmapOptions& opt) {
  write_png(path, render_heatmap(values, rows, cols, opt));
}

}  // namespace sg
