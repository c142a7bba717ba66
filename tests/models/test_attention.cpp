// tests/models/test_attention.cpp — the MHA / MQA / GQA module (models/attention.h):
//   * float64 gradcheck of x and every weight, for MHA, MQA and GQA (tiny sizes);
//   * incremental decoding through the KV cache == the full forward, token by token and in chunks;
//   * the fused attention op == the composite path (expanded kv heads, softmax) inside the module,
//     values and gradients, with and without the cache;
//   * KV-cache bytes per token, parameter names and counts, errors that name the shapes;
//   * packed sequences (segment_ids): == each sequence alone (values, x's gradient), fused == composite.
#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "autograd/gradcheck.h"
#include "autograd/node.h"
#include "models/attention.h"
#include "ops/ops.h"

using namespace sg;

namespace {

struct Kind {
  const char* name;
  int64_t n_kv_heads;
};
const Kind kKinds[] = {{"MHA", 4}, {"MQA", 1}, {"GQA", 2}};

ModelArgs tiny_args(int64_t n_kv_heads, int64_t dim = 16, int64_t n_heads = 4) {
  ModelArgs a;
  a.dim = dim;
  a.n_heads = n_heads;
  a.n_kv_heads = n_kv_heads;
  a.max_seq_len = 32;          // < original_seq_len (4096): plain RoPE, no YaRN
  return a;
}

// max_i (|got_i − want_i| − rtol·|want_i|); pass when <= atol. NaN -> ∞.
double max_error(const Tensor& got, const Tensor& want, double rtol = 0) {
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

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no error)";
}

// The module's weights as gradcheck inputs: fn puts them back into a copy of the module.
std::vector<Tensor> weights_of(Attention& m) { return {m.wq.weight, m.wk.weight, m.wv.weight, m.wo.weight}; }
void set_weights(Attention& m, const std::vector<Tensor>& w, size_t first) {
  m.wq.weight = w[first], m.wk.weight = w[first + 1], m.wv.weight = w[first + 2], m.wo.weight = w[first + 3];
}

}  // namespace

TEST_SUITE("gradcheck") {
  TEST_CASE("attention module: float64 gradcheck of x and every weight (MHA, MQA, GQA)") {
    for (const Kind& kind : kKinds) {
      INFO(std::string(kind.name));
      ModelArgs args = tiny_args(kind.n_kv_heads, 8, 4);   // hd 2
      Rng rng(1);
      Attention attn(args, rng, DType::f64);
      CHECK(std::string(attn.kind()) == kind.name);
      RopeTable rope(args, attn.head_dim);
      Tensor x = Tensor::randn({2, 5, 8}, rng, 1.0, DType::f64).requires_grad_();
      std::vector<Tensor> inputs = {x};
      for (Tensor& w : weights_of(attn)) inputs.push_back(w);
      for (int64_t start_pos : {0, 3}) {  // start_pos > 0 without a cache: only RoPE positions move
        INFO("start_pos " << start_pos);
        GradcheckResult g = gradcheck(
            [&](const std::vector<Tensor>& in) {
              Attention m = attn;
              set_weights(m, in, 1);
              return m.forward(in[0], start_pos, rope);
            },
            inputs);
        INFO(g.message);
        CHECK(g.ok);
      }
    }
  }
}

TEST_CASE("attention module: decoding through the KV cache == the full forward (token by token, in chunks)") {
  for (DType dt : {DType::f32, DType::f64}) {
    for (const Kind& kind : kKinds) {
      INFO(std::string(kind.name) << " " << std::string(dtype_name(dt)));
      ModelArgs args = tiny_args(kind.n_kv_heads, 32, 4);   // hd 8
      Rng rng(2);
      Attention attn(args, rng, dt);
      RopeTable rope(args, attn.head_dim);
      Tensor x = Tensor::randn({2, 11, 32}, rng, 1.0, dt);
      double tol = dt == DType::f32 ? 2e-6 : 1e-13;
      NoGradGuard no_grad;
      Tensor full = attn.forward(x, 0, rope);

      KVCache cache = attn.make_cache(3, 16);   // room for one more sequence and 5 more tokens
      for (int64_t s = 0; s < 11; s++) {
        Tensor y = attn.forward(narrow(x, 1, s, 1), s, rope, &cache);
        CHECK(max_error(y, narrow(full, 1, s, 1), tol) <= tol);
      }
      KVCache cache2 = attn.make_cache(2, 11);
      int64_t pos = 0;
      for (int64_t chunk : {3, 1, 4, 2, 1}) {
        Tensor y = attn.forward(narrow(x, 1, pos, chunk), pos, rope, &cache2);
        CHECK(max_error(y, narrow(full, 1, pos, chunk), tol) <= tol);
        pos += chunk;
      }
      // the cache holds the rotated keys: row s of cache.k == rope(wk x_s) at position s
      Tensor k_full = sg::rope(reshape(attn.wk.forward(x), {2, 11, attn.n_kv_heads, attn.head_dim}), rope.cos_at(0, 11),
                           rope.sin_at(0, 11), RopeLayout::half_split);
      CHECK(max_error(narrow(cache2.k, 1, 0, 11), k_full, tol) <= tol);
    }
  }
}

