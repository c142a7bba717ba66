// train/reasoning_eval.h — how well a model solves reasoning problems (data/reasoning.h): sample K
// completions per problem, score each with the rule-based rewards (train/rewards.h), report accuracy,
// pass@K, the format rate and the completion length. `seekgrad eval --problems` prints it; the GRPO
// trainer's evaluation points can call it as is.
//
//   prompt      data::render_prompt(problem, system), encoded with special tokens
//   sampling    ONE generate_batch call (models/generate.h) for all samples of all problems: row (i, s) =
//               sample s of problem i, seed sample_seed(opt.seed, i, s), temperature / top-p of opt, stop
//               at <|endoftext|>, at most max_new_tokens new tokens. Each row's tokens are what generate()
//               gives that row alone, so a problem's completions do not depend on the rest of the file.
//   scoring     accuracy_reward (the integer after the last </think> == answer) and format_reward
//               (well_formed) on the decoded completion
//   metrics     accuracy      mean accuracy over all n_problems · samples completions
//               stderr        sqrt(p (1 − p) / (n_problems · samples)) (binomial; the samples of one problem
//                             are not independent, so it is optimistic when samples > 1)
//               pass@k        mean over problems of the unbiased estimator 1 − C(n − c, k) / C(n, k)
//                             (Chen et al. 2021), n = samples, c = correct samples, here k = n: the
//                             fraction of problems with at least one correct sample. Always ≥ accuracy.
//               format rate   mean well_formed;  mean length  mean new tokens per completion
//
// Temperature 0 is greedy: all samples of a problem are then the same completion (allowed, pointless).
// What this is not: a trainer (no gradients), a general benchmark harness (no GSM8K, no few-shot prompts).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "data/chat.h"
#include "data/reasoning.h"
#include "data/tokenizer.h"

namespace sg {

struct Transformer;

struct ProblemEvalOptions {
  int64_t samples = 1;          // completions per problem (K)
  double temperature = 0;       // 0: greedy
  double top_p = 1.0;           // nucleus, in (0, 1]
  int64_t max_new_tokens = 64;  // per completion
  uint64_t seed = 0;            // with (problem index, sample index) seeds each row
  std::string system = data::kReasoningSystemPrompt;  // the system turn ("" = none)
};

struct ProblemResult {
  std::string expression;
  int64_t answer = 0;
  std::vector<std::string> completions;  // per sample, decoded (ends with <|endoftext|> when it stopped)
  std::vector<double> accuracy;          // per sample, 0 or 1
  std::vector<bool> well_formed;         // per sample
  int64_t n_correct = 0;                 // samples with accuracy 1
  std::vector<int64_t> lengths;          // per sample, new tokens (the <|endoftext|> counted)
};

struct ProblemEvalResult {
  int64_t n_problems = 0, samples = 0;
  double accuracy = 0;         // mean over all completions
  double pass_at_k = 0;        // k = samples
  double format_rate = 0;      // mean well_formed
  double mean_length = 0;      // mean new tokens per completion
  double stderr_accuracy = 0;  // sqrt(accuracy (1 − accuracy) / (n_problems · samples))
  double seconds = 0;          // the whole evaluation (encoding, sampling, scoring)
  double rollout_tokens_per_s = 0;  // new tokens / sampling seconds (generate_batch alone)
  std::vector<ProblemResult> problems;
};

// The unbiased pass@k estimate for one problem with n samples of which c are correct (0 <= c <= n,
// 1 <= k <= n): 1 − C(n − c, k) / C(n, k), computed as a product (no overflow).
double pass_at_k(int64_t n, int64_t c, int64_t k);

// The seed of sample s of problem i: splitmix64 finalisers over (seed, i, s). Distinct rows get
// unrelated streams; the same triple always gives the same seed.
uint64_t sample_seed(uint64_t seed, int64_t problem_index, int64_t sample_index);

// Throws "[reasoning_eval] ..." for no problems, samples < 1, max_new_tokens < 1, a bad temperature /
// top_p, a tokenizer with more ids than the model or without <|endoftext|>, or a prompt that leaves no
// room for max_new_tokens within max_seq_len (naming the problem).
ProblemEvalResult evaluate_problems(Transformer& model, const data::Tokenizer& tok,
                                    const std::vector<data::ReasoningProblem>& problems, const ProblemEvalOptions& opt);

// One JSON object per problem, one per line:
//   {"expression": "37 + 48", "answer": 85, "n_correct": 1, "samples": 2, "accuracy": [1.0, 0.0],
//    "well_formed": [true, false], "lengths": [17, 64], "completions": ["<think>...", "..."]}
// Written to path + ".tmp", then renamed over path.
void write_problem_results_jsonl(const ProblemEvalResult& r, const std::string& path);
// Reads that file back (the per-problem results; throws "[reasoning_eval] path:line: ..." on a bad line).
std::vector<ProblemResult> read_problem_results_jsonl(const std::string& path);

}  // namespace sg
