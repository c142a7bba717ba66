// tools/cli/logits.cpp — see logits.h.
#include "tools/cli/logits.h"

#include <fstream>
#include <sstream>
#include <stdexcept>
#include <vector>

#include "autograd/node.h"
#include "models/json.h"
#include "models/output_paths.h"
#include "models/safetensors.h"
#include "models/transformer.h"
#include "models/weights.h"
#include "ops/ops.h"

namespace sg {

[[noreturn]] static void fail(const std::string& message) { throw std::runtime_error("[logits] " + message); }

// The token file as [B, T] i64, every id checked against the vocabulary.
static Tensor read_tokens(const std::string& path, int64_t vocab_size) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path + ": cannot open the tokens file");
  std::stringstream text;
  text << in.rdbuf();
  Json j = Json::parse(text.str(), path);
  if (!j.is_array() || j.size() == 0)
    fail(path + ": expected a non-empty JSON list of token sequences, e.g. [[1, 2, 3], [4, 5, 6]]");
  const int64_t B = (int64_t)j.size();
  int64_t T = -1;
  std::vector<int64_t> ids;
  for (int64_t b = 0; b < B; b++) {
    const Json& seq = j[b];
    if (!seq.is_array()) fail(path + ": sequence " + std::to_string(b) + " is a " + seq.type_name() + ", not a list of ids");
    if (T < 0) T = (int64_t)seq.size();
    if ((int64_t)seq.size() != T)
      fail(path + ": sequence " + std::to_string(b) + " has " + std::to_string(seq.size()) + " tokens but sequence 0 has " +
           std::to_string(T) + " (all sequences must have the same length)");
    for (int64_t t = 0; t < T; t++) {
      const Json& id = seq[t];
      if (!id.is_int()) fail(path + ": sequence " + std::to_string(b) + ", position " + std::to_string(t) + ": expected an integer token id, found " + id.dump());
      int64_t v = id.get_int();
      if (v < 0 || v >= vocab_size)
        fail(path + ": sequence " + std::to_string(b) + ", position " + std::to_string(t) + ": token id " + std::to_string(v) +
             " is outside the model's vocabulary [0, " + std::to_string(vocab_size) + ")");
      ids.push_back(v);
    }
  }
  if (T == 0) fail(path + ": the sequences are empty");
  return Tensor::from_vector(ids, {B, T});
}

int run_logits(const std::string& model_dir, const std::string& tokens_json, const std::string& out_path, bool decode,
               const std::string& fp8_weights) {
  // Checked before anything is loaded: writing the logits over the weights or the tokens loses them.
  const std::string dir = dir_path(model_dir);
  refuse_overwrite("logits", "--out", out_path,
                   {{dir, "the model directory"}, {dir + "/model.safetensors", "the model's weights file"},
                    {dir + "/config.json", "the model's config"}, {tokens_json, "the tokens file"}});
  Transformer model = load_model_dir(model_dir, DType::f32, fp8_weights);
  Tensor tokens = read_tokens(tokens_json, model.args.vocab_size);
  const int64_t B = tokens.size(0), T = tokens.size(1);
  if (T > model.args.max_seq_len)
    fail(tokens_json + ": sequences of " + std::to_string(T) + " tokens exceed the model's max_seq_len " +
         std::to_string(model.args.max_seq_len) + " (" + model_dir + "/config.json max_position_embeddings)");
  NoGradGuard no_grad;
  Tensor logits;
  if (!decode) {
    logits = model.forward(tokens);  // [B, T, V]
  } else {
    auto cache = model.make_cache(B, T);
    std::vector<Tensor> steps;
    for (int64_t t = 0; t < T; t++) steps.push_back(model.forward(contiguous(narrow(tokens, 1, t, 1)), t, cache.get()));
    logits = cat(steps, 1);
  }
  write_safetensors(out_path, {st_from_tensor("logits", logits, StDType::F32)}, {{"format", "pt"}});
  return 0;
}

}  // namespace sg
