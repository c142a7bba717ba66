// tools/cli/commands.cpp — see commands.h.
#include "tools/cli/commands.h"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>

#include "autograd/node.h"
#include "data/generators.h"
#include "data/shards.h"
#include "data/tokenizer.h"
#include "models/json.h"
#include "models/output_paths.h"
#include "models/transformer.h"
#include "models/weights.h"
#include "models/fp8_model.h"
#include "ops/fp8.h"
#include "train/problems.h"

namespace fs = std::filesystem;

namespace sg::cli {

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

[[noreturn]] void fail(const char* who, const std::string& message) {
  throw std::runtime_error(std::string("[") + who + "] " + message);
}

std::string read_bytes(const std::string& path, const char* who) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(who, path + ": cannot open");
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void write_text(const std::string& path, const std::string& text, const char* who) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  if (!out) fail(who, path + ": write failed");
}

std::string human_bytes(double b) {
  std::ostringstream s;
  s << std::fixed << std::setprecision(1);
  if (b >= 1e6) s << b / 1e6 << " MB";
  else if (b >= 1e3) s << b / 1e3 << " kB";
  else s << std::setprecision(0) << b << " B";
  return s.str();
}

const std::string kEot = "<|endoftext|>";

std::vector<int64_t> to_i64(const std::vector<int32_t>& v) { return std::vector<int64_t>(v.begin(), v.end()); }

// CLI11's NonNegativeNumber lets "nan" through (NaN < 0 is false): a sampling temperature must be a finite
// number >= 0.
CLI::Validator finite_nonnegative() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        double v = 0;
        if (!CLI::detail::lexical_cast(text, v) || !std::isfinite(v) || v < 0) return "must be a finite number >= 0, got " + text;
        return "";
      },
      "FINITE >= 0");
}

}  // namespace

// ---- generate --------------------------------------------------------------------------------------

GenerateResult generate_text(Transformer& model, const data::Tokenizer& tokenizer, const GenerateOptions& opt) {
  if (tokenizer.vocab_size() > model.args.vocab_size)
    fail("generate", "the tokenizer has " + std::to_string(tokenizer.vocab_size()) + " ids but the model's vocab_size is " +
                         std::to_string(model.args.vocab_size) + ": they were not made for each other");
  if (opt.max_new < 0) fail("generate", "--max-new " + std::to_string(opt.max_new) + " is negative");
  GenerateResult r;
  const std::optional<int32_t> eot = tokenizer.find_token(kEot);
  r.prompt_ids = to_i64(tokenizer.encode(opt.prompt));
  if (r.prompt_ids.empty()) {
    if (!eot) fail("generate", "the prompt is empty and the tokenizer has no <|endoftext|> to start from");
    r.prompt_ids = {*eot};  // an empty prompt = the start of a new document
  }
  const int64_t P = (int64_t)r.prompt_ids.size();
  if (P + opt.max_new > model.args.max_seq_len)
    fail("generate", "the prompt (" + std::to_string(P) + " tokens) + --max-new " + std::to_string(opt.max_new) +
                         " exceed the model's max_seq_len " + std::to_string(model.args.max_seq_len) +
                         " (config.json max_position_embeddings)");
  const int64_t stop = opt.stop_at_eos && eot ? *eot : -1;
  if (opt.check_greedy && !opt.speculative) fail("generate", "--check-greedy compares --speculative with plain greedy: give both");
  if (opt.speculative) {
    if (model.mtp.empty())
      fail("generate", "--speculative needs MTP modules, and this model has none (config.json num_nextn_predict_layers = 0)");
    // Only the MTP-drafted run: its acceptance and tokens per main-model forward are its own numbers.
    SpeculativeStats st;
    r.new_ids = generate_speculative(model, r.prompt_ids, opt.max_new, stop, &st);
    if (opt.check_greedy) {
      // Asked for: plain greedy as well, which must give the same tokens; its time gives the speed-up.
      auto t0 = Clock::now();
      std::vector<int64_t> plain = generate(model, r.prompt_ids, opt.max_new, SamplingConfig{}, stop);
      st.baseline_seconds = seconds_since(t0);
      st.speedup = st.seconds > 0 ? st.baseline_seconds / st.seconds : 0.0;
      if (r.new_ids != plain) fail("generate", "speculative decoding produced other tokens than plain greedy decoding (a bug)");
    }
    r.seconds = st.seconds;
    r.speculative = st;
  } else {
    auto t0 = Clock::now();
    r.new_ids = generate(model, r.prompt_ids, opt.max_new, opt.sampling, stop);
    r.seconds = seconds_since(t0);
  }
  r.tokens_per_s = r.seconds > 0 ? (double)r.new_ids.size() / r.seconds : 0.0;
  // A model may have more ids than the tokenizer (a padded vocabulary, or a pair not made together):
  // such ids print as <|id N|> and are counted.
  std::vector<int32_t> run;
  for (int64_t id : r.new_ids) {
    if (id < tokenizer.vocab_size()) {
      run.push_back((int32_t)id);
      continue;
    }
    r.completion += tokenizer.decode(run) + "<|id " + std::to_string(id) + "|>";
    run.clear();
    r.n_unknown_ids++;
  }
  r.completion += tokenizer.decode(run);
  return r;
}

std::string tokenizer_for_model(const std::string& model_dir, const std::string& tokenizer_path, const char* who) {
  if (!tokenizer_path.empty()) {
    if (!fs::is_regular_file(tokenizer_path)) fail(who, tokenizer_path + ": no such tokenizer file");
    return tokenizer_path;
  }
  const std::string beside = (fs::path(model_dir) / "tokenizer.bpe").string();
  if (!fs::is_regular_file(beside))
    fail(who, "no tokenizer: " + beside + " does not exist; give --tokenizer FILE (the tokenizer.bpe of `seekgrad prepare`)");
  return beside;
}

