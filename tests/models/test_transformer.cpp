// tests/models/test_transformer.cpp — models/transformer (the whole model, MTP, losses, HF import/export),
// models/generate (sampling, cached decoding, MTP speculative decoding) and tools/cli/logits:
//   * the official code's tiny model (tests/fixtures/tiny_v2lite): logits, every block's hidden state, the
//     final norm, the routing of both MoE layers, and incremental decoding through the latent cache;
//   * `seekgrad logits` end to end; a truncated / foreign checkpoint is an error naming the file;
//   * export -> import is exact (MTP model with sigmoid gate + bias + groups + q-LoRA, and the fixture);
//   * float64 gradcheck of EVERY element of every parameter of a tiny Transformer (dense + MoE layer, one
//     MTP module), the expert choice of every perturbed forward asserted unchanged;
//   * the MTP loss against a direct formula (D = 1), and the total loss's composition;
//   * greedy decoding with the cache == argmax of the full forward, token by token;
//   * speculative decoding == plain greedy; acceptance after a little training on a predictable sequence;
//   * sampling: deterministic by seed, top-k / top-p filters on a hand-made distribution;
//   * packed rows (segment_ids): logits, CE sums and their gradients == the sequences alone (MoE + MTP),
//     float64 gradcheck of the loss with segments in both MLA modes, errors; DSA blocks refuse them.
#include <doctest/doctest.h>

#include "tests/test_util.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "autograd/gradcheck.h"
#include "autograd/node.h"
#include "models/config.h"
#include "models/generate.h"
#include "models/json.h"
#include "models/safetensors.h"
#include "models/transformer.h"
#include "models/weights.h"
#include "ops/ops.h"
#include "tools/cli/logits.h"

#ifndef SEEKGRAD_SOURCE_DIR
#define SEEKGRAD_SOURCE_DIR "."
#endif

using namespace sg;
using sg::test::error_of;
using sg::test::kFixtures;
using sg::test::max_abs_diff;
namespace fs = std::filesystem;

namespace {

const std::string kFixture = std::string(SEEKGRAD_SOURCE_DIR) + "/tests/fixtures/tiny_v2lite";



bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// A fresh directory under the system temp dir, removed at scope exit.
struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& tag) {
    path = fs::temp_directory_path() / ("seekgrad_test_transformer_" + tag + "_" + std::to_string(::getpid()));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string operator/(const std::string& name) const { return (path / name).string(); }
};

const SafeTensorsFile& reference() {
  static SafeTensorsFile f = read_safetensors(kFixture + "/reference.safetensors");
  return f;
}
Tensor ref_tensor(const std::string& name) { return tensor_from_st(reference().get(name)); }
Tensor ref_tokens() {
  const StTensor& t = reference().get("tokens");
  return Tensor::from_vector(to_i64(t), t.shape);
}

// A tiny model exercising everything the fixture does not: q-LoRA, sigmoid gate with bias and groups,
// route_scale, MTP.
ModelArgs tiny_args(int64_t n_mtp, bool v3_gate = true) {
  ModelArgs a;
  a.vocab_size = 48;
  a.dim = 16;
  a.inter_dim = 32;
  a.moe_inter_dim = 8;
  a.n_layers = 2;
  a.n_dense_layers = 1;
  a.n_heads = 2;
  a.n_routed_experts = 4;
  a.n_shared_experts = 1;
  a.n_activated_experts = 2;
  if (v3_gate) {
    a.n_expert_groups = 2;
    a.n_limited_groups = 1;
    a.score_func = "sigmoid";
    a.route_scale = 2.5;
    a.gate_bias = true;
    a.q_lora_rank = 8;
  } else {
    a.score_func = "softmax";
  }
  a.kv_lora_rank = 8;
  a.qk_nope_head_dim = 8;
  a.qk_rope_head_dim = 4;
  a.v_head_dim = 8;
  a.max_seq_len = 64;
  a.original_seq_len = 16;
  a.rope_factor = 4;
  a.mscale = 0.707;
  a.n_mtp_modules = n_mtp;
  return a;
}

void fill_randn(Tensor& t, Rng& rng, double std) {
  Tensor r = Tensor::randn(t.shape(), rng, std, t.dtype());
  std::vector<double> v = r.to_f64_vector();
  for (int64_t i = 0; i < t.numel(); i++) {
    std::vector<int64_t> idx(t.dim());
    int64_t rem = i;
    for (int64_t d = t.dim() - 1; d >= 0; d--) {
      idx[d] = rem % t.size(d);
      rem /= t.size(d);
    }
    t.set_at(idx, v[i]);
  }
}

// Smallest gap between the K-th and (K+1)-th selection score over every token of every MoE block in a
// forward of `tokens` (the main blocks and MTP module 0 as loss() runs them): a finite-difference step far
// below it cannot change which experts are chosen.
double min_routing_margin(Transformer& m, const Tensor& tokens) {
  double margin = 1e9;
  auto check = [&](const MoE& moe, const BlockAux& aux) {
    if (!aux.moe_ran) return;
    Tensor s = aux.moe.gate.scores.detach();
    if (moe.gate.bias.defined()) s = add(s, moe.gate.bias.detach());
    const int64_t N = s.size(0), E = s.size(1), K = moe.n_activated_experts;
    std::vector<double> v = s.to_f64_vector();
    const int64_t G = moe.gate.n_groups, per = E / G;
    for (int64_t t = 0; t < N; t++) {
      std::vector<double> row(v.begin() + t * E, v.begin() + (t + 1) * E);
      if (G > 1) {  // the group decision must be stable too
        std::vector<double> gs(G);
        for (int64_t g = 0; g < G; g++) {
          std::vector<double> mem(row.begin() + g * per, row.begin() + (g + 1) * per);
          std::sort(mem.rbegin(), mem.rend());
          gs[g] = moe.gate.bias.defined() ? mem[0] + mem[1] : mem[0];
        }
        std::vector<double> sorted = gs;
        std::sort(sorted.rbegin(), sorted.rend());
        margin = std::min(margin, sorted[moe.gate.topk_groups - 1] - sorted[moe.gate.topk_groups]);
        double cut = sorted[moe.gate.topk_groups - 1];
        for (int64_t g = 0; g < G; g++)
          if (gs[g] < cut)
            for (int64_t e = 0; e < per; e++) row[g * per + e] = -1e30;
      }
      std::sort(row.rbegin(), row.rend());
      if (K < E && row[K] > -1e29) margin = std::min(margin, row[K - 1] - row[K]);
    }
  };
  NoGradGuard no_grad;
  std::vector<BlockAux> aux;
  Tensor h0 = m.hidden(tokens, 0, nullptr, nullptr, &aux);
  for (size_t i = 0; i < m.layers.size(); i++)
    if (m.layers[i]->moe) check(*m.layers[i]->moe, aux[i]);
  const int64_t S = tokens.size(1);
  if (!m.mtp.empty() && m.mtp[0]->block.moe && S > 1) {
    BlockAux ma;
    m.mtp_forward(0, contiguous(slice(tokens, 1, 1, S)), slice(h0, 1, 0, S - 1), 0, nullptr, &ma);
    check(*m.mtp[0]->block.moe, ma);
  }
  return margin;
}

}  // namespace

// ---- the official code's tiny model ---------------------------------------------------------------

