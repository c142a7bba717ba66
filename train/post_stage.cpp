// train/post_stage.cpp — see post_stage.h.
#include "train/post_stage.h"

#include <filesystem>
#include <stdexcept>

#include "autograd/runtime.h"

namespace sg {
namespace fs = std::filesystem;

PostStageStart start_post_stage(const PretrainConfig& cfg, const std::string& stage, const std::string& section_out_dir,
                                const std::string& init_model_dir, const std::string& tokenizer_path) {
  const std::string out_dir = section_out_dir.empty() ? (fs::path(cfg.train.out_dir) / stage).string() : section_out_dir;
  fs::create_directories(out_dir);
  if (cfg.train.threads > 0) set_num_threads((int)cfg.train.threads, ThreadsFrom::config);  // unless --threads / the env
  PostStageStart s{out_dir, data::Tokenizer::load(tokenizer_path), load_model_dir(init_model_dir, DType::f32, "dequant")};
  if (s.model.args.vocab_size != s.tok.vocab_size())
    throw std::runtime_error("[" + stage + "] " + init_model_dir + ": the model's vocab_size " + std::to_string(s.model.args.vocab_size) +
                             " differs from the tokenizer's " + std::to_string(s.tok.vocab_size()) + " (" + tokenizer_path + ")");
  s.model.to(parse_device(cfg.train.device, cfg.source + ": train.device"));  // the stage trains where pretraining did
  return s;
}

void copy_tokenizer_into(const std::string& tokenizer_path, const std::string& model_dir) {
  const fs::path dst = fs::path(model_dir) / "tokenizer.bpe";
  const fs::path tmp = fs::path(model_dir) / "tokenizer.bpe.tmp";
  fs::copy_file(tokenizer_path, tmp, fs::copy_options::overwrite_existing);
  fs::rename(tmp, dst);
}

}  // namespace sg
