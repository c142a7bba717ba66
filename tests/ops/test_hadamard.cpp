// tests/ops/test_hadamard.cpp — the Walsh–Hadamard rotation (ops/cpu/hadamard.h, ops/nn.h hadamard_rotate),
// the V3.2 indexer's rotate_activation: y = x · H_n / √n, H_n in Sylvester order.
//   * the kernel against an explicit matrix built by the recursion H_2n = [[H, H], [H, −H]] (a naive
//     matrix product), n = 1 ... 256, f32 and f64;
//   * orthonormality: norms preserved, applying it twice is the identity (H·H = n·I), its rows on the
//     identity matrix are H_n / √n (symmetric);
//   * the autograd op: values = the kernel, float64 gradcheck, strided input, errors naming the op and shape
//     (n not a power of two). The op's registry cases (ops/registry_nn.cpp) compare it with the closed form
//     (−1)^popcount(i & j) as well.
#include <doctest/doctest.h>

#include "tests/test_util.h"

#include <cmath>
#include <string>
#include <vector>

#include "autograd/gradcheck.h"
#include "autograd/rng.h"
#include "ops/cpu/hadamard.h"
#include "ops/ops.h"

using namespace sg;
using sg::test::error_of;

namespace {


std::vector<double> random_values(Rng& rng, int64_t count) {
  Tensor t = Tensor::randn({count}, rng, 1.0, DType::f64);
  return t.to_f64_vector();
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("hadamard: the fast transform equals x · H_n / √n with H_n from the Sylvester recursion") {
  Rng rng(1);
  for (int64_t n : {1, 2, 4, 8, 16, 64, 128, 256}) {
    CAPTURE(n);
    const int64_t rows = 3;
    std::vector<double> h = test::sylvester_hadamard(n), x = random_values(rng, rows * n), want(rows * n, 0.0);
    for (int64_t r = 0; r < rows; r++)
      for (int64_t j = 0; j < n; j++) {
        for (int64_t i = 0; i < n; i++) want[r * n + j] += x[r * n + i] * h[i * n + j];
        want[r * n + j] /= std::sqrt((double)n);
      }
    std::vector<double> y64(rows * n);
    cpu::hadamard_rotate_f64(x.data(), rows, n, y64.data());
    std::vector<float> xf(x.begin(), x.end()), yf(rows * n);
    cpu::hadamard_rotate_f32(xf.data(), rows, n, yf.data());
    double e64 = 0, e32 = 0;
    for (int64_t i = 0; i < rows * n; i++) {
      e64 = std::max(e64, std::abs(y64[i] - want[i]));
      e32 = std::max(e32, std::abs((double)yf[i] - want[i]));
    }
    CHECK(e64 <= 1e-13);
    CHECK(e32 <= 1e-5);
    // in place (y = x) gives the same
    cpu::hadamard_rotate_f32(xf.data(), rows, n, xf.data());
    CHECK(xf == yf);
  }
  // n = 2 by hand: (a, b) -> ((a + b), (a − b)) / √2
  const double x2[2] = {3.0, 1.0};
  double y2[2];
  cpu::hadamard_rotate_f64(x2, 1, 2, y2);
  CHECK(y2[0] == doctest::Approx(4.0 / std::sqrt(2.0)).epsilon(1e-15));
  CHECK(y2[1] == doctest::Approx(2.0 / std::sqrt(2.0)).epsilon(1e-15));
}

TEST_CASE("hadamard: orthonormal — norms kept, twice is the identity, symmetric") {
  Rng rng(2);
  for (int64_t n : {4, 32, 128}) {
    CAPTURE(n);
    std::vector<double> x = random_values(rng, 5 * n), y(5 * n), z(5 * n);
    cpu::hadamard_rotate_f64(x.data(), 5, n, y.data());
    cpu::hadamard_rotate_f64(y.data(), 5, n, z.data());
    for (int64_t r = 0; r < 5; r++) {
      double nx = 0, ny = 0;
      for (int64_t i = 0; i < n; i++) {
        nx += x[r * n + i] * x[r * n + i];
        ny += y[r * n + i] * y[r * n + i];
        CHECK(std::abs(z[r * n + i] - x[r * n + i]) <= 1e-12);  // (H/√n)(H/√n) = I
      }
      CHECK(std::abs(ny - nx) <= 1e-12 * nx);
    }
    // The rotation of the identity matrix is H_n / √n itself, and it is symmetric.
    std::vector<double> eye(n * n, 0.0), m(n * n);
    for (int64_t i = 0; i < n; i++) eye[i * n + i] = 1.0;
    cpu::hadamard_rotate_f64(eye.data(), n, n, m.data());
    std::vector<double> h = test::sylvester_hadamard(n);
    for (int64_t i = 0; i < n; i++)
      for (int64_t j = 0; j < n; j++) {
        CHECK(std::abs(m[i * n + j] - h[i * n + j] / std::sqrt((double)n)) <= 1e-15);
        CHECK(m[i * n + j] == m[j * n + i]);
      }
  }
}

TEST_CASE("hadamard_rotate (op): values, float64 gradcheck, strided input, errors") {
  Rng rng(3);
  Tensor x = Tensor::randn({2, 3, 16}, rng, 1.0, DType::f64).requires_grad_();
  Tensor y = hadamard_rotate(x);
  REQUIRE(y.shape() == x.shape());
  std::vector<double> xv = x.to_f64_vector(), want(xv.size());
  cpu::hadamard_rotate_f64(xv.data(), 6, 16, want.data());
  CHECK(y.to_f64_vector() == want);
  GradcheckResult g = gradcheck([](const std::vector<Tensor>& in) { return hadamard_rotate(in[0]); }, {x});
  CHECK_MESSAGE(g.ok, g.message);
  // backward is the same rotation: d/dx Σ c ⊙ y = c · H / √n
  Tensor c = Tensor::randn({2, 3, 16}, rng, 1.0, DType::f64);
  x.zero_grad();  // (gradcheck ran backward through x)
  sum(mul(hadamard_rotate(x), c)).backward();
  std::vector<double> cv = c.to_f64_vector(), dx(cv.size());
  cpu::hadamard_rotate_f64(cv.data(), 6, 16, dx.data());
  std::vector<double> got = x.grad().to_f64_vector();
  for (size_t i = 0; i < dx.size(); i++) CHECK(std::abs(got[i] - dx[i]) <= 1e-14);
  // a transposed (strided) input: the rotation runs over its logical last dim
  Tensor base = Tensor::randn({8, 5}, rng);
  Tensor yt = hadamard_rotate(transpose(base, 0, 1));  // [5, 8]
  Tensor yc = hadamard_rotate(contiguous(transpose(base, 0, 1)));
  CHECK(yt.to_f32_vector() == yc.to_f32_vector());
  // n not a power of two: the op and the shape are named
  std::string e = error_of([&] { hadamard_rotate(Tensor::zeros({2, 6})); });
  CHECK(contains(e, "[hadamard_rotate]"));
  CHECK(contains(e, "(2, 6)"));
  CHECK(contains(e, "n = 6 must be a power of two"));
  e = error_of([&] {
    float v[6] = {};
    cpu::hadamard_rotate_f32(v, 1, 6, v);
  });
  CHECK(contains(e, "hadamard_rotate_f32: n = 6"));
  CHECK(contains(error_of([&] { hadamard_rotate(Tensor::zeros({4}, DType::i64)); }), "[hadamard_rotate]"));
}
