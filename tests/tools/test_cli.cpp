// tests/tools/test_cli.cpp — the `seekgrad` data and model subcommands (tools/cli/commands.h), called
// as library functions, plus a few runs of the built binary (SEEKGRAD_BINARY_DIR/bin/seekgrad; those
// say so in a MESSAGE and check nothing when the binary has not been built):
//   * prepare: a generated corpus, and a zstd file + a plain file joined with <|endoftext|>; the shards
//     decode back to exactly the corpus; the val part starts at a document boundary; --max-bytes;
//   * export -> import of the official fixture (tests/fixtures/tiny_v2lite): same logits bit for bit;
//     an MTP model: the MTP layers are in the HF file and come back;
//   * import of a sharded checkpoint (two files + model.safetensors.index.json), of FP8 E4M3 weights with
//     block scales, and errors naming the file and the key (missing file, bad config key, bad index);
//   * generate: deterministic by seed; speculative == greedy; eval: finite loss near ln(V);
//   * generate --speculative on a model whose MTP modules agree with it by construction: the same text
//     as greedy in fewer main-model forwards than tokens; --check-greedy;
//   * eval --problems: the printed accuracy is the results file's, the results read back, the problems file
//     is never the output (however spelled), a missing tokenizer says what to do; the binary's flags.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iomanip>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "autograd/node.h"
#include "cuda/cuda_backend.h"
#include "data/chat.h"
#include "data/generators.h"
#include "data/reasoning.h"
#include "data/shards.h"
#include "data/tokenizer.h"
#include "models/json.h"
#include "models/safetensors.h"
#include "models/transformer.h"
#include "tests/data/temp_dir.h"
#include "tools/cli/commands.h"
#include "train/problems.h"
#include "train/reasoning_eval.h"

#ifndef SEEKGRAD_SOURCE_DIR
#define SEEKGRAD_SOURCE_DIR "."
#endif

using namespace sg;
using sg::data::testing::slurp;
using sg::data::testing::spit;
using sg::data::testing::TempDir;
namespace fs = std::filesystem;

namespace {

const std::string kFixture = std::string(SEEKGRAD_SOURCE_DIR) + "/tests/fixtures/tiny_v2lite";

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no error)";
}

// Every token of a split's shards, decoded.
std::string decode_split(const std::string& dir, const data::Tokenizer& tok) {
  std::vector<int32_t> all;
  for (const std::string& p : data::list_shards(dir)) {
    std::vector<int32_t> ids = data::read_shard(p);
    all.insert(all.end(), ids.begin(), ids.end());
  }
  return tok.decode(all);
}

Tensor fixture_tokens() {
  Json j = Json::parse(slurp(kFixture + "/tokens.json"), "tokens.json");
  std::vector<int64_t> ids;
  for (size_t b = 0; b < j.size(); b++)
    for (size_t t = 0; t < j[b].size(); t++) ids.push_back(j[b][t].get_int());
  return Tensor::from_vector(ids, {(int64_t)j.size(), (int64_t)j[0].size()});
}

bool bit_equal(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.to_f64_vector() == b.to_f64_vector();
}

// The fixture's config with MTP, re-initialised (1 MTP module), saved as a project model dir.
void make_mtp_model(const std::string& dir) {
  ModelArgs args = load_model_args_json(kFixture + "/config.json");
  args.n_mtp_modules = 1;
  Rng rng(3);
  Transformer m(args, rng);
  save_model_dir(m, dir);
}

// A small tokenizer (vocab <= the fixture's 512) for the generate tests.
data::Tokenizer small_tokenizer() { return data::Tokenizer::train(data::generate_story_corpus(5, 60), 320); }

std::string binary() {
#ifdef SEEKGRAD_BINARY_DIR
  fs::path p = fs::path(SEEKGRAD_BINARY_DIR) / "bin" / "seekgrad";
  if (fs::exists(p)) return p.string();
#endif
  return "";
}

// Runs a shell command, returns (exit status, stdout + stderr).
std::pair<int, std::string> run_cmd(const std::string& cmd) {
  std::string out;
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return {-1, ""};
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  int status = pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

}  // namespace

// ---- prepare -----------------------------------------------------------------------------------------

TEST_CASE("prepare: generated stories -> BPE -> train/val shards that decode back to the corpus") {
  TempDir tmp("prepare_gen");
  PrepareOptions opt;
  opt.generated_stories = 200;
  opt.seed = 4;
  opt.vocab_size = 400;
  opt.val_fraction = 0.1;
  opt.shard_tokens = 4000;  // several train shards
  opt.out_dir = tmp.file("out");
  PrepareResult r = prepare_data(opt);
  const std::string corpus = data::generate_story_corpus(4, 200);
  CHECK(r.n_bytes == (int64_t)corpus.size());
  CHECK(r.vocab_size <= 400);
  CHECK(r.train_shards.size() >= 2);
  CHECK(r.val_shards.size() == 1);
  CHECK(r.bytes_per_token > 2.0);  // BPE compresses English well beyond 1 byte per token
  CHECK(r.n_val_bytes == doctest::Approx(0.1 * (double)r.n_bytes).epsilon(0.05));

  data::Tokenizer tok = data::Tokenizer::load(tmp.file("out/tokenizer.bpe"));
  CHECK(tok.vocab_size() == r.vocab_size);
  const std::string train = decode_split(tmp.file("out/train"), tok), val = decode_split(tmp.file("out/val"), tok);
  CHECK(train + val == corpus);
  CHECK(train.ends_with("<|endoftext|>\n"));  // the split is at a document boundary
  CHECK(val.rfind("<|endoftext|>") != std::string::npos);
  CHECK(Json::parse(slurp(tmp.file("out/prepare.json"))).at("train_tokens").get_int() == r.n_train_tokens);

  // A second, smaller run into the same dir leaves no stale shards behind.
  opt.generated_stories = 50;
  opt.shard_tokens = 1 << 20;
  PrepareResult r2 = prepare_data(opt);
  CHECK(data::list_shards(tmp.file("out/train")).size() == 1);
  CHECK(r2.n_train_tokens < r.n_train_tokens);

  // New data for an existing tokenizer: encoded with it, not retrained.
  PrepareOptions again;
  again.generated_stories = 30;
  again.seed = 11;
  again.tokenizer_path = tmp.file("out/tokenizer.bpe");
  again.out_dir = tmp.file("out2");
  PrepareResult r3 = prepare_data(again);
  CHECK(slurp(tmp.file("out2/tokenizer.bpe")) == slurp(tmp.file("out/tokenizer.bpe")));
  data::Tokenizer tok2 = data::Tokenizer::load(tmp.file("out/tokenizer.bpe"));
  CHECK(r3.vocab_size == tok2.vocab_size());
  CHECK(decode_split(tmp.file("out2/train"), tok2) + decode_split(tmp.file("out2/val"), tok2) == data::generate_story_corpus(11, 30));
}

