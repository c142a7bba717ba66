// models/generate.cpp — see generate.h. Everything runs under NoGradGuard: the MLA caches are read as
// views (no copies) and no tape is recorded.
#include "models/generate.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <map>
#include <numeric>
#include <stdexcept>

#include "autograd/node.h"
#include "ops/ops.h"

namespace sg {

[[noreturn]] static void fail(const std::string& message) { throw std::runtime_error("[generate] " + message); }

static int64_t argmax_of(const std::vector<float>& v) {
  return (int64_t)(std::max_element(v.begin(), v.end()) - v.begin());  // first maximum
}

// ---- sampling -----------------------------------------------------------------------------------

std::vector<double> sampling_probs(const std::vector<float>& logits, const SamplingConfig& c) {
  const int64_t V = (int64_t)logits.size();
  if (V == 0) fail("sampling_probs: empty logits");
  if (c.top_k < 0) fail("top_k " + std::to_string(c.top_k) + " is negative (0 = no top-k filter)");
  if (!(c.top_p > 0.0 && c.top_p <= 1.0)) fail("top_p " + std::to_string(c.top_p) + " must be in (0, 1]");
  if (!(c.temperature >= 0.0) || !std::isfinite(c.temperature))  // NaN would make every probability NaN
    fail("temperature " + std::to_string(c.temperature) + " must be a finite number >= 0 (0 = greedy)");
  std::vector<double> p(V, 0.0);
  if (c.temperature <= 0.0) {
    p[argmax_of(logits)] = 1.0;
    return p;
  }
  // p = softmax(logits / T), the max subtracted first
  double mx = *std::max_element(logits.begin(), logits.end()), z = 0;
  for (int64_t i = 0; i < V; i++) z += p[i] = std::exp(((double)logits[i] - mx) / c.temperature);
  for (double& x : p) x /= z;
  // most likely first; ties keep the lower id
  std::vector<int64_t> order(V);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return p[a] > p[b]; });
  int64_t keep = c.top_k > 0 ? std::min<int64_t>(c.top_k, V) : V;
  // nucleus over the top-k survivors, renormalised: the smallest prefix whose mass reaches top_p
  double kept_mass = 0;
  for (int64_t r = 0; r < keep; r++) kept_mass += p[order[r]];
  if (c.top_p < 1.0) {
    double cum = 0;
    for (int64_t r = 0; r < keep; r++) {
      cum += p[order[r]] / kept_mass;
      if (cum >= c.top_p) {
        keep = r + 1;
        break;
      }
    }
  }
  std::vector<double> q(V, 0.0);
  double mass = 0;
  for (int64_t r = 0; r < keep; r++) mass += p[order[r]];
  for (int64_t r = 0; r < keep; r++) q[order[r]] = p[order[r]] / mass;
  return q;
}

int64_t sample_token(const std::vector<float>& logits, const SamplingConfig& c, Rng& rng) {
  if (c.temperature <= 0.0) {
    if (logits.empty()) fail("sample_token: empty logits");
    return argmax_of(logits);
  }
  std::vector<double> p = sampling_probs(logits, c);
  double u = rng.uniform(), cum = 0;
  int64_t last = 0;
  for (int64_t i = 0; i < (int64_t)p.size(); i++) {
    if (p[i] == 0) continue;
    cum += p[i];
    last = i;
    if (u < cum) return i;
  }
  return last;  // u within rounding of 1
}

// ---- plain decoding -------------------------------------------------------------------------------

static Tensor row_tokens(const std::vector<int64_t>& ids) { return Tensor::from_vector(ids, {1, (int64_t)ids.size()}); }

// Logits of the last position of [1, S, V] as floats.
static std::vector<float> last_logits(const Tensor& logits) {
  return narrow(logits, 1, logits.size(1) - 1, 1).to_f32_vector();
}

