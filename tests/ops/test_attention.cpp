// tests/ops/test_attention.cpp — the fused attention op (ops/attention.h) against its composite twin
// softmax(Q Kᵀ · scale + causal mask) V built from matmul / masked_fill / softmax with the kv heads
// expanded to the query heads — values AND gradients, f64 and f32, for MHA / GQA / MQA, prefill,
// decode (S = 1 with T keys), chunks at start_pos > 0, sizes that are not multiples of the kernel's
// blocks; both kernel versions (v1_naive, v2_flash) and their agreement; strided inputs; errors.
// Packed sequences (segment_ids): against the twin with an explicit additive mask (values, gradients),
// one segment == the plain op bit for bit, two packed sequences == each alone, float64 gradcheck, errors.
//
// (ops/registry_attention.cpp adds a plain-loop reference and a finite-difference gradcheck.)
#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "autograd/gradcheck.h"
#include "autograd/node.h"
#include "ops/attention.h"
#include "ops/cpu/attention.h"
#include "ops/cpu/runtime.h"
#include "ops/ops.h"

using namespace sg;

namespace {

struct Config {
  const char* name;
  int64_t B, H, Hkv, S, T, D, Dv;
  bool causal = true;
  std::optional<int64_t> start_pos = std::nullopt;
};

// The composite twin: kv heads expanded ([B, Hkv, T, D] -> [B, Hkv, group, T, D] -> [B, H, T, D]),
// scores = Q Kᵀ · scale, masked_fill(−∞) above each row's horizon, softmax, times V.
Tensor attention_twin(const Tensor& q, const Tensor& k, const Tensor& v, double scale, bool causal,
                      std::optional<int64_t> start_pos) {
  int64_t B = q.size(0), H = q.size(1), S = q.size(2), Hkv = k.size(1), T = k.size(2);
  int64_t group = H / Hkv;
  auto repeat_kv = [&](const Tensor& x) {
    return reshape(expand(unsqueeze(x, 2), {B, Hkv, group, T, x.size(3)}), {B, H, T, x.size(3)});
  };
  Tensor scores = mul(matmul(q, transpose(repeat_kv(k), -2, -1)), scale);  // [B, H, S, T]
  if (causal) {
    int64_t sp = start_pos.value_or(T - S);
    Tensor mask = Tensor::zeros({S, T}, DType::i64);
    for (int64_t s = 0; s < S; s++)
      for (int64_t t = sp + s + 1; t < T; t++) mask.set_at({s, t}, 1);
    scores = masked_fill(scores, mask, -INFINITY);
  }
  return matmul(softmax(scores, -1), repeat_kv(v));
}

std::vector<Tensor> make_inputs(const Config& c, DType dtype, uint64_t seed) {
  Rng rng(seed);
  std::vector<Tensor> in = {Tensor::randn({c.B, c.H, c.S, c.D}, rng, 1.0, dtype),
                            Tensor::randn({c.B, c.Hkv, c.T, c.D}, rng, 1.0, dtype),
                            Tensor::randn({c.B, c.Hkv, c.T, c.Dv}, rng, 1.0, dtype)};
  for (Tensor& t : in) t.requires_grad_();
  return in;
}

std::vector<Tensor> copies(const std::vector<Tensor>& in) {
  std::vector<Tensor> out;
  for (const Tensor& t : in) out.push_back(t.clone_data().requires_grad_());
  return out;
}

// max_i (|got_i − want_i| − rtol·|want_i|): the test passes when this is <= atol (NaN fails).
double max_error(const Tensor& got, const Tensor& want, double rtol) {
  REQUIRE(got.shape() == want.shape());
  std::vector<double> g = got.to_f64_vector(), w = want.to_f64_vector();
  double worst = 0;
  for (size_t i = 0; i < g.size(); i++) {
    double e = std::abs(g[i] - w[i]) - rtol * std::abs(w[i]);
    if (std::isnan(e)) return INFINITY;
    worst = std::max(worst, e);
  }
  return worst;
}

// fused vs twin on copies of the same inputs, one upstream gradient: output and dq, dk, dv.
void check_against_twin(const Config& c, DType dtype, double tol) {
  INFO("config " << std::string(c.name) << " dtype " << std::string(dtype_name(dtype)) << (naive_kernels() ? " naive" : " flash"));
  std::vector<Tensor> in = make_inputs(c, dtype, 11);
  std::vector<Tensor> a = copies(in), b = copies(in);
  double scale = 1.0 / std::sqrt((double)c.D);
  Tensor ya = scaled_dot_product_attention(a[0], a[1], a[2], scale, c.causal, c.start_pos);
  Tensor yb = attention_twin(b[0], b[1], b[2], scale, c.causal, c.start_pos);
  CHECK(ya.shape() == Shape{c.B, c.H, c.S, c.Dv});
  CHECK(max_error(ya, yb, tol) <= tol);
  Rng rng(5);
  Tensor dy = Tensor::randn(ya.shape(), rng, 1.0, dtype);
  ya.backward(dy);
  yb.backward(dy);
  const char* names[] = {"dq", "dk", "dv"};
  for (int i = 0; i < 3; i++) {
    INFO(names[i]);
    REQUIRE(a[i].grad().defined());
    CHECK(a[i].grad().shape() == in[i].shape());
    CHECK(max_error(a[i].grad(), b[i].grad(), tol) <= tol);
  }
}

const std::vector<Config>& configs() {
  // sizes around the kernel's blocks: BQ query rows × BK keys (ops/cpu/attention.h)
  const int64_t BQ = cpu::kAttnBlockQ, BK = cpu::kAttnBlockK;
  static const std::vector<Config> c = {
      //  name                          B  H Hkv  S          T          D  Dv
      {"mha prefill", 2, 2, 2, 5, 5, 4, 4},
      {"gqa prefill", 1, 4, 2, 7, 7, 3, 5},
      {"mqa prefill", 2, 3, 1, 6, 6, 4, 4},
      {"gqa decode S=1", 1, 4, 2, 1, 9, 4, 4},
      {"mqa chunk S=3 at 7", 1, 2, 1, 3, 10, 4, 4},
      {"explicit start_pos 2", 1, 2, 2, 3, 10, 4, 4, true, 2},
      {"cross non-causal", 1, 2, 1, 3, 5, 4, 6, false},
      {"blocks: prefill BQ+BK+3", 1, 4, 2, BQ + BK + 3, BQ + BK + 3, 8, 8},
      {"blocks: decode T=2BK+9", 2, 4, 1, 1, 2 * BK + 9, 8, 8},
      {"blocks: chunk BQ-5 at BK+2", 1, 2, 2, BQ - 5, BQ + BK - 3, 8, 6},
      {"blocks: non-causal (BQ+1)x(2BK+1)", 1, 2, 1, BQ + 1, 2 * BK + 1, 5, 5, false},
  };
  return c;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no error)";
}

