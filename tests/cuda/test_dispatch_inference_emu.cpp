// tests/cuda/test_dispatch_inference_emu.cpp — the rest of a Transformer's life on emulated CUDA: Transformer::to,
// caches made on the model's device (decode == the CPU's full forward, absorbed and naive MLA), packed sequences
// (segment ids), host inputs moved by the model, greedy / sampled / batched / speculative generation giving the
// CPU's tokens, and DSA models (fp32 and fp8 indexer) training and decoding on the device.
//
// Tolerances as in test_dispatch_model_emu.cpp (different kernels, the same math: 1e-4 of max|want| per tensor).
// Generation compares token ids exactly: the logits differ by ~1e-7 relative, and the test models' top logits are
// checked to be further apart than that (a near tie would show as a failure naming the step, not a flake).
#include <doctest/doctest.h>

#include "tests/cuda/model_check.h"

#include "autograd/device.h"
#include "autograd/node.h"
#include "models/generate.h"

using namespace sg;
using sg::test::model::check_scaled;
using sg::test::model::tiny_args;

namespace {

ModelArgs dsa_args(bool fp8) {
  ModelArgs a = tiny_args(/*moe=*/false);
  a.n_layers = 2;
  a.q_lora_rank = 8;
  a.index_n_heads = 2;
  a.index_head_dim = 8;
  a.index_topk = 3;
  a.index_fp8 = fp8;
  a.validate("dsa_args");
  return a;
}

struct Pair {
  Transformer cpu, cuda;
  explicit Pair(const ModelArgs& a) {
    Rng r1(5), r2(5);
    cpu = Transformer(a, r1);
    cuda = Transformer(a, r2);
    cuda.to(Device::CUDA);
  }
};

Tensor some_tokens(const ModelArgs& a, int64_t B, int64_t S, uint64_t seed) {
  Rng r(seed);
  return Tensor::randint({B, S}, r, 0, a.vocab_size);
}

// Decoding through the device cache: a prefill of P tokens, then one token at a time, each step's logits against
// the CPU's full forward at that position.
void check_decode(Pair& m, MLAMode mode, const std::string& what) {
  INFO(what);
  NoGradGuard no_grad;
  m.cpu.set_attn_mode(mode);
  m.cuda.set_attn_mode(mode);
  const ModelArgs& a = m.cpu.args;
  const int64_t B = 2, S = a.max_seq_len, P = 3;
  Tensor tokens = some_tokens(a, B, S, 21);
  Tensor full = m.cpu.forward(tokens);  // [B,S,V]
  auto cache = m.cuda.make_cache(B, S);
  for (const BlockCache& c : cache->layers) {
    const Tensor& t = c.dsa.mla.kv.defined() ? c.dsa.mla.kv : (mode == MLAMode::naive ? c.attn.k_cache : c.attn.kv);
    CHECK(t.device() == Device::CUDA);
  }
  Tensor pre = m.cuda.forward(slice(tokens, 1, 0, P), 0, cache.get());
  CHECK(pre.device() == Device::CUDA);
  check_scaled(pre, contiguous(slice(full, 1, 0, P)), 1e-4, "prefill logits");
  for (int64_t s = P; s < S; s++) {
    Tensor step = m.cuda.forward(slice(tokens, 1, s, s + 1), s, cache.get());
    check_scaled(step, contiguous(slice(full, 1, s, s + 1)), 1e-4, "decode logits at position " + std::to_string(s));
  }
  CHECK(cache->length() == S);
}

}  // namespace

TEST_CASE("dispatch inference emu: Transformer::to moves every parameter, buffer and the rope table; host inputs work") {
  CudaEmulationScope emu(true);
  Pair m(tiny_args(true));
  CHECK(m.cuda.device() == Device::CUDA);
  CHECK(m.cpu.device() == Device::CPU);
  for (auto& [name, p] : m.cuda.named_parameters_and_buffers()) {
    CAPTURE(name);
    CHECK(p->device() == Device::CUDA);
  }
  NamedParameters pc = m.cpu.named_parameters(), pg = m.cuda.named_parameters();
  REQUIRE(pc.size() == pg.size());
  for (size_t i = 0; i < pc.size(); i++) {
    CAPTURE(pc[i].first);
    CHECK(pg[i].second->requires_grad() == pc[i].second->requires_grad());
    CHECK(pg[i].second->param_kind() == pc[i].second->param_kind());
    check_scaled(*pg[i].second, *pc[i].second, 0.0, "moved " + pc[i].first);  // a copy: the same bits
  }
  CHECK(m.cuda.rope.cos.device() == Device::CUDA);
  // Host tokens: the model moves them (the logits are on its device).
  NoGradGuard no_grad;
  Tensor tokens = some_tokens(m.cpu.args, 2, 5, 3);
  Tensor got = m.cuda.forward(tokens);
  CHECK(got.device() == Device::CUDA);
  check_scaled(got, m.cpu.forward(tokens), 1e-4, "logits from host tokens");
  // And back: to(CPU) gives the CPU model's numbers bit for bit (the parameters are the same bits).
  m.cuda.to(Device::CPU);
  CHECK(m.cuda.device() == Device::CPU);
  check_scaled(m.cuda.forward(tokens), m.cpu.forward(tokens), 0.0, "logits after moving back to the CPU");
}