static void check_request(const Transformer& m, const std::vector<int64_t>& prompt, int64_t max_new) {
  if (prompt.empty()) fail("the prompt is empty");
  if (max_new < 0) fail("max_new_tokens " + std::to_string(max_new) + " is negative");
  if ((int64_t)prompt.size() + max_new > m.args.max_seq_len)
    fail("prompt (" + std::to_string(prompt.size()) + " tokens) + max_new_tokens " + std::to_string(max_new) +
         " exceed max_seq_len " + std::to_string(m.args.max_seq_len));
}

std::vector<int64_t> generate(Transformer& model, const std::vector<int64_t>& prompt, int64_t max_new,
                              const SamplingConfig& config, int64_t stop_token) {
  check_request(model, prompt, max_new);
  std::vector<int64_t> out;
  if (max_new == 0) return out;
  NoGradGuard no_grad;
  Rng rng(config.seed);
  const int64_t P = (int64_t)prompt.size();
  auto cache = model.make_cache(1, P + max_new);
  std::vector<float> logits = last_logits(model.forward(row_tokens(prompt), 0, cache.get()));  // prefill
  while (true) {
    int64_t next = sample_token(logits, config, rng);
    out.push_back(next);
    if (next == stop_token || (int64_t)out.size() == max_new) return out;
    logits = last_logits(model.forward(row_tokens({next}), P + (int64_t)out.size() - 1, cache.get()));
  }
}

// ---- batched decoding ----------------------------------------------------------------------------
//
// One chunk = up to max_batch_size rows whose prompts have the same length P. Its cache holds B rows;
// the rows still decoding always sit in cache slots [0, n) (a forward with n < B tokens rows reads and
// writes exactly those slots). When rows finish, the survivors' cache rows are moved down over them
// (compact_cache) so the next forwards run on n rows, not B.
//
// Why a row's logits carry the same bits at batch n as at batch 1 (tests/models/test_generate_batch.cpp
// checks it bit for bit, prefill and decode, MLA + MoE and DSA): the GEMM (ops/cpu/gemm.cpp) sums each
// output element over K in an order fixed by K, kc and the micro-kernel alone — a row in an edge tile goes
// through the same micro-kernel into scratch, and the thread splits give the one-thread bits; the
// attention kernel works per (sequence, head); MoE routes each token by itself, runs each expert's GEMM on
// gathered rows and adds a token's expert outputs in expert order; norms and softmaxes are per row. So the
// batched path needed no numerical change; nothing here relies on luck in ties.

[[noreturn]] static void fail_batch(const std::string& message) {
  throw std::runtime_error("[generate_batch] " + message);
}

// Moves cache row from[j] to row j, positions [0, len), for j = 0.. in order (from is increasing and
// from[j] >= j, so a row is read before anything is written over it). buf: [max_batch, max_seq, ...], contiguous,
// on any device: each row's first len positions are one run of bytes, copied where the cache lives (memcpy on the
// host, a device-to-device copy on a GPU — whatever the dtype, fp8 codes included).
static void compact_rows(const Tensor& buf, const std::vector<int64_t>& from, int64_t len) {
  if (!buf.defined()) return;
  if (!buf.is_contiguous()) throw std::runtime_error("[generate_batch] a cache buffer " + buf.describe() + " is not contiguous");
  const int64_t per_pos = buf.numel() / (buf.size(0) * buf.size(1));
  const size_t bytes = (size_t)(len * per_pos) * dtype_size(buf.dtype());
  const size_t row_stride = (size_t)(buf.size(1) * per_pos) * dtype_size(buf.dtype());
  const MemoryPool pool = buf.impl()->storage->pool;
  char* base = static_cast<char*>(buf.raw_device_data());
  for (size_t j = 0; j < from.size(); j++)
    if (from[j] != (int64_t)j) copy_memory(pool, base + j * row_stride, pool, base + (size_t)from[j] * row_stride, bytes);
}

static void compact_cache(TransformerCache& cache, const std::vector<int64_t>& from) {
  const int64_t len = cache.length();
  for (BlockCache& c : cache.layers) {
    compact_rows(c.attn.k_cache, from, len);
    compact_rows(c.attn.v_cache, from, len);
    compact_rows(c.attn.kv, from, len);
    compact_rows(c.dsa.mla.kv, from, len);
    compact_rows(c.dsa.indexer.k_cache, from, len);
    compact_rows(c.dsa.indexer.k_scale_cache, from, len);
  }
  // cache.mtp is not used by plain decoding
}