TEST_CASE("transformer: tiny_v2lite reproduces the official logits, hidden states and routing") {
  Transformer model = load_model_dir(kFixture);
  CHECK(model.args.n_layers == 3);
  CHECK(model.mtp.empty());
  CHECK(model.num_parameters() == 1285088);  // meta.json n_params

  // tokens.json and the reference's `tokens` are the same input
  {
    std::ifstream in(kFixture + "/tokens.json");
    std::stringstream s;
    s << in.rdbuf();
    Json j = Json::parse(s.str(), "tokens.json");
    std::vector<int64_t> ids;
    for (const Json& seq : j.elements())
      for (const Json& id : seq.elements()) ids.push_back(id.get_int());
    CHECK(ids == ref_tokens().to_i64_vector());
  }
  Tensor tokens = ref_tokens();  // [2, 24]
  NoGradGuard no_grad;
  for (MLAMode mode : {MLAMode::absorbed, MLAMode::naive}) {
    std::string mode_name = mla_mode_name(mode);
    CAPTURE(mode_name);
    model.set_attn_mode(mode);
    std::vector<Tensor> block_inputs;
    Tensor normed = model.hidden(tokens, 0, nullptr, &block_inputs);
    Tensor logits = model.logits_from_hidden(normed);
    REQUIRE(block_inputs.size() == 4);
    for (int i = 0; i <= 3; i++) {
      double e = max_abs_diff(block_inputs[i], ref_tensor("hidden." + std::to_string(i)));
      MESSAGE(std::string(mla_mode_name(mode)) << " hidden." << i << " max |Δ| = " << e);
      CHECK(e <= 1e-4);
    }
    double en = max_abs_diff(normed, ref_tensor("final_norm"));
    double el = max_abs_diff(logits, ref_tensor("logits"));
    double el_naive = max_abs_diff(logits, ref_tensor("logits_naive_attn"));
    MESSAGE(std::string(mla_mode_name(mode)) << " final_norm max |Δ| = " << en << ", logits max |Δ| = " << el
                                << ", vs logits_naive_attn " << el_naive);
    CHECK(en <= 1e-4);
    CHECK(el <= 1e-4);
    CHECK(el_naive <= 1e-4);
    CHECK(model.forward(tokens).shape() == Shape{2, 24, 512});

    // routing of both MoE layers (compare expert sets; loads are counts)
    std::vector<BlockAux> aux;
    model.hidden(tokens, 0, nullptr, nullptr, &aux);
    std::vector<std::vector<int64_t>> loads;
    for (const BlockAux& x : aux)
      if (x.moe_ran) loads.push_back(x.moe.stats.tokens_per_expert);
    REQUIRE(loads.size() == 2);
    for (int L = 1; L <= 2; L++) {
      CAPTURE(L);
      std::vector<int64_t> want;
      for (float x : to_f32(reference().get("moe." + std::to_string(L) + ".expert_load"))) want.push_back((int64_t)x);
      CHECK(loads[L - 1] == want);
      const MoEOutput& routed = aux[L].moe;
      CHECK(max_abs_diff(routed.gate.scores, ref_tensor("moe." + std::to_string(L) + ".scores")) <= 1e-5);
      // the reference stores α·L_bal with the harness's α = 1e-4 (model_args.json balance_alpha)
      Tensor bal = MoE::balance_loss(routed, 1e-4);
      CHECK(max_abs_diff(bal, ref_tensor("moe." + std::to_string(L) + ".seq_balance_loss")) <= 1e-10);
    }
  }
  // the reference harness's losses: main CE (meta.json losses.main_ce: next-token targets, the last position
  // has none) and α · mean over the MoE layers of mean_b L_bal (α = 1e-4)
  std::vector<int64_t> ids = tokens.to_i64_vector(), tg(ids.size());
  for (int64_t b = 0; b < 2; b++)
    for (int64_t t = 0; t < 24; t++) tg[b * 24 + t] = t + 1 < 24 ? ids[b * 24 + t + 1] : -100;
  model.set_attn_mode(MLAMode::absorbed);
  LossOutput lo = model.loss(tokens, Tensor::from_vector(tg, {2, 24}), 0.3, 1e-4);
  double want_bal = (mean(ref_tensor("moe.1.seq_balance_loss")).item() + mean(ref_tensor("moe.2.seq_balance_loss")).item()) / 2;
  MESSAGE("main CE " << lo.main_loss.item() << " (reference 6.683966636657715), balance " << lo.balance_loss.item()
                     << " (reference " << want_bal << ")");
  CHECK(std::abs(lo.main_loss.item() - 6.683966636657715) <= 1e-5);
  CHECK(std::abs(lo.balance_loss.item() - want_bal) <= 1e-10);
  CHECK(lo.mtp_losses.empty());
  CHECK(std::abs(lo.loss.item() - lo.main_loss.item() - lo.balance_loss.item()) <= 1e-6);
}

TEST_CASE("transformer: tiny_v2lite decode_logits through the latent KV cache") {
  Transformer model = load_model_dir(kFixture);
  Tensor tokens = ref_tokens();
  std::vector<int64_t> pos = to_i64(reference().get("decode_positions"));
  REQUIRE(pos == std::vector<int64_t>{19, 20, 21, 22});
  NoGradGuard no_grad;
  for (MLAMode mode : {MLAMode::absorbed, MLAMode::naive}) {
    std::string mode_name = mla_mode_name(mode);
    CAPTURE(mode_name);
    model.set_attn_mode(mode);
    // decode_positions = the positions decoded one token at a time after a prefill of tokens [0, 19)
    auto cache = model.make_cache(2, 24);
    model.forward(contiguous(slice(tokens, 1, 0, pos[0])), 0, cache.get());
    CHECK(cache->length() == pos[0]);
    std::vector<Tensor> steps;
    for (int64_t p : pos) steps.push_back(model.forward(contiguous(slice(tokens, 1, p, p + 1)), p, cache.get()));
    Tensor decoded = cat(steps, 1);  // [2, 4, 512]
    double e = max_abs_diff(decoded, ref_tensor("decode_logits"));
    double e_prefill = max_abs_diff(ref_tensor("decode_logits"), slice(ref_tensor("logits"), 1, pos[0], pos[3] + 1));
    MESSAGE(std::string(mla_mode_name(mode)) << " decode_logits max |Δ| = " << e << " (reference decode vs its prefill: " << e_prefill
                                << ")");
    CHECK(e <= 1e-4);
    CHECK(e_prefill <= 1e-5);  // confirms what decode_positions means
    // token by token from position 0 also matches the full forward at every position
    auto c2 = model.make_cache(2, 24);
    std::vector<Tensor> all;
    for (int64_t p = 0; p < 24; p++) all.push_back(model.forward(contiguous(slice(tokens, 1, p, p + 1)), p, c2.get()));
    CHECK(max_abs_diff(cat(all, 1), ref_tensor("logits")) <= 1e-4);
  }
}

TEST_CASE("transformer: run_logits end to end (full and --decode)") {
  TempDir tmp("logits");
  Tensor want = ref_tensor("logits");
  for (bool decode : {false, true}) {
    CAPTURE(decode);
    std::string out = tmp / (decode ? "decode.safetensors" : "full.safetensors");
    CHECK(run_logits(kFixture, kFixture + "/tokens.json", out, decode) == 0);
    SafeTensorsFile f = read_safetensors(out);
    REQUIRE(f.tensors.size() == 1);
    CHECK(f.tensors[0].name == "logits");
    CHECK(f.tensors[0].dtype == StDType::F32);
    Tensor got = tensor_from_st(f.get("logits"));
    double e = max_abs_diff(got, want);
    MESSAGE("run_logits decode=" << decode << ": max |Δ| vs reference logits = " << e);
    CHECK(e <= 1e-4);
    if (!decode) {  // exactly what forward() computes
      Transformer model = load_model_dir(kFixture);
      NoGradGuard ng;
      CHECK(max_abs_diff(got, model.forward(ref_tokens())) == 0.0);
    }
  }
  // errors name the file and what is wrong
  auto write = [&](const std::string& name, const std::string& text) {
    std::ofstream(tmp / name) << text;
    return tmp / name;
  };
  std::string ragged = write("ragged.json", "[[1, 2, 3], [4, 5]]");
  CHECK(contains(error_of([&] { run_logits(kFixture, ragged, tmp / "x.safetensors", false); }),
                 "ragged.json: sequence 1 has 2 tokens but sequence 0 has 3"));
  std::string big = write("big.json", "[[1, 2, 999]]");
  CHECK(contains(error_of([&] { run_logits(kFixture, big, tmp / "x.safetensors", false); }), "token id 999"));
  std::string notjson = write("bad.json", "[[1, 2,");
  CHECK(contains(error_of([&] { run_logits(kFixture, notjson, tmp / "x.safetensors", false); }), "bad.json"));
  CHECK(contains(error_of([&] { run_logits(kFixture, tmp / "missing.json", tmp / "x.safetensors", false); }),
                 "missing.json"));
  CHECK(contains(error_of([&] { run_logits(tmp / "nomodel", ragged, tmp / "x.safetensors", false); }), "nomodel"));
}