struct NaiveGuard {
  bool prev = naive_kernels();
  explicit NaiveGuard(bool on) { set_naive_kernels(on); }
  ~NaiveGuard() { set_naive_kernels(prev); }
};

}  // namespace

TEST_CASE("attention: fused == composite twin in f64, values and gradients, both kernel versions") {
  for (bool naive : {false, true}) {
    NaiveGuard guard(naive);
    for (const Config& c : configs()) check_against_twin(c, DType::f64, 1e-10);
  }
}

TEST_CASE("attention: fused == composite twin in f32") {
  for (bool naive : {false, true}) {
    NaiveGuard guard(naive);
    for (const Config& c : configs()) check_against_twin(c, DType::f32, 2e-5);
  }
}

TEST_CASE("attention: v1_naive and v2_flash agree on a threaded size") {
  Config c{"big", 2, 8, 2, 300, 300, 16, 16};
  for (DType dt : {DType::f64, DType::f32}) {
    std::vector<Tensor> out, grads;
    for (bool naive : {true, false}) {
      NaiveGuard guard(naive);
      std::vector<Tensor> in = make_inputs(c, dt, 3);
      Tensor y = scaled_dot_product_attention(in[0], in[1], in[2], 0.25, true);
      Rng rng(9);
      y.backward(Tensor::randn(y.shape(), rng, 1.0, dt));
      out.push_back(y);
      for (Tensor& t : in) grads.push_back(t.grad());
    }
    double tol = dt == DType::f64 ? 1e-12 : 1e-5;
    CHECK(max_error(out[1], out[0], tol) <= tol);
    for (int i = 0; i < 3; i++) CHECK(max_error(grads[3 + i], grads[i], tol) <= tol);
  }
}