// Decodes rows (indices into prompts, all of one length) together; writes out[row] for each.
static void decode_chunk(Transformer& model, const std::vector<int64_t>& rows,
                         const std::vector<std::vector<int64_t>>& prompts, int64_t max_new, const SamplingConfig& config,
                         const std::vector<uint64_t>& seeds, int64_t stop_token,
                         std::vector<std::vector<int64_t>>& out, BatchGenerateStats& st) {
  const int64_t B = (int64_t)rows.size(), P = (int64_t)prompts[rows[0]].size(), V = model.args.vocab_size;
  auto cache = model.make_cache(B, P + max_new);
  std::vector<int64_t> ids;
  for (int64_t r : rows) ids.insert(ids.end(), prompts[r].begin(), prompts[r].end());
  // Prefill; the head runs on the last position only (its GEMM rows are independent: same numbers).
  Tensor h = model.hidden(Tensor::from_vector(ids, {B, P}), 0, cache.get());
  Tensor logits = model.logits_from_hidden(narrow(h, 1, P - 1, 1));  // [B,1,V]
  st.forwards++;
  std::vector<Rng> rng;
  for (int64_t r : rows) rng.emplace_back(seeds[r]);
  std::vector<int64_t> live(B);  // live[slot] = index into rows of the row in cache slot `slot`
  std::iota(live.begin(), live.end(), 0);
  for (int64_t step = 0;; step++) {
    const std::vector<float> all = logits.to_f32_vector();  // [n, V]
    std::vector<int64_t> keep_slots, keep_live, feed;
    for (size_t slot = 0; slot < live.size(); slot++) {
      const int64_t i = live[slot];
      std::vector<float> row(all.begin() + (int64_t)slot * V, all.begin() + ((int64_t)slot + 1) * V);
      const int64_t next = sample_token(row, config, rng[i]);
      std::vector<int64_t>& o = out[rows[i]];
      o.push_back(next);
      if (next == stop_token || (int64_t)o.size() == max_new) continue;  // this row is done
      keep_slots.push_back((int64_t)slot);
      keep_live.push_back(i);
      feed.push_back(next);
    }
    if (keep_live.empty()) return;
    if (keep_live.size() < live.size()) compact_cache(*cache, keep_slots);
    live = keep_live;
    logits = model.forward(Tensor::from_vector(feed, {(int64_t)feed.size(), 1}), P + step, cache.get());
    st.forwards++;
  }
}

