// tools/cli/commands.h — the data and model subcommands of `seekgrad`, as library functions a test
// (tests/tools/test_cli.cpp) or a gdb session can call directly; tools/seekgrad.cpp only parses flags.
//
//   seekgrad prepare   text files (plain or zstd) or generated stories -> byte-level BPE -> token shards
//                        DIR/tokenizer.bpe, DIR/train/shard_*.bin, DIR/val/shard_*.bin, DIR/prepare.json
//   seekgrad generate  model dir + tokenizer + prompt -> text (KV-cache sampling, or MTP speculative)
//   seekgrad eval      model dir + shards -> mean cross-entropy and perplexity (no tape); or with
//                        --problems FILE.jsonl: K sampled completions per reasoning problem, scored by the
//                        rule-based rewards -> accuracy ± stderr, pass@K, format rate, mean length, rollout
//                        tokens/s, and per-problem results as JSON lines (train/reasoning_eval.h)
//   seekgrad import    DeepSeek-V3 / V3.2 HF dir (one model.safetensors, or model.safetensors.index.json
//                        + several files; BF16/F16/F32, FP8 E4M3 with weight_scale_inv blocks dequantized)
//                        -> the project's model dir (config.json + one F32 model.safetensors), checked by
//                        loading it
//   seekgrad export    the project's model dir -> HF dir: config.json + model.safetensors (HF names, MTP
//                        layers as model.layers.{n_layers+k}.*) + README.md model card, checked by reloading
//
// Errors throw std::runtime_error starting with "[prepare]", "[generate]", "[eval]", "[import]" or
// "[export]" and naming the file and the key or tensor ("[import] m/model.safetensors.index.json:
// weight_map['lm_head.weight'] names model-00002.safetensors, which does not exist").
//
// What this is not: a tokenizer converter (HF tokenizer.json is not read; prepare trains our own BPE),
// a streaming loader (import holds the whole model in memory: fine for the small models here, not for
// the 671B one).
#pragma once
#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include "models/config.h"
#include "models/generate.h"
#include "models/safetensors.h"
#include "train/data_prep.h"
#include "train/evaluate.h"
#include "train/reasoning_eval.h"

namespace CLI {
class App;
class Option;
}

namespace sg {
struct Transformer;
namespace data {
class Tokenizer;
}
}  // namespace sg

