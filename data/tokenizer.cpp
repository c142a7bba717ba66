// data/tokenizer.cpp — byte-level BPE: pre-split, training with incremental pair counts, encoding by
// merge rank (naive loop + heap fast path), decoding, and the text file format. See tokenizer.h.
#include "data/tokenizer.h"

#include "data/hash.h"

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <queue>
#include <sstream>
#include <stdexcept>

namespace sg::data {

const std::vector<std::string>& default_special_tokens() {
  static const std::vector<std::string> tokens = {"<|endoftext|>", "<think>",       "</think>",       "<tool_call>",
                                                  "</tool_call>",  "<tool_result>", "</tool_result>", "<|user|>",
                                                  "<|assistant|>", "<|system|>"};
  return tokens;
}

// ---- pre-tokenizer -------------------------------------------------------------------------------

namespace {

enum ByteClass : uint8_t { kLetter, kDigit, kSpace, kPunct };

struct ByteClassTable {
  ByteClass c[256];
  constexpr ByteClassTable() : c() {
    for (int b = 0; b < 256; ++b) {
      if ((b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') || b >= 0x80)
        c[b] = kLetter;
      else if (b >= '0' && b <= '9')
        c[b] = kDigit;
      else if (b == ' ' || b == '\t' || b == '\n' || b == '\r' || b == '\v' || b == '\f')
        c[b] = kSpace;
      else
        c[b] = kPunct;
    }
  }
};
constexpr ByteClassTable kByteClass;
inline ByteClass byte_class(char ch) { return kByteClass.c[(unsigned char)ch]; }

inline char ascii_lower(char ch) { return (ch >= 'A' && ch <= 'Z') ? (char)(ch - 'A' + 'a') : ch; }

// Length of a contraction ('s 't 're 've 'm 'll 'd) starting at s[i] == '\'', or 0.
size_t contraction_length(std::string_view s, size_t i) {
  if (i + 1 >= s.size()) return 0;
  const char a = ascii_lower(s[i + 1]);
  if (i + 2 < s.size()) {
    const char b = ascii_lower(s[i + 2]);
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
  }
  if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
  return 0;
}

// Calls f(word) for each pre-tokenized word of s, in order (the words tile s exactly).
template <class F>
void for_each_word(std::string_view s, F&& f) {
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    if (s[i] == '\'' && i + 1 < n) {
      size_t len = contraction_length(s, i);
      if (len) {
        f(s.substr(i, len));
        i += len;
        continue;
      }
    }
    size_t j = i;  // first byte of the word proper (after an optional leading space)
    if (s[i] == ' ' && i + 1 < n && byte_class(s[i + 1]) != kSpace) j = i + 1;
    const ByteClass k = byte_class(s[j]);
    size_t e = j + 1;
    if (k == kSpace) {
      while (e < n && byte_class(s[e]) == kSpace) ++e;
      if (e < n && e - i > 1) --e;  // the run's last byte stays for the word that follows
    } else if (k == kLetter) {
      while (e < n && byte_class(s[e]) == kLetter) ++e;
    } else if (k == kDigit) {
      while (e < n && e - j < 3 && byte_class(s[e]) == kDigit) ++e;
    } else {
      while (e < n && byte_class(s[e]) == kPunct) ++e;
    }
    f(s.substr(i, e - i));
    i = e;
  }
}

// Calls f(segment, -1) for each run of ordinary text and f(token, s) for each occurrence of
// specials[s]; at one position the longest matching special wins. first_byte[c]: some special starts
// with byte c (so ordinary bytes cost one table lookup).
template <class F>
void split_on_specials(std::string_view text, const std::vector<std::string>& specials, const bool* first_byte, F&& f) {
  size_t start = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    if (!first_byte[(unsigned char)text[i]]) continue;
    int32_t best = -1;
    size_t best_len = 0;
    for (size_t s = 0; s < specials.size(); ++s) {
      if (specials[s].size() > best_len && text.compare(i, specials[s].size(), specials[s]) == 0) {
        best = (int32_t)s;
        best_len = specials[s].size();
      }
    }
    if (best < 0) continue;
    if (i > start) f(text.substr(start, i - start), -1);
    f(text.substr(i, best_len), best);
    start = i + best_len;
    i = start - 1;
  }
  if (start < text.size()) f(text.substr(start), -1);
}

void check_special_tokens(const std::vector<std::string>& specials) {
  for (size_t i = 0; i < specials.size(); ++i) {
    if (specials[i].empty())
      throw std::invalid_argument("[tokenizer] special token " + std::to_string(i) + " is empty");
    for (size_t j = 0; j < i; ++j)
      if (specials[i] == specials[j])
        throw std::invalid_argument("[tokenizer] special token \"" + escape_bytes(specials[i]) + "\" is listed twice");
  }
}

}  // namespace

std::vector<std::string_view> pre_tokenize(std::string_view text) {
  std::vector<std::string_view> words;
  for_each_word(text, [&](std::string_view w) { words.push_back(w); });
  return words;
}

std::string escape_bytes(std::string_view bytes) {
  static const char* hex = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size());
  for (char ch : bytes) {
    unsigned char c = (unsigned char)ch;
    if (c == '"')
      out += "\\\"";
    else if (c == '\\')
      out += "\\\\";
    else if (c == '\n')
      out += "\\n";
    else if (c == '\t')
      out += "\\t";
    else if (c == '\r')
      out += "\\r";
    else if (c >= 0x20 && c < 0x7f)
      out += ch;
    else {
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

// ---- construction --------------------------------------------------------------------------------

Tokenizer::Tokenizer() : cache_(std::make_unique<WordCache>()), cache_mutex_(std::make_unique<std::mutex>()) {
  id_bytes_.reserve(256);
  for (int b = 0; b < 256; ++b) id_bytes_.push_back(std::string(1, (char)b));
}

Tokenizer::Tokenizer(const Tokenizer& o)
    : merges_(o.merges_),
      rank_(o.rank_),
      id_bytes_(o.id_bytes_),
      special_tokens_(o.special_tokens_),
      cache_(std::make_unique<WordCache>()),
      cache_mutex_(std::make_unique<std::mutex>()) {
  std::copy(std::begin(o.special_first_byte_), std::end(o.special_first_byte_), special_first_byte_);
}
Tokenizer& Tokenizer::operator=(const Tokenizer& o) {
  if (this != &o) *this = Tokenizer(o);
  return *this;
}
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

void Tokenizer::add_merge(int32_t a, int32_t b) {
  const int32_t k = (int32_t)merges_.size();
  merges_.emplace_back(a, b);
  rank_[pair_key(a, b)] = k;
  id_bytes_.push_back(id_bytes_[a] + id_bytes_[b]);
}

void Tokenizer::add_special(const std::string& s) {
  special_tokens_.push_back(s);
  special_first_byte_[(unsigned char)s[0]] = true;
  id_bytes_.push_back(s);
}

// ---- training ------------------------------------------------------------------------------------

namespace {

// Max-heap entry: most frequent pair first; equal counts -> smallest (left, right) first, so training
// is deterministic and independent of hash-map order.
struct PairEntry {
  int64_t count;
  uint64_t key;
  bool operator<(const PairEntry& o) const { return count < o.count || (count == o.count && key > o.key); }
};

}  // namespace

Tokenizer Tokenizer::train(const std::vector<std::string_view>& texts, const BpeTrainOptions& opt,
                           BpeTrainStats* stats) {
  const auto t0 = std::chrono::steady_clock::now();
  check_special_tokens(opt.special_tokens);
  const int n_special = (int)opt.special_tokens.size();
  if (opt.vocab_size < 256 + n_special)
    throw std::invalid_argument("[tokenizer] train: vocab_size " + std::to_string(opt.vocab_size) +
                                " is smaller than 256 bytes + " + std::to_string(n_special) + " special tokens");
  const int n_merges_wanted = opt.vocab_size - 256 - n_special;

  // 1-2. split at special tokens, pre-tokenize, count distinct words (views into `texts`).
  BpeTrainStats st;
  std::unordered_map<std::string_view, int64_t> word_freq;
  bool first_byte[256] = {};
  for (const std::string& sp : opt.special_tokens) first_byte[(unsigned char)sp[0]] = true;
  for (std::string_view text : texts) {
    split_on_specials(text, opt.special_tokens, first_byte, [&](std::string_view seg, int32_t special) {
      if (special >= 0) return;
      st.n_bytes += (int64_t)seg.size();
      for_each_word(seg, [&](std::string_view w) {
        ++word_freq[w];
        ++st.n_words;
      });
    });
  }
  std::vector<std::pair<std::string_view, int64_t>> sorted_words(word_freq.begin(), word_freq.end());
  std::sort(sorted_words.begin(), sorted_words.end());
  word_freq.clear();
  st.n_unique_words = (int64_t)sorted_words.size();

  // words[w] = current symbols of distinct word w; freq[w] = how often it occurs.
  std::vector<std::vector<int32_t>> words(sorted_words.size());
  std::vector<int64_t> freq(sorted_words.size());
  for (size_t w = 0; w < sorted_words.size(); ++w) {
    for (char ch : sorted_words[w].first) words[w].push_back((unsigned char)ch);
    freq[w] = sorted_words[w].second;
  }

  // pair_count[(a,b)] = sum of freq over occurrences; pair_words[(a,b)] = words that (may) hold it.
  std::unordered_map<uint64_t, int64_t> pair_count;
  std::unordered_map<uint64_t, std::vector<int32_t>> pair_words;
  for (size_t w = 0; w < words.size(); ++w) {
    const auto& s = words[w];
    for (size_t i = 0; i + 1 < s.size(); ++i) {
      const uint64_t k = pair_key(s[i], s[i + 1]);
      pair_count[k] += freq[w];
      auto& v = pair_words[k];
      if (v.empty() || v.back() != (int32_t)w) v.push_back((int32_t)w);
    }
  }
  std::priority_queue<PairEntry> heap;
  for (const auto& [k, c] : pair_count) heap.push({c, k});

  // 3. the merge loop. A heap entry may be stale (the pair lost occurrences since it was pushed): its
  // count is then larger than the true one, so we re-push the true count and look again. A pair's count
  // only grows once, in the merge that creates its newer symbol, and that merge pushes it.
  Tokenizer tok;
  std::vector<int32_t> word_mark(words.size(), -1);
  std::vector<uint64_t> grown;
  while ((int)tok.merges_.size() < n_merges_wanted) {
    PairEntry top{0, 0};
    bool found = false;
    while (!heap.empty()) {
      top = heap.top();
      heap.pop();
      const int64_t now = pair_count[top.key];
      if (now == top.count) {
        found = true;
        break;
      }
      if (now > 0) heap.push({now, top.key});
    }
    if (!found || top.count < opt.min_pair_count) break;

    const int32_t a = (int32_t)(top.key >> 32), b = (int32_t)(top.key & 0xffffffffu);
    const int32_t c = 256 + (int32_t)tok.merges_.size();
    tok.add_merge(a, b);

    std::vector<int32_t> holders = std::move(pair_words[top.key]);
    pair_words.erase(top.key);
    grown.clear();
    for (int32_t w : holders) {
      if (word_mark[w] == c) continue;  // listed twice
      word_mark[w] = c;
      auto& s = words[w];
      bool has = false;
      for (size_t i = 0; i + 1 < s.size() && !has; ++i) has = (s[i] == a && s[i + 1] == b);
      if (!has) continue;  // stale: an earlier merge consumed the pair in this word
      const int64_t f = freq[w];
      for (size_t i = 0; i + 1 < s.size(); ++i) pair_count[pair_key(s[i], s[i + 1])] -= f;
      size_t out = 0;
      for (size_t i = 0; i < s.size();) {
        if (i + 1 < s.size() && s[i] == a && s[i + 1] == b) {
          s[out++] = c;
          i += 2;
        } else {
          s[out++] = s[i++];
        }
      }
      s.resize(out);
      for (size_t i = 0; i + 1 < s.size(); ++i) {
        const uint64_t k = pair_key(s[i], s[i + 1]);
        pair_count[k] += f;
        if (s[i] == c || s[i + 1] == c) {
          auto& v = pair_words[k];
          if (v.empty() || v.back() != w) v.push_back(w);
          grown.push_back(k);
        }
      }
    }
    std::sort(grown.begin(), grown.end());
    grown.erase(std::unique(grown.begin(), grown.end()), grown.end());
    for (uint64_t k : grown) heap.push({pair_count[k], k});
  }

  for (const std::string& s : opt.special_tokens) tok.add_special(s);
  st.n_merges = tok.n_merges();
  st.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (stats) *stats = st;
  return tok;
}

Tokenizer Tokenizer::train(const std::vector<std::string>& texts, const BpeTrainOptions& opt, BpeTrainStats* stats) {
  return train(std::vector<std::string_view>(texts.begin(), texts.end()), opt, stats);
}

Tokenizer Tokenizer::train(std::string_view text, const BpeTrainOptions& opt, BpeTrainStats* stats) {
  return train(std::vector<std::string_view>{text}, opt, stats);
}

Tokenizer Tokenizer::train(std::string_view text, int vocab_size, const std::vector<std::string>& special_tokens) {
  BpeTrainOptions opt;
  opt.vocab_size = vocab_size;
  opt.special_tokens = special_tokens;
  return train(text, opt);
}

Tokenizer Tokenizer::train(const std::vector<std::string>& texts, int vocab_size,
                           const std::vector<std::string>& special_tokens) {
  BpeTrainOptions opt;
  opt.vocab_size = vocab_size;
  opt.special_tokens = special_tokens;
  return train(texts, opt);
}

// ---- encoding ------------------------------------------------------------------------------------

std::vector<int32_t> Tokenizer::encode_word_naive(std::string_view word) const {
  std::vector<int32_t> ids;
  ids.reserve(word.size());
  for (char ch : word) ids.push_back((unsigned char)ch);
  while (ids.size() >= 2) {
    int32_t best = INT32_MAX;
    for (size_t i = 0; i + 1 < ids.size(); ++i) {
      const int32_t r = rank_of(ids[i], ids[i + 1]);
      if (r >= 0 && r < best) best = r;
    }
    if (best == INT32_MAX) break;
    const auto [a, b] = merges_[best];
    size_t out = 0;
    for (size_t i = 0; i < ids.size();) {
      if (i + 1 < ids.size() && ids[i] == a && ids[i + 1] == b) {
        ids[out++] = 256 + best;
        i += 2;
      } else {
        ids[out++] = ids[i++];
      }
    }
    ids.resize(out);
  }
  return ids;
}

std::vector<int32_t> Tokenizer::encode_word_fast(std::string_view word) const {
  // Symbols live at their original byte positions; a merge keeps the left position and unlinks the
  // right one. Candidates pop lowest rank first, then leftmost, which is the naive loop's order.
  const int32_t n = (int32_t)word.size();
  std::vector<int32_t> ids(n), next(n), prev(n);
  for (int32_t i = 0; i < n; ++i) {
    ids[i] = (unsigned char)word[i];
    next[i] = i + 1;
    prev[i] = i - 1;
  }
  struct Cand {
    int32_t rank, pos, right;
    bool operator>(const Cand& o) const { return rank > o.rank || (rank == o.rank && pos > o.pos); }
  };
  std::priority_queue<Cand, std::vector<Cand>, std::greater<Cand>> heap;
  auto push = [&](int32_t p, int32_t q) {
    if (p < 0 || q >= n) return;
    const int32_t r = rank_of(ids[p], ids[q]);
    if (r >= 0) heap.push({r, p, q});
  };
  for (int32_t i = 0; i + 1 < n; ++i) push(i, i + 1);
  std::vector<char> dead(n, 0);
  while (!heap.empty()) {
    const Cand top = heap.top();
    heap.pop();
    if (dead[top.pos] || dead[top.right] || next[top.pos] != top.right) continue;
    if (merges_[top.rank] != std::make_pair(ids[top.pos], ids[top.right])) continue;  // a side changed
    ids[top.pos] = 256 + top.rank;
    dead[top.right] = 1;
    next[top.pos] = next[top.right];
    if (next[top.pos] < n) prev[next[top.pos]] = top.pos;
    push(prev[top.pos], top.pos);
    push(top.pos, next[top.pos]);
  }
  std::vector<int32_t> out;
  for (int32_t i = 0; i < n; i = next[i]) out.push_back(ids[i]);
  return out;
}

void Tokenizer::encode_ordinary(std::string_view text, std::vector<int32_t>& out) const {
  constexpr size_t kMaxCachedWordBytes = 64, kMaxCacheEntries = 1 << 20;
  for_each_word(text, [&](std::string_view w) {
    auto it = cache_->find(w);
    if (it != cache_->end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
    std::vector<int32_t> ids = w.size() <= 16 ? encode_word_naive(w) : encode_word_fast(w);
    out.insert(out.end(), ids.begin(), ids.end());
    if (w.size() <= kMaxCachedWordBytes) {
      if (cache_->size() >= kMaxCacheEntries) cache_->clear();
      cache_->emplace(std::string(w), std::move(ids));
    }
  });
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool allow_special) const {
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 16);
  std::lock_guard<std::mutex> lock(*cache_mutex_);
  if (!allow_special || special_tokens_.empty()) {
    encode_ordinary(text, out);
    return out;
  }
  const int32_t first_special = 256 + n_merges();
  split_on_specials(text, special_tokens_, special_first_byte_, [&](std::string_view seg, int32_t special) {
    if (special >= 0)
      out.push_back(first_special + special);
    else
      encode_ordinary(seg, out);
  });
  return out;
}

// ---- decoding and lookups ------------------------------------------------------------------------

const std::string& Tokenizer::id_to_bytes(int32_t id) const {
  if (id < 0 || id >= vocab_size())
    throw std::out_of_range("[tokenizer] id " + std::to_string(id) + " is out of range (vocab_size " +
                            std::to_string(vocab_size()) + ")");
  return id_bytes_[id];
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids) const {
  std::string out;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= vocab_size())
      throw std::out_of_range("[tokenizer] decode: id " + std::to_string(ids[i]) + " at position " + std::to_string(i) +
                              " is out of range (vocab_size " + std::to_string(vocab_size()) + ")");
    out += id_bytes_[ids[i]];
  }
  return out;
}

std::optional<int32_t> Tokenizer::find_token(std::string_view token) const {
  for (size_t s = 0; s < special_tokens_.size(); ++s)
    if (special_tokens_[s] == token) return 256 + n_merges() + (int32_t)s;
  for (int32_t id = 0; id < 256 + n_merges(); ++id)
    if (id_bytes_[id] == token) return id;
  return std::nullopt;
}

int32_t Tokenizer::token_id(std::string_view token) const {
  if (auto id = find_token(token)) return *id;
  throw std::out_of_range("[tokenizer] no token \"" + escape_bytes(token) + "\" in this vocabulary (" +
                          std::to_string(vocab_size()) + " tokens, " + std::to_string(special_tokens_.size()) +
                          " special)");
}

// ---- file format ---------------------------------------------------------------------------------
//
//   seekgrad-bpe 1
//   # comment lines start with '#'
//   vocab_size 4096
//   merges 3830
//   specials 10
//   merge 256 32 116 " t"           id, left id, right id, the new token's bytes (escaped, checked)
//   ...
//   special 4086 "<|endoftext|>"    id, the token's bytes (escaped)

uint64_t Tokenizer::hash() const {
  Fnv1a64 h;
  h.str("seekgrad-bpe").u64((uint64_t)vocab_size()).u64((uint64_t)n_merges());
  for (const auto& [a, b] : merges_) h.u64((uint64_t)(uint32_t)a).u64((uint64_t)(uint32_t)b);
  h.u64(special_tokens_.size());
  for (const std::string& s : special_tokens_) h.str(s);
  return h.value();
}

void Tokenizer::save(const std::string& path) const {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) throw std::runtime_error("[tokenizer] " + tmp + ": cannot open for writing");
    f << "seekgrad-bpe 1\n"
      << "# byte-level BPE (seekgrad data/tokenizer.h): ids 0-255 are bytes, merge k makes id 256+k,\n"
      << "# special tokens follow the merges. Token text is escaped (\\xNN, \\n, \\t, \\r, \\\", \\\\).\n"
      << "vocab_size " << vocab_size() << "\n"
      << "merges " << n_merges() << "\n"
      << "specials " << special_tokens_.size() << "\n";
    for (int k = 0; k < n_merges(); ++k)
      f << "merge " << 256 + k << ' ' << merges_[k].first << ' ' << merges_[k].second << " \""
        << escape_bytes(id_bytes_[256 + k]) << "\"\n";
    for (size_t s = 0; s < special_tokens_.size(); ++s)
      f << "special " << 256 + n_merges() + (int)s << " \"" << escape_bytes(special_tokens_[s]) << "\"\n";
    f.flush();
    if (!f) throw std::runtime_error("[tokenizer] " + tmp + ": write failed");
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) throw std::runtime_error("[tokenizer] cannot rename " + tmp + " to " + path + ": " + ec.message());
}