TEST_CASE("attention: decode rows == the last rows of the full prefill") {
  // Causal attention of the LAST S queries over all T keys equals the last S rows of prefill.
  Config full{"prefill", 1, 4, 2, 12, 12, 8, 8};
  std::vector<Tensor> in = make_inputs(full, DType::f64, 21);
  NoGradGuard no_grad;
  Tensor y = scaled_dot_product_attention(in[0], in[1], in[2], 0.3, true);
  for (int64_t s0 : {11, 8, 0}) {
    Tensor part = scaled_dot_product_attention(narrow(in[0], 2, s0, 12 - s0), in[1], in[2], 0.3, true);
    CHECK(max_error(part, narrow(y, 2, s0, 12 - s0), 1e-14) <= 1e-14);
  }
  // and a row sees nothing past its position: changing keys after it leaves it unchanged
  Tensor k2 = in[1].clone_data(), v2 = in[2].clone_data();
  for (int64_t d = 0; d < 8; d++) {
    k2.set_at({0, 1, 11, d}, 100.0);
    v2.set_at({0, 1, 11, d}, -100.0);
  }
  Tensor y2 = scaled_dot_product_attention(in[0], k2, v2, 0.3, true);
  CHECK(max_error(narrow(y2, 2, 0, 11), narrow(y, 2, 0, 11), 0) <= 0);
}

TEST_CASE("attention: strided inputs are read in place and match contiguous copies") {
  Rng rng(4);
  Tensor q = Tensor::randn({2, 9, 4, 8}, rng, 1.0, DType::f64).requires_grad_();   // [B, S, H, D]
  Tensor k = Tensor::randn({2, 9, 2, 8}, rng, 1.0, DType::f64).requires_grad_();   // [B, T, Hkv, D] (cache layout)
  Tensor v = Tensor::randn({2, 9, 2, 8}, rng, 1.0, DType::f64).requires_grad_();
  Tensor y = scaled_dot_product_attention(permute(q, {0, 2, 1, 3}), permute(k, {0, 2, 1, 3}), permute(v, {0, 2, 1, 3}), 0.35, true);
  std::vector<Tensor> c = {contiguous(permute(q.detach(), {0, 2, 1, 3})).requires_grad_(),
                           contiguous(permute(k.detach(), {0, 2, 1, 3})).requires_grad_(),
                           contiguous(permute(v.detach(), {0, 2, 1, 3})).requires_grad_()};
  Tensor yc = scaled_dot_product_attention(c[0], c[1], c[2], 0.35, true);
  CHECK(max_error(y, yc, 0) <= 0);
  Rng r2(1);
  Tensor dy = Tensor::randn(y.shape(), r2, 1.0, DType::f64);
  y.backward(dy);
  yc.backward(dy);
  CHECK(max_error(q.grad(), contiguous(permute(c[0].grad(), {0, 2, 1, 3})), 1e-14) <= 1e-14);
  CHECK(max_error(k.grad(), contiguous(permute(c[1].grad(), {0, 2, 1, 3})), 1e-14) <= 1e-14);
  CHECK(max_error(v.grad(), contiguous(permute(c[2].grad(), {0, 2, 1, 3})), 1e-14) <= 1e-14);
}

