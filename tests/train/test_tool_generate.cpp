// tests/train/test_tool_generate.cpp — the generation loop that pauses for calculator calls (train/tool_generate.h):
// with a scripted logits source the "model" writes calls, and the test asserts the inserted ids, the sampled mask,
// what the model was fed, the continuation, several calls, the call limit, truncation and tools off; with a tiny
// random Transformer, tools off = generate() token for token, same seed = same tokens, and the KV-cache path
// (the result fed as one chunk) continues exactly as a from-scratch forward over the whole context would.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "data/chat.h"
#include "data/tokenizer.h"
#include "models/generate.h"
#include "models/transformer.h"
#include "ops/ops.h"
#include "tests/test_util.h"
#include "train/tool_generate.h"

using namespace sg;

namespace {

const data::Tokenizer& tokenizer() {
  static const data::Tokenizer tok = [] {
    std::string corpus;
    for (int i = 0; i < 30; i++)
      corpus += "<|user|>\nWhat is " + std::to_string(i) + " * 7?\n<|assistant|>\n<think>\n" + std::to_string(i) +
                " * 7 = " + data::render_tool_turn(std::to_string(i) + "*7", std::to_string(7 * i)) +
                "\n</think>\n" + std::to_string(7 * i) + "<|endoftext|>";
    data::BpeTrainOptions bo;
    bo.vocab_size = 300;
    return data::Tokenizer::train(corpus, bo);
  }();
  return tok;
}

std::vector<int64_t> ids(const std::string& text) {
  const std::vector<int32_t> v = tokenizer().encode(text);
  return {v.begin(), v.end()};
}
std::vector<int64_t> ids_plain(const std::string& text) {  // special tokens off: how a result's text is encoded
  const std::vector<int32_t> v = tokenizer().encode(text, false);
  return {v.begin(), v.end()};
}
std::string text(const std::vector<int64_t>& v) { return tokenizer().decode({v.begin(), v.end()}); }
int64_t id(const char* token) { return tokenizer().token_id(token); }
std::vector<int64_t> concat(std::vector<int64_t> a, const std::vector<int64_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// A "model" that writes script[k] at its k-th sample, whatever it reads (greedy: one logit far above the rest),
// and records every chunk of ids it was fed.
struct Scripted {
  std::vector<int64_t> script;
  std::vector<std::vector<int64_t>> reads;
  std::vector<float> operator()(const std::vector<int64_t>& fed) {
    reads.push_back(fed);
    std::vector<float> logits(tokenizer().vocab_size(), 0.0f);
    const size_t k = reads.size() - 1;
    logits[k < script.size() ? script[k] : 0] = 10.0f;
    return logits;
  }
};

const std::vector<int64_t> kPrompt = ids(data::render_prompt("What is 2 * 3?", ""));

ToolCompletion run(Scripted& m, int64_t max_new, const data::ToolLimits& lim = {}, bool tools = true,
                   ToolGenStats* st = nullptr) {
  return generate_with_tools(std::ref(m), tokenizer(), kPrompt, max_new, SamplingConfig{}, 0, id("<|endoftext|>"),
                             lim, tools, st);
}

std::vector<uint8_t> mask(size_t ones, size_t zeros, size_t ones_after) {
  std::vector<uint8_t> m(ones, 1);
  m.insert(m.end(), zeros, 0);
  m.insert(m.end(), ones_after, 1);
  return m;
}

}  // namespace

TEST_CASE("generate_with_tools: one call — the result's ids inserted, masked 0, fed as one chunk, then continued") {
  const std::vector<int64_t> before = ids("<think>\n2*3 = <tool_call>2*3</tool_call>");
  const std::vector<int64_t> after = ids("\n</think>\n6<|endoftext|>");
  const std::vector<int64_t> inserted = concat(concat({id("<tool_result>")}, ids_plain("6")), {id("</tool_result>")});
  REQUIRE(before.back() == id("</tool_call>"));
  Scripted m{concat(before, after), {}};
  ToolGenStats st;
  const ToolCompletion c = run(m, 60, {}, true, &st);
  CHECK(c.tokens == concat(concat(before, inserted), after));
  CHECK(c.sampled == mask(before.size(), inserted.size(), after.size()));
  const std::string t = text(c.tokens);
  CHECK(t == "<think>\n2*3 = <tool_call>2*3</tool_call><tool_result>6</tool_result>\n</think>\n6<|endoftext|>");
  const data::ParsedCompletion p = data::parse_completion(t);
  CHECK(p.well_formed);
  CHECK(p.answer == "6");
  CHECK(p.n_tool_calls == 1);
  REQUIRE(c.calls.size() == 1);
  CHECK(c.calls[0].expression == "2*3");
  CHECK(c.calls[0].result.ok);
  CHECK(c.calls[0].result.text == "6");
  CHECK(c.calls[0].at == (int64_t)before.size() - 1);
  // what the model read: the prompt, then one token per sample, except [</tool_call>, inserted...] in one chunk
  REQUIRE(m.reads.size() == before.size() + after.size());  // one read per sample (the last sample is not fed)
  CHECK(m.reads[0] == kPrompt);
  for (size_t k = 1; k < m.reads.size(); k++) {
    CAPTURE(k);
    if (k == before.size()) CHECK(m.reads[k] == concat({id("</tool_call>")}, inserted));
    else CHECK(m.reads[k] == std::vector<int64_t>{c.tokens[k - 1 + (k > before.size() ? inserted.size() : 0)]});
  }
  CHECK(st.sampled_tokens == (int64_t)(before.size() + after.size()));
  CHECK(st.inserted_tokens == (int64_t)inserted.size());
  CHECK(st.calls == 1);
  CHECK(st.executed == 1);
  CHECK(st.errors == 0);
  CHECK(st.forwards == (int64_t)m.reads.size());
  CHECK_FALSE(st.call_limit_hit);
  CHECK_FALSE(st.truncated_result);
}

TEST_CASE("generate_with_tools: several calls, errors the model reads, the call limit, a close without opener") {
  // three calls: a product, a division by zero, junk with a special token's text inside the call
  const std::string written =
      "<think>\n<tool_call>48213*977</tool_call>+<tool_call>1/0</tool_call>+<tool_call>1+<|user|></tool_call>"
      "+</tool_call>\n</think>\n1<|endoftext|>";
  Scripted m{ids(written), {}};
  ToolGenStats st;
  ToolCompletion c = run(m, 200, {}, true, &st);
  CHECK(text(c.tokens) ==
        "<think>\n<tool_call>48213*977</tool_call><tool_result>47104101</tool_result>+<tool_call>1/0</tool_call>"
        "<tool_result>error: division by zero</tool_result>+<tool_call>1+<|user|></tool_call>"
        "<tool_result>error: unexpected '<' at byte 2</tool_result>+</tool_call>"
        "<tool_result>error: call closed without being opened</tool_result>\n</think>\n1<|endoftext|>");
  REQUIRE(c.calls.size() == 4);
  CHECK(c.calls[0].result.text == std::to_string(48213LL * 977LL));
  CHECK(c.calls[2].expression == "1+<|user|>");
  CHECK(c.calls[3].expression == "");
  CHECK(st.calls == 4);
  CHECK(st.executed == 3);
  CHECK(st.errors == 3);
  // the mask is 0 exactly on the inserted results, and the sampled tokens alone are what the model wrote
  std::vector<int64_t> sampled_only;
  for (size_t i = 0; i < c.tokens.size(); i++)
    if (c.sampled[i]) sampled_only.push_back(c.tokens[i]);
  CHECK(sampled_only == m.script);
  int64_t zeros = 0;
  for (uint8_t s : c.sampled) zeros += s == 0;
  CHECK(zeros == st.inserted_tokens);
  // only the <tool_result> / </tool_result> tags of the inserted tokens are special tokens
  std::vector<int64_t> inserted;
  for (size_t i = 0; i < c.tokens.size(); i++)
    if (!c.sampled[i]) inserted.push_back(c.tokens[i]);
  int64_t specials = 0;
  for (int64_t t : inserted) specials += tokenizer().is_special((int32_t)t);
  CHECK(specials == 2 * 4);  // only the <tool_result> / </tool_result> pairs

  // the call limit: 2 calls run, every later one is refused
  data::ToolLimits lim;
  lim.max_calls_per_answer = 2;
  const std::string three = "<think>\n<tool_call>1+1</tool_call><tool_call>2+2</tool_call><tool_call>3+3</tool_call>"
                            "<tool_call>4+4</tool_call>\n</think>\n2<|endoftext|>";
  Scripted m3{ids(three), {}};
  c = run(m3, 200, lim, true, &st);
  REQUIRE(c.calls.size() == 4);
  CHECK(c.calls[0].result.text == "2");
  CHECK(c.calls[1].result.text == "4");
  CHECK(c.calls[2].result.text == "error: too many calls");
  CHECK(c.calls[3].result.text == "error: too many calls");
  CHECK(c.calls[2].expression == "3+3");
  CHECK(st.call_limit_hit);
  CHECK(st.executed == 2);
  CHECK(st.errors == 2);
  CHECK(text(c.tokens).find("<tool_call>3+3</tool_call><tool_result>error: too many calls</tool_result>") !=
        std::string::npos);
}

TEST_CASE("generate_with_tools: tools off, max_new_tokens cutting a result, stop at <|endoftext|>") {
  const std::vector<int64_t> script = ids("<think>\n<tool_call>2*3</tool_call>\n</think>\n6<|endoftext|>");
  Scripted off{script, {}};
  ToolGenStats st;
  ToolCompletion c = run(off, 60, {}, false, &st);
  CHECK(c.tokens == script);  // </tool_call> is just a token
  CHECK(c.sampled == std::vector<uint8_t>(script.size(), 1));
  CHECK(c.calls.empty());
  CHECK(st.inserted_tokens == 0);
  for (size_t k = 1; k < off.reads.size(); k++) CHECK(off.reads[k].size() == 1);

  // max_new_tokens bounds sampled + inserted: the limit falls inside the result, which is cut there
  const std::vector<int64_t> head = ids("<think>\n<tool_call>2*3</tool_call>");
  Scripted cut{script, {}};
  c = run(cut, (int64_t)head.size() + 2, {}, true, &st);
  CHECK(c.tokens.size() == head.size() + 2);
  CHECK(c.tokens[head.size()] == id("<tool_result>"));
  CHECK(c.sampled == mask(head.size(), 2, 0));
  CHECK(st.truncated_result);
  CHECK(cut.reads.size() == head.size());  // nothing is fed after the cut
  // the limit right after the </tool_call>: no room for the result at all
  Scripted at{script, {}};
  c = run(at, (int64_t)head.size(), {}, true, &st);
  CHECK(c.tokens == head);
  CHECK(c.calls.size() == 0);  // generation stops at the limit before reading the call
  // the stop token ends it; nothing after it is sampled
  Scripted stop{concat(ids("<think>\n1\n</think>\n1<|endoftext|>"), ids("<think>")), {}};
  c = run(stop, 60);
  CHECK(c.tokens.back() == id("<|endoftext|>"));
  CHECK(c.tokens.size() == stop.script.size() - 1);
  CHECK(run(stop, 0).tokens.empty());

  CHECK(test::error_of([] {
          Scripted s{{}, {}};
          generate_with_tools(std::ref(s), tokenizer(), {}, 4, {}, 0, -1, {}, true);
        }) == "[generate_with_tools] the prompt is empty");
  CHECK(test::error_of([] {
          Scripted s{{}, {}};
          generate_with_tools(std::ref(s), data::Tokenizer(), {1}, 4, {}, 0, -1, {}, true);
        }).find("tokenizer has no </tool_call>") != std::string::npos);
  CHECK(test::error_of([] {
          generate_with_tools([](const std::vector<int64_t>&) { return std::vector<float>(5000, 0.f); }, tokenizer(),
                              {1}, 4, {}, 0, -1, {}, true);
        }).find("exceed the tokenizer's vocabulary") != std::string::npos);
}

TEST_CASE("generate_with_tools on a tiny Transformer: tools off = generate(), same seed = same tokens, and the KV "
          "cache continues after an inserted result as a from-scratch forward does") {
  const data::Tokenizer& tok = tokenizer();
  Rng init(3);
  Transformer model(test::tiny_post_training_args(tok.vocab_size(), 128, 4), init);
  const int64_t eot = id("<|endoftext|>");
  SamplingConfig sc;
  sc.temperature = 1.0;

  // tools off: generate() token for token (the same forwards, the same draws)
  for (uint64_t seed : {1, 2, 3}) {
    sc.seed = seed;
    const std::vector<int64_t> plain = generate(model, kPrompt, 24, sc, eot);
    const ToolCompletion c = generate_with_tools(model, tok, kPrompt, 24, sc, seed, eot, {}, false);
    CHECK(c.tokens == plain);
  }

  // a model forced to write "<tool_call>6*7</tool_call>" first, then left to itself
  const std::vector<int64_t> forced = ids("<tool_call>6*7</tool_call>");
  auto forced_run = [&](uint64_t seed, const SamplingConfig& cfg, ToolGenStats* st) {
    CachedLogits cached(model, (int64_t)kPrompt.size() + 40);
    int64_t k = 0;
    auto next = [&](const std::vector<int64_t>& fed) {
      std::vector<float> logits = cached(fed);
      if (k < (int64_t)forced.size()) logits[forced[k]] += 1e4f;
      k++;
      return logits;
    };
    return generate_with_tools(next, tok, kPrompt, 40, cfg, seed, eot, {}, true, st);
  };
  ToolGenStats st;
  const ToolCompletion a = forced_run(7, sc, &st), b = forced_run(7, sc, nullptr), other = forced_run(8, sc, nullptr);
  const std::vector<int64_t> result = concat(concat({id("<tool_result>")}, ids_plain("42")), {id("</tool_result>")});
  const std::vector<int64_t> head = concat(forced, result);
  REQUIRE(a.tokens.size() > head.size());
  CHECK(std::vector<int64_t>(a.tokens.begin(), a.tokens.begin() + (int64_t)head.size()) == head);
  REQUIRE(st.calls >= 1);
  CHECK(std::vector<uint8_t>(a.sampled.begin(), a.sampled.begin() + (int64_t)head.size()) ==
        mask(forced.size(), result.size(), 0));
  CHECK(a.calls[0].result.text == "42");
  CHECK(a.tokens == b.tokens);
  CHECK(a.sampled == b.sampled);
  CHECK(other.tokens != a.tokens);

  // greedy: every token after the inserted chunk is the argmax of a from-scratch forward over the whole context
  // (no cache), so the chunk went through the cache at the right positions
  const ToolCompletion g = forced_run(0, SamplingConfig{}, nullptr);
  REQUIRE(g.tokens.size() > head.size() + 3);
  NoGradGuard no_grad;
  for (size_t j = head.size(); j < g.tokens.size(); j++) {
    if (!g.sampled[j]) continue;
    std::vector<int64_t> ctx = concat(kPrompt, std::vector<int64_t>(g.tokens.begin(), g.tokens.begin() + (int64_t)j));
    const Tensor logits = model.forward(Tensor::from_vector(ctx, {1, (int64_t)ctx.size()}));
    const std::vector<float> last = narrow(logits, 1, (int64_t)ctx.size() - 1, 1).to_f32_vector();
    CAPTURE(j);
    CHECK(g.tokens[j] == (int64_t)(std::max_element(last.begin(), last.end()) - last.begin()));
  }

  // the Transformer entry point checks the context fits
  CHECK(test::error_of([&] { generate_with_tools(model, tok, kPrompt, 200, sc, 1, eot, {}, true); })
            .find("exceed max_seq_len 128") != std::string::npos);
  // the batched entry point is the single-row one, row by row
  const std::vector<ToolCompletion> rows =
      generate_batch_with_tools(model, tok, {kPrompt, kPrompt}, 16, sc, {1, 2}, eot, {}, true);
  REQUIRE(rows.size() == 2);
  CHECK(rows[1].tokens == generate_with_tools(model, tok, kPrompt, 16, sc, 2, eot, {}, true).tokens);
}