TEST_CASE("prepare: a zstd file and a plain file, joined with <|endoftext|>; --max-bytes") {
  TempDir tmp("prepare_zst");
  std::string a;
  for (int i = 0; i < 300; i++) a += "Line " + std::to_string(i) + ": the cat sat on the mat. Ünïcödé ✓\n";
  const std::string b = data::generate_story_corpus(9, 40);
  data::write_zstd_file(tmp.file("a.txt.zst"), a);
  spit(tmp.file("b.txt"), b);
  REQUIRE(fs::file_size(tmp.file("a.txt.zst")) < a.size() / 4);  // really compressed

  PrepareOptions opt;
  opt.text_paths = {tmp.file("a.txt.zst"), tmp.file("b.txt")};
  opt.vocab_size = 300;
  opt.val_fraction = 0.05;
  opt.out_dir = tmp.file("out");
  std::ostringstream log;
  PrepareResult r = prepare_data(opt, &log);
  const std::string corpus = a + "\n<|endoftext|>\n" + b;
  CHECK(r.n_bytes == (int64_t)corpus.size());
  CHECK(log.str().find("zstd") != std::string::npos);
  data::Tokenizer tok = data::Tokenizer::load(r.tokenizer_path);
  CHECK(decode_split(tmp.file("out/train"), tok) + decode_split(tmp.file("out/val"), tok) == corpus);

  opt.max_bytes = 5000;
  opt.val_fraction = 0.2;
  r = prepare_data(opt);
  CHECK(r.n_bytes <= 5000);
  CHECK(r.n_bytes > 2500);
  tok = data::Tokenizer::load(r.tokenizer_path);
  CHECK(decode_split(tmp.file("out/train"), tok) + decode_split(tmp.file("out/val"), tok) == a.substr(0, r.n_bytes));
}

TEST_CASE("prepare: errors name the file or the option") {
  TempDir tmp("prepare_err");
  PrepareOptions opt;
  opt.out_dir = tmp.file("out");
  CHECK(error_of([&] { prepare_data(opt); }).find("--text") != std::string::npos);
  opt.text_paths = {tmp.file("missing.txt")};
  std::string e = error_of([&] { prepare_data(opt); });
  CHECK(e.find("[prepare]") == 0);
  CHECK(e.find("missing.txt") != std::string::npos);
  opt.generated_stories = 5;
  opt.text_paths = {};
  opt.tokenizer_path = tmp.file("missing.bpe");
  e = error_of([&] { prepare_data(opt); });
  CHECK(e.find("[prepare]") == 0);
  CHECK(e.find("missing.bpe") != std::string::npos);
  opt.generated_stories = 0;
  opt.tokenizer_path = "";
  spit(tmp.file("bad.zst"), std::string("\x28\xB5\x2F\xFD garbage", 12));
  opt.text_paths = {tmp.file("bad.zst")};
  CHECK(error_of([&] { prepare_data(opt); }).find("bad.zst") != std::string::npos);
}

// ---- export / import ---------------------------------------------------------------------------------

TEST_CASE("export -> import of the official fixture: identical logits; model card; MTP layers round-trip") {
  TempDir tmp("export_import");
  cli::ExportResult ex = cli::export_hf_model(kFixture, tmp.file("hf"));
  CHECK(ex.n_tensors == 131);
  CHECK(fs::exists(tmp.file("hf/config.json")));
  CHECK(fs::exists(tmp.file("hf/model.safetensors")));
  const std::string card = slurp(tmp.file("hf/README.md"));
  CHECK(card.find("DeepseekV3ForCausalLM") != std::string::npos);
  CHECK(card.find("active per token") != std::string::npos);

  cli::ImportResult im = cli::import_hf_model(tmp.file("hf"), tmp.file("proj"));
  CHECK(im.n_tensors_in == 131);
  CHECK(im.n_parameters == ex.n_parameters);
  Transformer a = load_model_dir(kFixture), b = load_model_dir(tmp.file("proj"));
  NoGradGuard ng;
  Tensor tokens = fixture_tokens();
  CHECK(bit_equal(a.forward(tokens), b.forward(tokens)));

  // With an MTP module: exported as model.layers.3.* with the embedding/head copies, and back.
  make_mtp_model(tmp.file("mtp_src"));
  cli::ExportResult ex2 = cli::export_hf_model(tmp.file("mtp_src"), tmp.file("mtp_hf"));
  SafeTensorsFile f = read_safetensors(tmp.file("mtp_hf/model.safetensors"));
  for (const char* name : {"model.layers.3.eh_proj.weight", "model.layers.3.enorm.weight", "model.layers.3.hnorm.weight",
                           "model.layers.3.shared_head.norm.weight", "model.layers.3.shared_head.head.weight",
                           "model.layers.3.embed_tokens.weight", "model.layers.3.self_attn.kv_a_proj_with_mqa.weight"})
    CHECK_MESSAGE(f.contains(name), name);
  CHECK(ex2.n_tensors == (int64_t)f.tensors.size());
  CHECK(Json::parse(slurp(tmp.file("mtp_hf/config.json"))).at("num_nextn_predict_layers").get_int() == 1);
  cli::import_hf_model(tmp.file("mtp_hf"), tmp.file("mtp_proj"));
  Transformer c = load_model_dir(tmp.file("mtp_src")), d = load_model_dir(tmp.file("mtp_proj"));
  Tensor hc = c.hidden(tokens), hd = d.hidden(tokens);
  Tensor next = Tensor::from_vector(std::vector<int64_t>(48, 7), {2, 24});
  CHECK(bit_equal(c.mtp_logits(0, c.mtp_forward(0, next, hc)), d.mtp_logits(0, d.mtp_forward(0, next, hd))));
}