TEST_CASE("attention: float64 gradcheck, GQA chunk crossing a block") {
  Config c{"gradcheck", 1, 2, 1, cpu::kAttnBlockQ + 2, cpu::kAttnBlockK + 3, 2, 2};
  std::vector<Tensor> in = make_inputs(c, DType::f64, 8);
  GradcheckResult g = gradcheck(
      [](const std::vector<Tensor>& x) { return scaled_dot_product_attention(x[0], x[1], x[2], 0.6, true); }, in);
  INFO(g.message);
  CHECK(g.ok);
}

TEST_CASE("attention: a NaN stays visible (row of a NaN query; rows that see a NaN key)") {
  for (bool naive : {false, true}) {
    NaiveGuard guard(naive);
    for (DType dt : {DType::f32, DType::f64}) {
      INFO((naive ? "v1_naive " : "v2_flash ") << std::string(dtype_name(dt)));
      Rng rng(12);
      Tensor q = Tensor::randn({1, 2, 6, 4}, rng, 1.0, dt), k = Tensor::randn({1, 1, 6, 4}, rng, 1.0, dt);
      Tensor v = Tensor::randn({1, 1, 6, 4}, rng, 1.0, dt);
      q.set_at({0, 0, 3, 1}, NAN);
      k.set_at({0, 0, 4, 2}, NAN);
      Tensor y = scaled_dot_product_attention(q, k, v, 0.5, true);
      for (int64_t h = 0; h < 2; h++)
        for (int64_t s = 0; s < 6; s++) {
          bool nan_expected = (h == 0 && s == 3) || s >= 4;  // its own query, or key 4 in its horizon
          INFO("h " << h << " s " << s);
          CHECK(std::isnan(y.at({0, h, s, 0})) == nan_expected);
        }
    }
  }
}

TEST_CASE("attention: errors name the op and the shapes") {
  Rng rng(1);
  Tensor q = Tensor::randn({1, 6, 4, 8}, rng), k = Tensor::randn({1, 4, 4, 8}, rng), v = Tensor::randn({1, 4, 4, 8}, rng);
  std::string e = error_of([&] { scaled_dot_product_attention(q, k, v, 1.0, true); });
  CHECK(e.find("[scaled_dot_product_attention]") == 0);
  CHECK(e.find("Hkv must divide H") != std::string::npos);
  CHECK(e.find("(1, 6, 4, 8)") != std::string::npos);
  CHECK(e.find("(1, 4, 4, 8)") != std::string::npos);

  Tensor k2 = Tensor::randn({1, 2, 4, 8}, rng), v2 = Tensor::randn({1, 2, 4, 8}, rng);
  e = error_of([&] { scaled_dot_product_attention(reshape(q, {6, 4, 8}), k2, v2, 1.0, true); });
  CHECK(e.find("must be 4-D") != std::string::npos);
  e = error_of([&] { scaled_dot_product_attention(q, Tensor::randn({1, 2, 4, 5}, rng), v2, 1.0, true); });
  CHECK(e.find("different head dims 8 and 5") != std::string::npos);
  e = error_of([&] { scaled_dot_product_attention(q, k2, Tensor::randn({1, 2, 3, 8}, rng), 1.0, true); });
  CHECK(e.find("same [Hkv, T] dims") != std::string::npos);
  e = error_of([&] { scaled_dot_product_attention(q, k2, v2, 1.0, true, 1); });
  CHECK(e.find("start_pos 1 with S = 4 query rows needs 0 <= start_pos <= T - S = 0") != std::string::npos);
  e = error_of([&] { scaled_dot_product_attention(q, to_dtype(k2, DType::f64), v2, 1.0, true); });
  CHECK(e.find("different dtypes") != std::string::npos);
  e = error_of([&] { scaled_dot_product_attention(Tensor(), k2, v2, 1.0, true); });
  CHECK(e.find("q is an undefined tensor") != std::string::npos);
  // non-causal ignores start_pos; any S, T
  CHECK_NOTHROW(scaled_dot_product_attention(q, narrow(k2, 2, 0, 2), narrow(v2, 2, 0, 2), 1.0, false));
}