int run_generate(const GenerateOptions& opt, std::ostream& out) {
  if (opt.tokenizer_path.empty()) fail("generate", "no tokenizer file (--tokenizer)");
  data::Tokenizer tok = data::Tokenizer::load(tokenizer_for_model(opt.model_dir, opt.tokenizer_path, "generate"));
  Transformer model = load_model_dir(opt.model_dir, DType::f32, opt.fp8_weights);
  if (tok.vocab_size() > model.args.vocab_size)
    fail("generate", opt.tokenizer_path + " has " + std::to_string(tok.vocab_size()) + " ids but " + opt.model_dir +
                         "/config.json has vocab_size " + std::to_string(model.args.vocab_size));
  GenerateResult r = generate_text(model, tok, opt);
  out << opt.prompt << r.completion << "\n\n";
  out << std::fixed << std::setprecision(2);
  out << "[" << r.prompt_ids.size() << " prompt tokens, " << r.new_ids.size() << " new tokens in " << r.seconds << " s, "
      << std::setprecision(1) << r.tokens_per_s << " tokens/s";
  if (!opt.speculative)
    out << "; temperature " << std::setprecision(2) << opt.sampling.temperature << ", top-k " << opt.sampling.top_k
        << ", top-p " << opt.sampling.top_p << ", seed " << opt.sampling.seed;
  out << "]\n";
  if (r.n_unknown_ids > 0)
    out << "note: " << r.n_unknown_ids << " generated ids are beyond the tokenizer's " << tok.vocab_size()
        << " ids (the model has " << model.args.vocab_size << "); shown as <|id N|>\n";
  if (r.speculative) {
    const SpeculativeStats& s = *r.speculative;
    out << std::setprecision(2) << "speculative decoding with " << model.mtp.size() << " MTP module(s), greedy: acceptance "
        << s.acceptance_rate << " (" << s.accepted << "/" << s.drafted << " drafts), " << s.tokens_per_forward
        << " tokens per main forward (" << s.main_forwards << " forwards for " << s.generated << " tokens)";
    if (opt.check_greedy)
      out << "; " << s.speedup << "x vs plain greedy (" << std::setprecision(3) << s.seconds << " s vs " << s.baseline_seconds
          << " s), output identical";
    out << "\n";
  }
  out << std::defaultfloat;
  return 0;
}

// ---- eval ------------------------------------------------------------------------------------------

int run_eval(const EvalOptions& opt, std::ostream& out) {
  std::vector<std::string> shards = find_eval_shards(opt.data_dir);
  Transformer model = load_model_dir(opt.model_dir);
  EvalResult r = evaluate_lm(model, shards, opt);
  out << std::fixed << std::setprecision(4);
  out << "eval " << opt.model_dir << " on " << shards.size() << " shard(s) of " << opt.data_dir << ": " << r.batches
      << " batches x " << r.tokens / std::max<int64_t>(1, r.batches) << " tokens\n";
  out << "  cross-entropy " << r.loss << " nats/token   perplexity " << std::setprecision(2) << r.perplexity
      << "   (uniform guess: ln V = " << std::setprecision(4) << std::log((double)model.args.vocab_size) << ")\n";
  for (size_t k = 0; k < r.mtp_losses.size(); k++)
    out << "  MTP depth " << k + 1 << " (predicts token i+" << k + 2 << "): cross-entropy " << r.mtp_losses[k] << "\n";
  out << std::setprecision(2) << "  " << r.seconds << " s, " << std::setprecision(0) << (double)r.tokens / r.seconds
      << " tokens/s\n"
      << std::defaultfloat;
  return 0;
}

// ---- eval --problems --------------------------------------------------------------------------------

std::string default_results_path(const std::string& problems_path) {
  return fs::path(problems_path).stem().string() + ".results.jsonl";
}

int run_problem_eval(const ProblemEvalCliOptions& opt, std::ostream& out) {
  if (opt.problems_path.empty()) fail("eval", "no problems file (--problems FILE.jsonl)");
  const std::string out_path = opt.out_path.empty() ? default_results_path(opt.problems_path) : opt.out_path;
  const std::string model_dir = dir_path(opt.model_dir);
  refuse_overwrite("eval", "--out", out_path,
                   {{opt.problems_path, "the problems file"}, {opt.tokenizer_path, "the tokenizer"},
                    {model_dir, "the model directory"}, {model_dir + "/model.safetensors", "the model's weights file"},
                    {model_dir + "/config.json", "the model's config"}, {model_dir + "/tokenizer.bpe", "the model's tokenizer"}});
  if (!fs::is_regular_file(opt.problems_path)) fail("eval", opt.problems_path + ": no such problems file");
  int64_t skipped = 0;  // this project's JSON lines, GSM8K JSON lines or an SVAMP array (train/problems.h)
  const std::vector<data::ReasoningProblem> problems = read_reasoning_file(opt.problems_path, &skipped);
  if (skipped > 0) out << "eval: " << skipped << " problem(s) of " << opt.problems_path << " skipped (answer not an integer)\n";
  if (problems.empty()) fail("eval", opt.problems_path + ": holds no problems");
  const std::string tok_path = tokenizer_for_model(opt.model_dir, opt.tokenizer_path, "eval");
  data::Tokenizer tok = data::Tokenizer::load(tok_path);
  Transformer model = load_model_dir(opt.model_dir);
  const ProblemEvalOptions& e = opt.eval;
  ProblemEvalResult r = evaluate_problems(model, tok, problems, e);
  write_problem_results_jsonl(r, out_path);
  int64_t new_tokens = 0;
  for (const ProblemResult& p : r.problems)
    for (int64_t l : p.lengths) new_tokens += l;
  out << "eval " << opt.model_dir << " on " << r.n_problems << " problem(s) of " << opt.problems_path << " (tokenizer "
      << tok_path << "): " << r.samples << " sample(s) each, temperature " << e.temperature << ", top-p " << e.top_p
      << ", max-new " << e.max_new_tokens << ", seed " << e.seed << "\n";
  out << std::fixed << std::setprecision(4);
  out << "  accuracy     " << r.accuracy << " ± " << r.stderr_accuracy << "  (binomial stderr over "
      << r.n_problems * r.samples << " completions)\n";
  out << "  pass@" << r.samples << "       " << r.pass_at_k << "  (problems with at least one correct sample)\n";
  out << "  format rate  " << r.format_rate << "  (<think> ... </think> then a non-empty answer)\n";
  out << std::setprecision(1) << "  mean length  " << r.mean_length << " new tokens\n";
  out << "  rollout      " << std::setprecision(0) << r.rollout_tokens_per_s << " tokens/s (" << new_tokens
      << " new tokens, batched KV-cache sampling); " << std::setprecision(2) << r.seconds << " s in all\n";
  out << "  wrote " << out_path << " (one JSON object per problem)\n" << std::defaultfloat;
  return 0;
}

