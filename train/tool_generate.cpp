// train/tool_generate.cpp — the generation loop that pauses for calculator calls (see tool_generate.h).
#include "train/tool_generate.h"

#include <stdexcept>

#include "autograd/node.h"
#include "data/chat.h"
#include "ops/ops.h"

namespace sg {

[[noreturn]] static void fail(const std::string& message) {
  throw std::runtime_error("[generate_with_tools] " + message);
}

CachedLogits::CachedLogits(Transformer& model, int64_t max_len)
    : model_(model), cache_(model.make_cache(1, max_len)), max_len_(max_len) {}

std::vector<float> CachedLogits::operator()(const std::vector<int64_t>& ids) {
  const int64_t n = (int64_t)ids.size();
  if (n == 0) fail("CachedLogits: no tokens to read");
  if (length_ + n > max_len_)
    fail("CachedLogits: " + std::to_string(length_) + " cached + " + std::to_string(n) + " new tokens exceed the " +
         std::to_string(max_len_) + "-position cache");
  NoGradGuard no_grad;
  const Tensor logits = model_.forward(Tensor::from_vector(ids, {1, n}), length_, cache_.get());  // [1, n, V]
  length_ += n;
  forwards_++;
  return narrow(logits, 1, n - 1, 1).to_f32_vector();
}

// The answer to the call that ends the completion: the calculator's result, or the loop's own refusal.
static data::ToolResult answer_call(const data::PendingToolCall& call, int64_t calls_before,
                                    const data::ToolLimits& limits) {
  if (calls_before >= limits.max_calls_per_answer) return {false, "error: too many calls"};
  if (!call.has_open) return {false, "error: call closed without being opened"};
  return data::run_calculator(call.expression, limits);
}

ToolCompletion generate_with_tools(const NextLogitsFn& next_logits, const data::Tokenizer& tok,
                                   const std::vector<int64_t>& prompt, int64_t max_new, const SamplingConfig& config,
                                   uint64_t seed, int64_t stop_token, const data::ToolLimits& limits,
                                   bool tools_enabled, ToolGenStats* stats) {
  if (prompt.empty()) fail("the prompt is empty");
  if (max_new < 0) fail("max_new_tokens " + std::to_string(max_new) + " is negative");
  int64_t call_end = -1, result_open = -1, result_close = -1;
  if (tools_enabled) {
    const auto a = tok.find_token("</tool_call>"), b = tok.find_token("<tool_result>"),
               c = tok.find_token("</tool_result>");
    if (!a || !b || !c || !tok.is_special(*a) || !tok.is_special(*b) || !tok.is_special(*c))
      fail("tools are enabled but the tokenizer has no </tool_call>, <tool_result>, </tool_result> special tokens");
    call_end = *a, result_open = *b, result_close = *c;
  }
  SamplingConfig sc = config;
  sc.seed = seed;
  Rng rng(seed);
  ToolCompletion out;
  ToolGenStats st;
  auto read = [&](const std::vector<int64_t>& ids) {
    std::vector<float> logits = next_logits(ids);
    st.forwards++;
    if ((int64_t)logits.size() > tok.vocab_size())
      fail("the model's " + std::to_string(logits.size()) + " logits exceed the tokenizer's vocabulary of " +
           std::to_string(tok.vocab_size()) + " (a sampled id must decode)");
    return logits;
  };
  auto append = [&](int64_t id, uint8_t sampled) {
    out.tokens.push_back(id);
    out.sampled.push_back(sampled);
  };

  if (max_new > 0) {
    std::vector<float> logits = read(prompt);
    while (true) {
      const int64_t next = sample_token(logits, sc, rng);
      append(next, 1);
      if (next == stop_token || (int64_t)out.tokens.size() == max_new) break;
      std::vector<int64_t> feed{next};
      if (tools_enabled && next == call_end) {
        // Read the call back from the completion's text, answer it, insert the answer.
        const std::vector<int32_t> ids32(out.tokens.begin(), out.tokens.end());
        const std::optional<data::PendingToolCall> call = data::find_pending_tool_call(tok.decode(ids32));
        const data::PendingToolCall pending = call.value_or(data::PendingToolCall{});  // always set: text ends with it
        ToolCall tc{pending.expression, answer_call(pending, (int64_t)out.calls.size(), limits),
                    (int64_t)out.tokens.size() - 1};
        st.executed += pending.has_open && (int64_t)out.calls.size() < limits.max_calls_per_answer;
        st.call_limit_hit = st.call_limit_hit || (int64_t)out.calls.size() >= limits.max_calls_per_answer;
        st.errors += !tc.result.ok;
        std::vector<int64_t> inserted{result_open};
        for (int32_t id : tok.encode(tc.result.text, /*allow_special=*/false)) inserted.push_back(id);
        inserted.push_back(result_close);
        out.calls.push_back(std::move(tc));
        for (int64_t id : inserted) {
          if ((int64_t)out.tokens.size() == max_new) {
            st.truncated_result = true;
            break;
          }
          append(id, 0);
          feed.push_back(id);
        }
        if ((int64_t)out.tokens.size() == max_new) break;
      }
      logits = read(feed);
    }
  }
  st.calls = (int64_t)out.calls.size();
  for (uint8_t s : out.sampled) (s ? st.sampled_tokens : st.inserted_tokens)++;
  if (stats) *stats = st;
  return out;
}

ToolCompletion generate_with_tools(Transformer& model, const data::Tokenizer& tok, const std::vector<int64_t>& prompt,
                                   int64_t max_new, const SamplingConfig& config, uint64_t seed, int64_t stop_token,
                                   const data::ToolLimits& limits, bool tools_enabled, ToolGenStats* stats) {
  if (prompt.empty()) fail("the prompt is empty");
  if (max_new < 0) fail("max_new_tokens " + std::to_string(max_new) + " is negative");
  if ((int64_t)prompt.size() + max_new > model.args.max_seq_len)
    fail("prompt (" + std::to_string(prompt.size()) + " tokens) + max_new_tokens " + std::to_string(max_new) +
         " exceed max_seq_len " + std::to_string(model.args.max_seq_len));
  for (int64_t id : prompt)
    if (id < 0 || id >= model.args.vocab_size)
      fail("prompt token " + std::to_string(id) + " is outside [0, " + std::to_string(model.args.vocab_size) + ")");
  CachedLogits cached(model, (int64_t)prompt.size() + max_new);
  return generate_with_tools(std::ref(cached), tok, prompt, max_new, config, seed, stop_token, limits, tools_enabled,
                             stats);
}

std::vector<ToolCompletion> generate_batch_with_tools(Transformer& model, const data::Tokenizer& tok,
                                                      const std::vector<std::vector<int64_t>>& prompts,
                                                      int64_t max_new, const SamplingConfig& config,
                                                      const std::vector<uint64_t>& seeds, int64_t stop_token,
                                                      const data::ToolLimits& limits, bool tools_enabled,
                                                      ToolGenStats* stats) {
  if (seeds.size() != prompts.size())
    fail("generate_batch_with_tools: " + std::to_string(prompts.size()) + " prompts but " +
         std::to_string(seeds.size()) + " seeds");
  std::vector<ToolCompletion> out;
  ToolGenStats sum;
  for (size_t r = 0; r < prompts.size(); r++) {
    ToolGenStats st;
    out.push_back(generate_with_tools(model, tok, prompts[r], max_new, config, seeds[r], stop_token, limits,
                                      tools_enabled, &st));
    sum.sampled_tokens += st.sampled_tokens;
    sum.inserted_tokens += st.inserted_tokens;
    sum.calls += st.calls;
    sum.executed += st.executed;
    sum.errors += st.errors;
    sum.forwards += st.forwards;
    sum.call_limit_hit = sum.call_limit_hit || st.call_limit_hit;
    sum.truncated_result = sum.truncated_result || st.truncated_result;
  }
  if (stats) *stats = sum;
  return out;
}

}  // namespace sg