TEST_CASE("import: a sharded checkpoint (two files + model.safetensors.index.json), with BF16 tensors") {
  TempDir tmp("import_sharded");
  SafeTensorsFile f = read_safetensors(kFixture + "/model.safetensors");
  std::vector<StTensor> part1, part2;
  Json weight_map = Json::object();
  for (size_t i = 0; i < f.tensors.size(); i++) {
    const bool second = i >= f.tensors.size() / 2;
    (second ? part2 : part1).push_back(f.tensors[i]);
    weight_map.set(f.tensors[i].name, second ? "model-00002-of-00002.safetensors" : "model-00001-of-00002.safetensors");
  }
  // One tensor stored as BF16: the import reads it exactly (as its bf16 value).
  REQUIRE(part2.back().name == "model.norm.weight");
  std::vector<float> norm = to_f32(part2.back());
  for (float& v : norm) v *= 1.37f;  // not representable in bf16, so rounding shows
  part2.back() = from_f32("model.norm.weight", part2.back().shape, norm.data(), StDType::BF16);
  fs::create_directories(tmp.file("hf"));
  fs::copy_file(kFixture + "/config.json", tmp.file("hf/config.json"));
  write_safetensors(tmp.file("hf/model-00001-of-00002.safetensors"), part1);
  write_safetensors(tmp.file("hf/model-00002-of-00002.safetensors"), part2);
  Json index = Json::object();
  index.set("metadata", Json(Json::Object{{"total_size", Json(5155000)}}));
  index.set("weight_map", weight_map);
  spit(tmp.file("hf/model.safetensors.index.json"), index.dump(2));

  cli::ImportResult r = cli::import_hf_model(tmp.file("hf"), tmp.file("proj"));
  CHECK(r.source_files.size() == 2);
  CHECK(r.n_tensors_in == 131);
  Transformer a = load_model_dir(kFixture), b = load_model_dir(tmp.file("proj"));
  std::vector<float> got = b.norm.weight.to_f32_vector();
  for (size_t i = 0; i < got.size(); i++) CHECK(got[i] == bf16_to_f32(f32_to_bf16(norm[i])));
  std::vector<double> orig = a.norm.weight.to_f64_vector();
  for (int64_t i = 0; i < (int64_t)orig.size(); i++) b.norm.weight.set_at({i}, orig[i]);
  NoGradGuard ng;
  Tensor tokens = fixture_tokens();
  CHECK(bit_equal(a.forward(tokens), b.forward(tokens)));  // everything else is the fixture, bit for bit

  // The index names a file that is not there / a file holds a tensor the index does not list.
  fs::rename(tmp.file("hf/model-00002-of-00002.safetensors"), tmp.file("hf/elsewhere.safetensors"));
  std::string e = error_of([&] { cli::import_hf_model(tmp.file("hf"), tmp.file("proj2")); });
  CHECK(e.find("[import]") == 0);
  CHECK(e.find("model.safetensors.index.json") != std::string::npos);
  CHECK(e.find("model-00002-of-00002.safetensors") != std::string::npos);
  fs::rename(tmp.file("hf/elsewhere.safetensors"), tmp.file("hf/model-00002-of-00002.safetensors"));
  Json bad = index;
  Json wm = bad.at("weight_map");
  Json wm2 = Json::object();
  for (const auto& [k, v] : wm.items())
    if (k != "model.norm.weight") wm2.set(k, v);
  bad.set("weight_map", wm2);
  spit(tmp.file("hf/model.safetensors.index.json"), bad.dump(2));
  e = error_of([&] { cli::import_hf_model(tmp.file("hf"), tmp.file("proj2")); });
  CHECK(e.find("model.norm.weight") != std::string::npos);
  CHECK(e.find("model-00002-of-00002.safetensors") != std::string::npos);
  CHECK(!fs::exists(tmp.file("proj2")));
}

TEST_CASE("import: FP8 E4M3 weights with 128x128 block scales are kept, or dequantized with --fp8 dequant") {
  CHECK(cli::fp8_e4m3_to_f32(0x38) == 1.0f);
  CHECK(cli::fp8_e4m3_to_f32(0x7E) == 448.0f);           // the largest finite value
  CHECK(cli::fp8_e4m3_to_f32(0xFE) == -448.0f);
  CHECK(cli::fp8_e4m3_to_f32(0x01) == std::ldexp(1.0f, -9));  // the smallest subnormal
  CHECK(cli::fp8_e4m3_to_f32(0x08) == std::ldexp(1.0f, -6));  // the smallest normal
  CHECK(std::isnan(cli::fp8_e4m3_to_f32(0x7F)));

  TempDir tmp("import_fp8");
  SafeTensorsFile f = read_safetensors(kFixture + "/model.safetensors");
  const std::string name = "model.layers.0.mlp.down_proj.weight";  // [128, 256]: 1 x 2 blocks
  std::vector<StTensor> tensors;
  std::vector<float> expect;
  for (const StTensor& t : f.tensors) {
    if (t.name != name) {
      tensors.push_back(t);
      continue;
    }
    REQUIRE(t.shape == std::vector<int64_t>{128, 256});
    std::vector<float> w = to_f32(t);
    std::vector<float> scale = {0.0f, 0.0f};  // per 128x128 block: max|w| / 448
    for (int64_t i = 0; i < 128; i++)
      for (int64_t j = 0; j < 256; j++) scale[j / 128] = std::max(scale[j / 128], std::abs(w[i * 256 + j]) / 448.0f);
    StTensor q{name, StDType::F8_E4M3, t.shape, std::vector<uint8_t>(128 * 256)};
    for (int64_t i = 0; i < 128 * 256; i++) {
      float x = w[i] / scale[(i % 256) / 128];
      int best = 0;
      for (int c = 0; c < 256; c++)  // the nearest code
        if (c != 0x7F && c != 0xFF && std::abs(cli::fp8_e4m3_to_f32((uint8_t)c) - x) < std::abs(cli::fp8_e4m3_to_f32((uint8_t)best) - x)) best = c;
      q.bytes[i] = (uint8_t)best;
      expect.push_back(cli::fp8_e4m3_to_f32((uint8_t)best) * scale[(i % 256) / 128]);
    }
    tensors.push_back(q);
    tensors.push_back(from_f32(name + "_scale_inv", {1, 2}, scale.data()));
  }
  fs::create_directories(tmp.file("hf"));
  Json config = Json::parse(slurp(kFixture + "/config.json"));
  Json qc = Json::object();
  qc.set("quant_method", "fp8");
  qc.set("weight_block_size", Json(Json::Array{Json(128), Json(128)}));
  config.set("quantization_config", qc);
  spit(tmp.file("hf/config.json"), config.dump(2));
  write_safetensors(tmp.file("hf/model.safetensors"), tensors);
  cli::ImportResult r = cli::import_hf_model(tmp.file("hf"), tmp.file("proj"), "dequant", nullptr);
  CHECK(r.n_fp8_dequantized == 1);
  CHECK(r.n_tensors_in == 132);
  Transformer m = load_model_dir(tmp.file("proj"));
  CHECK(m.layers[0]->dense_ffn->w2.weight.to_f32_vector() == expect);
  // The default keeps the codes and scales: the weight dequantizes to the same numbers.
  cli::ImportResult rn = cli::import_hf_model(tmp.file("hf"), tmp.file("proj_fp8"));
  CHECK(rn.n_fp8_kept == 1);
  CHECK(rn.n_fp8_dequantized == 0);
  Transformer mn = load_model_dir(tmp.file("proj_fp8"));
  CHECK(mn.layers[0]->dense_ffn->w2.is_fp8_weight());
  CHECK(mn.layers[0]->dense_ffn->w2.dense_weight().to_f32_vector() == expect);

  // An FP8 weight without its scale is an error naming both.
  std::erase_if(tensors, [&](const StTensor& t) { return t.name == name + "_scale_inv"; });
  write_safetensors(tmp.file("hf/model.safetensors"), tensors);
  std::string e = error_of([&] { cli::import_hf_model(tmp.file("hf"), tmp.file("proj")); });
  CHECK(e.find(name + "_scale_inv") != std::string::npos);
  CHECK(e.find("model.safetensors") != std::string::npos);
}