// ---- import / export -------------------------------------------------------------------------------

float fp8_e4m3_to_f32(uint8_t bits) { return sg::lowp::e4m3_to_f32(bits); }  // the one implementation: ops/fp8.h

StTensor dequantize_fp8_weight(const std::string& name, const StTensor& w, const StTensor& scale_inv, int64_t b0, int64_t b1) {
  if (w.dtype != StDType::F8_E4M3) fail("import", "'" + w.name + "' is " + st_dtype_name(w.dtype) + ", not F8_E4M3");
  if (w.shape.size() != 2) fail("import", "FP8 tensor '" + w.name + "' has shape " + st_shape_str(w.shape) + " (expected 2-D)");
  const int64_t rows = w.shape[0], cols = w.shape[1];
  const int64_t sr = (rows + b0 - 1) / b0, sc = (cols + b1 - 1) / b1;
  if (scale_inv.shape != std::vector<int64_t>{sr, sc})
    fail("import", "'" + scale_inv.name + "' has shape " + st_shape_str(scale_inv.shape) + " but '" + w.name + "' " +
                       st_shape_str(w.shape) + " in " + std::to_string(b0) + "x" + std::to_string(b1) + " blocks needs [" +
                       std::to_string(sr) + "," + std::to_string(sc) + "]");
  std::vector<float> s = to_f32(scale_inv), out((size_t)(rows * cols));
  for (int64_t i = 0; i < rows; i++)
    for (int64_t j = 0; j < cols; j++) out[i * cols + j] = fp8_e4m3_to_f32(w.bytes[i * cols + j]) * s[(i / b0) * sc + j / b1];
  return from_f32(name, w.shape, out.data(), StDType::F32);
}

namespace {

// Every tensor of an HF model dir, with the file it came from.
struct SourceTensors {
  std::vector<StTensor> tensors;
  std::map<std::string, std::string> file_of;  // tensor name -> path
  std::vector<std::string> files;
};

SourceTensors read_hf_tensors(const std::string& hf_dir) {
  SourceTensors src;
  const std::string index_path = (fs::path(hf_dir) / "model.safetensors.index.json").string();
  const std::string single_path = (fs::path(hf_dir) / "model.safetensors").string();
  auto take = [&](SafeTensorsFile& f) {
    for (StTensor& t : f.tensors) {
      auto [it, fresh] = src.file_of.emplace(t.name, f.path);
      if (!fresh) fail("import", f.path + ": tensor '" + t.name + "' is also in " + it->second);
      src.tensors.push_back(std::move(t));
    }
    src.files.push_back(f.path);
  };
  if (fs::exists(index_path)) {
    Json index = Json::parse(read_bytes(index_path, "import"), index_path);
    const Json* wm = index.find("weight_map");
    if (!wm || !wm->is_object()) fail("import", index_path + ": no 'weight_map' object (tensor name -> file name)");
    std::vector<std::string> order;  // files in order of first mention
    std::map<std::string, std::vector<std::string>> names_in;
    for (const auto& [name, file] : wm->items()) {
      if (!file.is_string()) fail("import", index_path + ": weight_map['" + name + "'] is a " + file.type_name() + ", not a file name");
      const std::string& fname = file.get_string();
      if (!names_in.count(fname)) order.push_back(fname);
      names_in[fname].push_back(name);
    }
    if (order.empty()) fail("import", index_path + ": weight_map is empty");
    for (const std::string& fname : order) {
      const std::string path = (fs::path(hf_dir) / fname).string();
      if (!fs::is_regular_file(path))
        fail("import", index_path + ": weight_map['" + names_in[fname][0] + "'] names " + fname + ", which does not exist (" +
                           path + "; " + std::to_string(names_in[fname].size()) + " tensors are listed in it)");
      SafeTensorsFile f = read_safetensors(path);
      std::set<std::string> listed(names_in[fname].begin(), names_in[fname].end());
      for (const StTensor& t : f.tensors) {
        if (listed.count(t.name)) continue;
        const Json* where = wm->find(t.name);
        fail("import", path + ": tensor '" + t.name + "' " +
                           (where ? "is listed under " + where->get_string() + " in " + index_path
                                  : "is not in the weight_map of " + index_path));
      }
      for (const std::string& name : names_in[fname])
        if (!f.contains(name)) fail("import", index_path + ": weight_map['" + name + "'] names " + fname + ", but " + path + " has no tensor '" + name + "'");
      take(f);
    }
  } else if (fs::exists(single_path)) {
    SafeTensorsFile f = read_safetensors(single_path);
    take(f);
  } else {
    fail("import", hf_dir + ": neither model.safetensors nor model.safetensors.index.json");
  }
  return src;
}

// Appends " (tensor 'x' is from FILE)" to an error that quotes a tensor name, so an error the loader
// reports against the merged staging file points at the real source file.
std::string with_source(std::string msg, const SourceTensors& src) {
  for (size_t q = msg.find('\''); q != std::string::npos; q = msg.find('\'', q + 1)) {
    size_t e = msg.find('\'', q + 1);
    if (e == std::string::npos) break;
    auto it = src.file_of.find(msg.substr(q + 1, e - q - 1));
    if (it != src.file_of.end()) return msg + " (tensor '" + it->first + "' is from " + it->second + ")";
    q = e;
  }
  return msg;
}

// import/export replace their directory as a whole (keeping the files they do not write, replace_dir):
// refuse a directory that holds something else than a model, such as `--out .`.
void check_replaceable(const std::string& dir, const char* who) {
  if (!fs::exists(dir)) return;
  if (!fs::is_directory(dir)) fail(who, dir + ": exists and is not a directory");
  if (fs::is_empty(dir) || fs::exists(fs::path(dir) / "config.json")) return;
  fail(who, dir + ": exists and is not a model directory (no config.json); refusing to replace it");
}

// A tokenizer.bpe already in DIR that the command keeps must still fit the new model.
void check_kept_tokenizer(const std::string& dir, int64_t vocab_size, const char* who, const std::string& remedy) {
  const std::string path = (fs::path(dir) / "tokenizer.bpe").string();
  if (!fs::is_regular_file(path)) return;
  const int64_t n = data::Tokenizer::load(path).vocab_size();
  if (n > vocab_size)
    fail(who, path + " (already there; kept, not written by " + who + ") has " + std::to_string(n) +
                  " ids but the model's vocab_size is " + std::to_string(vocab_size) + ": " + remedy);
}

// Every parameter and buffer of b equals a's, bit for bit.
void check_same_parameters(Transformer& a, Transformer& b, const char* who, const std::string& dir) {
  NamedParameters pa = a.named_parameters_and_buffers(), pb = b.named_parameters_and_buffers();
  if (pa.size() != pb.size()) fail(who, dir + ": reloaded model has " + std::to_string(pb.size()) + " parameters, expected " + std::to_string(pa.size()));
  for (size_t i = 0; i < pa.size(); i++) {
    if (pa[i].first != pb[i].first || pa[i].second->shape() != pb[i].second->shape())
      fail(who, dir + ": reloaded parameter '" + pb[i].first + "' does not match '" + pa[i].first + "'");
    std::vector<double> x = pa[i].second->to_f64_vector(), y = pb[i].second->to_f64_vector();
    for (size_t j = 0; j < x.size(); j++)
      if (std::memcmp(&x[j], &y[j], sizeof(double)) != 0)
        fail(who, dir + ": reloaded parameter '" + pa[i].first + "' differs at element " + std::to_string(j));
  }
}

}  // namespace