TEST_CASE("transformer: broken checkpoints are errors naming the file and the tensor") {
  TempDir tmp("broken");
  auto copy_fixture = [&](const std::string& name) {
    std::string dir = tmp / name;
    fs::create_directories(dir);
    fs::copy_file(kFixture + "/config.json", dir + "/config.json");
    fs::copy_file(kFixture + "/model.safetensors", dir + "/model.safetensors");
    return dir;
  };
  {  // truncated
    std::string dir = copy_fixture("truncated");
    fs::resize_file(dir + "/model.safetensors", fs::file_size(dir + "/model.safetensors") - 1000);
    std::string e = error_of([&] { load_model_dir(dir); });
    MESSAGE(e);
    CHECK(contains(e, dir + "/model.safetensors"));
  }
  SafeTensorsFile f = read_safetensors(kFixture + "/model.safetensors");
  {  // a tensor missing
    std::string dir = copy_fixture("missing");
    std::vector<StTensor> ts;
    for (const StTensor& t : f.tensors)
      if (t.name != "model.layers.1.self_attn.kv_b_proj.weight") ts.push_back(t);
    write_safetensors(dir + "/model.safetensors", ts);
    std::string e = error_of([&] { load_model_dir(dir); });
    MESSAGE(e);
    CHECK(contains(e, dir + "/model.safetensors"));
    CHECK(contains(e, "model.layers.1.self_attn.kv_b_proj.weight"));
  }
  {  // an unknown tensor, and a tensor of a layer the config does not have
    int which = 0;
    for (std::string extra : {"model.layers.0.self_attn.bogus.weight", "model.layers.7.input_layernorm.weight"}) {
      std::string dir = copy_fixture("extra" + std::to_string(which++));
      std::vector<StTensor> ts = f.tensors;
      ts.push_back(from_f32(extra, {2}, std::vector<float>{1, 2}.data()));
      write_safetensors(dir + "/model.safetensors", ts);
      std::string e = error_of([&] { load_model_dir(dir); });
      MESSAGE(e);
      CHECK(contains(e, dir + "/model.safetensors"));
      CHECK(contains(e, extra));
    }
  }
  {  // a wrong shape
    std::string dir = copy_fixture("shape");
    std::vector<StTensor> ts;
    for (StTensor t : f.tensors) {
      if (t.name == "model.norm.weight") {
        std::vector<float> v(127, 1.0f);
        t = from_f32(t.name, {127}, v.data());
      }
      ts.push_back(t);
    }
    write_safetensors(dir + "/model.safetensors", ts);
    std::string e = error_of([&] { load_model_dir(dir); });
    MESSAGE(e);
    CHECK(contains(e, "model.norm.weight"));
    CHECK(contains(e, "[127]"));
  }
}

// ---- export / import --------------------------------------------------------------------------------

TEST_CASE("transformer: export -> import is exact (MTP + gate bias model, f32 and f64; the fixture)") {
  TempDir tmp("roundtrip");
  for (DType dt : {DType::f32, DType::f64}) {
    CAPTURE(dtype_name(dt));
    ModelArgs a = tiny_args(2);
    Rng rng(5);
    Transformer m(a, rng, dt);
    // non-trivial norms and biases so every tensor is distinguishable
    for (auto& [name, t] : m.named_parameters_and_buffers())
      if (name.find("norm") != std::string::npos || name.find("gate.bias") != std::string::npos) fill_randn(*t, rng, 0.3);
    std::string dir = tmp / (std::string("model_") + dtype_name(dt));
    save_model_dir(m, dir);
    save_model_dir(m, dir);  // over an existing directory
    CHECK(!fs::exists(dir + ".tmp"));
    CHECK(!fs::exists(dir + ".old"));
    SafeTensorsFile f = read_safetensors(dir + "/model.safetensors");
    for (const char* name : {"model.layers.2.enorm.weight", "model.layers.3.eh_proj.weight",
                             "model.layers.2.shared_head.head.weight", "model.layers.3.embed_tokens.weight",
                             "model.layers.2.mlp.gate.e_score_correction_bias", "model.layers.3.self_attn.q_a_proj.weight",
                             "model.layers.1.mlp.experts.3.down_proj.weight", "lm_head.weight"})
      CHECK_MESSAGE(f.contains(name), name);
    CHECK(f.tensors.size() == m.named_parameters_and_buffers().size() + 2 * 2);

    Transformer back = load_model_dir(dir, dt);
    CHECK(back.args.n_mtp_modules == 2);
    CHECK(back.args.gate_bias);
    CHECK(back.args.score_func == "sigmoid");
    CHECK(back.args.q_lora_rank == 8);
    NamedParameters p0 = m.named_parameters_and_buffers(), p1 = back.named_parameters_and_buffers();
    REQUIRE(p0.size() == p1.size());
    for (size_t i = 0; i < p0.size(); i++) {
      CHECK(p0[i].first == p1[i].first);
      CHECK(p1[i].second->dtype() == dt);
      CHECK_MESSAGE(max_abs_diff(*p0[i].second, *p1[i].second) == 0.0, p0[i].first);
    }
    CHECK(!back.layers[1]->moe->gate.bias.requires_grad());
    Tensor tokens = Tensor::randint({2, 9}, rng, 0, a.vocab_size);
    Tensor targets = Tensor::randint({2, 9}, rng, 0, a.vocab_size);
    CHECK(max_abs_diff(m.loss(tokens, targets, 0.3, 0.01).loss, back.loss(tokens, targets, 0.3, 0.01).loss) == 0.0);

    // an MTP copy of the head that is not a copy is an error
    std::vector<StTensor> ts = f.tensors;
    for (StTensor& t : ts)
      if (t.name == "model.layers.3.shared_head.head.weight") t.bytes[0] ^= 1;
    write_safetensors(dir + "/model.safetensors", ts);
    std::string e = error_of([&] { load_model_dir(dir, dt); });
    CHECK(contains(e, "model.layers.3.shared_head.head.weight"));
    CHECK(contains(e, "copy"));
  }
  // the official fixture: HF file -> model -> HF file holds the same tensors, byte for byte
  Transformer fx = load_model_dir(kFixture);
  save_model_dir(fx, tmp / "fixture");
  SafeTensorsFile a = read_safetensors(kFixture + "/model.safetensors"), b = read_safetensors(tmp / "fixture/model.safetensors");
  CHECK(a.tensors.size() == b.tensors.size());
  for (const StTensor& t : a.tensors) {
    const StTensor* u = b.find(t.name);
    REQUIRE_MESSAGE(u, t.name);
    CHECK_MESSAGE((u->shape == t.shape && u->bytes == t.bytes), t.name);
  }
  ModelArgs back = load_model_args_json(tmp / "fixture/config.json");
  CHECK(back.softmax_scale() == fx.args.softmax_scale());
}