TEST_CASE("import: errors name the file and the key") {
  TempDir tmp("import_err");
  fs::create_directories(tmp.file("hf"));
  std::string e = error_of([&] { cli::import_hf_model(tmp.file("hf"), tmp.file("out")); });
  CHECK(e.find("config.json") != std::string::npos);
  CHECK(e.find("no such file") != std::string::npos);

  Json config = Json::parse(slurp(kFixture + "/config.json"));
  config.set("hidden_sizee", Json(128));
  spit(tmp.file("hf/config.json"), config.dump(2));
  fs::copy_file(kFixture + "/model.safetensors", tmp.file("hf/model.safetensors"));
  e = error_of([&] { cli::import_hf_model(tmp.file("hf"), tmp.file("out")); });
  CHECK(e.find("hidden_sizee") != std::string::npos);
  CHECK(e.find("config.json") != std::string::npos);

  // A missing tensor: named, with the file it should have been in.
  fs::copy_file(kFixture + "/config.json", tmp.file("hf/config.json"), fs::copy_options::overwrite_existing);
  SafeTensorsFile f = read_safetensors(kFixture + "/model.safetensors");
  std::vector<StTensor> some;
  for (const StTensor& t : f.tensors)
    if (t.name != "model.layers.1.mlp.gate.weight") some.push_back(t);
  write_safetensors(tmp.file("hf/model.safetensors"), some);
  e = error_of([&] { cli::import_hf_model(tmp.file("hf"), tmp.file("out")); });
  CHECK(e.find("[import]") == 0);
  CHECK(e.find("model.layers.1.mlp.gate.weight") != std::string::npos);
  CHECK(e.find(tmp.file("hf")) != std::string::npos);
  CHECK(!fs::exists(tmp.file("out")));
  CHECK(!fs::exists(tmp.file("out.import.tmp")));

  CHECK(error_of([&] { cli::export_hf_model(tmp.file("nope"), tmp.file("x")); }).find("nope") != std::string::npos);
  // An existing directory that is not a model is never replaced.
  fs::create_directories(tmp.file("precious"));
  spit(tmp.file("precious/notes.txt"), "keep me");
  e = error_of([&] { cli::export_hf_model(kFixture, tmp.file("precious")); });
  CHECK(e.find("refusing to replace") != std::string::npos);
  CHECK(slurp(tmp.file("precious/notes.txt")) == "keep me");
}

// ---- generate / eval ---------------------------------------------------------------------------------

TEST_CASE("generate: deterministic by seed; speculative equals greedy and reports its numbers") {
  Transformer model = load_model_dir(kFixture);
  data::Tokenizer tok = small_tokenizer();
  cli::GenerateOptions opt;
  opt.prompt = "Once upon a time, a little cat";
  opt.max_new = 24;
  opt.sampling = {0.8, 40, 0.95, 7};
  opt.stop_at_eos = false;
  cli::GenerateResult a = cli::generate_text(model, tok, opt), b = cli::generate_text(model, tok, opt);
  CHECK(a.new_ids.size() == 24);
  CHECK(a.new_ids == b.new_ids);
  CHECK(a.completion == b.completion);
  const std::vector<int32_t> prompt_ids = tok.encode(opt.prompt);
  CHECK(a.prompt_ids == std::vector<int64_t>(prompt_ids.begin(), prompt_ids.end()));
  opt.sampling.seed = 8;
  CHECK(cli::generate_text(model, tok, opt).new_ids != a.new_ids);
  for (int64_t id : a.new_ids) CHECK(id < model.args.vocab_size);

  // The fixture has no MTP module: --speculative is an error that says so.
  opt.speculative = true;
  CHECK(error_of([&] { cli::generate_text(model, tok, opt); }).find("num_nextn_predict_layers") != std::string::npos);

  TempDir tmp("generate");
  make_mtp_model(tmp.file("mtp"));
  Transformer mtp = load_model_dir(tmp.file("mtp"));
  cli::GenerateResult s = cli::generate_text(mtp, tok, opt);
  REQUIRE(s.speculative);
  CHECK(s.new_ids.size() == 24);
  CHECK(s.new_ids == generate(mtp, s.prompt_ids, 24));
  CHECK(s.speculative->generated == 24);
  CHECK(s.speculative->tokens_per_forward >= 1.0);
  // The reported numbers add up (every main forward yields one token of its own plus the drafts it
  // accepted); the speed-up needs the greedy baseline, which only --check-greedy runs.
  const SpeculativeStats& st = *s.speculative;
  CHECK(st.generated == st.main_forwards + st.accepted);
  CHECK(st.accepted <= st.drafted);
  CHECK(st.acceptance_rate == doctest::Approx((double)st.accepted / (double)st.drafted));
  CHECK(st.tokens_per_forward == doctest::Approx((double)st.generated / (double)st.main_forwards));
  CHECK(st.speedup == 0);  // plain greedy was not run (that is --check-greedy)

  // A tokenizer with more ids than the model: refused.
  data::Tokenizer big = data::Tokenizer::train(data::generate_story_corpus(5, 100), 600);
  REQUIRE(big.vocab_size() > 512);
  opt.speculative = false;
  CHECK(error_of([&] { cli::generate_text(model, big, opt); }).find("vocab_size is 512") != std::string::npos);
}

TEST_CASE("eval: the random fixture scores about ln(V) on prepared shards") {
  TempDir tmp("eval");
  PrepareOptions p;
  p.generated_stories = 150;
  p.vocab_size = 500;
  p.val_fraction = 0.2;
  p.out_dir = tmp.file("data");
  prepare_data(p);
  Transformer model = load_model_dir(kFixture);
  EvalOptions opt;
  opt.batches = 3;
  opt.seq_len = 64;
  opt.batch_size = 4;
  EvalResult r = evaluate_lm(model, find_eval_shards(tmp.file("data")), opt);  // finds data/val
  CHECK(r.batches == 3);
  CHECK(r.tokens == 3 * 4 * 64);
  CHECK(std::isfinite(r.loss));
  MESSAGE("fixture eval loss " << r.loss << " vs ln(512) = " << std::log(512.0));
  CHECK(r.loss > std::log(512.0) - 0.3);  // an untrained model cannot beat chance by much
  CHECK(r.loss < std::log(512.0) + 1.0);  // nor be far worse: its logits are small
  CHECK(r.perplexity == doctest::Approx(std::exp(r.loss)));
  CHECK(evaluate_lm(model, find_eval_shards(tmp.file("data/val")), opt).loss == r.loss);  // same windows

  // More batches than the shards hold: capped, no window twice.
  opt.batches = 100000;
  CHECK(evaluate_lm(model, find_eval_shards(tmp.file("data")), opt).batches < 100000);
  opt.seq_len = 1000;
  CHECK(error_of([&] { evaluate_lm(model, find_eval_shards(tmp.file("data")), opt); }).find("max_seq_len") !=
        std::string::npos);
  CHECK(error_of([&] { find_eval_shards(tmp.file("nothing")); }).find("nothing") != std::string::npos);
}

// ---- the binary --------------------------------------------------------------------------------------

TEST_CASE("seekgrad binary: --help of each subcommand; prepare + export + generate end to end") {
  const std::string bin = binary();
  REQUIRE_MESSAGE(!bin.empty(), "bin/seekgrad is not built (the build makes it with test_tools)");
  for (const char* sub : {"prepare", "generate", "eval", "import", "export"}) {
    auto [rc, out] = run_cmd(bin + " " + sub + " --help");
    CHECK_MESSAGE(rc == 0, sub);
    CHECK_MESSAGE(out.find("--") != std::string::npos, out);
  }
  CHECK(run_cmd(bin + " prepare --help").second.find("--val-fraction") != std::string::npos);

  TempDir tmp("binary");
  auto [rc, out] = run_cmd(bin + " prepare --generated-stories 60 --vocab 300 --out " + tmp.file("d"));
  CHECK_MESSAGE(rc == 0, out);
  CHECK(out.find("bytes/token") != std::string::npos);
  std::tie(rc, out) = run_cmd(bin + " export --model " + kFixture + " --out " + tmp.file("hf") + " --tokenizer " + tmp.file("d/tokenizer.bpe"));
  CHECK_MESSAGE(rc == 0, out);
  CHECK(fs::exists(tmp.file("hf/tokenizer.bpe")));
  std::tie(rc, out) = run_cmd(bin + " generate --model " + tmp.file("hf") + " --tokenizer " + tmp.file("hf/tokenizer.bpe") +
                              " --prompt 'Once upon a time' --max-new 8 --seed 3");
  CHECK_MESSAGE(rc == 0, out);
  CHECK(out.find("Once upon a time") == 0);
  CHECK(out.find("8 new tokens") != std::string::npos);
  std::tie(rc, out) = run_cmd(bin + " eval --model " + tmp.file("hf") + " --data " + tmp.file("nowhere"));
  CHECK(rc == 1);
  CHECK(out.find("nowhere") != std::string::npos);
}

