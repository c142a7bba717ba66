// tests/models/test_config_sizes.cpp — what a config asks for, counted before anything is allocated
// (models/config.h: model_size, check_model_fits_memory), and sizes read from files:
//   * model_size(args).n_parameters equals the parameter count of a Transformer actually built from the args
//     (the independent reference), for a dense, an MoE (shared experts, two MTP modules) and a DSA (q-LoRA,
//     indexer, MoE without shared experts) config; so do the largest tensor, the RoPE table and the KV caches;
//   * a YAML `dim` of 2^62 or INT64_MAX, an HF config.json `hidden_size` of 2^62, max_batch_size × max_seq_len
//     past int64: errors naming the file and the keys with their values (they were a segfault, an endless loop);
//   * a config merely too big for memory (vocab_size 2^31 × dim 2^20 in f32; a distillation student's 2^40
//     inter_dim) names the keys and the bytes;
//   * caches of a wrapped size, a tokenizer whose counts wrap around, a safetensors shape past int64.
#include <doctest/doctest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

#include "data/tokenizer.h"
#include "models/config.h"
#include "models/json.h"
#include "models/mla.h"
#include "models/safetensors.h"
#include "models/transformer.h"
#include "tests/data/temp_dir.h"
#include "tests/test_util.h"
#include "train/config_yaml.h"

using namespace sg;
using sg::data::testing::slurp;
using sg::data::testing::spit;
using sg::data::testing::TempDir;
using sg::test::contains;
using sg::test::error_of;

namespace {

ModelArgs small_base() {
  ModelArgs a;
  a.max_batch_size = 2;
  a.max_seq_len = 16;
  a.original_seq_len = 16;
  a.vocab_size = 64;
  a.dim = 16;
  a.n_heads = 2;
  a.q_lora_rank = 0;
  a.kv_lora_rank = 8;
  a.qk_nope_head_dim = 8;
  a.qk_rope_head_dim = 4;
  a.v_head_dim = 6;
  return a;
}

ModelArgs dense_args() {  // every block dense, no q-LoRA, no MTP
  ModelArgs a = small_base();
  a.n_layers = 2;
  a.n_dense_layers = 2;
  a.inter_dim = 24;
  return a;
}

ModelArgs moe_mtp_args() {  // 1 dense + 2 MoE blocks, shared experts, two MTP modules (MoE blocks too)
  ModelArgs a = small_base();
  a.n_layers = 3;
  a.n_dense_layers = 1;
  a.inter_dim = 20;
  a.n_routed_experts = 4;
  a.n_shared_experts = 2;
  a.n_activated_experts = 2;
  a.moe_inter_dim = 8;
  a.score_func = "sigmoid";
  a.gate_bias = true;  // a buffer, not a parameter
  a.n_mtp_modules = 2;
  return a;
}

ModelArgs dsa_args() {  // V3.2: q-LoRA + the indexer, every block MoE without shared experts, one MTP module
  ModelArgs a = small_base();
  a.n_layers = 2;
  a.n_dense_layers = 0;
  a.q_lora_rank = 12;
  a.n_routed_experts = 4;
  a.n_shared_experts = 0;
  a.n_activated_experts = 2;
  a.moe_inter_dim = 10;
  a.index_topk = 4;
  a.index_n_heads = 2;
  a.index_head_dim = 8;
  a.n_mtp_modules = 1;
  return a;
}

// The micro YAML of tests/tools/test_cli.cpp with the given model sizes and the tokenizer's target vocabulary.
std::string micro_yaml(const std::string& dim, const std::string& max_seq_len = "16", const std::string& max_batch = "2",
                       int64_t vocab = 300) {
  return "model:\n  dim: " + dim + "\n  max_seq_len: " + max_seq_len + "\n  max_batch_size: " + max_batch +
         "\n  n_layers: 1\n  n_dense_layers: 1\n  inter_dim: 32\n  n_heads: 2\n  q_lora_rank: 0\n  kv_lora_rank: 8\n"
         "  qk_nope_head_dim: 8\n  qk_rope_head_dim: 4\n  v_head_dim: 8\n  original_seq_len: 16\n"
         "train:\n  batch_size: 2\n  seq_len: 16\n  steps: 1\n  warmup_steps: 0\n  eval_every: 0\n  out_dir: /nonexistent/run\n"
         "  data: {source: generated, n_stories: 40, vocab_size: " + std::to_string(vocab) + "}\n";
}

// A model directory whose config.json is the fixture's with `edit` applied (an empty model.safetensors: the
// size checks come before the weights are read).
std::string hf_dir_with(const TempDir& tmp, const std::function<void(Json&)>& edit) {
  Json config = Json::parse(slurp(sg::test::kFixtures + "config.json"), "config.json");
  edit(config);
  spit(tmp.file("config.json"), config.dump());
  spit(tmp.file("model.safetensors"), "");
  return tmp.path.string();
}

}  // namespace