// ---- packed sequences (segment_ids) -----------------------------------------------------------------

namespace {

// segment_ids [B, T] i64 from run lengths per row; run r of every row gets the id 7·r + 3·b + 2 (not
// sorted by row, not consecutive: only equality matters).
Tensor segments_from_runs(const std::vector<std::vector<int64_t>>& runs, int64_t T) {
  const int64_t B = (int64_t)runs.size();
  std::vector<int64_t> ids;
  for (int64_t b = 0; b < B; b++) {
    int64_t n = 0;
    for (size_t r = 0; r < runs[b].size(); r++)
      for (int64_t i = 0; i < runs[b][r]; i++, n++) ids.push_back(int64_t(7 * ((r * 5) % 11) + 3 * b + 2));
    REQUIRE(n == T);
  }
  return Tensor::from_vector(ids, {B, T});
}

// The composite twin with the mask written as an explicit additive tensor [B, 1, S, T]: 0 where query row s
// (position p = sp + s) may see key t — t ≤ p and seg[b, t] == seg[b, p] — and −∞ elsewhere.
Tensor attention_twin_segments(const Tensor& q, const Tensor& k, const Tensor& v, double scale,
                               std::optional<int64_t> start_pos, const Tensor& seg) {
  int64_t B = q.size(0), H = q.size(1), S = q.size(2), Hkv = k.size(1), T = k.size(2);
  int64_t group = H / Hkv, sp = start_pos.value_or(T - S);
  auto repeat_kv = [&](const Tensor& x) {
    return reshape(expand(unsqueeze(x, 2), {B, Hkv, group, T, x.size(3)}), {B, H, T, x.size(3)});
  };
  Tensor mask = Tensor::zeros({B, 1, S, T}, q.dtype());
  for (int64_t b = 0; b < B; b++)
    for (int64_t s = 0; s < S; s++)
      for (int64_t t = 0; t < T; t++)
        if (t > sp + s || seg.at({b, t}) != seg.at({b, sp + s})) mask.set_at({b, 0, s, t}, -INFINITY);
  Tensor scores = add(mul(matmul(q, transpose(repeat_kv(k), -2, -1)), scale), mask);  // [B, H, S, T]
  return matmul(softmax(scores, -1), repeat_kv(v));
}

struct SegConfig {
  Config c;
  std::vector<std::vector<int64_t>> runs;  // per batch row, summing to c.T
};

const std::vector<SegConfig>& seg_configs() {
  const int64_t BQ = cpu::kAttnBlockQ, BK = cpu::kAttnBlockK;
  static const std::vector<SegConfig> c = {
      //  name                               B  H Hkv  S   T  D  Dv          runs
      {{"mha two segments", 2, 2, 2, 9, 9, 4, 4}, {{4, 5}, {2, 3, 4}}},
      {{"gqa single-token segments", 1, 4, 2, 7, 7, 3, 5}, {{1, 2, 1, 1, 2}}},
      {{"mqa one segment (= plain causal)", 2, 3, 1, 6, 6, 4, 4}, {{6}, {6}}},
      {{"decode S=1 in the last segment", 2, 4, 2, 1, 9, 4, 4}, {{3, 6}, {8, 1}}},
      {{"chunk S=4 at 6, crossing a boundary", 1, 2, 1, 4, 10, 4, 4}, {{3, 5, 2}}},
      {{"explicit start_pos 2", 1, 2, 2, 3, 10, 4, 4, true, 2}, {{2, 2, 6}}},
      {{"blocks: prefill BQ+BK+3", 1, 4, 2, BQ + BK + 3, BQ + BK + 3, 8, 8}, {{BQ - 7, 20, BK - 19, 9}}},
      {{"blocks: chunk BQ-5 at BK+2", 2, 2, 2, BQ - 5, BQ + BK - 3, 8, 6}, {{BK + 10, BQ - 13}, {5, BQ + BK - 8}}},
      {{"blocks: decode T=2BK+9", 1, 4, 1, 1, 2 * BK + 9, 8, 8}, {{BK + 3, BK + 6}}},
  };
  return c;
}

void check_segments_against_twin(const SegConfig& sc, DType dtype, double tol) {
  const Config& c = sc.c;
  INFO("config " << std::string(c.name) << " dtype " << std::string(dtype_name(dtype)) << (naive_kernels() ? " naive" : " flash"));
  Tensor seg = segments_from_runs(sc.runs, c.T);
  std::vector<Tensor> in = make_inputs(c, dtype, 17);
  std::vector<Tensor> a = copies(in), b = copies(in);
  double scale = 1.0 / std::sqrt((double)c.D);
  Tensor ya = scaled_dot_product_attention(a[0], a[1], a[2], scale, true, c.start_pos, seg);
  Tensor yb = attention_twin_segments(b[0], b[1], b[2], scale, c.start_pos, seg);
  CHECK(max_error(ya, yb, tol) <= tol);
  Rng rng(6);
  Tensor dy = Tensor::randn(ya.shape(), rng, 1.0, dtype);
  ya.backward(dy);
  yb.backward(dy);
  const char* names[] = {"dq", "dk", "dv"};
  for (int i = 0; i < 3; i++) {
    INFO(names[i]);
    REQUIRE(a[i].grad().defined());
    CHECK(max_error(a[i].grad(), b[i].grad(), tol) <= tol);
  }
}

}  // namespace