// ---- trace ------------------------------------------------------------------------------------------------

// `seekgrad trace --config F --stage pretrain --to P`: one step's gradient path (train/trace.h, checked by value in
// tests/train/test_trace.cpp); `seekgrad trace` alone is still chapter 1's traced sweep; wrong uses are errors.
TEST_CASE("seekgrad trace: the gradient path of a pretrain step to a parameter; chapter 1 without --config") {
  const std::string bin = binary();
  REQUIRE_MESSAGE(!bin.empty(), "bin/seekgrad is not built (the build makes it with test_tools)");
  TempDir tmp("trace");
  const std::string cfg = tmp.file("micro.yaml");
  std::ofstream(cfg) << "model:\n  dim: 32\n  n_layers: 2\n  n_dense_layers: 1\n  inter_dim: 64\n  n_heads: 2\n"
                        "  q_lora_rank: 16\n  kv_lora_rank: 16\n  qk_nope_head_dim: 8\n  qk_rope_head_dim: 8\n"
                        "  v_head_dim: 8\n  n_routed_experts: 4\n  n_shared_experts: 1\n  n_activated_experts: 2\n"
                        "  moe_inter_dim: 32\n  n_mtp_modules: 1\n  max_batch_size: 2\n  max_seq_len: 16\n"
                        "  original_seq_len: 16\n"
                        "train:\n  batch_size: 2\n  seq_len: 16\n  steps: 4\n  warmup_steps: 1\n  threads: 1\n"
                        "  out_dir: " << tmp.file("run") << "\n  data: {source: generated, n_stories: 40, vocab_size: 300}\n";
  auto [rc, out] = run_cmd(bin + " trace --config " + cfg + " --stage pretrain --to layers.0.attn.wkv_a.weight --dot " +
                           tmp.file("t.dot"));
  CHECK_MESSAGE(rc == 0, out);
  CHECK_MESSAGE(out.find("trace: stage pretrain, step 0") != std::string::npos, out);
  CHECK(out.find("-> layers.0.attn.wkv_a.weight (24, 32)") != std::string::npos);
  CHECK(out.find("parameter layers.0.attn.wkv_a.weight: grad (24, 32), norm ") != std::string::npos);
  CHECK(fs::exists(tmp.file("t.dot")));

  std::tie(rc, out) = run_cmd(bin + " trace --config " + cfg + " --stage dpo --to layers.0.attn.wkv_a.weight");
  CHECK(rc == 1);
  CHECK_MESSAGE(out.find("[trace] unknown stage 'dpo' (known: pretrain, sft, grpo)") != std::string::npos, out);
  std::tie(rc, out) = run_cmd(bin + " trace --config " + cfg + " --to layers.9.attn.wkv_a.weight");
  CHECK(rc == 1);
  CHECK_MESSAGE(out.find("no parameter 'layers.9.attn.wkv_a.weight'") != std::string::npos, out);
  std::tie(rc, out) = run_cmd(bin + " trace --config " + cfg);
  CHECK(rc == 1);
  CHECK(out.find("--config needs --to PARAM") != std::string::npos);

  std::tie(rc, out) = run_cmd(bin + " trace");
  CHECK_MESSAGE(rc == 0, out);
  CHECK(out.find("backward sweep: 8 nodes from loss/cross_entropy") != std::string::npos);
  CHECK(out.find("  %7 ") != std::string::npos);  // the sweep numbers nodes like the tape listing
}

// ---- generate --speculative: fewer main forwards than tokens -------------------------------------------

namespace {

// The fixture's shape with D MTP modules, rebuilt so that the drafts are provably right: every block's
// output projection (attn.wo, ffn w2 of the dense MLP, experts and shared experts) is zero, so each block
// adds exactly 0 and the main model is a bigram lookup, next(t) = argmax head · norm(Emb t). Each MTP
// module's eh_proj is [I | 0] (it keeps enorm(Emb(t_{i+k})) and drops the hidden part) and its block adds
// 0, so module k at position i drafts next(t_{i+k}) = t_{i+k+1}: what the main model will say. Every
// draft is accepted; the output is still an arbitrary walk through the vocabulary.
Transformer agreeing_mtp_model(int64_t n_mtp) {
  ModelArgs args = load_model_args_json(kFixture + "/config.json");
  args.n_mtp_modules = n_mtp;
  Rng rng(11);
  Transformer m(args, rng);
  NoGradGuard no_grad;
  auto ends_with = [](const std::string& s, const std::string& tail) {
    return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
  };
  for (auto& [name, t] : m.named_parameters()) {
    float* w = t->data<float>();
    if (ends_with(name, "attn.wo.weight") || ends_with(name, ".w2.weight")) std::fill(w, w + t->numel(), 0.0f);
    if (ends_with(name, "eh_proj.weight")) {  // [d, 2d]
      const int64_t d = t->size(0);
      for (int64_t i = 0; i < d; i++)
        for (int64_t j = 0; j < 2 * d; j++) w[i * 2 * d + j] = j == i ? 1.0f : 0.0f;
    }
  }
  return m;
}

}  // namespace