std::vector<std::vector<int64_t>> generate_batch(Transformer& model, const std::vector<std::vector<int64_t>>& prompts,
                                                 int64_t max_new, const SamplingConfig& config,
                                                 const std::vector<uint64_t>& seeds, int64_t stop_token,
                                                 BatchGenerateStats* stats) {
  auto t0 = std::chrono::steady_clock::now();
  const int64_t n = (int64_t)prompts.size(), V = model.args.vocab_size;
  if ((int64_t)seeds.size() != n)
    fail_batch("seeds has " + std::to_string(seeds.size()) + " entries but there are " + std::to_string(n) +
               " prompts (one seed per row)");
  if (max_new < 0) fail_batch("max_new_tokens " + std::to_string(max_new) + " is negative");
  if (stop_token >= V)
    fail_batch("stop_token " + std::to_string(stop_token) + " is outside [0, vocab_size = " + std::to_string(V) +
               ") (use -1 for none)");
  if (config.top_k < 0) fail_batch("top_k " + std::to_string(config.top_k) + " is negative (0 = no top-k filter)");
  if (!(config.top_p > 0.0 && config.top_p <= 1.0))
    fail_batch("top_p " + std::to_string(config.top_p) + " must be in (0, 1]");
  for (int64_t r = 0; r < n; r++) {
    const std::vector<int64_t>& p = prompts[r];
    const std::string row = "row " + std::to_string(r) + ": ";
    if (p.empty()) fail_batch(row + "the prompt is empty");
    if ((int64_t)p.size() + max_new > model.args.max_seq_len)
      fail_batch(row + "prompt (" + std::to_string(p.size()) + " tokens) + max_new_tokens " + std::to_string(max_new) +
                 " exceed max_seq_len " + std::to_string(model.args.max_seq_len));
    for (size_t i = 0; i < p.size(); i++)
      if (p[i] < 0 || p[i] >= V)
        fail_batch(row + "token id " + std::to_string(p[i]) + " at position " + std::to_string(i) +
                   " is outside [0, vocab_size = " + std::to_string(V) + ")");
  }
  const int64_t cap = model.args.max_batch_size;
  if (cap <= 0) fail_batch("model.args.max_batch_size is " + std::to_string(cap) + " (must be > 0)");

  BatchGenerateStats st;
  st.rows = n;
  std::vector<std::vector<int64_t>> out(n);
  if (max_new > 0) {
    NoGradGuard no_grad;
    std::map<int64_t, std::vector<int64_t>> by_length;  // prompt length -> rows, in input order
    for (int64_t r = 0; r < n; r++) by_length[(int64_t)prompts[r].size()].push_back(r);
    for (const auto& [len, group] : by_length)
      for (size_t c = 0; c < group.size(); c += (size_t)cap) {
        std::vector<int64_t> chunk(group.begin() + c, group.begin() + std::min(group.size(), c + (size_t)cap));
        decode_chunk(model, chunk, prompts, max_new, config, seeds, stop_token, out, st);
      }
  }
  for (int64_t r = 0; r < n; r++) {
    st.prompt_tokens += (int64_t)prompts[r].size();
    st.new_tokens += (int64_t)out[r].size();
  }
  st.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  st.new_tokens_per_s = st.seconds > 0 ? (double)st.new_tokens / st.seconds : 0.0;
  if (stats) *stats = st;
  return out;
}

// ---- speculative decoding with the MTP modules ----------------------------------------------------
//
// Bookkeeping, with seq = t_0 .. t_{n−1} the confirmed tokens (prompt + output so far):
//   * the main model has consumed t_0 .. t_{n−2} (its cache holds positions [0, n−1)); t_{n−1} is the
//     main model's last argmax, not yet fed;
//   * hist[0] = h⁰_i (post-norm main hidden) for i < n−1;  hist[k] = h^k_i (module k's output);
//   * module k at position i reads h^{k−1}_i and t_{i+k}; it is final once t_{i+k} is confirmed, i.e. for
//     i < n−k. confirmed[k] counts those positions; its cache and hist[k] are recomputed from there on.
// A step: module k = 1..m runs over positions [confirmed[k], n−1) and drafts t_{n+k−1} from its last row
// (module 1 from h⁰_{n−2} and t_{n−1}, module 2 from h¹_{n−2} and draft t_n, ...). The main model then
// reads [t_{n−1}, drafts] at positions n−1 .. n−1+m in one forward: its argmax at each row is what plain
// greedy decoding would produce after that prefix, so the longest prefix of drafts equal to it is
// accepted, plus the main model's next token (always correct). Rejected positions in the caches are
// simply overwritten later.