TEST_CASE("attention module: with grad on, a step through the cache is differentiable like the full forward") {
  ModelArgs args = tiny_args(2, 16, 4);
  Rng rng(3);
  Attention attn(args, rng, DType::f64);
  RopeTable rope(args, attn.head_dim);
  Tensor x = Tensor::randn({1, 7, 16}, rng, 1.0, DType::f64);
  Tensor full = attn.forward(x, 0, rope);
  KVCache cache = attn.make_cache(1, 7);
  Tensor y0 = attn.forward(narrow(x, 1, 0, 4), 0, rope, &cache);   // prefill through the cache
  Tensor x1 = narrow(x, 1, 4, 3).clone_data().requires_grad_();
  Tensor y1 = attn.forward(x1, 4, rope, &cache);                    // next chunk: prefix cached as constants
  CHECK(max_error(y0, narrow(full, 1, 0, 4)) <= 1e-13);
  CHECK(max_error(y1, narrow(full, 1, 4, 3)) <= 1e-13);
  CHECK(y1.requires_grad());
  sum(y1).backward();
  CHECK(x1.grad().defined());
  CHECK(attn.wk.weight.grad().defined());
}

TEST_CASE("attention module: fused op == composite path (expanded kv heads + softmax), values and gradients") {
  for (const Kind& kind : kKinds) {
    for (bool use_cache : {false, true}) {
      INFO(std::string(kind.name) << (use_cache ? " through the cache" : " no cache"));
      ModelArgs args = tiny_args(kind.n_kv_heads, 32, 4);
      Rng rng(4);
      Attention fused(args, rng, DType::f64);
      RopeTable rope(args, fused.head_dim);
      Attention composite = fused;
      composite.impl = AttentionImpl::composite;
      // separate weight leaves with the same numbers, so each path collects its own gradients
      for (Tensor* w : {&composite.wq.weight, &composite.wk.weight, &composite.wv.weight, &composite.wo.weight})
        *w = w->clone_data().requires_grad_();
      Tensor x = Tensor::randn({2, 9, 32}, rng, 1.0, DType::f64);
      Tensor xa = x.clone_data().requires_grad_(), xb = x.clone_data().requires_grad_();
      Tensor ya, yb;
      if (use_cache) {  // a chunk of 4 at position 5 after a 5-token prefill
        KVCache ca = fused.make_cache(2, 9), cb = composite.make_cache(2, 9);
        {
          NoGradGuard no_grad;
          fused.forward(narrow(x, 1, 0, 5), 0, rope, &ca);
          composite.forward(narrow(x, 1, 0, 5), 0, rope, &cb);
        }
        ya = fused.forward(narrow(xa, 1, 5, 4), 5, rope, &ca);
        yb = composite.forward(narrow(xb, 1, 5, 4), 5, rope, &cb);
      } else {
        ya = fused.forward(xa, 0, rope);
        yb = composite.forward(xb, 0, rope);
      }
      CHECK(max_error(ya, yb) <= 1e-12);
      Rng r2(9);
      Tensor dy = Tensor::randn(ya.shape(), r2, 1.0, DType::f64);
      ya.backward(dy);
      yb.backward(dy);
      CHECK(max_error(xa.grad(), xb.grad()) <= 1e-12);
      CHECK(max_error(fused.wq.weight.grad(), composite.wq.weight.grad()) <= 1e-12);
      CHECK(max_error(fused.wk.weight.grad(), composite.wk.weight.grad()) <= 1e-12);
      CHECK(max_error(fused.wv.weight.grad(), composite.wv.weight.grad()) <= 1e-12);
      CHECK(max_error(fused.wo.weight.grad(), composite.wo.weight.grad()) <= 1e-12);
    }
  }
}