TEST_CASE("generate --speculative: same text as greedy, fewer main-model forwards than tokens") {
  data::Tokenizer tok = small_tokenizer();
  for (int64_t n_mtp : {1, 2}) {
    CAPTURE(n_mtp);
    Transformer m = agreeing_mtp_model(n_mtp);
    cli::GenerateOptions opt;
    opt.prompt = "Once upon a time, a little cat";
    opt.max_new = 24;
    opt.stop_at_eos = false;
    opt.sampling = {0.0, 0, 1.0, 0};  // greedy
    cli::GenerateResult greedy = cli::generate_text(m, tok, opt);
    opt.speculative = true;
    cli::GenerateResult spec = cli::generate_text(m, tok, opt);
    REQUIRE(spec.speculative);
    const SpeculativeStats& s = *spec.speculative;
    CHECK(spec.new_ids.size() == 24);
    CHECK(spec.new_ids == greedy.new_ids);
    CHECK(spec.completion == greedy.completion);
    CHECK(std::set<int64_t>(spec.new_ids.begin(), spec.new_ids.end()).size() > 4);  // not one repeated token
    MESSAGE("D = " << n_mtp << ": " << s.main_forwards << " main forwards for " << s.generated << " tokens, acceptance "
                   << s.acceptance_rate);
    CHECK(s.generated == 24);
    CHECK(s.main_forwards < s.generated);
    CHECK(s.accepted == s.drafted);  // the construction makes every draft right
    // prefill gives 1 token, each verify forward 1 + D (fewer at the end, where drafts would be wasted)
    CHECK(s.main_forwards == 1 + (23 + n_mtp) / (1 + n_mtp));
    CHECK(s.tokens_per_forward == doctest::Approx(24.0 / (double)s.main_forwards));
    CHECK(s.baseline_seconds == 0);  // greedy was not run
    // --check-greedy: greedy as well, and the speed-up
    opt.check_greedy = true;
    cli::GenerateResult checked = cli::generate_text(m, tok, opt);
    CHECK(checked.new_ids == greedy.new_ids);
    CHECK(checked.speculative->baseline_seconds > 0);
    CHECK(checked.speculative->speedup > 0);
    opt.speculative = false;
    CHECK(error_of([&] { cli::generate_text(m, tok, opt); }).find("--check-greedy") != std::string::npos);
  }

  // The binary prints the counts, and the speed-up only with --check-greedy.
  const std::string bin = binary();
  if (bin.empty()) {
    MESSAGE("bin/seekgrad is not built (cmake --build ... --target seekgrad): the binary part is skipped");
    return;
  }
  TempDir tmp("speculative");
  Transformer m = agreeing_mtp_model(2);
  save_model_dir(m, tmp.file("model"));
  tok.save(tmp.file("tok.bpe"));
  const std::string cmd = bin + " generate --model " + tmp.file("model") + " --tokenizer " + tmp.file("tok.bpe") +
                          " --prompt 'Once upon a time' --max-new 12 --no-stop --speculative";
  auto [rc, out] = run_cmd(cmd);
  CHECK_MESSAGE(rc == 0, out);
  CHECK_MESSAGE(out.find("acceptance 1.00 (") != std::string::npos, out);
  CHECK_MESSAGE(out.find("tokens per main forward (5 forwards for 12 tokens)") != std::string::npos, out);
  CHECK_MESSAGE(out.find("plain greedy") == std::string::npos, out);
  std::tie(rc, out) = run_cmd(cmd + " --check-greedy");
  CHECK_MESSAGE(rc == 0, out);
  CHECK_MESSAGE(out.find("vs plain greedy") != std::string::npos, out);
  CHECK_MESSAGE(out.find("output identical") != std::string::npos, out);
  std::tie(rc, out) = run_cmd(bin + " generate --model " + tmp.file("model") + " --tokenizer " + tmp.file("tok.bpe") +
                              " --prompt 'Once' --check-greedy");
  CHECK(rc != 0);
  CHECK_MESSAGE(out.find("--speculative") != std::string::npos, out);
}

// ---- eval --problems -----------------------------------------------------------------------------------

namespace {

// A random model whose vocabulary is a reasoning tokenizer's, saved with that tokenizer beside it
// (DIR/tokenizer.bpe, where `export --tokenizer` puts it), and a problems file.
void make_reasoning_model(const std::string& dir, const std::string& problems_path) {
  std::vector<std::string> corpus;
  for (const data::ReasoningProblem& p : data::reasoning_split(data::Split::train, 2, 40, 1))
    corpus.push_back(data::render_sft_example(p).text);
  data::Tokenizer tok = data::Tokenizer::train(corpus, 300);
  ModelArgs a;
  a.vocab_size = tok.vocab_size();
  a.dim = 16;
  a.inter_dim = 32;
  a.n_layers = 1;
  a.n_dense_layers = 1;
  a.n_heads = 2;
  a.kv_lora_rank = 8;
  a.qk_nope_head_dim = 8;
  a.qk_rope_head_dim = 4;
  a.v_head_dim = 8;
  a.max_seq_len = 256;
  a.original_seq_len = 256;
  Rng rng(5);
  Transformer m(a, rng);
  save_model_dir(m, dir);
  tok.save((fs::path(dir) / "tokenizer.bpe").string());
  write_problems_jsonl(problems_path, data::reasoning_split(data::Split::test, 1, 3, 1));
}

}  // namespace

TEST_CASE("eval --problems: summary, per-problem JSON lines, never the input file") {
  CHECK(cli::default_results_path("data/test.jsonl") == "test.results.jsonl");
  CHECK(cli::default_results_path("problems") == "problems.results.jsonl");
  TempDir tmp("eval_problems");
  make_reasoning_model(tmp.file("model"), tmp.file("problems.jsonl"));
  const std::string input = slurp(tmp.file("problems.jsonl"));

  cli::ProblemEvalCliOptions opt;
  opt.model_dir = tmp.file("model");
  opt.problems_path = tmp.file("problems.jsonl");
  opt.out_path = tmp.file("results.jsonl");
  opt.eval.samples = 2;
  opt.eval.temperature = 1.0;
  opt.eval.max_new_tokens = 8;
  std::ostringstream out;
  CHECK(cli::run_problem_eval(opt, out) == 0);
  const std::string text = out.str();
  MESSAGE(text);
  std::vector<ProblemResult> back = read_problem_results_jsonl(tmp.file("results.jsonl"));
  REQUIRE(back.size() == 3);
  double correct = 0;
  for (const ProblemResult& p : back) {
    CHECK(p.completions.size() == 2);
    correct += (double)p.n_correct;
  }
  std::ostringstream acc;
  acc << std::fixed << std::setprecision(4) << "accuracy     " << correct / 6 << " ± ";
  CHECK_MESSAGE(text.find(acc.str()) != std::string::npos, acc.str());
  for (const char* part : {"3 problem(s)", "2 sample(s) each", "pass@2", "format rate", "mean length", "tokens/s",
                           "model/tokenizer.bpe", "wrote "})
    CHECK_MESSAGE(text.find(part) != std::string::npos, part);

  // The output must not be the problems file, however it is spelled; the input stays as it was.
  for (const std::string& same : {tmp.file("problems.jsonl"), tmp.file("model/../problems.jsonl")}) {
    opt.out_path = same;
    std::ostringstream o2;
    CHECK(error_of([&] { cli::run_problem_eval(opt, o2); }).find("refusing to overwrite") != std::string::npos);
  }
  CHECK(slurp(tmp.file("problems.jsonl")) == input);
  // No tokenizer beside the model and none given: an error that says what to do.
  opt.out_path = tmp.file("r2.jsonl");
  fs::remove(tmp.file("model/tokenizer.bpe"));
  CHECK(error_of([&] { cli::run_problem_eval(opt, out); }).find("give --tokenizer FILE") != std::string::npos);

  const std::string bin = binary();
  if (bin.empty()) {
    MESSAGE("bin/seekgrad is not built: the binary runs are skipped");
    return;
  }
  make_reasoning_model(tmp.file("model"), tmp.file("problems.jsonl"));
  const std::string base = bin + " eval --model " + tmp.file("model") + " --problems " + tmp.file("problems.jsonl");
  auto [rc, o] = run_cmd(base + " --samples 2 --temperature 1 --max-new 6 --seed 3 --out " + tmp.file("b.jsonl"));
  CHECK_MESSAGE(rc == 0, o);
  CHECK_MESSAGE(o.find("pass@2") != std::string::npos, o);
  CHECK(read_problem_results_jsonl(tmp.file("b.jsonl")).size() == 3);
  std::tie(rc, o) = run_cmd(base + " --out " + tmp.file("problems.jsonl"));
  CHECK(rc == 1);
  CHECK_MESSAGE(o.find("refusing to overwrite") != std::string::npos, o);
  std::tie(rc, o) = run_cmd(base + " --batches 3");  // a --data option
  CHECK(rc != 0);
  std::tie(rc, o) = run_cmd(bin + " eval --model " + tmp.file("model"));
  CHECK(rc == 1);
  CHECK_MESSAGE(o.find("--problems") != std::string::npos, o);
  CHECK(slurp(tmp.file("problems.jsonl")) == input);
}