ImportResult import_hf_model(const std::string& hf_dir, const std::string& out_dir, std::ostream* log) {
  return import_hf_model(hf_dir, out_dir, "native", log);
}

ImportResult import_hf_model(const std::string& hf_dir, const std::string& out_dir, const std::string& fp8_mode,
                             std::ostream* log) {
  if (fp8_mode != "native" && fp8_mode != "dequant") fail("import", "--fp8 must be native or dequant, got '" + fp8_mode + "'");
  const bool dequant = fp8_mode == "dequant";
  const auto t0 = Clock::now();
  if (!fs::is_directory(hf_dir)) fail("import", hf_dir + ": not a directory");
  if (out_dir.empty()) fail("import", "no output directory (--out DIR)");
  // OUT.import.tmp: first the merged source file, then the new model dir, swapped in for OUT at the end.
  const std::string out = dir_path(out_dir), staging = out + ".import.tmp", old = out + ".import.old";
  recover_dir(out, staging, old);  // an import killed half way: its old OUT back, its staging gone
  if (same_path(hf_dir, out)) fail("import", out_dir + ": the output must not be the input directory");
  check_replaceable(out, "import");
  const std::string config_path = (fs::path(hf_dir) / "config.json").string();
  if (!fs::is_regular_file(config_path)) fail("import", config_path + ": no such file");
  ImportResult r;
  r.args = load_model_args_json(config_path);  // errors name the file and the key

  // FP8 block size (DeepSeek-V3: quantization_config.weight_block_size = [128, 128]).
  int64_t b0 = 128, b1 = 128;
  Json config = Json::parse(read_bytes(config_path, "import"), config_path);
  if (const Json* q = config.find("quantization_config"); q && q->is_object())
    if (const Json* wb = q->find("weight_block_size"); wb && !wb->is_null()) {
      if (!wb->is_array() || wb->size() != 2) fail("import", config_path + ": quantization_config.weight_block_size must be [rows, cols]");
      b0 = (*wb)[0].get_int(), b1 = (*wb)[1].get_int();
      if (b0 <= 0 || b1 <= 0) fail("import", config_path + ": quantization_config.weight_block_size must be positive");
    }

  SourceTensors src = read_hf_tensors(hf_dir);
  r.source_files = src.files;
  r.n_tensors_in = (int64_t)src.tensors.size();
  if (log) *log << "  read " << r.n_tensors_in << " tensors from " << src.files.size() << " file(s)\n";

  // FP8 weights: kept as F8_E4M3 + *.weight_scale_inv (native), or -> F32 with their scales, which are
  // then dropped (--fp8 dequant).
  std::map<std::string, size_t> at;
  for (size_t i = 0; i < src.tensors.size(); i++) at[src.tensors[i].name] = i;
  std::set<std::string> used_scales;
  for (StTensor& t : src.tensors) {
    if (t.dtype == StDType::F8_E5M2) fail("import", src.file_of[t.name] + ": tensor '" + t.name + "' is F8_E5M2; only E4M3 weights (DeepSeek-V3's) are read");
    if (t.dtype != StDType::F8_E4M3) continue;
    if (!t.name.ends_with(".weight")) fail("import", src.file_of[t.name] + ": FP8 tensor '" + t.name + "' is not a *.weight");
    const std::string scale = t.name + "_scale_inv";
    auto it = at.find(scale);
    if (it == at.end()) fail("import", src.file_of[t.name] + ": FP8 tensor '" + t.name + "' has no '" + scale + "' (its block scales)");
    used_scales.insert(scale);
    if (!dequant) {
      r.n_fp8_kept++;
      continue;
    }
    t = dequantize_fp8_weight(t.name, t, src.tensors[it->second], b0, b1);
    r.n_fp8_dequantized++;
  }
  std::vector<StTensor> tensors;
  for (StTensor& t : src.tensors) {
    if (t.name.ends_with(".weight_scale_inv")) {
      if (!used_scales.count(t.name)) fail("import", src.file_of[t.name] + ": '" + t.name + "' scales no FP8 weight");
      if (dequant) continue;
    }
    tensors.push_back(std::move(t));
  }
  src.tensors.clear();
  if (log && r.n_fp8_dequantized) *log << "  dequantized " << r.n_fp8_dequantized << " FP8 weights (" << b0 << "x" << b1 << " blocks)\n";
  if (log && r.n_fp8_kept) *log << "  kept " << r.n_fp8_kept << " FP8 weights as E4M3 codes + " << b0 << "x" << b1 << " block scales\n";

  // Staging dir: the merged file under the original config, loaded (strict: every parameter with its
  // shape, nothing left over), then written in the project's layout.
  std::error_code ec;
  fs::remove_all(staging, ec);
  fs::create_directories(staging, ec);
  if (ec) fail("import", staging + ": cannot create the directory: " + ec.message());
  Transformer model;
  try {
    fs::copy_file(config_path, fs::path(staging) / "config.json");
    write_safetensors((fs::path(staging) / "model.safetensors").string(), tensors, {{"format", "pt"}});
    tensors.clear();
    model = load_model_dir(staging, DType::f32, dequant ? "dequant" : "native");
  } catch (const std::exception& e) {
    fs::remove_all(staging, ec);
    std::string msg = e.what();
    for (size_t p; (p = msg.find(staging)) != std::string::npos;) msg.replace(p, staging.size(), hf_dir + " (merged)");
    fail("import", with_source(msg, src));
  }
  fs::remove_all(staging, ec);
  check_kept_tokenizer(out, model.args.vocab_size, "import", "remove it, or import into another directory");
  // The new model dir is written and checked in the staging dir; OUT changes only in replace_dir's renames,
  // which keep OUT's other files (its tokenizer, a README, notes).
  save_model_dir(model, staging);
  Transformer back = load_model_dir(staging);
  check_same_parameters(model, back, "import", out);
  replace_dir(staging, out, old, "import");
  r.n_parameters = model.num_parameters();
  r.seconds = seconds_since(t0);
  return r;
}

