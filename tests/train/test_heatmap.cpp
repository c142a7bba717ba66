// tests/train/test_heatmap.cpp — train/plot's heat map: the colour map's anchors, each cell drawn in the
// colour of its value on the [lo, hi] scale (NaN cells in nan_color), the automatic range, errors, the file.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "train/plot.h"

using namespace sg;

namespace {
// The centre pixel of cell (r, c) with the layout of render_heatmap: the cells start at (90, 66).
Rgb cell_pixel(const Image& img, int r, int c, int cell) { return img.pixel(90 + c * cell + cell / 2, 66 + r * cell + cell / 2); }
}  // namespace

TEST_CASE("plot: heat_color runs through its anchors, clamped") {
  CHECK(heat_color(0.0) == Rgb{0, 0, 4});
  CHECK(heat_color(0.5) == Rgb{185, 50, 80});
  CHECK(heat_color(1.0) == Rgb{252, 250, 165});
  CHECK(heat_color(-3.0) == heat_color(0.0));
  CHECK(heat_color(7.0) == heat_color(1.0));
  CHECK(heat_color(0.125) == Rgb{30, 8, 57});  // halfway between the first two anchors (0,0,4) and (60,15,110)
  // Brighter with t: the sum of the channels grows.
  int last = -1;
  for (int i = 0; i <= 20; i++) {
    Rgb c = heat_color(i / 20.0);
    int sum = c.r + c.g + c.b;
    CHECK(sum > last);
    last = sum;
  }
}

TEST_CASE("plot: a heat map draws every cell in the colour of its value") {
  // 2 x 3, values 0 .. 4 and one NaN; explicit range [0, 4] so value v has colour heat_color(v / 4).
  std::vector<double> v{0, 1, 2, 3, 4, NAN};
  HeatmapOptions opt;
  opt.title = "attention";
  opt.x_label = "key";
  opt.y_label = "query";
  opt.lo = 0;
  opt.hi = 4;
  opt.cell = 12;
  opt.nan_color = Rgb{200, 201, 202};
  Image img = render_heatmap(v, 2, 3, opt);
  for (int r = 0; r < 2; r++)
    for (int c = 0; c < 3; c++) {
      CAPTURE(r);
      CAPTURE(c);
      double x = v[r * 3 + c];
      CHECK(cell_pixel(img, r, c, 12) == (std::isnan(x) ? opt.nan_color : heat_color(x / 4.0)));
    }
  // Automatic range: the finite min / max (0 and 4 here) give the same picture.
  HeatmapOptions automatic = opt;
  automatic.lo = automatic.hi = NAN;
  CHECK(render_heatmap(v, 2, 3, automatic).rgb == img.rgb);
  // Values outside [lo, hi] are clamped to the end colours.
  opt.hi = 2;
  Image clamped = render_heatmap(v, 2, 3, opt);
  CHECK(cell_pixel(clamped, 1, 1, 12) == heat_color(1.0));
  // The default cell size fits the larger side into ~480 px.
  HeatmapOptions def;
  Image big = render_heatmap(std::vector<double>(64 * 32, 0.5), 64, 32, def);
  CHECK(big.height >= 66 + 64 * 7);
  CHECK(cell_pixel(big, 63, 31, 480 / 64) == heat_color(0.5));  // constant values: the range is widened around them
  CHECK_THROWS_WITH(render_heatmap(v, 4, 2, opt), doctest::Contains("6 values for 4 x 2 cells"));
}

TEST_CASE("plot: write_heatmap_png writes a PNG") {
  std::filesystem::path dir = std::filesystem::temp_directory_path() / "seekgrad_test_heatmap";
  std::filesystem::create_directories(dir);
  std::string path = (dir / "map.png").string();
  std::filesystem::remove(path);
  write_heatmap_png(path, {0.0, 0.5, 1.0, NAN}, 2, 2, HeatmapOptions{});
  REQUIRE(std::filesystem::exists(path));
  CHECK(std::filesystem::file_size(path) > 100);
  std::filesystem::remove_all(dir);
}