namespace {

// Parses `"..."` (escaped as escape_bytes writes it) at the start of s. Returns false on a malformed string.
bool parse_quoted(std::string_view s, std::string& out, size_t& consumed) {
  out.clear();
  if (s.empty() || s[0] != '"') return false;
  auto hexval = [](char ch) -> int {
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
  };
  for (size_t i = 1; i < s.size(); ++i) {
    char ch = s[i];
    if (ch == '"') {
      consumed = i + 1;
      return true;
    }
    if (ch != '\\') {
      out += ch;
      continue;
    }
    if (++i >= s.size()) return false;
    switch (s[i]) {
      case 'n':
        out += '\n';
        break;
      case 't':
        out += '\t';
        break;
      case 'r':
        out += '\r';
        break;
      case '"':
        out += '"';
        break;
      case '\\':
        out += '\\';
        break;
      case 'x': {
        if (i + 2 >= s.size()) return false;
        int hi = hexval(s[i + 1]), lo = hexval(s[i + 2]);
        if (hi < 0 || lo < 0) return false;
        out += (char)(hi * 16 + lo);
        i += 2;
        break;
      }
      default:
        return false;
    }
  }
  return false;
}

}  // namespace

Tokenizer Tokenizer::load(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("[tokenizer] " + path + ": cannot open for reading");
  int line_no = 0;
  std::string line;
  auto fail = [&](const std::string& what) -> std::runtime_error {
    return std::runtime_error("[tokenizer] " + path + ":" + std::to_string(line_no) + ": " + what);
  };
  // Next line that is not blank or a comment; false at end of file.
  auto next_line = [&]() -> bool {
    while (std::getline(f, line)) {
      ++line_no;
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.empty() || line[0] == '#') continue;
      return true;
    }
    return false;
  };
  auto read_count = [&](const char* key) -> int64_t {
    if (!next_line())
      throw std::runtime_error("[tokenizer] " + path + ": truncated: file ends at line " + std::to_string(line_no) +
                               ", expected '" + key + " <count>'");
    std::istringstream in(line);
    std::string k, extra;
    int64_t v = -1;
    if (!(in >> k >> v) || k != key || v < 0 || (in >> extra))
      throw fail(std::string("expected '") + key + " <count>', got '" + line + "'");
    return v;
  };

  if (!std::getline(f, line))
    throw std::runtime_error("[tokenizer] " + path + ": empty file, expected 'seekgrad-bpe 1'");
  ++line_no;
  if (!line.empty() && line.back() == '\r') line.pop_back();
  if (line.rfind("seekgrad-bpe ", 0) != 0)
    throw fail("not a seekgrad tokenizer: expected 'seekgrad-bpe 1', got '" + line.substr(0, 40) + "'");
  if (line != "seekgrad-bpe 1") throw fail("unsupported format version '" + line + "' (this build reads version 1)");

  const int64_t vocab = read_count("vocab_size");
  const int64_t n_merges = read_count("merges");
  const int64_t n_specials = read_count("specials");
  if (vocab != 256 + n_merges + n_specials)
    throw fail("vocab_size " + std::to_string(vocab) + " != 256 + merges " + std::to_string(n_merges) + " + specials " +
               std::to_string(n_specials));

  Tokenizer tok;
  std::string text;
  auto truncated = [&](const char* what, int64_t found, int64_t wanted) {
    return std::runtime_error("[tokenizer] " + path + ": truncated: file ends at line " + std::to_string(line_no) +
                              " after " + std::to_string(found) + " of " + std::to_string(wanted) + " " + what);
  };
  for (int64_t k = 0; k < n_merges; ++k) {
    if (!next_line()) throw truncated("merge lines", k, n_merges);
    std::istringstream in(line);
    std::string kw;
    int64_t id = -1, a = -1, b = -1;
    if (!(in >> kw >> id >> a >> b) || kw != "merge")
      throw fail("expected 'merge <id> <left> <right> \"<text>\"', got '" + line.substr(0, 80) + "'");
    const int64_t want_id = 256 + k;
    if (id != want_id) throw fail("merge id " + std::to_string(id) + ", expected " + std::to_string(want_id));
    if (a < 0 || a >= want_id || b < 0 || b >= want_id)
      throw fail("merge " + std::to_string(id) + " joins ids " + std::to_string(a) + " and " + std::to_string(b) +
                 ", which must be earlier ids (< " + std::to_string(want_id) + ")");
    std::string rest;
    std::getline(in >> std::ws, rest);
    size_t used = 0;
    if (!parse_quoted(rest, text, used)) throw fail("malformed quoted token text '" + rest.substr(0, 80) + "'");
    tok.add_merge((int32_t)a, (int32_t)b);
    if (tok.id_bytes_.back() != text)
      throw fail("merge " + std::to_string(id) + " text \"" + escape_bytes(text) + "\" does not match its ids (\"" +
                 escape_bytes(tok.id_bytes_.back()) + "\")");
  }
  for (int64_t s = 0; s < n_specials; ++s) {
    if (!next_line()) throw truncated("special lines", s, n_specials);
    std::istringstream in(line);
    std::string kw;
    int64_t id = -1;
    if (!(in >> kw >> id) || kw != "special")
      throw fail("expected 'special <id> \"<text>\"', got '" + line.substr(0, 80) + "'");
    const int64_t want_id = 256 + n_merges + s;
    if (id != want_id) throw fail("special id " + std::to_string(id) + ", expected " + std::to_string(want_id));
    std::string rest;
    std::getline(in >> std::ws, rest);
    size_t used = 0;
    if (!parse_quoted(rest, text, used) || text.empty())
      throw fail("malformed quoted token text '" + rest.substr(0, 80) + "'");
    for (const auto& prev : tok.special_tokens_)
      if (prev == text) throw fail("special token \"" + escape_bytes(text) + "\" is listed twice");
    tok.add_special(text);
  }
  if (next_line()) throw fail("unexpected line after the last special token: '" + line.substr(0, 80) + "'");
  return tok;
}

}  // namespace sg::data