TEST_CASE("attention module: KV-cache bytes per token, parameters, names") {
  // dim 256, 8 heads of 32: the chapter's three models
  struct Row {
    int64_t n_kv_heads;
    const char* kind;
    int64_t bytes_per_token, params;
  };
  for (Row r : {Row{8, "MHA", 2 * 8 * 32 * 4, 4 * 256 * 256}, Row{1, "MQA", 2 * 1 * 32 * 4, 2 * 256 * 256 + 2 * 32 * 256},
                Row{2, "GQA", 2 * 2 * 32 * 4, 2 * 256 * 256 + 2 * 64 * 256}}) {
    INFO(std::string(r.kind));
    ModelArgs args = tiny_args(r.n_kv_heads, 256, 8);
    Rng rng(5);
    Attention attn(args, rng);
    CHECK(std::string(attn.kind()) == r.kind);
    CHECK(attn.head_dim == 32);
    CHECK(attn.make_cache(1, 4).bytes_per_token() == r.bytes_per_token);
    CHECK(attn.make_cache(3, 4).bytes() == r.bytes_per_token * 12);
    CHECK(attn.num_parameters() == r.params);
    CHECK(attn.wk.weight.shape() == Shape{r.n_kv_heads * 32, 256});
  }
  CHECK(KVCache(1, 1, 2, 32, DType::f64).bytes_per_token() == 2 * 2 * 32 * 8);
  ModelArgs args = tiny_args(2, 16, 4);
  Rng rng(6);
  Attention attn(args, rng, DType::f32, /*head_dim=*/6);   // head_dim given: H·hd != dim is allowed
  CHECK(attn.wq.weight.shape() == Shape{24, 16});
  CHECK(attn.wo.weight.shape() == Shape{16, 24});
  NamedParameters p = attn.named_parameters("layers.0.attn");
  REQUIRE(p.size() == 4);
  CHECK(p[0].first == "layers.0.attn.wq.weight");
  CHECK(p[3].first == "layers.0.attn.wo.weight");
  RopeTable rope(args, 6);
  NoGradGuard no_grad;
  CHECK(attn.forward(Tensor::ones({1, 3, 16}), 0, rope).shape() == Shape{1, 3, 16});
}

TEST_CASE("attention module: probabilities() are the causal softmax the fused forward uses") {
  ModelArgs args = tiny_args(1, 16, 4);
  Rng rng(8);
  Attention attn(args, rng, DType::f64);
  RopeTable rope(args, attn.head_dim);
  Tensor x = Tensor::randn({2, 6, 16}, rng, 1.0, DType::f64);
  NoGradGuard no_grad;
  Tensor p = attn.probabilities(x, 0, rope);
  REQUIRE(p.shape() == Shape{2, 4, 6, 6});
  for (int64_t b = 0; b < 2; b++)
    for (int64_t h = 0; h < 4; h++)
      for (int64_t s = 0; s < 6; s++) {
        double total = 0;
        for (int64_t t = 0; t < 6; t++) {
          if (t > s) CHECK(p.at({b, h, s, t}) == 0.0);
          total += p.at({b, h, s, t});
        }
        CHECK(total == doctest::Approx(1.0).epsilon(1e-12));
      }
  // P V, heads merged, through wo == the forward
  Tensor v = permute(reshape(attn.wv.forward(x), {2, 6, 1, 4}), {0, 2, 1, 3});   // [B, Hkv=1, S, hd]
  Tensor o = matmul(p, expand(v, {2, 4, 6, 4}));
  Tensor y = attn.wo.forward(reshape(permute(o, {0, 2, 1, 3}), {2, 6, 16}));
  CHECK(max_error(y, attn.forward(x, 0, rope)) <= 1e-13);
}

