// models/generate.h — text generation with the Transformer: sampling through the MLA latent KV cache,
// and MTP speculative decoding (models/README.md §7, "at inference MTP is ... used for speculative decoding").
//
//   sampling_probs      logits -> the distribution actually sampled from:
//                       p = softmax(logits / temperature); keep the top_k most likely tokens (0 = all);
//                       keep the smallest most-likely-first set whose mass reaches top_p (1 = all;
//                       always ≥ 1 token); renormalise. temperature <= 0 = greedy (one-hot argmax).
//   sample_token        one draw from it with the project's seeded Rng (same seed, same tokens)
//   generate            prefill the prompt through the cache, then one token per forward
//   generate_batch      many prompts at once through ONE KV cache with batch > 1: rows of equal prompt
//                       length share a batched prefill and a batched decode loop (chunks of at most
//                       args.max_batch_size rows); each row samples with its own seeded Rng, and a row
//                       that produced the stop token leaves the batch (its cache rows are compacted away)
//                       while the others go on. Row r's tokens are exactly generate(prompts[r], ...,
//                       seed = seeds[r]): every op a row goes through computes that row's numbers alone
//                       (GEMM rows, attention per (sequence, head), per-token MoE routing, per-row
//                       norms), in an order that does not depend on how many rows share the batch.
//   generate_speculative  greedy only. Each step: the D MTP modules draft D tokens from the last
//                       hidden state, the main model checks them all in ONE forward over
//                       [last token, drafts], the longest prefix that matches the main model's own
//                       argmax is accepted plus the main model's next token. Output == plain greedy.
//
// generate and generate_speculative decode one sequence (batch 1); generate_batch decodes many. Ids are
// int64. What this is not: beam search, padding / ragged batches (rows of different prompt lengths run in
// separate groups, not left-padded into one), continuous batching (a finished row's slot is not refilled
// with a new prompt), batched speculative decoding, sampling-mode speculative decoding (rejection
// sampling), a tokenizer (data/ has one).
#pragma once
#include <cstdint>
#include <vector>

#include "autograd/rng.h"
#include "models/transformer.h"

namespace sg {

struct SamplingConfig {
  double temperature = 0.0;  // <= 0: greedy (argmax, first maximum)
  int64_t top_k = 0;         // 0: no top-k filter
  double top_p = 1.0;        // 1: no nucleus filter; must be in (0, 1]
  uint64_t seed = 0;         // seeds the Rng that draws the tokens
};

// The distribution sampled from (length V, zeros for filtered tokens, sums to 1). Ties at the top-k
// boundary keep the lower token id.
std::vector<double> sampling_probs(const std::vector<float>& logits, const SamplingConfig& config);
// One token from sampling_probs (greedy: the first argmax, no Rng draw).
int64_t sample_token(const std::vector<float>& logits, const SamplingConfig& config, Rng& rng);

// Returns the NEW tokens (at most max_new_tokens; the stop token, when produced, is the last one).
// stop_token < 0: none. prompt length + max_new_tokens must fit max_seq_len.
std::vector<int64_t> generate(Transformer& model, const std::vector<int64_t>& prompt_ids, int64_t max_new_tokens,
                              const SamplingConfig& config = {}, int64_t stop_token = -1);

struct BatchGenerateStats {
  int64_t rows = 0;           // prompts decoded
  int64_t forwards = 0;       // batched model forwards (one prefill per chunk + one per decode step)
  int64_t prompt_tokens = 0;  // sum of the prompt lengths
  int64_t new_tokens = 0;     // sum of the returned tokens
  double seconds = 0;         // wall clock of generate_batch
  double new_tokens_per_s = 0;  // new_tokens / seconds
};

// Row r continues prompts[r] with at most max_new_tokens tokens, sampled with `config` but seeded by
// seeds[r] (config.seed is not used): row r's tokens are exactly generate(model, prompts[r], max_new_tokens,
// config with seed = seeds[r], stop_token). Rows with the same prompt length are decoded together (one
// batched prefill, then one batched forward per step), at most model.args.max_batch_size rows per chunk.
// A row that produced stop_token stops (its tokens end with it) while the others continue; a chunk ends
// when all its rows stopped or reached max_new_tokens. Runs under NoGradGuard. Throws "[generate_batch]
// ..." naming the row for an empty prompt, a prompt + max_new_tokens past max_seq_len, a token id outside
// [0, vocab_size); and for seeds.size() != prompts.size(), a stop_token >= vocab_size, a bad top_k / top_p.
std::vector<std::vector<int64_t>> generate_batch(Transformer& model, const std::vector<std::vector<int64_t>>& prompts,
                                                 int64_t max_new_tokens, const SamplingConfig& config,
                                                 const std::vector<uint64_t>& seeds, int64_t stop_token = -1,
                                                 BatchGenerateStats* stats = nullptr);

struct SpeculativeStats {
  int64_t main_forwards = 0;   // main-model forwards, prefill included
  int64_t drafted = 0;         // tokens proposed by the MTP modules
  int64_t accepted = 0;        // of those, accepted
  int64_t generated = 0;       // tokens returned
  double acceptance_rate = 0;  // accepted / drafted
  double tokens_per_forward = 0;   // generated / main_forwards (plain greedy: 1)
  double seconds = 0;              // wall clock of generate_speculative
  double baseline_seconds = 0;     // plain greedy, filled by compare_speculative
  double speedup = 0;              // baseline_seconds / seconds, filled by compare_speculative
};

// Greedy decoding accelerated by the model's MTP modules (the model must have >= 1). Same tokens as
// generate(model, prompt, max_new_tokens, {}, stop_token).
std::vector<int64_t> generate_speculative(Transformer& model, const std::vector<int64_t>& prompt_ids,
                                          int64_t max_new_tokens, int64_t stop_token = -1,
                                          SpeculativeStats* stats = nullptr);
// Runs plain greedy and speculative decoding, throws if their tokens differ, returns the stats with
// the wall-clock speed-up filled in.
SpeculativeStats compare_speculative(Transformer& model, const std::vector<int64_t>& prompt_ids,
                                     int64_t max_new_tokens, int64_t stop_token = -1);

}  // namespace sg
