// train/tool_generate.h — generation that pauses for tool calls (seekgrad issue 13): the model samples tokens;
// when it samples the </tool_call> token, the call it wrote is read back from the completion's text
// (data::find_pending_tool_call), the calculator runs it (data::run_calculator), the ids of
// "<tool_result>" + result + "</tool_result>" are appended to the context, and sampling goes on after them.
//
//   completion  prompt → <think>⏎6 * 7 = <tool_call>6*7</tool_call><tool_result>42</tool_result>⏎</think>⏎42<|endoftext|>
//   sampled     1 1 …  1 1 …           1 1 1 …        1 ← the </tool_call>  0 0 0 0  ← inserted   1 1 … 1 1
//
// The inserted tokens are not model samples: ToolCompletion::sampled marks them 0, so an SFT / GRPO loss
// masks them out (the model is not trained to predict the calculator's output, only to call it and use it).
// Their ids: the <tool_result> and </tool_result> special tokens around the result encoded with special tokens
// off (the result's text never holds one anyway: data/tool.h).
//
// The context is fed through the KV cache (CachedLogits): the prompt as one prefill, then each sampled token
// alone, except that a </tool_call> and the result inserted after it go in as one chunk, like a piece of
// prompt (Transformer::forward at start_pos = the tokens already cached). Nothing is recomputed.
//
// Limits: max_new_tokens bounds the whole completion, sampled and inserted tokens together (that is what must
// fit max_seq_len and the GRPO rows); an insertion that would cross it is cut there and generation stops. At
// most limits.max_calls_per_answer calls are answered by the calculator; every later </tool_call> gets "error: too
// many calls", and a </tool_call> with no <tool_call> of its own gets "error: call closed without being opened".
// Calls are read in the completion only (a <tool_call> at the end of the prompt does not open one). Generation stops at stop_token (normally <|endoftext|>), or at max_new_tokens.
// tools_enabled = false: </tool_call> is an ordinary token, nothing is inserted, and the tokens are exactly
// generate(model, prompt, max_new_tokens, config with seed, stop_token)'s (the same forwards and draws).
//
// Same seed ⇒ same tokens: the draws come from one Rng(seed), one per sampled token, none for inserted ones.
//
// What this is not: batched decoding with pauses. generate_batch_with_tools decodes its rows one after another:
// after an insertion rows sit at different positions, and a batched forward has one start_pos for all rows
// (models/generate.h decodes ragged rows in separate groups for the same reason).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "data/tokenizer.h"
#include "data/tool.h"
#include "models/generate.h"
#include "models/transformer.h"

namespace sg {

// The one thing the loop asks of a model: read `ids`, the tokens that follow everything read before (the first
// call reads the prompt), and return the next-token logits after the last of them (length V). Tests pass a
// scripted function; generate_with_tools(Transformer&, ...) passes a CachedLogits.
using NextLogitsFn = std::function<std::vector<float>(const std::vector<int64_t>& ids)>;

// A Transformer read through its KV cache (batch 1, max_len positions), under NoGradGuard.
class CachedLogits {
 public:
  CachedLogits(Transformer& model, int64_t max_len);
  std::vector<float> operator()(const std::vector<int64_t>& ids);  // throws past max_len or on an empty ids
  int64_t length() const { return length_; }                       // tokens read so far
  int64_t forwards() const { return forwards_; }

 private:
  Transformer& model_;
  std::unique_ptr<TransformerCache> cache_;
  int64_t max_len_ = 0, length_ = 0, forwards_ = 0;
};

struct ToolCall {
  std::string expression;  // what the model wrote between the tags ("" when no <tool_call> opened it)
  data::ToolResult result; // what was inserted
  int64_t at = 0;          // index in ToolCompletion::tokens of the </tool_call> token
};

struct ToolCompletion {
  std::vector<int64_t> tokens;   // the completion: sampled and inserted tokens, in order
  std::vector<uint8_t> sampled;  // per token: 1 = the model sampled it, 0 = the tool loop inserted it
  std::vector<ToolCall> calls;   // every </tool_call> answered, in order
};

struct ToolGenStats {
  int64_t sampled_tokens = 0;   // tokens with sampled = 1
  int64_t inserted_tokens = 0;  // tokens with sampled = 0
  int64_t calls = 0;            // </tool_call> tokens answered (= completion.calls.size())
  int64_t executed = 0;         // of those, run by the calculator (the others: no opener, or too many calls)
  int64_t errors = 0;           // answered with an "error: ..." result
  int64_t forwards = 0;         // NextLogitsFn calls (prefill included)
  bool call_limit_hit = false;  // a call was refused with "error: too many calls"
  bool truncated_result = false;  // an insertion was cut by max_new_tokens
};

// The loop on any logits source. Throws "[generate_with_tools] ..." for an empty prompt, max_new_tokens < 0,
// logits longer than the tokenizer's vocabulary (a sampled id must decode), tools_enabled with a tokenizer that
// lacks the tool tags, and a bad SamplingConfig (as sample_token does). config.seed is not used: `seed` is.
ToolCompletion generate_with_tools(const NextLogitsFn& next_logits, const data::Tokenizer& tok,
                                   const std::vector<int64_t>& prompt_ids, int64_t max_new_tokens,
                                   const SamplingConfig& config, uint64_t seed, int64_t stop_token,
                                   const data::ToolLimits& limits, bool tools_enabled, ToolGenStats* stats = nullptr);

// The loop on a Transformer through a KV cache of prompt + max_new_tokens positions (must fit max_seq_len).
ToolCompletion generate_with_tools(Transformer& model, const data::Tokenizer& tok,
                                   const std::vector<int64_t>& prompt_ids, int64_t max_new_tokens,
                                   const SamplingConfig& config, uint64_t seed, int64_t stop_token,
                                   const data::ToolLimits& limits, bool tools_enabled, ToolGenStats* stats = nullptr);

// Row r is exactly generate_with_tools(model, tok, prompts[r], ..., seeds[r], ...), decoded one row after
// another (see above). stats, if given, sums the rows' stats (call_limit_hit / truncated_result: any row).
std::vector<ToolCompletion> generate_batch_with_tools(Transformer& model, const data::Tokenizer& tok,
                                                      const std::vector<std::vector<int64_t>>& prompts,
                                                      int64_t max_new_tokens, const SamplingConfig& config,
                                                      const std::vector<uint64_t>& seeds, int64_t stop_token,
                                                      const data::ToolLimits& limits, bool tools_enabled,
                                                      ToolGenStats* stats = nullptr);

}  // namespace sg