TEST_CASE("model_size: the parameter count of the Transformer the config builds (dense, MoE + MTP, DSA)") {
  struct Case {
    const char* name;
    ModelArgs args;
  };
  for (const Case& c : {Case{"dense", dense_args()}, Case{"moe_mtp", moe_mtp_args()}, Case{"dsa", dsa_args()}}) {
    CAPTURE(c.name);
    Rng rng(1);
    Transformer m(c.args, rng);
    const ModelSize size = model_size(c.args, c.name);
    CHECK(size.n_parameters == m.num_parameters());
    int64_t largest = 0;
    for (auto& [name, t] : m.named_parameters()) largest = std::max(largest, t->numel());
    CHECK(size.largest.numel == largest);
    CHECK(size.rope_table_numel == m.rope.cos.numel() + m.rope.sin.numel());
    auto cache = m.make_cache(c.args.max_batch_size, c.args.max_seq_len);
    int64_t cached = 0;
    for (auto* group : {&cache->layers, &cache->mtp})
      for (const BlockCache& b : *group)
        cached += b.attn.kv.defined() ? b.attn.kv.numel() : b.dsa.mla.kv.numel() + b.dsa.indexer.k_cache.numel();
    CHECK(size.kv_cache_numel == cached);
  }
  // The numbers themselves for the dense one, by hand: 2·64·16 (embedding, head) + 16 (norm) + 2 blocks ×
  // [2·16 norms + wq 2·12·16 + wkv_a 12·16 + kv_norm 8 + wkv_b 2·14·8 + wo 16·2·6 + 3 · 24·16] = 2064 + 2·2184.
  CHECK(model_size(dense_args(), "dense").n_parameters == 6432);
}

TEST_CASE("model_size: a YAML dim of 2^62 or INT64_MAX, or a KV cache past int64, names the file and the keys") {
  std::string e = error_of([] { parse_pretrain_config(micro_yaml("4611686018427387904"), "big.yaml"); });
  CHECK_MESSAGE(contains(e, "[config] big.yaml: vocab_size 300 × dim (HF hidden_size) 4611686018427387904 (the embedding): "
                            "the element count overflows int64"), e);
  e = error_of([] { parse_pretrain_config(micro_yaml("9223372036854775807"), "max.yaml"); });
  CHECK_MESSAGE(contains(e, "[config] max.yaml: vocab_size 300 × dim (HF hidden_size) 9223372036854775807 (the embedding)"), e);
  e = error_of([] { parse_pretrain_config(micro_yaml("16", "1099511627776", "1099511627776"), "kv.yaml"); });
  CHECK_MESSAGE(contains(e, "[config] kv.yaml: max_batch_size 1099511627776 × max_seq_len (HF max_position_embeddings) "
                            "1099511627776 × kv_lora_rank + qk_rope_head_dim 12 × n_layers (HF num_hidden_layers) 1 (the KV caches): the element "
                            "count overflows int64"), e);
  CHECK(error_of([] { parse_pretrain_config(micro_yaml("16"), "ok.yaml"); }) == "");
}

TEST_CASE("model_size: an HF config.json hidden_size of 2^62 is named in the reader and in load_model_dir") {
  TempDir tmp("hf_big");
  const std::string dir = hf_dir_with(tmp, [](Json& c) { c.set("hidden_size", Json((int64_t)1 << 62)); });
  const std::string config = tmp.file("config.json");
  for (const std::string& e : {error_of([&] { load_model_args_json(config); }), error_of([&] { load_model_dir(dir); })})
    CHECK_MESSAGE(contains(e, "[config] " + config + ": vocab_size 512 × dim (HF hidden_size) 4611686018427387904 "
                              "(the embedding): the element count overflows int64"), e);
}