namespace sg::cli {

// ---- prepare: train/data_prep.h (PrepareOptions, prepare_data) ------------------------------------

// ---- generate --------------------------------------------------------------------------------------

struct GenerateOptions {
  std::string model_dir, tokenizer_path, prompt;
  std::string fp8_weights;  // FP8 checkpoint weights: "" = config.json's fp8_weights, "native", "dequant"
  int64_t max_new = 64;
  SamplingConfig sampling{0.8, 40, 0.95, 0};
  bool speculative = false;   // MTP speculative decoding (greedy: temperature/top-k/top-p are not used)
  bool check_greedy = false;  // with speculative: also run plain greedy, throw if its tokens differ, time both
  bool stop_at_eos = true;    // stop after <|endoftext|> when the tokenizer has it
};

struct GenerateResult {
  std::vector<int64_t> prompt_ids, new_ids;
  std::string completion;     // decode(new_ids); ids >= the tokenizer's vocabulary print as <|id N|>
  int64_t n_unknown_ids = 0;  // how many of those
  double seconds = 0;         // generation only (model loading excluded); speculative: its own time
  double tokens_per_s = 0;
  std::optional<SpeculativeStats> speculative;  // baseline_seconds / speedup only with check_greedy
};

// With a loaded model and tokenizer (what a test calls). Throws "[generate] ..." when the tokenizer's
// vocabulary does not fit the model's, or --speculative is asked of a model without MTP modules.
// speculative: runs generate_speculative only (plus plain greedy when check_greedy).
GenerateResult generate_text(Transformer& model, const data::Tokenizer& tokenizer, const GenerateOptions& opt);
// Loads opt.model_dir and opt.tokenizer_path, generates, prints prompt + completion and the numbers.
int run_generate(const GenerateOptions& opt, std::ostream& out);

// ---- eval ------------------------------------------------------------------------------------------

// evaluate_lm and its options: train/evaluate.h
int run_eval(const EvalOptions& opt, std::ostream& out);

// eval --problems: evaluate_problems (train/reasoning_eval.h) on a problems file (train/problems.h).
struct ProblemEvalCliOptions {
  std::string model_dir, problems_path;
  std::string tokenizer_path;  // "": MODEL_DIR/tokenizer.bpe (where `seekgrad export --tokenizer` puts it)
  std::string out_path;        // "": default_results_path(problems_path)
  ProblemEvalOptions eval;
};
// FILE stem + ".results.jsonl", in the current directory ("data/test.jsonl" -> "test.results.jsonl").
std::string default_results_path(const std::string& problems_path);
// The tokenizer file to use: `tokenizer_path` when given, else MODEL_DIR/tokenizer.bpe; throws
// "[<who>] ..." when that file does not exist.
std::string tokenizer_for_model(const std::string& model_dir, const std::string& tokenizer_path, const char* who);
// Loads the model and tokenizer, evaluates, prints the summary, writes the results. Throws "[eval] ..." when
// the output path is the problems file itself (never overwritten).
int run_problem_eval(const ProblemEvalCliOptions& opt, std::ostream& out);

// ---- import / export -------------------------------------------------------------------------------

struct ImportResult {
  std::vector<std::string> source_files;  // the safetensors files read
  int64_t n_tensors_in = 0;               // tensors in the source (scales included)
  int64_t n_fp8_dequantized = 0;          // F8_E4M3 weights turned into F32 with their block scales
  int64_t n_fp8_kept = 0;                 // F8_E4M3 weights kept as codes + scales (the default)
  int64_t n_parameters = 0;               // numbers in the imported model
  ModelArgs args;
  double seconds = 0;
};

// The 256 values of FP8 E4M3 (OCP "fn": 1 sign, 4 exponent bits with bias 7, 3 mantissa bits, no inf;
// S.1111.111 is NaN): exponent 0 is subnormal m/8 · 2^-6, else (1 + m/8) · 2^(e−7).
float fp8_e4m3_to_f32(uint8_t bits);
// DeepSeek-V3's FP8 weights: w [out, in] F8_E4M3 and scale_inv [ceil(out/b0), ceil(in/b1)] F32/BF16,
// w_f32[i, j] = fp8(w[i, j]) · scale_inv[i / b0, j / b1]. Returns an F32 tensor named `name`.
StTensor dequantize_fp8_weight(const std::string& name, const StTensor& w, const StTensor& scale_inv, int64_t block_rows,
                               int64_t block_cols);

// Reads hf_dir (config.json + model.safetensors or model.safetensors.index.json), keeps FP8 weights,
// writes out_dir (config.json + one model.safetensors: F32, FP8 codes + scales as read) via load_model_dir/save_model_dir
// into out_dir.import.tmp, loads it again and checks every parameter against what was read, then swaps it in
// for out_dir keeping out_dir's other files (a tokenizer.bpe, a README: models/output_paths.h replace_dir).
ImportResult import_hf_model(const std::string& hf_dir, const std::string& out_dir, std::ostream* log = nullptr);
// fp8_mode "native" (the default above): FP8 weights stay F8_E4M3 codes + weight_scale_inv and run the
// official FP8 way; "dequant": they become F32 (w · scale_inv per block) and the scales are dropped.
ImportResult import_hf_model(const std::string& hf_dir, const std::string& out_dir, const std::string& fp8_mode,
                             std::ostream* log);

struct ExportResult {
  int64_t n_tensors = 0;     // in the written model.safetensors (MTP copies of embed/head included)
  int64_t n_parameters = 0;  // numbers in the model (shared tensors counted once)
  int64_t bytes = 0;         // size of model.safetensors
  bool wrote_readme = false; // false: OUT/README.md was somebody else's and is kept
};

// Loads model_dir, writes out_dir/{config.json, model.safetensors, README.md} (and tokenizer.bpe when
// tokenizer_path is given), reloads it and checks it equals the source bit for bit. Written into
// out_dir.export.tmp and swapped in (models/output_paths.h replace_dir): out_dir's other files are kept,
// a tokenizer.bpe there too unless tokenizer_path replaces it, and a README.md that is not a seekgrad
// model card.
// fp8_mode: "keep" (weights as the model holds them), "quantize" (the linears of models/fp8_model.h as
// 128×128-block E4M3 + weight_scale_inv, the HF DeepSeek-V3 FP8 layout), "dequant" (every weight F32).
ExportResult export_hf_model(const std::string& model_dir, const std::string& out_dir,
                             const std::string& tokenizer_path = "", std::ostream* log = nullptr,
                             const std::string& fp8_mode = "keep");
// The README.md model card export writes (architecture, sizes, tensor names, how it was made).
std::string model_card(Transformer& model, const std::string& source_dir);

// ---- CLI wiring ------------------------------------------------------------------------------------

// Adds prepare / generate / eval / import / export to `app` with their flags and --help; after parsing,
// run() executes the one that was given (std::nullopt when none of these was).
class DataModelCommands {
 public:
  explicit DataModelCommands(CLI::App& app);
  std::optional<int> run(std::ostream& out);

 private:
  CLI::App *prepare_ = nullptr, *generate_ = nullptr, *eval_ = nullptr, *import_ = nullptr, *export_ = nullptr;
  PrepareOptions prepare_opt_;
  GenerateOptions generate_opt_;
  EvalOptions eval_opt_;
  ProblemEvalCliOptions problem_opt_;
  CLI::Option *eval_data_ = nullptr, *eval_problems_ = nullptr;
  std::string import_from_, import_out_, export_model_, export_out_, export_tokenizer_;
  std::string import_fp8_ = "native", export_fp8_ = "keep";
};

}  // namespace sg::cli