// How model_card() begins, which tells export's own README.md from one somebody else wrote.
const std::string kModelCardStart = "---\nlibrary_name: seekgrad\n";

std::string model_card(Transformer& model, const std::string& source_dir) {
  const ModelArgs& a = model.args;
  int64_t total = 0, routed = 0, mtp = 0;
  for (auto& [name, t] : model.named_parameters()) {
    if (name.rfind("mtp.", 0) == 0) mtp += t->numel();
    else total += t->numel();
    if (name.rfind("layers.", 0) == 0 && name.find(".ffn.experts.") != std::string::npos) routed += t->numel();
  }
  const double active_frac = a.n_routed_experts > 0 ? (double)a.n_activated_experts / (double)a.n_routed_experts : 1.0;
  const int64_t active = total - routed + (int64_t)std::llround((double)routed * active_frac);
  const int64_t n_moe = std::max<int64_t>(0, a.n_layers - a.n_dense_layers);
  std::ostringstream s;
  s << kModelCardStart << "tags:\n- deepseek_v3\n- seekgrad\n- from-scratch\n---\n\n";
  s << "# " << fs::path(source_dir).lexically_normal().filename().string() << "\n\n";
  s << "A small model with the DeepSeek-V3 architecture, written by **seekgrad** (DeepSeek from scratch in C++,\n"
       "a teaching framework). It is a teaching artefact: tiny, trained (if at all) on a small corpus, not meant\n"
       "for any real use.\n\n";
  s << "| | |\n|---|---|\n";
  s << "| architecture | `DeepseekV3ForCausalLM` (model_type `" << (a.index_topk > 0 ? "deepseek_v32" : "deepseek_v3") << "`) |\n";
  s << "| parameters | " << total << " (main model), " << active << " active per token, + " << mtp << " in "
    << a.n_mtp_modules << " MTP module(s) |\n";
  s << "| layers | " << a.n_layers << " (" << std::min(a.n_dense_layers, a.n_layers) << " dense, " << n_moe << " MoE) + "
    << a.n_mtp_modules << " MTP |\n";
  s << "| hidden | dim " << a.dim << ", " << a.n_heads << " heads, vocab " << a.vocab_size << ", max_position_embeddings "
    << a.max_seq_len << " |\n";
  s << "| attention | " << (a.index_topk > 0 ? "DSA (MLA + lightning indexer, top-" + std::to_string(a.index_topk) + ")" : std::string("MLA"))
    << ": q_lora_rank " << a.q_lora_rank << ", kv_lora_rank " << a.kv_lora_rank << ", qk_nope " << a.qk_nope_head_dim
    << ", qk_rope " << a.qk_rope_head_dim << ", v " << a.v_head_dim << " |\n";
  if (n_moe > 0)
    s << "| MoE | " << a.n_routed_experts << " routed (top-" << a.n_activated_experts << ", " << a.score_func << " gate"
      << (a.gate_bias ? ", aux-loss-free bias" : "") << ", " << a.n_expert_groups << " group(s)) + " << a.n_shared_experts
      << " shared, moe_inter_dim " << a.moe_inter_dim << " |\n";
  s << "| dtype | " << (model.dtype == DType::f64 ? "float64" : "float32") << " |\n\n";
  s << "## Files\n\n";
  s << "- `config.json`: HuggingFace DeepSeek-V3 config.\n";
  s << "- `model.safetensors`: every weight under its HuggingFace name (`model.layers.N.self_attn.kv_a_proj_with_mqa.weight`, "
       "...). MTP module k is stored as layer `model.layers." << a.n_layers << "+k` (`enorm`, `hnorm`, `eh_proj`, "
       "`shared_head.norm`, its block, and copies of the embedding and head), as DeepSeek's own checkpoints do.\n";
  s << "- `tokenizer.bpe` (when present): seekgrad's byte-level BPE (`data/tokenizer.h`), not a HuggingFace tokenizer.\n\n";
  s << "## Use\n\n```\nseekgrad generate --model DIR --tokenizer DIR/tokenizer.bpe --prompt \"Once upon a time\"\n"
       "seekgrad generate --model DIR --tokenizer DIR/tokenizer.bpe --prompt \"Once upon a time\" --speculative\n"
       "seekgrad import --from DIR --out project_dir\n```\n\n";
  s << "Other DeepSeek-V3 implementations read the same names and config (those that ignore MTP skip layers >= "
    << a.n_layers << ").\n";
  return s.str();
}