std::vector<int64_t> generate_speculative(Transformer& model, const std::vector<int64_t>& prompt, int64_t max_new,
                                          int64_t stop_token, SpeculativeStats* stats) {
  auto t0 = std::chrono::steady_clock::now();
  check_request(model, prompt, max_new);
  const int64_t D = (int64_t)model.mtp.size();
  if (D == 0) fail("generate_speculative: the model has no MTP modules (num_nextn_predict_layers = 0)");
  SpeculativeStats st;
  std::vector<int64_t> out;
  if (max_new == 0) {
    if (stats) *stats = st;
    return out;
  }
  NoGradGuard no_grad;
  const int64_t P = (int64_t)prompt.size();
  const int64_t cap = std::min(model.args.max_seq_len, P + max_new + D);
  auto cache = model.make_cache(1, cap);
  std::vector<int64_t> seq = prompt;

  // Prefill: the main model reads the prompt; its argmax at the last position is the first output token.
  std::vector<Tensor> hist(D + 1);
  hist[0] = model.hidden(row_tokens(prompt), 0, cache.get());  // [1, P, d]
  st.main_forwards = 1;
  int64_t first = argmax_of(last_logits(model.logits_from_hidden(narrow(hist[0], 1, P - 1, 1))));
  seq.push_back(first);
  out.push_back(first);
  std::vector<int64_t> confirmed(D + 1, 0);

  while (out.back() != stop_token && (int64_t)out.size() < max_new) {
    const int64_t n = (int64_t)seq.size();
    // drafts beyond the tokens still wanted, or past the cache, would be wasted
    const int64_t m = std::min({D, max_new - (int64_t)out.size() - 1, cap - n});
    std::vector<int64_t> drafts;
    for (int64_t k = 1; k <= m; k++) {
      const int64_t s = confirmed[k], L = n - 1 - s;
      std::vector<int64_t> next(L);  // t_{i+k}, i = s .. n−2 (confirmed tokens, then this step's drafts)
      for (int64_t i = s; i < n - 1; i++) next[i - s] = i + k < n ? seq[i + k] : drafts[i + k - n];
      Tensor hk = model.mtp_forward(k - 1, row_tokens(next), narrow(hist[k - 1], 1, s, L), s, cache.get());
      hist[k] = s == 0 ? hk : cat({narrow(hist[k], 1, 0, s), hk}, 1);
      drafts.push_back(argmax_of(last_logits(model.mtp_logits(k - 1, narrow(hk, 1, L - 1, 1)))));
      confirmed[k] = std::max<int64_t>(0, n - k);
    }
    // Verify: one main forward over [t_{n−1}, drafts] at positions n−1 .. n−1+m.
    std::vector<int64_t> feed{seq.back()};
    feed.insert(feed.end(), drafts.begin(), drafts.end());
    Tensor h = model.hidden(row_tokens(feed), n - 1, cache.get());  // [1, m+1, d]
    st.main_forwards++;
    Tensor logits = model.logits_from_hidden(h);  // [1, m+1, V]
    std::vector<int64_t> pred = argmax(logits, -1).to_i64_vector();
    int64_t j = 0;
    while (j < m && drafts[j] == pred[j]) j++;
    st.drafted += m;
    st.accepted += j;
    // the main model consumed t_{n−1} and the j accepted drafts
    hist[0] = cat({narrow(hist[0], 1, 0, n - 1), narrow(h, 1, 0, j + 1)}, 1);
    cache->set_length(n + j);
    std::vector<int64_t> fresh(drafts.begin(), drafts.begin() + j);
    fresh.push_back(pred[j]);
    for (int64_t t : fresh) {
      seq.push_back(t);
      out.push_back(t);
      if (t == stop_token || (int64_t)out.size() == max_new) break;
    }
  }
  st.generated = (int64_t)out.size();
  st.acceptance_rate = st.drafted ? (double)st.accepted / (double)st.drafted : 0.0;
  st.tokens_per_forward = (double)st.generated / (double)st.main_forwards;
  st.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (stats) *stats = st;
  return out;
}

SpeculativeStats compare_speculative(Transformer& model, const std::vector<int64_t>& prompt, int64_t max_new,
                                     int64_t stop_token) {
  auto t0 = std::chrono::steady_clock::now();
  std::vector<int64_t> plain = generate(model, prompt, max_new, SamplingConfig{}, stop_token);
  double baseline = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  SpeculativeStats st;
  std::vector<int64_t> spec = generate_speculative(model, prompt, max_new, stop_token, &st);
  if (spec != plain) {
    size_t i = 0;
    while (i < spec.size() && i < plain.size() && spec[i] == plain[i]) i++;
    fail("compare_speculative: speculative output differs from greedy at token " + std::to_string(i) + " (" +
         std::to_string(plain.size()) + " greedy tokens, " + std::to_string(spec.size()) + " speculative)");
  }
  st.baseline_seconds = baseline;
  st.speedup = st.seconds > 0 ? baseline / st.seconds : 0.0;
  return st;
}

}  // namespace sg