TEST_CASE("transformer: parameter names (official) and their HF names") {
  Rng rng(0);
  Transformer m(tiny_args(1), rng);
  std::map<std::string, Shape> shapes;
  for (auto& [name, t] : m.named_parameters_and_buffers()) shapes[name] = t->shape();
  CHECK(shapes.at("embed.weight") == Shape{48, 16});
  CHECK(shapes.at("head.weight") == Shape{48, 16});
  CHECK(shapes.at("layers.0.ffn.w1.weight") == Shape{32, 16});
  CHECK(shapes.at("layers.1.ffn.gate.bias") == Shape{4});
  CHECK(shapes.at("mtp.0.eh_proj.weight") == Shape{16, 32});
  CHECK(shapes.at("mtp.0.ffn.experts.0.w2.weight") == Shape{16, 8});
  CHECK(shapes.count("mtp.0.shared_head.norm.weight"));
  CHECK(transformer_param_to_hf("mtp.0.attn_norm.weight", 2) == "model.layers.2.input_layernorm.weight");
  CHECK(transformer_param_to_hf("mtp.1.eh_proj.weight", 2) == "model.layers.3.eh_proj.weight");
  CHECK(transformer_param_to_hf("layers.1.ffn.gate.bias", 2) == "model.layers.1.mlp.gate.e_score_correction_bias");
  CHECK(hf_to_transformer_param("model.layers.2.self_attn.kv_b_proj.weight", 2) == "mtp.0.attn.wkv_b.weight");
  CHECK(hf_to_transformer_param("model.layers.1.self_attn.kv_b_proj.weight", 2) == "layers.1.attn.wkv_b.weight");
  CHECK(contains(error_of([&] { transformer_param_to_hf("layers.5.attn_norm.weight", 2); }), "layers.5.attn_norm.weight"));
  for (auto& [name, t] : m.named_parameters_and_buffers())
    CHECK_MESSAGE(hf_to_transformer_param(transformer_param_to_hf(name, 2), 2) == name, name);
}

// ---- gradients and losses ---------------------------------------------------------------------------

// The chosen experts of every token of every MoE block (main layers, then MTP module 0) in a forward of
// `tokens` as loss() runs it, each token's set sorted: the part of a forward that is piecewise constant in
// the parameters.
static std::vector<std::vector<int64_t>> routing_of(Transformer& m, const Tensor& tokens) {
  std::vector<std::vector<int64_t>> out;
  auto add_block = [&](const BlockAux& aux) {
    if (!aux.moe_ran) return;
    const Tensor& idx = aux.moe.gate.indices;
    const int64_t N = idx.size(0), K = idx.size(1);
    std::vector<int64_t> v = idx.to_i64_vector();
    for (int64_t t = 0; t < N; t++) {
      std::vector<int64_t> row(v.begin() + t * K, v.begin() + (t + 1) * K);
      std::sort(row.begin(), row.end());
      out.push_back(row);
    }
  };
  NoGradGuard no_grad;
  std::vector<BlockAux> aux;
  Tensor h0 = m.hidden(tokens, 0, nullptr, nullptr, &aux);
  for (const BlockAux& x : aux) add_block(x);
  const int64_t S = tokens.size(1);
  if (!m.mtp.empty() && S > 1) {
    BlockAux ma;
    m.mtp_forward(0, contiguous(slice(tokens, 1, 1, S)), slice(h0, 1, 0, S - 1), 0, nullptr, &ma);
    add_block(ma);
  }
  return out;
}

// Every element of every parameter of one tiny model: MLA with q-LoRA and YaRN, a dense first layer, a
// DeepSeekMoE layer (sigmoid gate, 2 groups of which 1 is kept, bias, route_scale, a shared expert), one
// MTP module (its block MoE too), against the total loss (main + λ·MTP + α·balance). Routing is
// piecewise constant: every one of the 2·n perturbed forwards must pick exactly the experts of the
// unperturbed one, else the finite difference would measure a jump, not a slope (asserted: 0 flips).
TEST_CASE("transformer: float64 gradcheck of EVERY element of every parameter (MLA, dense, MoE, MTP; total loss)") {
  ModelArgs a = tiny_args(1);
  a.vocab_size = 16;
  a.dim = 8;
  a.inter_dim = 16;
  a.moe_inter_dim = 8;
  a.q_lora_rank = 8;
  a.kv_lora_rank = 8;
  a.qk_nope_head_dim = 4;
  a.qk_rope_head_dim = 4;
  a.v_head_dim = 4;
  const int64_t B = 2, S = 4;
  const double lambda = 0.3, alpha = 0.1;
  Tensor tokens, targets;
  std::unique_ptr<Transformer> model;
  // A seed whose routing has a clear margin everywhere and sends tokens to every expert of every MoE
  // block (so no expert's weights are checked only as zeros).
  for (uint64_t seed = 1; seed < 200; seed++) {
    Rng rng(seed);
    auto m = std::make_unique<Transformer>(a, rng, DType::f64);
    for (auto& [name, t] : m->named_parameters_and_buffers()) {
      if (name.find("gate.bias") != std::string::npos) fill_randn(*t, rng, 0.05);
      if (name.find("norm") != std::string::npos)  // away from the all-ones start: a generic point
        for (int64_t i = 0; i < t->numel(); i++) t->set_at({i}, 1.0 + rng.uniform(-0.3, 0.3));
    }
    std::vector<int64_t> perm(a.vocab_size);  // 8 distinct tokens: 8 embedding rows with a gradient
    for (int64_t i = 0; i < a.vocab_size; i++) perm[i] = i;
    for (int64_t i = a.vocab_size - 1; i > 0; i--) std::swap(perm[i], perm[rng.randint(i + 1)]);
    tokens = Tensor::from_vector(std::vector<int64_t>(perm.begin(), perm.begin() + B * S), {B, S});
    targets = Tensor::randint({B, S}, rng, 0, a.vocab_size);
    targets.set_at({0, 2}, -100);
    bool all_loaded = true;
    for (const std::vector<int64_t>& load : m->loss(tokens, targets, lambda, alpha).expert_loads)
      for (int64_t l : load) all_loaded = all_loaded && l > 0;
    const double margin = min_routing_margin(*m, tokens);
    if (all_loaded && margin > 1e-3) {
      MESSAGE("seed " << seed << ": min routing margin " << margin);
      model = std::move(m);
      break;
    }
  }
  REQUIRE(model);
  REQUIRE(model->loss(tokens, targets, lambda, alpha).expert_loads.size() == 2);  // layers.1.ffn and mtp.0.ffn

  std::vector<Tensor> inputs;
  int64_t elements = 0;
  std::vector<std::string> not_differentiable;
  for (auto& [name, t] : model->named_parameters()) {
    REQUIRE(t->dtype() == DType::f64);
    inputs.push_back(*t);
    if (t->requires_grad())
      elements += t->numel();
    else
      not_differentiable.push_back(name);
  }
  // Every parameter is differentiable; the gate biases are buffers: they choose experts and weigh nothing (§6).
  CHECK(not_differentiable.empty());
  std::vector<std::string> buffers;
  for (auto& [name, t] : model->named_buffers()) buffers.push_back(name);
  CHECK(buffers == std::vector<std::string>{"layers.1.ffn.gate.bias", "mtp.0.ffn.gate.bias"});

  const std::vector<std::vector<int64_t>> routing = routing_of(*model, tokens);
  int64_t calls = 0, flips = 0;
  auto total_loss = [&](const std::vector<Tensor>&) {
    Tensor loss = model->loss(tokens, targets, lambda, alpha).loss;
    calls++;
    if (routing_of(*model, tokens) != routing) flips++;
    return loss;
  };
  GradcheckOptions opt;
  opt.max_elements_per_input = int64_t(1) << 40;  // every element
  opt.atol = 1e-7;
  opt.rtol = 1e-5;
  GradcheckResult r = gradcheck(total_loss, inputs, opt);
  int64_t nonzero = 0;  // elements whose gradient is well above atol: the check measured a slope
  for (const Tensor& t : inputs)
    if (t.requires_grad() && t.grad().defined())
      for (double g : t.grad().to_f64_vector()) nonzero += std::abs(g) > 1e-5;
  MESSAGE("gradcheck of the total loss over " << inputs.size() << " parameters, " << elements << " elements ("
                                              << nonzero << " with |grad| > 1e-5): max abs error " << r.max_abs_error
                                              << ", routing flips " << flips);
  CHECK_MESSAGE(r.ok, r.message);
  CHECK(calls == 1 + 2 * elements);  // one backward, then +eps and -eps for every element
  CHECK(flips == 0);
  // Zero gradients only where the loss cannot depend on the element: the 8 embedding rows of tokens that
  // are not in the batch.
  CHECK(nonzero >= elements - (a.vocab_size - B * S) * a.dim - elements / 100);
}