// The main job's machinery on a micro config: every stage runs, writes its stage.json and model, the table is
// printed with one row per stage and the paired differences; a rerun skips every stage and re-measures; the
// sft and grpo stages can be traced from the models the pipeline made.
TEST_CASE("seekgrad pipeline: PRETRAIN -> SFT -> GRPO -> EXPORT on a micro config; a rerun skips the stages") {
  const std::string bin = binary();
  REQUIRE_MESSAGE(!bin.empty(), "bin/seekgrad is not built (the build makes it with test_tools)");
  TempDir tmp("pipeline");
  const std::string cfg = tmp.file("micro.yaml");
  std::ofstream(cfg) << "model:\n  dim: 32\n  n_layers: 2\n  n_dense_layers: 1\n  inter_dim: 64\n  n_heads: 2\n"
                        "  q_lora_rank: 0\n  kv_lora_rank: 16\n  qk_nope_head_dim: 8\n  qk_rope_head_dim: 8\n"
                        "  v_head_dim: 8\n  n_routed_experts: 4\n  n_shared_experts: 1\n  n_activated_experts: 2\n"
                        "  moe_inter_dim: 32\n  n_mtp_modules: 1\n  max_batch_size: 8\n  max_seq_len: 96\n"
                        "  original_seq_len: 96\n"
                        "train:\n  batch_size: 4\n  seq_len: 64\n  steps: 6\n  warmup_steps: 1\n  threads: 1\n  eval_every: 0\n"
                        "  sample_tokens: 0\n  out_dir: " << tmp.file("run") << "\n"
                        "  data: {source: generated, n_stories: 60, vocab_size: 400, arithmetic_problems: 200, arithmetic_solution: columns}\n"
                        "reasoning: {eval_problems: 6, eval_samples: 2, max_new_tokens: 20, solution: columns, system: \"Think.\"}\n"
                        "sft: {n_problems: 40, steps: 4, warmup_steps: 1, batch_size: 2, seq_len: 96, eval_every: 0, eval_problems: 4}\n"
                        "grpo: {steps: 2, warmup_steps: 0, prompts_per_step: 2, group_size: 4, eval_every: 0, eval_problems: 4}\n";
  auto [rc, out] = run_cmd(bin + " pipeline --config " + cfg);
  REQUIRE_MESSAGE(rc == 0, out);
  for (const char* s : {"== stage 1/4: DATA_PREP + PRETRAIN", "== stage 2/4: SFT", "== stage 3/4: GRPO", "== stage 4/4: EXPORT",
                        "eval (pretrain): accuracy", "eval (sft): accuracy", "eval (grpo): accuracy", "held-out accuracy (6 test-split problems",
                        "sft - pretrain (sampled):", "grpo - sft (greedy):", "paired std error"})
    CHECK_MESSAGE(out.find(s) != std::string::npos, s);
  for (const char* f : {"run/stage.json", "run/model/model.safetensors", "run/model/tokenizer.bpe", "run/sft/stage.json",
                        "run/sft/model/model.safetensors", "run/grpo/stage.json", "run/grpo/model/model.safetensors",
                        "run/grpo/reward.png", "run/grpo/metrics.csv", "run/eval_grpo.jsonl", "run/export/config.json"})
    CHECK_MESSAGE(fs::exists(tmp.file(f)), f);
  // one JSON line per test problem, after every stage
  std::ifstream ev(tmp.file("run/eval_sft.jsonl"));
  int lines = 0;
  for (std::string l; std::getline(ev, l);) lines++;
  CHECK(lines == 6);
  // rerun: every training stage is skipped, the evaluations run again and give the same table (seeded)
  auto [rc2, out2] = run_cmd(bin + " pipeline --config " + cfg);
  REQUIRE_MESSAGE(rc2 == 0, out2);
  size_t skipped = 0;
  for (size_t at = 0; (at = out2.find("done before", at)) != std::string::npos; at++) skipped++;
  CHECK(skipped >= 3);
  CHECK(out2.find("pretrain summary") == std::string::npos);
  auto table = [](const std::string& s) {
    const size_t a = s.find("held-out accuracy");
    return s.substr(a, s.find("files:", a) - a);
  };
  auto strip_times = [](std::string t) {  // the train-time column differs: first run seconds, rerun "(done before)"
    std::string o;
    std::istringstream in(t);
    for (std::string l; std::getline(in, l);) o += l.substr(0, std::min<size_t>(l.size(), 80)) + "\n";
    return o;
  };
  CHECK(strip_times(table(out)) == strip_times(table(out2)));
  // the post-training stages can be traced from the pipeline's models
  std::tie(rc, out) = run_cmd(bin + " trace --config " + cfg + " --stage grpo --to layers.0.attn.wkv_a.weight");
  CHECK_MESSAGE(rc == 0, out);
  CHECK_MESSAGE(out.find("model: " + tmp.file("run/sft/model")) != std::string::npos, out);
  CHECK(out.find("parameter layers.0.attn.wkv_a.weight: grad (") != std::string::npos);
  std::tie(rc, out) = run_cmd(bin + " trace --config " + cfg + " --stage sft --to layers.1.ffn.experts.0.w1.weight");
  CHECK_MESSAGE(rc == 0, out);
  CHECK(out.find("trace: stage sft, step 0") != std::string::npos);
}

