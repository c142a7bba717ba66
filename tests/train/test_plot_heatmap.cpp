// tests/train/test_plot_heatmap.cpp — train/plot's heat maps: the viridis colour map at its anchors,
// cells coloured by value (counted pixel by pixel), NaN cells, an explicit colour range, the colour
// bar, hstack, the PNG on disk, and the errors.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "tests/data/temp_dir.h"
#include "tests/test_util.h"
#include "train/plot.h"

using namespace sg;
using sg::data::testing::TempDir;
using sg::test::error_of;

namespace {
// Pixels of exactly colour c.
long count(const Image& img, Rgb c) {
  long n = 0;
  for (int y = 0; y < img.height; ++y)
    for (int x = 0; x < img.width; ++x) n += img.pixel(x, y) == c;
  return n;
}
}  // namespace

TEST_CASE("plot: viridis at its anchors, clamped outside [0, 1]") {
  CHECK(colors::viridis(0.0) == Rgb{68, 1, 84});
  CHECK(colors::viridis(0.25) == Rgb{59, 82, 139});
  CHECK(colors::viridis(0.5) == Rgb{33, 145, 140});
  CHECK(colors::viridis(1.0) == Rgb{253, 231, 37});
  CHECK(colors::viridis(-3.0) == colors::viridis(0.0));
  CHECK(colors::viridis(7.0) == colors::viridis(1.0));
  CHECK(colors::viridis(0.125) == Rgb{64, 42, 112});  // halfway between the first two anchors (rounded)
}

TEST_CASE("plot: heat map cells, NaN cells and the colour range") {
  // 2 × 3 cells of 10 px; the range defaults to the finite min and max (0 and 1).
  const std::vector<double> v = {0, 0.5, 1, 1, NAN, 0.25};
  HeatmapOptions opt;
  opt.title = "t";
  opt.cell = 10;
  opt.colorbar = false;
  Image img = render_heatmap(v, 2, 3, opt);
  CHECK(count(img, colors::viridis(0.0)) == 100);
  CHECK(count(img, colors::viridis(0.25)) == 100);
  CHECK(count(img, colors::viridis(0.5)) == 100);
  CHECK(count(img, colors::viridis(1.0)) == 200);
  CHECK(count(img, opt.missing) == 100);

  // An explicit range [0, 2]: 1 is now the middle colour, 0.5 a quarter.
  opt.lo = 0.0;
  opt.hi = 2.0;
  Image ranged = render_heatmap(v, 2, 3, opt);
  CHECK(count(ranged, colors::viridis(0.5)) == 200);
  CHECK(count(ranged, colors::viridis(0.25)) == 100);
  CHECK(count(ranged, colors::viridis(1.0)) == 0);

  // The colour bar adds a column of every colour of the scale, top (hi) to bottom (lo), 16 px wide.
  opt.colorbar = true;
  Image bar = render_heatmap(v, 2, 3, opt);
  CHECK(bar.width > ranged.width);
  CHECK(count(bar, colors::viridis(1.0)) >= 16);  // the top row of the bar
  CHECK(count(bar, colors::viridis(0.0)) >= 100 + 16);
  CHECK(bar.height == ranged.height);
}

TEST_CASE("plot: hstack and write_heatmap_png") {
  Image a(3, 2, colors::red), b(2, 4, colors::blue);
  Image s = hstack({a, b}, 1);
  CHECK(s.width == 6);
  CHECK(s.height == 4);
  CHECK(s.pixel(0, 0) == colors::red);
  CHECK(s.pixel(2, 1) == colors::red);
  CHECK(s.pixel(0, 3) == colors::white);  // under the shorter image
  CHECK(s.pixel(3, 0) == colors::white);  // the gap
  CHECK(s.pixel(4, 3) == colors::blue);
  CHECK(count(s, colors::red) == 6);
  CHECK(count(s, colors::blue) == 8);

  TempDir tmp("heatmap");
  const std::string path = tmp.file("maps/h.png");
  write_heatmap_png(path, {0, 1, 2, 3}, 2, 2, HeatmapOptions{});
  std::ifstream in(path, std::ios::binary);
  std::string magic(8, '\0');
  in.read(magic.data(), 8);
  CHECK(magic == std::string("\x89PNG\r\n\x1a\n", 8));
  CHECK_FALSE(std::filesystem::exists(path + ".tmp"));
}

TEST_CASE("plot: heat map errors name the map and the sizes") {
  HeatmapOptions opt;
  opt.title = "probs";
  CHECK(error_of([&] { render_heatmap({1, 2, 3}, 2, 2, opt); }) == "[plot] heat map 'probs': 3 values for 2 x 2 cells");
  CHECK(error_of([&] { render_heatmap({}, 0, 2, opt); }).find("[plot] heat map 'probs': rows, cols and cell must be positive") == 0);
  CHECK(error_of([] { hstack({}); }) == "[plot] hstack of no images");
}