TEST_CASE("check_model_fits_memory: a model larger than the memory names its keys and the bytes") {
  // vocab_size 2^31 × dim 2^20 f32: every product fits in int64, the embedding alone is 8 PiB. load_model_dir
  // checks against this machine's memory (available_memory_bytes) before it allocates anything.
  TempDir tmp("hf_huge");
  const std::string dir = hf_dir_with(tmp, [](Json& c) {
    c.set("vocab_size", Json((int64_t)1 << 31));
    c.set("hidden_size", Json((int64_t)1 << 20));
  });
  CHECK(available_memory_bytes() > 0);
  std::string e = error_of([&] { load_model_dir(dir); });
  CHECK_MESSAGE(contains(e, "[config] " + tmp.file("config.json") + ": vocab_size 2147483648 × dim (HF hidden_size) "
                            "1048576 (the embedding) needs 9007199254740992 bytes (8.0 PiB) at 4 bytes an element, more than the "),
                e);
  CHECK_MESSAGE(contains(e, " of memory available"), e);

  // The same from a YAML file (load_pretrain_config: an f32 model at the tokenizer's target vocabulary).
  spit(tmp.file("huge.yaml"), micro_yaml("1048576", "16", "2", (int64_t)1 << 31));
  e = error_of([&] { load_pretrain_config(tmp.file("huge.yaml")); });
  CHECK_MESSAGE(contains(e, "[config] " + tmp.file("huge.yaml") + ": vocab_size 2147483648 × dim (HF hidden_size) 1048576 "
                            "(the embedding) needs"), e);

  // A distillation student is built beside the teacher: its overrides are checked too (64 TiB of FFN weight).
  spit(tmp.file("student.yaml"), micro_yaml("16") + "distill:\n  student:\n    inter_dim: 1099511627776\n  seq_len: 16\n");
  e = error_of([&] { load_pretrain_config(tmp.file("student.yaml")); });
  CHECK_MESSAGE(contains(e, "[config] " + tmp.file("student.yaml") + ": distill.student: inter_dim (HF intermediate_size) "
                            "1099511627776 × dim (HF hidden_size) 16 (a dense block's w1, w2 or w3) needs 70368744177664 "
                            "bytes (64.0 TiB) at 4 bytes an element"), e);

  // With a given budget: the largest tensor (the embedding, 64·16 f32 = 4096 bytes) first; with exactly that
  // much, the whole model: its 6432 parameters and the 64-element RoPE table, 6496 · 4 = 25984 bytes.
  const ModelArgs a = dense_args();
  e = error_of([&] { check_model_fits_memory(a, "x.yaml", 4, 4095); });
  CHECK_MESSAGE(contains(e, "[config] x.yaml: vocab_size 64 × dim (HF hidden_size) 16 (the embedding) needs 4096 bytes "
                            "(4.0 KiB) at 4 bytes an element, more than the 4095 bytes (4.0 KiB) of memory available"), e);
  e = error_of([&] { check_model_fits_memory(a, "x.yaml", 4, 4096); });
  CHECK_MESSAGE(contains(e, "[config] x.yaml: inter_dim (HF intermediate_size) 24 × dim (HF hidden_size) 16 × 3 × "
                            "n_layers (HF num_hidden_layers) 2 (the model's 6432 parameters and its RoPE table; most of "
                            "them in a dense block's w1, w2 or w3) needs 25984 bytes (25.4 KiB)"), e);
  CHECK(error_of([&] { check_model_fits_memory(a, "x.yaml", 4, 25984); }) == "");
}

TEST_CASE("sizes from files: caches, a tokenizer's counts, a safetensors shape past int64 are named errors") {
  // A cache of max_batch_size × max_seq_len rows whose element count wraps around (to 0: it was a 64-byte buffer).
  const ModelArgs a = dense_args();
  std::string e = error_of([&] { MLACache(a, MLAMode::naive, (int64_t)1 << 40, (int64_t)1 << 40); });
  CHECK_MESSAGE(contains(e, "[numel] shape (1099511627776, 1099511627776, 2, 12): the number of elements overflows int64"), e);
  Rng rng(1);
  Transformer m(a, rng);
  e = error_of([&] { m.make_cache((int64_t)1 << 62, 16); });
  CHECK_MESSAGE(contains(e, "[numel] shape (4611686018427387904, 16, 12)"), e);

  TempDir tmp("file_sizes");
  // merges = specials = 2^63 - 1: 256 + merges + specials wrapped around to 254, which matched vocab_size.
  spit(tmp.file("t.bpe"), "seekgrad-bpe 1\nvocab_size 254\nmerges 9223372036854775807\nspecials 9223372036854775807\n");
  e = error_of([&] { data::Tokenizer::load(tmp.file("t.bpe")); });
  CHECK_MESSAGE(contains(e, "[tokenizer] " + tmp.file("t.bpe") + ":4: 256 + merges 9223372036854775807 + specials "
                            "9223372036854775807 overflows int64 (vocab_size 254)"), e);

  // A safetensors header whose shape needs more than 2^63 bytes (guarded before this work; kept as a regression).
  const std::string header = R"({"x":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,16]}})";
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; i++) bytes[i] = (char)((header.size() >> (8 * i)) & 0xff);
  spit(tmp.file("x.safetensors"), bytes + header + std::string(16, '\0'));
  e = error_of([&] { read_safetensors(tmp.file("x.safetensors")); });
  CHECK_MESSAGE(contains(e, "tensor 'x': shape [4611686018427387904,4] has a negative dimension or too many elements"), e);
}