ExportResult export_hf_model(const std::string& model_dir, const std::string& out_dir, const std::string& tokenizer_path,
                             std::ostream* log, const std::string& fp8_mode) {
  if (fp8_mode != "keep" && fp8_mode != "quantize" && fp8_mode != "dequant")
    fail("export", "--fp8 must be keep, quantize or dequant, got '" + fp8_mode + "'");
  if (out_dir.empty()) fail("export", "no output directory (--out DIR)");
  // Everything is written into OUT.export.tmp, checked, then swapped in for OUT (replace_dir): a kill leaves
  // the old OUT or the new one, and OUT's files that export does not write are kept.
  const std::string out = dir_path(out_dir), staging = out + ".export.tmp", old = out + ".export.old";
  recover_dir(out, staging, old);  // an export killed half way
  if (same_path(model_dir, out)) fail("export", out_dir + ": the output must not be the model directory");
  check_replaceable(out, "export");
  std::optional<data::Tokenizer> tok;
  std::string tok_bytes;  // --tokenizer is copied byte for byte
  if (!tokenizer_path.empty()) {
    if (!fs::is_regular_file(tokenizer_path)) fail("export", tokenizer_path + ": no such tokenizer file");
    tok = data::Tokenizer::load(tokenizer_path);
    tok_bytes = read_bytes(tokenizer_path, "export");
  }
  Transformer model = load_model_dir(model_dir, DType::f32, fp8_mode == "dequant" ? "dequant" : "native");
  if (fp8_mode == "quantize") {
    const int64_t n = quantize_fp8_linears(model);
    if (log) *log << "  quantized " << n << " linear weights to E4M3 with 128x128 block scales\n";
  }
  if (tok && tok->vocab_size() > model.args.vocab_size)
    fail("export", tokenizer_path + " has " + std::to_string(tok->vocab_size()) + " ids but " + model_dir +
                       "/config.json has vocab_size " + std::to_string(model.args.vocab_size));
  // Without --tokenizer a tokenizer.bpe already in OUT is kept; --tokenizer replaces it (asked for).
  if (!tok) check_kept_tokenizer(out, model.args.vocab_size, "export", "give --tokenizer FILE to replace it");
  // A README.md that is not a model card of ours (someone wrote it) is kept; ours is rewritten.
  const fs::path readme = fs::path(out) / "README.md";
  const bool write_card = !fs::exists(readme) || read_bytes(readme.string(), "export").starts_with(kModelCardStart);
  std::error_code ec;
  fs::remove_all(staging, ec);
  save_model_dir(model, staging);
  if (write_card) write_text((fs::path(staging) / "README.md").string(), model_card(model, model_dir), "export");
  if (tok) write_text((fs::path(staging) / "tokenizer.bpe").string(), tok_bytes, "export");
  Transformer back = load_model_dir(staging);
  check_same_parameters(model, back, "export", out_dir);
  replace_dir(staging, out, old, "export");
  ExportResult r;
  r.wrote_readme = write_card;
  r.n_tensors = (int64_t)model.named_parameters_and_buffers().size() + 2 * (int64_t)model.mtp.size();
  r.n_parameters = model.num_parameters();
  r.bytes = (int64_t)fs::file_size(fs::path(out) / "model.safetensors");
  if (log) *log << "  reloaded " << out_dir << ": identical\n";
  if (log && !write_card) *log << "  kept " << readme.string() << " (not a seekgrad model card)\n";
  if (log && !tok && fs::exists(fs::path(out) / "tokenizer.bpe")) *log << "  kept " << out << "/tokenizer.bpe\n";
  return r;
}

// ---- CLI wiring ------------------------------------------------------------------------------------