TEST_CASE("transformer: MTP loss (D = 1) equals the direct formula; total = main + λ/D Σ L^k + balance") {
  ModelArgs a = tiny_args(1, false);
  Rng rng(3);
  Transformer m(a, rng, DType::f64);
  const int64_t B = 2, S = 7, V = a.vocab_size;
  Tensor tokens = Tensor::randint({B, S}, rng, 0, V);
  Tensor targets = Tensor::randint({B, S}, rng, 0, V);
  targets.set_at({1, 3}, -100);
  targets.set_at({0, 6}, -100);
  const double lambda = 0.3, alpha = 0.01;
  LossOutput lo = m.loss(tokens, targets, lambda, alpha);
  REQUIRE(lo.mtp_losses.size() == 1);

  NoGradGuard ng;
  // the direct formula, written out: h'_i = M [enorm(Emb t_{i+1}) ; hnorm(h⁰_i)], i = 0..S−2
  std::vector<BlockAux> main_aux;
  Tensor h0 = m.hidden(tokens, 0, nullptr, nullptr, &main_aux);  // post-final-norm
  MTPModule& mod = *m.mtp[0];
  Tensor emb = embedding(m.embed.weight, contiguous(slice(tokens, 1, 1, S)));
  Tensor x = linear(cat({rms_norm(emb, mod.enorm.weight), rms_norm(slice(h0, 1, 0, S - 1), mod.hnorm.weight)}, -1),
                    mod.eh_proj.weight);
  BlockAux mtp_aux;
  Tensor h1 = mod.block.forward(x, 0, m.rope, nullptr, &mtp_aux);
  std::vector<double> logits = linear(rms_norm(h1, mod.shared_head_norm.weight), m.head.weight).to_f64_vector();
  // L¹ = −(1/n) Σ_{valid i} log softmax(logits_i)[t_{i+2}], t_{i+2} = targets[:, i+1]
  double sum = 0;
  int n = 0;
  for (int64_t b = 0; b < B; b++)
    for (int64_t i = 0; i < S - 1; i++) {
      int64_t tgt = (int64_t)targets.at({b, i + 1});
      if (tgt == -100) continue;
      const double* row = &logits[(b * (S - 1) + i) * V];
      double mx = *std::max_element(row, row + V), z = 0;
      for (int64_t v = 0; v < V; v++) z += std::exp(row[v] - mx);
      sum += -(row[tgt] - mx - std::log(z));
      n++;
    }
  double direct = sum / n;
  MESSAGE("MTP L1 = " << lo.mtp_losses[0].item() << ", direct formula " << direct);
  CHECK(std::abs(lo.mtp_losses[0].item() - direct) <= 1e-12);
  // main loss and composition
  CHECK(std::abs(lo.main_loss.item() - cross_entropy(m.forward(tokens), targets).item()) <= 1e-12);
  double bal = 0;
  for (const BlockAux* x : {&main_aux[1], &mtp_aux}) bal += mean(MoE::balance_loss(x->moe, alpha)).item();
  bal /= 2;
  CHECK(std::abs(lo.balance_loss.item() - bal) <= 1e-14);
  CHECK(std::abs(lo.loss.item() - (lo.main_loss.item() + lambda * direct + bal)) <= 1e-12);
  // the MTP block's MoE is counted by LossOutput::expert_loads / moe_layer_names
  CHECK(m.moe_layer_names() == std::vector<std::string>{"layers.1.ffn", "mtp.0.ffn"});
  const std::vector<std::vector<int64_t>>& loads = lo.expert_loads;
  REQUIRE(loads.size() == 2);
  int64_t total = 0;
  for (int64_t l : loads[1]) total += l;
  CHECK(total == B * (S - 1) * a.n_activated_experts);
}

TEST_CASE("transformer: update_gate_biases moves every biased gate against its load") {
  ModelArgs a = tiny_args(1);
  Rng rng(2);
  Transformer m(a, rng);
  Tensor tokens = Tensor::randint({2, 8}, rng, 0, a.vocab_size);
  std::vector<std::vector<int64_t>> loads = m.loss(tokens, tokens, 0.3, 0.0).expert_loads;
  std::vector<MoE*> moes = {m.layers[1]->moe.get(), m.mtp[0]->block.moe.get()};
  std::vector<std::vector<float>> before;
  for (MoE* e : moes) before.push_back(e->gate.bias.to_f32_vector());
  m.update_gate_biases(loads, 0.01);
  for (size_t l = 0; l < moes.size(); l++) {
    std::vector<float> after = moes[l]->gate.bias.to_f32_vector();
    double mean_load = 0;
    for (int64_t x : loads[l]) mean_load += (double)x / loads[l].size();
    for (size_t i = 0; i < after.size(); i++) {
      double want = before[l][i] + 0.01 * (mean_load > loads[l][i] ? 1 : mean_load < loads[l][i] ? -1 : 0);
      CHECK(std::abs(after[i] - want) < 1e-7);
    }
  }
}

// ---- generation -------------------------------------------------------------------------------------

TEST_CASE("generate: greedy with the cache == argmax of the full forward, repeated") {
  Rng rng(7);
  for (int64_t n_mtp : {0, 1}) {
    Transformer m(tiny_args(n_mtp), rng);
    std::vector<int64_t> prompt = {3, 17, 5, 40, 11};
    std::vector<int64_t> got = generate(m, prompt, 12);
    std::vector<int64_t> seq = prompt;
    NoGradGuard ng;
    for (int i = 0; i < 12; i++) {
      Tensor logits = m.forward(Tensor::from_vector(seq, {1, (int64_t)seq.size()}));
      seq.push_back((int64_t)argmax(narrow(logits, 1, seq.size() - 1, 1), -1).item());
    }
    CHECK(got == std::vector<int64_t>(seq.begin() + prompt.size(), seq.end()));
    // a stop token ends the output (and is its last token)
    std::vector<int64_t> stopped = generate(m, prompt, 12, {}, got[3]);
    CHECK(stopped.size() <= 4);
    CHECK(stopped.back() == got[3]);
  }
}

TEST_CASE("generate: speculative decoding with MTP == plain greedy") {
  for (int64_t n_mtp : {1, 2, 3}) {
    for (uint64_t seed : {1, 2, 3}) {
      CAPTURE(n_mtp);
      CAPTURE(seed);
      Rng rng(seed * 10 + n_mtp);
      Transformer m(tiny_args(n_mtp, seed % 2 == 0), rng);
      for (std::vector<int64_t> prompt : {std::vector<int64_t>{7}, std::vector<int64_t>{1, 2, 3, 4, 5, 6, 7, 8}}) {
        SpeculativeStats st;
        std::vector<int64_t> spec = generate_speculative(m, prompt, 20, -1, &st);
        std::vector<int64_t> plain = generate(m, prompt, 20);
        CHECK(spec == plain);
        CHECK(st.generated == 20);
        CHECK(st.main_forwards == 1 + (st.generated - 1 - st.accepted));
        CHECK(st.accepted <= st.drafted);
      }
      // with a stop token
      std::vector<int64_t> plain = generate(m, {4, 4}, 15);
      int64_t stop = plain[6];
      CHECK(generate_speculative(m, {4, 4}, 15, stop) == generate(m, {4, 4}, 15, {}, stop));
    }
  }
  Rng rng(0);
  Transformer no_mtp(tiny_args(0), rng);
  CHECK(contains(error_of([&] { generate_speculative(no_mtp, {1}, 3); }), "no MTP modules"));
}