TEST_CASE("dispatch inference emu: decoding through a CUDA cache equals the CPU's full forward (absorbed and naive)") {
  CudaEmulationScope emu(true);
  Pair m(tiny_args(true));
  check_decode(m, MLAMode::absorbed, "absorbed MLA cache");
  check_decode(m, MLAMode::naive, "naive MLA cache");
}

TEST_CASE("dispatch inference emu: packed sequences (segment ids) give the CPU's loss and gradients on CUDA") {
  CudaEmulationScope emu(true);
  Pair m(tiny_args(true));
  const ModelArgs& a = m.cpu.args;
  Tensor tokens = some_tokens(a, 2, 8, 31), targets = some_tokens(a, 2, 8, 32);
  Tensor seg = Tensor::from_vector(std::vector<int64_t>{0, 0, 0, 1, 1, 1, 1, 2, 0, 0, 0, 0, 0, 1, 1, 1}, {2, 8});
  for (int64_t p : {2, 6, 7, 12, 15}) targets.set_at({p / 8, p % 8}, -100);  // the last token of each sequence
  LossOptions o;
  o.mtp_lambda = 0.3;
  o.balance_alpha = 1e-2;
  o.segment_ids = seg;
  LossOutput want = m.cpu.loss(tokens, targets, o);
  want.loss.backward();
  LossOutput got = m.cuda.loss(tokens, targets, o);  // host tokens, targets and segment ids
  got.loss.backward();
  CHECK(got.loss.device() == Device::CUDA);
  check_scaled(got.loss, want.loss, 1e-5, "packed loss");
  check_scaled(got.mtp_losses.at(0), want.mtp_losses.at(0), 1e-5, "packed mtp loss");
  NamedParameters pc = m.cpu.named_parameters(), pg = m.cuda.named_parameters();
  for (size_t i = 0; i < pc.size(); i++)
    if (pc[i].second->grad().defined()) check_scaled(pg[i].second->grad(), pc[i].second->grad(), 1e-4, pc[i].first);
}

TEST_CASE("dispatch inference emu: generation on CUDA gives the CPU's tokens (greedy, sampled, batched, speculative)") {
  CudaEmulationScope emu(true);
  Pair m(tiny_args(true));
  const std::vector<int64_t> prompt = {1, 5, 9};
  const int64_t n = 5;
  CHECK(generate(m.cuda, prompt, n) == generate(m.cpu, prompt, n));
  SamplingConfig sampled;
  sampled.temperature = 0.8;
  sampled.top_k = 8;
  sampled.seed = 17;
  CHECK(generate(m.cuda, prompt, n, sampled) == generate(m.cpu, prompt, n, sampled));
  const std::vector<std::vector<int64_t>> prompts = {{1, 2, 3}, {4, 5, 6}, {7, 8}};
  const std::vector<uint64_t> seeds = {1, 2, 3};
  CHECK(generate_batch(m.cuda, prompts, 4, sampled, seeds) == generate_batch(m.cpu, prompts, 4, sampled, seeds));
  SpeculativeStats st;
  CHECK(generate_speculative(m.cuda, prompt, n, -1, &st) == generate(m.cpu, prompt, n));
  CHECK(st.generated == n);
}

TEST_CASE("dispatch inference emu: DSA models (fp32 and fp8 indexer) train and decode on CUDA as on the CPU") {
  CudaEmulationScope emu(true);
  for (bool fp8 : {false, true}) {
    CAPTURE(fp8);
    Pair m(dsa_args(fp8));
    const ModelArgs& a = m.cpu.args;
    Tensor tokens = some_tokens(a, 2, 6, 41), targets = some_tokens(a, 2, 6, 42);
    LossOptions o;
    o.train.dsa = true;  // the sparse training forward with the indexer's KL loss
    LossOutput want = m.cpu.loss(tokens, targets, o);
    want.loss.backward();
    LossOutput got = m.cuda.loss(tokens, targets, o);
    got.loss.backward();
    check_scaled(got.loss, want.loss, 1e-5, "DSA loss");
    REQUIRE(want.indexer_loss.defined());
    check_scaled(got.indexer_loss, want.indexer_loss, 1e-4, "indexer loss");
    NamedParameters pc = m.cpu.named_parameters(), pg = m.cuda.named_parameters();
    for (size_t i = 0; i < pc.size(); i++)
      if (pc[i].second->grad().defined()) check_scaled(pg[i].second->grad(), pc[i].second->grad(), 1e-4, pc[i].first);
    check_decode(m, MLAMode::absorbed, fp8 ? "DSA decode, fp8 indexer" : "DSA decode, fp32 indexer");
  }
}
