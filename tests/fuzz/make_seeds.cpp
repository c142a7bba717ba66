// tests/fuzz/make_seeds.cpp — writes the fuzz targets' seed corpus from the project's own files and
// writers:  make_seeds <source dir> <out dir>  ->  <out>/<target>/<seed files>.
//
//   safetensors  a small file rewritten from tests/fixtures/tiny_v2lite/model.safetensors (its smallest
//                tensors: the 5 MB fixture itself would make every mutation cost milliseconds), one with
//                every dtype, and an empty one
//   json         the fixture's config.json, meta.json, model_args.json, tokens.json, a trainer_state.json
//   hf_config    the fixture's config.json and model_args.json
//   yaml_config  configs/*.yaml
//   tokenizer    a BPE tokenizer trained on the story generator's text, saved by Tokenizer::save
//   shards       write_shard() output (2- and 4-byte tokens), each under mode byte 0, 1 and 3 (fuzz_shards.cpp),
//                and a write_zstd_file() text
//   checkpoint   the three files of checkpoint_fixture.h's checkpoint, each after its selector byte
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "data/generators.h"
#include "data/shards.h"
#include "data/tokenizer.h"
#include "models/safetensors.h"
#include "tests/fuzz/checkpoint_fixture.h"

namespace fs = std::filesystem;

namespace {

std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  if (!f) throw std::runtime_error("[make_seeds] cannot read " + p.string());
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}
void spit(const fs::path& p, const std::string& bytes) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), (std::streamsize)bytes.size());
  if (!f) throw std::runtime_error("[make_seeds] cannot write " + p.string());
}
// A seed for a target whose first byte is a selector (shards: the mode, checkpoint: the file).
void spit_with_byte(const fs::path& p, char first, const std::string& bytes) { spit(p, std::string(1, first) + bytes); }

}  // namespace

int main(int argc, char** argv) try {
  if (argc != 3) {
    std::fprintf(stderr, "usage: make_seeds <source dir> <out dir>\n");
    return 2;
  }
  const fs::path src = argv[1], out = argv[2];
  const fs::path fixture = src / "tests/fixtures/tiny_v2lite";
  for (const char* t : {"safetensors", "json", "hf_config", "yaml_config", "tokenizer", "shards", "checkpoint"})
    fs::create_directories(out / t);
  int n = 0;

  // safetensors
  {
    const sg::SafeTensorsFile big = sg::read_safetensors((fixture / "model.safetensors").string());
    std::vector<sg::StTensor> small;
    for (const sg::StTensor& t : big.tensors)
      if (t.numel() <= 64 && small.size() < 4) small.push_back(t);
    sg::write_safetensors((out / "safetensors/tiny_v2lite_small.safetensors").string(), small, big.metadata);
    const float f[6] = {1.0f, -2.0f, 0.5f, 3.25f, -0.125f, 1e-3f};
    const int64_t i[4] = {0, 1, -1, 129279}, bits[4] = {1, 0, 1, 1};
    std::vector<sg::StTensor> all = {
        sg::from_f32("w.f32", {2, 3}, f), sg::from_f32("w.bf16", {3}, f, sg::StDType::BF16),
        sg::from_f32("w.f16", {2}, f, sg::StDType::F16), sg::from_f32("w.f64", {}, f, sg::StDType::F64),
        sg::from_i64("ids", {4}, i), sg::from_i64("mask", {2, 2}, bits, sg::StDType::BOOL),
        sg::from_i64("none", {0, 3}, i, sg::StDType::I32)};
    sg::StTensor fp8{"w.fp8", sg::StDType::F8_E4M3, {2, 2}, {0x38, 0xb8, 0x00, 0x7e}};
    all.push_back(fp8);
    sg::write_safetensors((out / "safetensors/every_dtype.safetensors").string(), all, {{"format", "pt"}});
    sg::write_safetensors((out / "safetensors/empty.safetensors").string(), {});
    n += 3;
  }
  // json, hf_config
  for (const char* f : {"config.json", "meta.json", "model_args.json", "tokens.json"}) {
    fs::copy_file(fixture / f, out / "json" / f, fs::copy_options::overwrite_existing);
    ++n;
  }
  for (const char* f : {"config.json", "model_args.json"}) {
    fs::copy_file(fixture / f, out / "hf_config" / f, fs::copy_options::overwrite_existing);
    ++n;
  }
  // yaml_config
  for (const auto& e : fs::directory_iterator(src / "configs"))
    if (e.path().extension() == ".yaml") {
      fs::copy_file(e.path(), out / "yaml_config" / e.path().filename(), fs::copy_options::overwrite_existing);
      ++n;
    }
  // tokenizer, shards
  {
    const std::string text = sg::data::generate_story_corpus(3, 20);
    sg::data::BpeTrainOptions opt;
    opt.vocab_size = 256 + 40 + (int)sg::data::default_special_tokens().size();
    const sg::data::Tokenizer tok = sg::data::Tokenizer::train(text, opt);
    tok.save((out / "tokenizer/stories_bpe.txt").string());
    ++n;
    std::vector<int32_t> ids = tok.encode(text.substr(0, 400));
    const fs::path tmp = out / "shards/tmp.bin";
    sg::data::write_shard(tmp.string(), ids, tok.vocab_size());
    const std::string s2 = slurp(tmp);
    for (int32_t& id : ids) id += 65536;  // 4-byte tokens
    sg::data::write_shard(tmp.string(), ids, 70000);
    const std::string s4 = slurp(tmp);
    sg::data::write_zstd_file(tmp.string(), text.substr(0, 300));
    const std::string zst = slurp(tmp);
    fs::remove(tmp);
    spit_with_byte(out / "shards/u16_raw.bin", 0, s2);
    spit_with_byte(out / "shards/u16_fixed_header.bin", 1, s2);
    spit_with_byte(out / "shards/u32_raw.bin", 0, s4);
    spit_with_byte(out / "shards/u32_fixed_header.bin", 1, s4);
    spit_with_byte(out / "shards/u16_fixed_both.bin", 3, s2);
    spit_with_byte(out / "shards/u32_fixed_both.bin", 3, s4);
    spit_with_byte(out / "shards/text.zst", 0, zst);
    n += 7;
  }
  // checkpoint (and its trainer_state.json as a JSON seed)
  {
    const fs::path dir = out / "checkpoint/tmp_ckpt";
    fs::remove_all(dir);
    sg::fuzz::CheckpointFixture run(true);
    sg::save_checkpoint(dir.string(), run.tensors, run.optimizer.get(), run.state);
    spit_with_byte(out / "checkpoint/0_model.safetensors", 0, slurp(dir / "model.safetensors"));
    spit_with_byte(out / "checkpoint/1_optimizer.safetensors", 1, slurp(dir / "optimizer.safetensors"));
    spit_with_byte(out / "checkpoint/2_trainer_state.json", 2, slurp(dir / "trainer_state.json"));
    fs::copy_file(dir / "trainer_state.json", out / "json/trainer_state.json", fs::copy_options::overwrite_existing);
    fs::remove_all(dir);
    n += 4;
  }
  std::printf("[make_seeds] %d seed files under %s\n", n, out.c_str());
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "%s\n", e.what());
  return 1;
}