// A tiny model trained (plain SGD, a few hundred steps) on sequences that count upward mod V: the main
// model and its MTP modules learn the rule, and most drafts are accepted.
TEST_CASE("generate: speculative acceptance after training on a predictable sequence") {
  ModelArgs a = tiny_args(2, false);
  a.vocab_size = 16;
  Rng rng(42);
  Transformer m(a, rng);
  NamedParameters params = m.named_parameters();
  const int64_t B = 8, S = 12;
  double first = 0, last = 0;
  for (int step = 0; step < 300; step++) {
    std::vector<int64_t> tok(B * S), tgt(B * S);
    for (int64_t b = 0; b < B; b++) {
      int64_t start = (int64_t)rng.randint(a.vocab_size);
      for (int64_t s = 0; s < S; s++) {
        tok[b * S + s] = (start + s) % a.vocab_size;
        tgt[b * S + s] = (start + s + 1) % a.vocab_size;
      }
    }
    LossOutput lo = m.loss(Tensor::from_vector(tok, {B, S}), Tensor::from_vector(tgt, {B, S}), 1.0, 0.0);
    for (auto& [n, t] : params) t->zero_grad();
    lo.loss.backward();
    {
      NoGradGuard ng;
      for (auto& [n, t] : params) {
        if (!t->requires_grad() || !t->grad().defined()) continue;
        float* w = t->data<float>();
        std::vector<float> g = t->grad().to_f32_vector();
        for (size_t i = 0; i < g.size(); i++) w[i] -= 0.3f * g[i];
      }
    }
    if (step == 0) first = lo.loss.item();
    last = lo.loss.item();
  }
  MESSAGE("training loss " << first << " -> " << last);
  CHECK(last < first * 0.5);
  SpeculativeStats st = compare_speculative(m, {3, 4, 5}, 40);
  MESSAGE("speculative (D = 2): drafted " << st.drafted << ", accepted " << st.accepted << " (rate "
                                          << st.acceptance_rate << "), " << st.main_forwards << " main forwards for "
                                          << st.generated << " tokens (" << st.tokens_per_forward
                                          << " tokens/forward), wall-clock speed-up " << st.speedup);
  CHECK(st.acceptance_rate > 0.5);
  CHECK(st.tokens_per_forward > 1.5);
}

TEST_CASE("generate: sampling is deterministic by seed") {
  Rng rng(9);
  Transformer m(tiny_args(0), rng);
  SamplingConfig c;
  c.temperature = 1.0;
  c.top_k = 20;
  c.top_p = 0.95;
  c.seed = 123;
  std::vector<int64_t> a = generate(m, {1, 2, 3}, 16, c), b = generate(m, {1, 2, 3}, 16, c);
  CHECK(a == b);
  c.seed = 124;
  std::vector<int64_t> d = generate(m, {1, 2, 3}, 16, c);
  CHECK(a != d);
  // temperature 0 is greedy whatever the seed
  SamplingConfig g;
  g.seed = 99;
  CHECK(generate(m, {1, 2, 3}, 8, g) == generate(m, {1, 2, 3}, 8));
}

TEST_CASE("generate: top-k and top-p filters on a hand-made distribution") {
  // p = softmax(log q) = q = [0.05, 0.4, 0.1, 0.3, 0.15]
  std::vector<double> q = {0.05, 0.4, 0.1, 0.3, 0.15};
  std::vector<float> logits;
  for (double x : q) logits.push_back((float)std::log(x));
  auto probs = [&](double T, int64_t k, double p) {
    SamplingConfig c;
    c.temperature = T;
    c.top_k = k;
    c.top_p = p;
    return sampling_probs(logits, c);
  };
  auto near = [](const std::vector<double>& a, const std::vector<double>& b) {
    for (size_t i = 0; i < a.size(); i++)
      if (std::abs(a[i] - b[i]) > 1e-6) return false;
    return a.size() == b.size();
  };
  CHECK(near(probs(1, 0, 1.0), q));
  CHECK(near(probs(1, 2, 1.0), {0, 0.4 / 0.7, 0, 0.3 / 0.7, 0}));               // top-2: ids 1, 3
  CHECK(near(probs(1, 0, 0.7), {0, 0.4 / 0.7, 0, 0.3 / 0.7, 0}));               // 0.4 + 0.3 reaches 0.7
  CHECK(near(probs(1, 0, 0.71), {0, 0.4 / 0.85, 0, 0.3 / 0.85, 0.15 / 0.85}));  // needs the 0.15 too
  CHECK(near(probs(1, 0, 0.1), {0, 1, 0, 0, 0}));                               // always at least one
  // top-p over the renormalised top-3 (0.4, 0.3, 0.15)/0.85: 0.47 + 0.35 = 0.82 reaches 0.75 with two tokens
  // (over the unrenormalised mass, 0.4 + 0.3 = 0.7 would not)
  CHECK(near(probs(1, 3, 0.75), {0, 0.4 / 0.7, 0, 0.3 / 0.7, 0}));
  CHECK(near(probs(0, 0, 1.0), {0, 1, 0, 0, 0}));                               // greedy
  // temperature 2: p ∝ q^(1/2)
  std::vector<double> t2(5);
  double z = 0;
  for (int i = 0; i < 5; i++) z += t2[i] = std::sqrt(q[i]);
  for (double& x : t2) x /= z;
  CHECK(near(probs(2, 0, 1.0), t2));
  // top-k ties keep the lower id
  std::vector<float> tie = {1, 2, 2, 0};
  SamplingConfig c;
  c.temperature = 1;
  c.top_k = 1;
  CHECK(sampling_probs(tie, c)[1] == 1.0);
  // empirical frequencies follow the filtered distribution
  Rng rng(1);
  c.top_k = 3;
  std::vector<int> count(5, 0);
  for (int i = 0; i < 20000; i++) count[sample_token(logits, c, rng)]++;
  std::vector<double> want = probs(1, 3, 1.0);
  for (int i = 0; i < 5; i++) CHECK(std::abs(count[i] / 20000.0 - want[i]) < 0.02);
  CHECK(count[0] == 0);
  CHECK(count[2] == 0);
  c.top_p = 0;
  CHECK(contains(error_of([&] { sampling_probs(logits, c); }), "top_p"));
  // A temperature that is not a finite number >= 0 (NaN would make every probability NaN and sample garbage).
  c.top_p = 1;
  for (double t : {std::nan(""), -1.0, (double)INFINITY}) {
    c.temperature = t;
    CHECK(contains(error_of([&] { sampling_probs(logits, c); }), "must be a finite number >= 0 (0 = greedy)"));
  }
}

// ---- V3.2: DSA blocks -------------------------------------------------------------------------------

TEST_CASE("transformer: DSA (index_topk > 0) blocks: decode == full forward, export -> import exact") {
  ModelArgs a = tiny_args(1);
  a.index_n_heads = 2;
  a.index_head_dim = 8;
  a.index_topk = 3;
  Rng rng(4);
  Transformer m(a, rng);
  REQUIRE(m.layers[0]->dsa);
  REQUIRE(!m.layers[0]->attn);
  std::map<std::string, Tensor*> p;
  for (auto& [name, t] : m.named_parameters()) p[name] = t;
  CHECK(p.count("layers.1.attn.indexer.wq_b.weight"));
  CHECK(p.count("mtp.0.attn.indexer.k_norm.bias"));
  CHECK(p.count("layers.0.attn.wq_a.weight"));
  Tensor tokens = Tensor::randint({2, 10}, rng, 0, a.vocab_size);
  {
    NoGradGuard ng;
    Tensor full = m.forward(tokens);
    auto cache = m.make_cache(2, 10);
    std::vector<Tensor> steps;
    for (int64_t t = 0; t < 10; t++) steps.push_back(m.forward(contiguous(slice(tokens, 1, t, t + 1)), t, cache.get()));
    double e = max_abs_diff(cat(steps, 1), full);
    MESSAGE("DSA model: decode vs full forward max |Δ| = " << e);
    CHECK(e <= 1e-5);
  }
  LossOutput lo = m.loss(tokens, tokens, 0.3, 0.01);
  lo.loss.backward();
  CHECK(p.at("layers.0.attn.wkv_b.weight")->grad().defined());
  TempDir tmp("dsa");
  save_model_dir(m, tmp / "m");
  Transformer back = load_model_dir(tmp / "m");
  CHECK(back.args.index_topk == 3);
  NoGradGuard ng;
  CHECK(max_abs_diff(back.forward(tokens), m.forward(tokens)) == 0.0);
  CHECK(generate_speculative(m, {1, 2, 3}, 10) == generate(m, {1, 2, 3}, 10));
}