// `--device cuda` from the command line, in the CUDA emulation (SEEKGRAD_CUDA_EMU=1: the CUDA kernels stepped on the
// CPU): `train` pretrains a micro model with every parameter on the device and says so; `pipeline` runs every stage
// there (pretrain, SFT with packed rows, GRPO with batched KV-cache rollouts, the evaluations, export). Without a GPU
// and without the emulation, `--device cuda` is refused with the way out. (Kept tiny: the emulator is ~100x slower
// than the CPU kernels.)
TEST_CASE("seekgrad train / pipeline --device cuda: every stage on emulated CUDA; refused without a GPU or the emulation") {
  const std::string bin = binary();
  REQUIRE_MESSAGE(!bin.empty(), "bin/seekgrad is not built (the build makes it with test_tools)");
  TempDir tmp("device_cuda");
  const std::string cfg = tmp.file("micro.yaml");
  std::ofstream(cfg) << "model:\n  dim: 16\n  n_layers: 2\n  n_dense_layers: 1\n  inter_dim: 32\n  n_heads: 2\n"
                        "  q_lora_rank: 8\n  kv_lora_rank: 8\n  qk_nope_head_dim: 8\n  qk_rope_head_dim: 4\n"
                        "  v_head_dim: 8\n  n_routed_experts: 4\n  n_shared_experts: 1\n  n_activated_experts: 2\n"
                        "  moe_inter_dim: 16\n  n_mtp_modules: 1\n  max_batch_size: 4\n  max_seq_len: 96\n"
                        "  original_seq_len: 96\n"
                        "train:\n  batch_size: 2\n  seq_len: 16\n  steps: 2\n  warmup_steps: 1\n  threads: 1\n  eval_every: 0\n"
                        "  eval_batches: 1\n  sample_tokens: 0\n  out_dir: " << tmp.file("run") << "\n"
                        "  data: {source: generated, n_stories: 60, vocab_size: 300, arithmetic_problems: 100, arithmetic_solution: columns}\n"
                        "reasoning: {eval_problems: 2, eval_samples: 1, max_new_tokens: 6, solution: columns, system: \"Think.\"}\n"
                        "sft: {n_problems: 8, steps: 2, warmup_steps: 1, batch_size: 1, seq_len: 96, eval_every: 0, eval_problems: 2}\n"
                        "grpo: {steps: 1, warmup_steps: 0, prompts_per_step: 1, group_size: 2, eval_every: 0, eval_problems: 2}\n";
  auto [rc, out] = run_cmd("SEEKGRAD_CUDA_EMU=1 " + bin + " train --config " + cfg + " --device cuda --steps 2");
  REQUIRE_MESSAGE(rc == 0, out);
  CHECK_MESSAGE(out.find("device cuda (emulated on the CPU") != std::string::npos, out);
  CHECK_MESSAGE(out.find("pretrain summary") != std::string::npos, out);
  CHECK(fs::exists(tmp.file("run/model/model.safetensors")));

  std::tie(rc, out) = run_cmd("SEEKGRAD_CUDA_EMU=1 " + bin + " pipeline --config " + cfg + " --device cuda");
  REQUIRE_MESSAGE(rc == 0, out);
  for (const char* s : {"== stage 2/4: SFT", "== stage 3/4: GRPO", "== stage 4/4: EXPORT", "eval (pretrain): accuracy",
                        "eval (grpo): accuracy", "held-out accuracy (2 test-split problems"})
    CHECK_MESSAGE(out.find(s) != std::string::npos, s);
  for (const char* f : {"run/sft/model/model.safetensors", "run/grpo/model/model.safetensors", "run/export/config.json"})
    CHECK_MESSAGE(fs::exists(tmp.file(f)), f);

  // No GPU and no emulation: refused before any work (on a machine with a GPU this would train: not checked here).
  if (cuda::available()) {
    MESSAGE("SKIPPED the no-GPU refusal: this machine has a CUDA device");
    return;
  }
  std::tie(rc, out) = run_cmd("SEEKGRAD_CUDA_EMU=0 " + bin + " train --config " + cfg + " --device cuda --steps 3");
  CHECK(rc == 1);
  CHECK_MESSAGE(out.find("train.device: device 'cuda' but this") != std::string::npos, out);
  CHECK_MESSAGE(out.find("SEEKGRAD_CUDA_EMU=1") != std::string::npos, out);
  std::tie(rc, out) = run_cmd(bin + " train --config " + cfg + " --device tpu");
  CHECK(rc != 0);
  CHECK_MESSAGE(out.find("tpu") != std::string::npos, out);
}

// The thread count's precedence from outside (autograd/runtime.h): --threads > SEEKGRAD_THREADS > train.threads >
// the default, each run's log line saying which one set it; a malformed SEEKGRAD_THREADS or --threads 0 is an error.
TEST_CASE("seekgrad train: --threads wins over SEEKGRAD_THREADS, which wins over train.threads; bad values refused") {
  const std::string bin = binary();
  REQUIRE_MESSAGE(!bin.empty(), "bin/seekgrad is not built (the build makes it with test_tools)");
  TempDir tmp("threads");
  auto config = [&](const std::string& run) {
    const std::string cfg = tmp.file(run + ".yaml");
    std::ofstream(cfg) << "model:\n  dim: 16\n  n_layers: 1\n  n_dense_layers: 1\n  inter_dim: 32\n  n_heads: 2\n"
                          "  q_lora_rank: 0\n  kv_lora_rank: 8\n  qk_nope_head_dim: 8\n  qk_rope_head_dim: 4\n  v_head_dim: 8\n"
                          "  max_batch_size: 2\n  max_seq_len: 16\n  original_seq_len: 16\n"
                          "train:\n  batch_size: 2\n  seq_len: 16\n  steps: 1\n  warmup_steps: 0\n  threads: 1\n  eval_every: 0\n"
                          "  eval_batches: 1\n  sample_tokens: 0\n  out_dir: " << tmp.file(run) << "\n"
                          "  data: {source: generated, n_stories: 40, vocab_size: 300}\n";
    return cfg;
  };
  auto [rc, out] = run_cmd("env -u SEEKGRAD_THREADS " + bin + " train --config " + config("a"));
  REQUIRE_MESSAGE(rc == 0, out);
  CHECK_MESSAGE(out.find("1 threads (train.threads)") != std::string::npos, out);
  std::tie(rc, out) = run_cmd("SEEKGRAD_THREADS=2 " + bin + " train --config " + config("b"));
  REQUIRE_MESSAGE(rc == 0, out);
  CHECK_MESSAGE(out.find("2 threads (SEEKGRAD_THREADS)") != std::string::npos, out);
  std::tie(rc, out) = run_cmd("SEEKGRAD_THREADS=1 " + bin + " --threads 2 train --config " + config("c"));
  REQUIRE_MESSAGE(rc == 0, out);
  CHECK_MESSAGE(out.find("2 threads (--threads)") != std::string::npos, out);
  std::tie(rc, out) = run_cmd("SEEKGRAD_THREADS=two " + bin + " train --config " + config("d"));
  CHECK(rc == 1);
  CHECK_MESSAGE(out.find("[threads] SEEKGRAD_THREADS='two' is not a positive integer") != std::string::npos, out);
  std::tie(rc, out) = run_cmd(bin + " --threads 0 train --config " + config("e"));
  CHECK(rc != 0);
  CHECK_MESSAGE(out.find("--threads") != std::string::npos, out);
}

// Command-line values are checked before anything runs: a negative --steps, a NaN or negative --temperature.
TEST_CASE("seekgrad: bad command-line values are refused by name (--steps -3, --temperature nan)") {
  const std::string bin = binary();
  REQUIRE_MESSAGE(!bin.empty(), "bin/seekgrad is not built (the build makes it with test_tools)");
  auto [rc, out] = run_cmd(bin + " train --config configs/tiny.yaml --steps -3");
  CHECK(rc != 0);
  CHECK_MESSAGE(out.find("--steps: Value -3 not in range 1 to 1000000000") != std::string::npos, out);
  for (const char* t : {"nan", "-1", "inf"}) {
    std::tie(rc, out) = run_cmd(bin + " generate --model " + kFixture + " --prompt a --temperature " + t);
    CHECK(rc != 0);
    CHECK_MESSAGE(out.find(std::string("--temperature: must be a finite number >= 0, got ") + t) != std::string::npos, out);
  }
}
