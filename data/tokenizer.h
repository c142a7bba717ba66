// data/tokenizer.h — a byte-level BPE tokenizer, trained here in C++ (GPT-2 style, no regex library).
//
// Ids:   0..255                      the 256 bytes (so ANY byte string encodes, invalid UTF-8 included)
//        256 .. 256+n_merges-1       merge k joins two earlier ids into id 256+k ("rank" k)
//        256+n_merges ..             special tokens (<|endoftext|>, <think>, ...), matched as whole strings
//
// Training (Sennrich et al. 2016, GPT-2's byte-level variant):
//   1. split the text at special tokens, then pre-split each piece into "words" (pre_tokenize below),
//      so merges never cross a word boundary;
//   2. count each distinct word once with its frequency;
//   3. repeat: take the most frequent adjacent pair (ties: smallest (left, right) ids), give it a new
//      id, replace it in every word that has it. Pair counts are updated incrementally — only the
//      words holding the pair are touched, found through a pair -> words index, and the best pair comes
//      from a max-heap with lazy deletion — instead of recounting the corpus for every merge.
// Encoding a word applies merges by rank (lowest first), which reproduces exactly what training did.
//
// What it is not: a Unicode-aware tokenizer. The pre-split classes are bytes: ASCII letters and every
// byte >= 0x80 count as "letter" (a UTF-8 word stays in one piece), ASCII digits are digits (runs of at
// most 3, like DeepSeek-V3), ASCII whitespace is space, everything else is punctuation.
#pragma once
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace sg::data {

// <|endoftext|>, <think>, </think>, <tool_call>, </tool_call>, <tool_result>, </tool_result>,
// <|user|>, <|assistant|>, <|system|> — in that order, so their ids are stable for a given merge count.
const std::vector<std::string>& default_special_tokens();

// The GPT-2-like pre-split. Each word is a view into `text`; concatenating them gives `text` back.
//   's 't 're 've 'm 'll 'd            contractions (ASCII, any case)
//   ␣?letters+  ␣?digit{1,3}  ␣?punct+  a word takes at most one leading space
//   whitespace+                          a run before a word gives up its last space to that word
std::vector<std::string_view> pre_tokenize(std::string_view text);

// "ab\n\xff" -> "ab\\n\\xff": printable ASCII as is, \" \\ \n \t \r, every other byte as \xNN.
std::string escape_bytes(std::string_view bytes);

struct BpeTrainOptions {
  int vocab_size = 4096;  // total: 256 bytes + merges + special tokens
  std::vector<std::string> special_tokens = default_special_tokens();
  int64_t min_pair_count = 2;  // stop merging when the best pair occurs fewer times (vocab may end smaller)
};

struct BpeTrainStats {
  int64_t n_bytes = 0;         // bytes of training text (special tokens excluded)
  int64_t n_words = 0;         // pre-tokenized words
  int64_t n_unique_words = 0;  // distinct words (what the merge loop works on)
  int64_t n_merges = 0;
  double seconds = 0;
};

class Tokenizer {
 public:
  Tokenizer();  // bytes only: 256 ids, no merges, no special tokens

  static Tokenizer train(std::string_view text, const BpeTrainOptions& opt = {}, BpeTrainStats* stats = nullptr);
  static Tokenizer train(const std::vector<std::string>& texts, const BpeTrainOptions& opt = {},
                         BpeTrainStats* stats = nullptr);
  static Tokenizer train(const std::vector<std::string_view>& texts, const BpeTrainOptions& opt = {},
                         BpeTrainStats* stats = nullptr);
  static Tokenizer train(std::string_view text, int vocab_size,
                         const std::vector<std::string>& special_tokens = default_special_tokens());
  static Tokenizer train(const std::vector<std::string>& texts, int vocab_size,
                         const std::vector<std::string>& special_tokens = default_special_tokens());

  // allow_special: "<think>" in the text becomes the one <think> id; off, it is encoded as bytes.
  std::vector<int32_t> encode(std::string_view text, bool allow_special = true) const;
  std::string decode(const std::vector<int32_t>& ids) const;  // throws on an id >= vocab_size()

  int vocab_size() const { return (int)id_bytes_.size(); }
  int n_merges() const { return (int)merges_.size(); }
  const std::vector<std::string>& special_tokens() const { return special_tokens_; }
  bool is_special(int32_t id) const { return id >= 256 + n_merges() && id < vocab_size(); }
  // Id of a special token, or of any token whose bytes are exactly `token`; throws if none.
  int32_t token_id(std::string_view token) const;
  std::optional<int32_t> find_token(std::string_view token) const;
  const std::string& id_to_bytes(int32_t id) const;  // throws on an out-of-range id
  // merge k: the two ids it joins (its result is id 256 + k)
  std::pair<int32_t, int32_t> merge(int k) const { return merges_.at(k); }

  // Text file: a "seekgrad-bpe 1" line, counts, one line per merge and per special token
  // (see tokenizer.cpp). Written to path + ".tmp" then renamed.
  void save(const std::string& path) const;
  static Tokenizer load(const std::string& path);  // throws std::runtime_error naming path and line
  // The tokenizer's identity: FNV-1a 64 (data/hash.h) of the vocabulary size, every merge (left, right) and every
  // special token's bytes, in id order. Two tokenizers with the same hash encode every text the same way; it is
  // what shards (data/shards.h) and checkpoints (train/checkpoint.h) record. Not the file's bytes: comments and
  // formatting do not change it.
  uint64_t hash() const;

  // Encoding of one pre-tokenized word by merge rank. naive: repeatedly find the lowest-rank adjacent
  // pair and merge all its occurrences, O(n^2). fast: a linked list + min-heap, O(n log n); used
  // for long words and tested against naive.
  std::vector<int32_t> encode_word_naive(std::string_view word) const;
  std::vector<int32_t> encode_word_fast(std::string_view word) const;

  Tokenizer(const Tokenizer& o);
  Tokenizer& operator=(const Tokenizer& o);
  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

 private:
  static uint64_t pair_key(int32_t a, int32_t b) { return ((uint64_t)(uint32_t)a << 32) | (uint32_t)b; }
  void add_merge(int32_t a, int32_t b);
  void add_special(const std::string& s);
  void encode_ordinary(std::string_view text, std::vector<int32_t>& out) const;
  int32_t rank_of(int32_t a, int32_t b) const {
    auto it = rank_.find(pair_key(a, b));
    return it == rank_.end() ? -1 : it->second;
  }

  std::vector<std::pair<int32_t, int32_t>> merges_;  // merges_[k] = (left, right) -> id 256+k
  std::unordered_map<uint64_t, int32_t> rank_;       // pair_key(left, right) -> k
  std::vector<std::string> id_bytes_;                // id -> its bytes
  std::vector<std::string> special_tokens_;
  bool special_first_byte_[256] = {};

  // Per-word cache (word bytes -> ids), the fast path when encoding a corpus. Guarded by a mutex
  // taken once per encode() call, so concurrent encode() calls are safe but serialised.
  struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  using WordCache = std::unordered_map<std::string, std::vector<int32_t>, StringHash, std::equal_to<>>;
  mutable std::unique_ptr<WordCache> cache_;
  mutable std::unique_ptr<std::mutex> cache_mutex_;
};

}  // namespace sg::data