DataModelCommands::DataModelCommands(CLI::App& app) {
  // prepare
  prepare_ = app.add_subcommand("prepare", "Text files (plain or .zst) or generated stories -> byte-level BPE -> token shards");
  prepare_->footer(
      "Writes OUT/tokenizer.bpe, OUT/train/shard_*.bin, OUT/val/shard_*.bin and OUT/prepare.json.\n"
      "Files are joined with <|endoftext|> between them; the tokenizer is trained on the train part only;\n"
      "the val part is the end of the corpus, cut at a document boundary.\n"
      "Train any number of configs on it with `train: {data: {dir: OUT}}` in their YAML (seekgrad train).\n"
      "Example: seekgrad prepare --text ../shared/data/tinystories_train_sample.txt.zst --out data/ts --vocab 4096");
  prepare_->add_option("--text", prepare_opt_.text_paths, "input text file (repeatable; zstd-compressed files are read too)");
  prepare_->add_option("--generated-stories", prepare_opt_.generated_stories,
                       "also use N stories from the project's story generator (data/generators.h)")
      ->check(CLI::NonNegativeNumber);
  prepare_->add_option("--seed", prepare_opt_.seed, "seed of the generated stories")->capture_default_str();
  prepare_->add_option("--out", prepare_opt_.out_dir, "output directory")->required();
  prepare_->add_option("--tokenizer", prepare_opt_.tokenizer_path,
                       "encode with this tokenizer.bpe instead of training one (data for an existing model)");
  prepare_->add_option("--vocab", prepare_opt_.vocab_size, "BPE vocabulary size (256 bytes + merges + special tokens)")
      ->capture_default_str()
      ->check(CLI::Range(257, 1 << 20));
  prepare_->add_option("--val-fraction", prepare_opt_.val_fraction, "share of the corpus kept for validation")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 0.99));
  prepare_->add_option("--max-bytes", prepare_opt_.max_bytes, "use only the first N bytes of the corpus (0 = all)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  prepare_->add_option("--shard-tokens", prepare_opt_.shard_tokens, "tokens per shard file")->capture_default_str()->check(CLI::PositiveNumber);

  // generate
  generate_ = app.add_subcommand("generate", "Generate text from a model directory (KV cache, or MTP speculative decoding)");
  generate_->footer(
      "Sampling: softmax(logits / temperature), keep the top-k, then the smallest set reaching top-p.\n"
      "--temperature 0 is greedy. --speculative: greedy decoding where the MTP modules draft tokens and the\n"
      "main model verifies them in one forward; prints the acceptance rate and tokens per main-model forward.\n"
      "Its output equals plain greedy decoding; --check-greedy also runs plain greedy, checks that, and prints\n"
      "the wall-clock speed-up.");
  generate_->add_option("--model", generate_opt_.model_dir, "model directory (config.json + model.safetensors, HF names)")->required();
  generate_->add_option("--fp8", generate_opt_.fp8_weights, "FP8 checkpoint weights: native (official FP8 GEMMs, the default) or dequant (to f32)")
      ->check(CLI::IsMember({"native", "dequant"}));
  generate_->add_option("--tokenizer", generate_opt_.tokenizer_path, "tokenizer file (tokenizer.bpe from `seekgrad prepare`)")->required();
  generate_->add_option("--prompt", generate_opt_.prompt, "the text to continue (empty: start a new document)")->required();
  generate_->add_option("--max-new", generate_opt_.max_new, "new tokens at most")->capture_default_str()->check(CLI::NonNegativeNumber);
  generate_->add_option("--temperature", generate_opt_.sampling.temperature, "sampling temperature (0 = greedy)")
      ->capture_default_str()->check(finite_nonnegative());
  generate_->add_option("--top-k", generate_opt_.sampling.top_k, "keep the k most likely tokens (0 = all)")->capture_default_str()->check(CLI::NonNegativeNumber);
  generate_->add_option("--top-p", generate_opt_.sampling.top_p, "nucleus: smallest set with this much probability")
      ->capture_default_str()
      ->check(CLI::Range(1e-9, 1.0));
  generate_->add_option("--seed", generate_opt_.sampling.seed, "sampling seed (same seed, same text)")->capture_default_str();
  CLI::Option* speculative =
      generate_->add_flag("--speculative", generate_opt_.speculative, "greedy MTP speculative decoding (model needs MTP modules)");
  generate_->add_flag("--check-greedy", generate_opt_.check_greedy, "with --speculative: also run plain greedy, check equal tokens, time both")
      ->needs(speculative);
  generate_->add_flag("!--no-stop", generate_opt_.stop_at_eos, "do not stop at <|endoftext|>");

  // eval
  eval_ = app.add_subcommand("eval", "Cross-entropy and perplexity on token shards (--data), or accuracy on reasoning problems (--problems)");
  eval_->footer(
      "Example: seekgrad eval --model runs/pretrain/model --data data/ts/val --batches 20\n"
      "         seekgrad eval --model runs/sft/model --problems test.jsonl --samples 8 --temperature 1 --out test.results.jsonl\n"
      "--problems: K completions per problem (one batched KV-cache sampling call), scored by the rule-based rewards;\n"
      "prints accuracy ± binomial stderr, pass@K, format rate, mean length and rollout tokens/s, and writes one JSON\n"
      "object per problem to --out (default: the problems file's stem + .results.jsonl in the current directory;\n"
      "never the problems file itself).");
  eval_->add_option("--model", eval_opt_.model_dir, "model directory (config.json + model.safetensors)")->required();
  eval_data_ = eval_->add_option("--data", eval_opt_.data_dir, "folder of shard_*.bin (a `prepare` output dir: its val/)");
  eval_problems_ = eval_->add_option("--problems", problem_opt_.problems_path,
                                     "reasoning problems as JSON lines (train/problems.h): score sampled completions instead");
  eval_problems_->excludes(eval_data_);
  eval_->add_option("--batches", eval_opt_.batches, "--data: batches at most (fewer if the shards hold fewer)")
      ->capture_default_str()->check(CLI::PositiveNumber)->excludes(eval_problems_);
  eval_->add_option("--seq-len", eval_opt_.seq_len, "--data: tokens per row")->capture_default_str()->check(CLI::PositiveNumber)->excludes(eval_problems_);
  eval_->add_option("--batch-size", eval_opt_.batch_size, "--data: rows per batch")->capture_default_str()->check(CLI::PositiveNumber)->excludes(eval_problems_);
  eval_->add_option("--seed", eval_opt_.seed, "--data: which windows (the loader's shuffle seed); --problems: the sampling seed")->capture_default_str();
  eval_->add_option("--samples", problem_opt_.eval.samples, "--problems: completions per problem (K of pass@K)")
      ->capture_default_str()->check(CLI::PositiveNumber)->needs(eval_problems_);
  eval_->add_option("--temperature", problem_opt_.eval.temperature, "--problems: sampling temperature (0 = greedy)")
      ->capture_default_str()->check(finite_nonnegative())->needs(eval_problems_);
  eval_->add_option("--top-p", problem_opt_.eval.top_p, "--problems: nucleus sampling mass")
      ->capture_default_str()->check(CLI::Range(1e-9, 1.0))->needs(eval_problems_);
  eval_->add_option("--max-new", problem_opt_.eval.max_new_tokens, "--problems: new tokens per completion at most")
      ->capture_default_str()->check(CLI::PositiveNumber)->needs(eval_problems_);
  eval_->add_option("--system", problem_opt_.eval.system,
                    "--problems: the system turn of every prompt (the one the model was trained with: reasoning.system)")
      ->needs(eval_problems_);
  eval_->add_option("--out", problem_opt_.out_path, "--problems: per-problem results (JSON lines)")->needs(eval_problems_);
  eval_->add_option("--tokenizer", problem_opt_.tokenizer_path, "--problems: tokenizer file (default: MODEL/tokenizer.bpe)")
      ->needs(eval_problems_);

  // import / export
  import_ = app.add_subcommand("import", "DeepSeek-V3 / V3.2 HuggingFace model dir -> this project's model dir");
  import_->footer(
      "Reads FROM/config.json and FROM/model.safetensors, or FROM/model.safetensors.index.json and the files it\n"
      "names. BF16/F16 weights are converted to F32; FP8 E4M3 weights with weight_scale_inv blocks are kept\n"
      "(run the official FP8 way) or, with --fp8 dequant, converted to F32.\n"
      "Writes OUT/config.json + OUT/model.safetensors and checks the result by loading it.");
  import_->add_option("--from", import_from_, "HuggingFace model directory")->required();
  import_->add_option("--out", import_out_, "output model directory")->required();
  import_->add_option("--fp8", import_fp8_, "FP8 weights: native (kept as E4M3 codes + block scales) or dequant (to F32)")
      ->capture_default_str()->check(CLI::IsMember({"native", "dequant"}));
  export_ = app.add_subcommand("export", "This project's model dir -> HuggingFace dir (config.json, model.safetensors, README.md)");
  export_->footer(
      "HF parameter names, MTP modules as layers n_layers+k (with their embedding/head copies), a model card;\n"
      "--tokenizer also copies the tokenizer. The written directory is reloaded and compared bit for bit.");
  export_->add_option("--model", export_model_, "model directory")->required();
  export_->add_option("--out", export_out_, "output directory (replaced when it holds a model, keeping its other files; any other non-empty directory is refused)")->required();
  export_->add_option("--tokenizer", export_tokenizer_, "tokenizer.bpe to ship with the model");
  export_->add_option("--fp8", export_fp8_, "keep (weights as they are), quantize (the FP8 linears as F8_E4M3 + "
                      "weight_scale_inv, the HF DeepSeek-V3 FP8 layout) or dequant (all F32)")
      ->capture_default_str()->check(CLI::IsMember({"keep", "quantize", "dequant"}));
}