// A DSA (V3.2) Transformer's training forward: loss(LossOptions{train.dsa}) returns the indexer KL (mean over
// the DSA blocks, main and MTP) apart from the LM total, and each stage's gradients land where V3.2 says.
TEST_CASE("transformer: DSA training forward — indexer loss apart, gradients by stage, sparse == inference") {
  ModelArgs a = tiny_args(1);
  a.index_n_heads = 2;
  a.index_head_dim = 8;
  a.index_topk = 3;  // < S: a real selection
  Rng rng(5);
  Transformer m(a, rng);
  const int64_t B = 2, S = 8;
  Tensor tokens = Tensor::randint({B, S}, rng, 0, a.vocab_size), targets = Tensor::randint({B, S}, rng, 0, a.vocab_size);
  auto grads_of = [&](bool indexer_part) {
    int64_t with = 0, without = 0;
    for (auto& [name, t] : m.named_parameters())
      if ((name.find(".indexer.") != std::string::npos) == indexer_part) (t->grad().defined() ? with : without)++;
    return std::pair<int64_t, int64_t>{with, without};
  };
  for (DSAStage stage : {DSAStage::dense_warmup, DSAStage::sparse}) {
    CAPTURE(dsa_stage_name(stage));
    LossOptions o;
    o.mtp_lambda = 0.3;
    o.train.dsa = true;
    o.train.dsa_stage = stage;
    o.train.measure_recall = true;
    for (auto& [name, t] : m.named_parameters()) t->zero_grad();
    LossOutput lo = m.loss(tokens, targets, o);
    REQUIRE(lo.indexer_loss.defined());
    CHECK(std::isfinite(lo.indexer_loss.item()));
    CHECK(lo.indexer_loss.item() >= 0);  // a KL
    CHECK(lo.indexer_recall >= 0);
    CHECK(lo.indexer_recall <= 1);
    // the indexer KL reaches the indexers (main blocks and MTP) and nothing else
    lo.indexer_loss.backward();
    auto [idx_with, idx_without] = grads_of(true);
    auto [main_with, main_without] = grads_of(false);
    CHECK(idx_without == 0);
    CHECK(idx_with == 3 * 5);  // wq_b, wk, k_norm.{weight,bias}, weights_proj in each of 3 DSA blocks (2 main + MTP)
    CHECK(main_with == 0);
    // and the LM total never reaches an indexer (its input is the selection, a constant)
    for (auto& [name, t] : m.named_parameters()) t->zero_grad();
    m.loss(tokens, targets, o).loss.backward();
    CHECK(grads_of(true).first == 0);
    CHECK(grads_of(false).first > 0);
  }
  // the sparse training forward computes the inference logits: the same main loss as the plain forward
  NoGradGuard ng;
  LossOptions o;
  o.train.dsa = true;
  double train_ce = m.loss(tokens, targets, o).main_loss.item();
  double infer_ce = cross_entropy(m.forward(tokens), targets).item();
  CHECK(train_ce == doctest::Approx(infer_ce).epsilon(1e-6));
}

// ---- packed sequences (segment_ids) ------------------------------------------------------------------

namespace {

// Packed rows of whole sequences for the tests below: row b holds the sequences runs[b] (lengths) one after
// another; sequence e has random tokens and targets = its next tokens, -100 at its last position (the next
// token belongs to the next sequence) and at one "prompt" position when it is long enough.
struct Packed {
  Tensor tokens, targets, segment_ids;  // [B, S]
  std::vector<Tensor> tokens_alone, targets_alone;  // [1, L_e] each, in row order
  std::vector<std::pair<int64_t, int64_t>> where;   // (row, start) of sequence e
};

Packed make_packed(const std::vector<std::vector<int64_t>>& runs, int64_t vocab, Rng& rng) {
  Packed p;
  const int64_t B = (int64_t)runs.size();
  std::vector<int64_t> tok, tgt, seg;
  for (int64_t b = 0; b < B; b++) {
    int64_t start = 0, id = 10 * b;
    for (int64_t L : runs[b]) {
      std::vector<int64_t> t(L + 1);
      for (int64_t& v : t) v = rng.randint(vocab);
      std::vector<int64_t> x(t.begin(), t.begin() + L), y(t.begin() + 1, t.end());
      y[L - 1] = -100;
      if (L >= 4) y[1] = -100;
      tok.insert(tok.end(), x.begin(), x.end());
      tgt.insert(tgt.end(), y.begin(), y.end());
      seg.insert(seg.end(), L, id++);
      p.tokens_alone.push_back(Tensor::from_vector(x, {1, L}));
      p.targets_alone.push_back(Tensor::from_vector(y, {1, L}));
      p.where.push_back({b, start});
      start += L;
    }
  }
  const int64_t S = (int64_t)tok.size() / B;
  p.tokens = Tensor::from_vector(tok, {B, S});
  p.targets = Tensor::from_vector(tgt, {B, S});
  p.segment_ids = Tensor::from_vector(seg, {B, S});
  return p;
}

int64_t count_targets(const Tensor& targets, int64_t from) {  // targets[:, from:] != -100
  int64_t n = 0;
  for (int64_t b = 0; b < targets.size(0); b++)
    for (int64_t i = from; i < targets.size(1); i++) n += targets.at({b, i}) != -100;
  return n;
}

}  // namespace