TEST_CASE("attention module: errors name the shapes") {
  Rng rng(7);
  std::string e = error_of([&] { Attention(tiny_args(3, 32, 8), rng); });
  CHECK(e.find("[attention] n_heads 8 is not divisible by n_kv_heads 3") == 0);
  e = error_of([&] { Attention(tiny_args(4, 100, 8), rng); });
  CHECK(e.find("dim 100 is not divisible by n_heads 8") != std::string::npos);
  e = error_of([&] { Attention(tiny_args(4, 24, 8), rng); });
  CHECK(e.find("head_dim 3 is odd") != std::string::npos);

  ModelArgs args = tiny_args(2, 16, 4);
  Attention attn(args, rng);
  RopeTable rope(args, attn.head_dim);
  NoGradGuard no_grad;
  e = error_of([&] { attn.forward(Tensor::ones({2, 5, 12}), 0, rope); });
  CHECK(e.find("[attention] GQA(dim 16, n_heads 4, n_kv_heads 2, head_dim 4)") == 0);
  CHECK(e.find("(2, 5, 12) f32 must be [B, S, dim] with dim 16") != std::string::npos);
  e = error_of([&] { attn.forward(Tensor::ones({2, 5, 16}), 0, RopeTable(args, 8)); });
  CHECK(e.find("width head_dim / 2 = 2") != std::string::npos);
  e = error_of([&] { attn.forward(Tensor::ones({1, 5, 16}), 30, rope); });
  CHECK(e.find("run past the RopeTable's 32 rows") != std::string::npos);
  KVCache cache = attn.make_cache(1, 8);
  e = error_of([&] { attn.forward(Tensor::ones({1, 5, 16}), 4, rope, &cache); });
  CHECK(e.find("positions 4 + S 5 run past the cache's max_seq_len 8") != std::string::npos);
  e = error_of([&] { attn.forward(Tensor::ones({2, 1, 16}), 0, rope, &cache); });
  CHECK(e.find("has batch 2 but the cache holds 1 sequences") != std::string::npos);
  KVCache wrong(1, 8, 4, 4);
  e = error_of([&] { attn.forward(Tensor::ones({1, 1, 16}), 0, rope, &wrong); });
  CHECK(e.find("needs k and v of shape (1, 8, 2, 4)") != std::string::npos);
}

TEST_CASE("attention module: packed sequences (segment_ids) == each sequence alone; fused == composite") {
  // Row 0 = [4 | 5] tokens, row 1 = [2 | 3 | 4]. Alone, a sequence starts at position 0; RoPE is relative, so
  // its attention is the same up to the float32 rounding of the rope table's angles.
  const int64_t B = 2, S = 9;
  const std::vector<std::vector<int64_t>> runs = {{4, 5}, {2, 3, 4}};
  Tensor seg = Tensor::from_vector(std::vector<int64_t>{0, 0, 0, 0, 1, 1, 1, 1, 1, 6, 6, 2, 2, 2, 3, 3, 3, 3}, {B, S});
  for (const Kind& kind : kKinds)
    for (AttentionImpl impl : {AttentionImpl::fused, AttentionImpl::composite}) {
      INFO(kind.name << (impl == AttentionImpl::fused ? " fused" : " composite"));
      ModelArgs args = tiny_args(kind.n_kv_heads, 32, 4);
      Rng rng(12);
      Attention attn(args, rng, DType::f64);
      attn.impl = impl;
      RopeTable rope(args, attn.head_dim);
      Tensor x = Tensor::randn({B, S, 32}, rng, 1.0, DType::f64).requires_grad_();
      Tensor y = attn.forward(x, 0, rope, nullptr, seg);
      Rng r2(3);
      Tensor dy = Tensor::randn(y.shape(), r2, 1.0, DType::f64);
      y.backward(dy);
      for (int64_t b = 0; b < B; b++) {
        int64_t start = 0;
        for (int64_t len : runs[b]) {
          Tensor xa = contiguous(narrow(narrow(x.detach(), 0, b, 1), 1, start, len)).requires_grad_();
          Tensor ya = attn.forward(xa, 0, rope);
          ya.backward(contiguous(narrow(narrow(dy, 0, b, 1), 1, start, len)));
          CHECK(max_error(narrow(narrow(y, 0, b, 1), 1, start, len), ya) <= 1e-6);
          CHECK(max_error(narrow(narrow(x.grad(), 0, b, 1), 1, start, len), xa.grad()) <= 1e-6);
          start += len;
        }
      }
      // the two implementations agree to f64 rounding with the ids (same positions, same rope)
      Attention other = attn;
      other.impl = impl == AttentionImpl::fused ? AttentionImpl::composite : AttentionImpl::fused;
      NoGradGuard no_grad;
      CHECK(max_error(other.forward(x.detach(), 0, rope, nullptr, seg), y) <= 1e-12);
    }
  ModelArgs args = tiny_args(2, 16, 4);
  Rng rng(7);
  Attention attn(args, rng);
  RopeTable rope(args, attn.head_dim);
  std::string e = error_of([&] { attn.forward(Tensor::ones({2, 5, 16}), 0, rope, nullptr, Tensor::zeros({2, 4}, DType::i64)); });
  CHECK(e.find("[attention] GQA(dim 16") == 0);
  CHECK(e.find("segment_ids tensor (2, 4) i64 must be an i64 tensor [B, T] = (2, 5), one segment id per key (T = S)") != std::string::npos);
}