TEST_CASE("attention segments: fused == composite twin with an additive mask, values and gradients") {
  for (bool naive : {false, true}) {
    NaiveGuard guard(naive);
    for (const SegConfig& c : seg_configs()) check_segments_against_twin(c, DType::f64, 1e-10);
    for (const SegConfig& c : seg_configs()) check_segments_against_twin(c, DType::f32, 2e-5);
  }
}

TEST_CASE("attention segments: one segment per row is the plain causal op, bit for bit") {
  for (bool naive : {false, true}) {
    NaiveGuard guard(naive);
    Config c{"one segment", 2, 4, 2, 130, 130, 8, 8};
    std::vector<Tensor> in = make_inputs(c, DType::f32, 2);
    std::vector<Tensor> a = copies(in), b = copies(in);
    Tensor ya = scaled_dot_product_attention(a[0], a[1], a[2], 0.3, true, std::nullopt, Tensor::zeros({2, 130}, DType::i64));
    Tensor yb = scaled_dot_product_attention(b[0], b[1], b[2], 0.3, true);
    CHECK(max_error(ya, yb, 0) <= 0);
    Rng rng(3);
    Tensor dy = Tensor::randn(ya.shape(), rng, 1.0, DType::f32);
    ya.backward(dy);
    yb.backward(dy);
    for (int i = 0; i < 3; i++) CHECK(max_error(a[i].grad(), b[i].grad(), 0) <= 0);
  }
}