TEST_CASE("transformer: packed rows (segment_ids) == each sequence alone: logits, CE sums, gradients (MoE + MTP 1)") {
  // Main CE is a mean over the non-ignored targets, so the packed loss times its count must equal the sum over
  // the sequences of (loss alone × count alone) — for the main head and for MTP depth 1 (whose positions that
  // pair one sequence's hidden state with the next one's token are ignored by loss()). The same holds for the
  // gradients of those sums. Tolerances: the rope table's angles are float32 (as the official code's), so a
  // sequence moved to a later position differs from itself alone at that level; everything else is f64.
  ModelArgs a = tiny_args(1);
  Rng rng(21);
  Transformer m(a, rng, DType::f64);
  for (auto& [name, t] : m.named_parameters_and_buffers())
    if (name.find("gate.bias") != std::string::npos) fill_randn(*t, rng, 0.05);
  Packed p = make_packed({{6, 7}, {4, 5, 4}}, a.vocab_size, rng);
  const int64_t n_seq = (int64_t)p.tokens_alone.size();

  // logits at every position
  {
    NoGradGuard ng;
    Tensor logits = m.forward(p.tokens, 0, nullptr, p.segment_ids);
    double worst = 0;
    for (int64_t e = 0; e < n_seq; e++) {
      auto [b, start] = p.where[e];
      Tensor alone = m.forward(p.tokens_alone[e]);
      worst = std::max(worst, max_abs_diff(narrow(narrow(logits, 0, b, 1), 1, start, alone.size(1)), alone));
    }
    MESSAGE("packed vs alone logits: max |Δ| = " << worst);
    CHECK(worst <= 1e-5);
    // without the ids the later sequences see the earlier ones: the ids matter
    Tensor plain = m.forward(p.tokens);
    CHECK(max_abs_diff(plain, logits) > 1e-3);
  }

  // the CE sums and their gradients
  LossOptions opt;
  opt.mtp_lambda = 0.3;
  auto ce_sum = [&](const Tensor& tokens, const Tensor& targets, const Tensor& seg, int64_t* n_main, int64_t* n_mtp) {
    LossOptions o = opt;
    o.segment_ids = seg;
    LossOutput lo = m.loss(tokens, targets, o);
    REQUIRE(lo.mtp_losses.size() == 1);
    return std::pair{mul(lo.main_loss, (double)*n_main), mul(lo.mtp_losses[0], (double)*n_mtp)};
  };
  NamedParameters params = m.named_parameters();
  auto grads = [&](const Tensor& loss) {
    for (auto& [name, t] : params) t->zero_grad();
    loss.backward();
    std::vector<Tensor> g;
    for (auto& [name, t] : params) g.push_back(t->grad().defined() ? t->grad().clone_data() : Tensor::zeros(t->shape(), DType::f64));
    return g;
  };
  // expected counts: each sequence's own
  int64_t main_total = 0, mtp_total = 0;
  std::vector<int64_t> n_main(n_seq), n_mtp(n_seq);
  for (int64_t e = 0; e < n_seq; e++) {
    n_main[e] = count_targets(p.targets_alone[e], 0);
    n_mtp[e] = count_targets(p.targets_alone[e], 1);
    main_total += n_main[e], mtp_total += n_mtp[e];
  }
  // (two forwards each: the two sums share one graph, and each gets its own backward)
  Tensor main_packed = ce_sum(p.tokens, p.targets, p.segment_ids, &main_total, &mtp_total).first;
  Tensor mtp_packed = ce_sum(p.tokens, p.targets, p.segment_ids, &main_total, &mtp_total).second;
  std::vector<Tensor> g_main_packed = grads(main_packed), g_mtp_packed = grads(mtp_packed);
  double main_alone = 0, mtp_alone = 0;
  std::vector<Tensor> g_main_alone, g_mtp_alone;
  for (int64_t e = 0; e < n_seq; e++) {
    Tensor mn = ce_sum(p.tokens_alone[e], p.targets_alone[e], Tensor(), &n_main[e], &n_mtp[e]).first;
    Tensor mt = ce_sum(p.tokens_alone[e], p.targets_alone[e], Tensor(), &n_main[e], &n_mtp[e]).second;
    main_alone += mn.item(), mtp_alone += mt.item();
    std::vector<Tensor> gm = grads(mn), gt = grads(mt);
    for (size_t i = 0; i < params.size(); i++) {
      g_main_alone.resize(params.size()), g_mtp_alone.resize(params.size());
      g_main_alone[i] = g_main_alone[i].defined() ? add(g_main_alone[i], gm[i]) : gm[i];
      g_mtp_alone[i] = g_mtp_alone[i].defined() ? add(g_mtp_alone[i], gt[i]) : gt[i];
    }
  }
  MESSAGE("CE sums packed vs alone: main " << main_packed.item() << " vs " << main_alone << ", MTP " << mtp_packed.item()
                                            << " vs " << mtp_alone << " (" << main_total << " and " << mtp_total << " targets)");
  CHECK(std::abs(main_packed.item() - main_alone) <= 1e-5);
  CHECK(std::abs(mtp_packed.item() - mtp_alone) <= 1e-5);
  double worst_main = 0, worst_mtp = 0;
  for (size_t i = 0; i < params.size(); i++) {
    worst_main = std::max(worst_main, max_abs_diff(g_main_packed[i], g_main_alone[i]));
    worst_mtp = std::max(worst_mtp, max_abs_diff(g_mtp_packed[i], g_mtp_alone[i]));
  }
  MESSAGE("gradients of the CE sums, packed vs Σ alone, over " << params.size() << " parameters: max |Δ| main "
                                                                << worst_main << ", MTP " << worst_mtp);
  CHECK(worst_main <= 1e-5);
  CHECK(worst_mtp <= 1e-5);
  // the MTP module saw the same segments: every parameter of mtp.0 got a gradient from the MTP sum
  for (size_t i = 0; i < params.size(); i++)
    if (params[i].first.rfind("mtp.0.attn.", 0) == 0) CHECK(max_abs_diff(g_mtp_packed[i], Tensor::zeros(params[i].second->shape(), DType::f64)) > 0);
}

TEST_CASE("transformer: float64 gradcheck of the loss with segment_ids (MLA both modes, MoE, MTP)") {
  ModelArgs a = tiny_args(1);
  a.vocab_size = 16;
  a.dim = 8;
  a.inter_dim = 16;
  a.moe_inter_dim = 8;
  a.q_lora_rank = 8;
  a.kv_lora_rank = 8;
  a.qk_nope_head_dim = 4;
  a.qk_rope_head_dim = 4;
  a.v_head_dim = 4;
  Rng rng(5);
  Transformer m(a, rng, DType::f64);
  Packed p = make_packed({{3, 4}, {2, 5}}, a.vocab_size, rng);
  LossOptions opt;
  opt.mtp_lambda = 0.5;
  opt.balance_alpha = 0.1;
  opt.segment_ids = p.segment_ids;
  std::vector<Tensor> inputs;
  for (auto& [name, t] : m.named_parameters())
    for (const char* want : {"layers.0.attn.wkv_a.weight", "layers.1.attn.wq_b.weight", "layers.1.attn.wkv_b.weight",
                             "mtp.0.attn.wkv_a.weight", "mtp.0.eh_proj.weight"})
      if (name == want) inputs.push_back(*t);
  REQUIRE(inputs.size() == 5);
  for (MLAMode mode : {MLAMode::absorbed, MLAMode::naive}) {
    const std::string mode_name = mla_mode_name(mode);
    CAPTURE(mode_name);
    m.set_attn_mode(mode);
    {  // the ids change the loss (the later sequences no longer see the earlier ones)
      NoGradGuard ng;
      LossOptions plain = opt;
      plain.segment_ids = Tensor();
      CHECK(std::abs(m.loss(p.tokens, p.targets, opt).loss.item() - m.loss(p.tokens, p.targets, plain).loss.item()) > 1e-4);
    }
    GradcheckOptions go;
    go.max_elements_per_input = 64;
    GradcheckResult r = gradcheck([&](const std::vector<Tensor>&) { return m.loss(p.tokens, p.targets, opt).loss; }, inputs, go);
    MESSAGE(mode_name << ": gradcheck max abs error " << r.max_abs_error);
    CHECK_MESSAGE(r.ok, r.message);
  }
}

TEST_CASE("transformer: segment_ids errors name the call and the shapes; DSA blocks refuse them") {
  ModelArgs a = tiny_args(1);
  Rng rng(2);
  Transformer m(a, rng);
  Tensor tokens = Tensor::randint({2, 6}, rng, 0, a.vocab_size);
  NoGradGuard ng;
  std::string e = error_of([&] { m.forward(tokens, 0, nullptr, Tensor::zeros({2, 5}, DType::i64)); });
  CHECK(contains(e, "[transformer] Transformer::forward: segment_ids tensor (2, 5) i64 must be an i64 tensor [B, S] = (2, 6)"));
  e = error_of([&] { m.forward(tokens, 0, nullptr, Tensor::zeros({2, 6}, DType::i32)); });
  CHECK(contains(e, "segment_ids tensor (2, 6) i32 must be an i64 tensor"));
  LossOptions o;
  o.segment_ids = Tensor::zeros({1, 6}, DType::i64);
  e = error_of([&] { m.loss(tokens, tokens, o); });
  CHECK(contains(e, "[transformer] loss: segment_ids tensor (1, 6) i64 must be an i64 tensor [B, S] = (2, 6)"));
  auto cache = m.make_cache(2, 8);
  e = error_of([&] { m.forward(tokens, 0, cache.get(), Tensor::zeros({2, 6}, DType::i64)); });
  CHECK(contains(e, "(packed sequences) go with a forward without a KV cache"));
  e = error_of([&] { m.forward(tokens, 0, nullptr, Tensor::from_vector(std::vector<int64_t>{0, 1, 0, 0, 0, 0, 1, 1, 1, 2, 2, 2}, {2, 6})); });
  CHECK(contains(e, "[scaled_dot_product_attention] segment_ids"));
  CHECK(contains(e, "row 0 has segment id 0 at positions 0 and 2 with another segment between"));

  ModelArgs d = a;
  d.index_n_heads = 2;
  d.index_head_dim = 8;
  d.index_topk = 3;
  Transformer dsa(d, rng);
  e = error_of([&] { dsa.forward(tokens, 0, nullptr, Tensor::zeros({2, 6}, DType::i64)); });
  CHECK(e == "[dsa] segment_ids (packed sequences) are not supported for DSA blocks (layer 0)");
}