std::optional<int> DataModelCommands::run(std::ostream& out) {
  if (prepare_->parsed()) {
    out << "seekgrad prepare -> " << prepare_opt_.out_dir << "\n";
    PrepareResult r = prepare_data(prepare_opt_, &out);
    out << std::fixed << std::setprecision(2);
    out << "  bytes " << r.n_bytes << " (train " << r.n_train_bytes << ", val " << r.n_val_bytes << ")\n"
        << "  tokens " << r.n_train_tokens + r.n_val_tokens << " (train " << r.n_train_tokens << " in " << r.train_shards.size()
        << " shard(s), val " << r.n_val_tokens << " in " << r.val_shards.size() << ")\n"
        << "  vocab " << r.vocab_size << ", " << r.bytes_per_token << " bytes/token\n"
        << "  time " << r.seconds << " s (read " << r.read_seconds << ", BPE " << r.train_seconds << ", encode "
        << r.encode_seconds << ", " << std::setprecision(0) << (double)r.n_bytes / std::max(1e-9, r.encode_seconds) / 1e3
        << " kB/s)\n"
        << "  wrote " << r.tokenizer_path << ", " << prepare_opt_.out_dir << "/{train,val}/shard_*.bin, "
        << prepare_opt_.out_dir << "/prepare.json\n"
        << std::defaultfloat;
    return 0;
  }
  if (generate_->parsed()) return run_generate(generate_opt_, out);
  if (eval_->parsed()) {
    if (eval_problems_->count() > 0) {
      ProblemEvalCliOptions p = problem_opt_;
      p.model_dir = eval_opt_.model_dir;
      p.eval.seed = eval_opt_.seed;
      return run_problem_eval(p, out);
    }
    if (eval_data_->count() == 0)
      fail("eval", "give --data DIR (cross-entropy on token shards) or --problems FILE.jsonl (accuracy on reasoning problems)");
    return run_eval(eval_opt_, out);
  }
  if (import_->parsed()) {
    out << "seekgrad import " << import_from_ << " -> " << import_out_ << "\n";
    ImportResult r = import_hf_model(import_from_, import_out_, import_fp8_, &out);
    out << "  " << r.n_parameters << " parameters, " << r.args.n_layers << " layers + " << r.args.n_mtp_modules
        << " MTP, vocab " << r.args.vocab_size << "; loaded back OK (" << std::fixed << std::setprecision(2) << r.seconds
        << " s)\n"
        << std::defaultfloat;
    return 0;
  }
  if (export_->parsed()) {
    out << "seekgrad export " << export_model_ << " -> " << export_out_ << "\n";
    ExportResult r = export_hf_model(export_model_, export_out_, export_tokenizer_, &out, export_fp8_);
    out << "  " << r.n_tensors << " tensors, " << r.n_parameters << " parameters, model.safetensors " << human_bytes((double)r.bytes)
        << "; wrote config.json, model.safetensors" << (r.wrote_readme ? ", README.md" : "")
        << (export_tokenizer_.empty() ? "" : ", tokenizer.bpe") << "\n";
    return 0;
  }
  return std::nullopt;
}

}  // namespace sg::cli