TEST_CASE("attention segments: packing two sequences in one row == each alone (values and gradients)") {
  // Row [x1 | x2] with segments {0: L1 positions, 1: L2 positions} against x1 and x2 run on their own: the
  // same outputs, and dq, dk, dv of each part. v1_naive visits the same keys in the same order: equal bit
  // for bit; v2_flash blocks the keys of the second sequence differently: equal to rounding.
  const int64_t L1 = 70, L2 = cpu::kAttnBlockQ + 20, T = L1 + L2, H = 4, Hkv = 2, D = 8, Dv = 6;
  for (bool naive : {true, false}) {
    for (DType dt : {DType::f64, DType::f32}) {
      NaiveGuard guard(naive);
      INFO((naive ? "v1_naive " : "v2_flash ") << std::string(dtype_name(dt)));
      double tol = naive ? 0 : (dt == DType::f64 ? 1e-13 : 2e-6);
      std::vector<Tensor> packed = make_inputs({"packed", 1, H, Hkv, T, T, D, Dv}, dt, 31);
      std::vector<int64_t> ids(T, 0);
      for (int64_t t = L1; t < T; t++) ids[t] = 1;
      Tensor seg = Tensor::from_vector(ids, {1, T});
      Tensor y = scaled_dot_product_attention(packed[0], packed[1], packed[2], 0.4, true, std::nullopt, seg);
      Rng rng(8);
      Tensor dy = Tensor::randn(y.shape(), rng, 1.0, dt);
      y.backward(dy);
      for (auto [start, len] : {std::pair{int64_t(0), L1}, std::pair{L1, L2}}) {
        INFO("part at " << start);
        std::vector<Tensor> alone;
        for (const Tensor& x : packed) alone.push_back(contiguous(narrow(x.detach(), 2, start, len)).requires_grad_());
        Tensor ya = scaled_dot_product_attention(alone[0], alone[1], alone[2], 0.4, true);
        ya.backward(contiguous(narrow(dy, 2, start, len)));
        CHECK(max_error(narrow(y, 2, start, len), ya, tol) <= tol);
        for (int i = 0; i < 3; i++) CHECK(max_error(narrow(packed[i].grad(), 2, start, len), alone[i].grad(), tol) <= tol);
      }
    }
  }
}

TEST_CASE("attention segments: float64 gradcheck, GQA, segments crossing the kernel's blocks") {
  const int64_t BQ = cpu::kAttnBlockQ, BK = cpu::kAttnBlockK;
  Config c{"gradcheck", 1, 2, 1, BQ + 2, BK + 3, 2, 2};
  Tensor seg = segments_from_runs({{10, BQ - 17, 1, 25}}, BK + 3);
  std::vector<Tensor> in = make_inputs(c, DType::f64, 8);
  for (bool naive : {false, true}) {
    NaiveGuard guard(naive);
    GradcheckResult g = gradcheck(
        [&](const std::vector<Tensor>& x) {
          return scaled_dot_product_attention(x[0], x[1], x[2], 0.6, true, std::nullopt, seg);
        },
        in);
    INFO((naive ? "v1_naive " : "v2_flash ") << g.message);
    CHECK(g.ok);
  }
}

TEST_CASE("attention segments: errors name the op, the tensor and the shapes") {
  Rng rng(1);
  Tensor q = Tensor::randn({2, 2, 3, 4}, rng), k = Tensor::randn({2, 1, 5, 4}, rng), v = Tensor::randn({2, 1, 5, 4}, rng);
  auto call = [&](const Tensor& seg, bool causal = true) {
    return error_of([&] { scaled_dot_product_attention(q, k, v, 1.0, causal, std::nullopt, seg); });
  };
  std::string e = call(Tensor::zeros({2, 3}, DType::i64));  // [B, S] instead of [B, T]
  CHECK(e.find("[scaled_dot_product_attention] segment_ids tensor (2, 3) i64 must be an i64 tensor [B, T] = (2, 5)") == 0);
  CHECK(e.find("(q tensor (2, 2, 3, 4) f32, k tensor (2, 1, 5, 4) f32, v tensor (2, 1, 5, 4) f32)") != std::string::npos);
  e = call(Tensor::zeros({2, 5}, DType::i32));
  CHECK(e.find("segment_ids tensor (2, 5) i32 must be an i64 tensor [B, T] = (2, 5)") != std::string::npos);
  e = call(Tensor::zeros({2, 5}, DType::f32));
  CHECK(e.find("must be an i64 tensor") != std::string::npos);
  e = call(Tensor::from_vector(std::vector<int64_t>{0, 0, 1, 1, 1, 4, 4, 5, 4, 4}, {2, 5}));
  CHECK(e.find("row 1 has segment id 4 at positions 0 and 3 with another segment between") != std::string::npos);
  e = call(Tensor::zeros({2, 5}, DType::i64), false);
  CHECK(e.find("need causal attention") != std::string::npos);
  CHECK(call(Tensor::from_vector(std::vector<int64_t>{9, 9, 1, 1, 1, 4, 4, 5, 6, 6}, {2, 5})) == "(no error)");
}
