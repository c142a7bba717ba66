// data/shards.h — token shards on disk, a deterministic resumable batch loader, zstd text files.
//
// A shard file is a 64-byte little-endian header followed by one zstd frame holding the tokens as
// uint16 (vocab_size <= 65536) or uint32, little-endian:
//
//   offset size field
//        0    8 magic "SGTOKSH1"
//        8    4 version (2; version 1 files are still read)
//       12    4 elem_bytes: 2 or 4
//       16    8 vocab_size            every token id is < vocab_size
//       24    8 n_tokens
//       32    8 checksum              FNV-1a 64 of the uncompressed token bytes (n_tokens * elem_bytes)
//       40    8 compressed_size       bytes of zstd payload after the header
//       48    8 header_checksum       FNV-1a 64 of header bytes 0..47 then 56..63 (version 1: 0..47)
//       56    8 tokenizer_hash        Tokenizer::hash() of the tokenizer that made the ids, 0 = not recorded
//                                     (version 1: reserved, 0)
//
// Every read checks all of it and throws std::runtime_error "[shard] <path>: <what is wrong>". The header
// does not know which tokenizer the reader has: the caller compares tokenizer_hash (train/data_prep.h
// open_prepared does), and a whole-file checksum lives in prepare.json.
// What this is not: a memory-mapped format. A shard is decompressed whole into memory, so keep shards
// to tens of millions of tokens (write_shards splits a corpus).
#pragma once
#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "data/hash.h"  // fnv1a64

namespace sg::data {

constexpr char kShardMagic[8] = {'S', 'G', 'T', 'O', 'K', 'S', 'H', '1'};
constexpr uint32_t kShardVersion = 2;
constexpr size_t kShardHeaderBytes = 64;

struct ShardHeader {
  uint32_t version = kShardVersion;
  uint32_t elem_bytes = 2;
  uint64_t vocab_size = 0;
  uint64_t n_tokens = 0;
  uint64_t checksum = 0;
  uint64_t compressed_size = 0;
  uint64_t tokenizer_hash = 0;  // 0: not recorded (version 1, or written without one)
};

// Writes path + ".tmp", then renames it to path (a reader never sees a half-written shard).
// Throws std::invalid_argument if a token is < 0 or >= vocab_size. tokenizer_hash: Tokenizer::hash() (0: none).
void write_shard(const std::string& path, std::span<const int32_t> tokens, int64_t vocab_size, int zstd_level = 3,
                 uint64_t tokenizer_hash = 0);
// Reads and checks the header only (no decompression): magic, version, header checksum, field ranges,
// and that the file holds exactly compressed_size payload bytes.
ShardHeader read_shard_header(const std::string& path);
// Reads, decompresses and checks everything (checksum, every token < vocab_size).
std::vector<int32_t> read_shard(const std::string& path, ShardHeader* header = nullptr);

// Splits tokens into dir/shard_00000.bin, shard_00001.bin, ... (creating dir); returns the paths.
std::vector<std::string> write_shards(const std::string& dir, std::span<const int32_t> tokens, int64_t vocab_size,
                                      int64_t tokens_per_shard, int zstd_level = 3, uint64_t tokenizer_hash = 0);
// The shard_*.bin files of a directory, sorted by name.
std::vector<std::string> list_shards(const std::string& dir);

// ---- loader --------------------------------------------------------------------------------------

struct LoaderConfig {
  int64_t batch_size = 8;  // B: rows per batch
  int64_t seq_len = 64;    // T: each row holds T+1 tokens, inputs row[0..T), targets row[1..T+1)
  uint64_t seed = 0;
  // false: epochs. Each epoch visits the shards in a shuffled order and, within a shard, every window
  //        (tokens [k*T, k*T+T+1), k = 0..(n-1)/T-1) once in a shuffled order.
  // true:  every row starts at a uniformly random position of the whole corpus (keeps all shards in memory).
  bool random_positions = false;
};

class TokenLoader {
 public:
  // Where the loader is: plain integers, so a trainer can write them into its YAML/JSON state.
  struct State {
    uint64_t seed = 0;
    int64_t batch_size = 0, seq_len = 0;
    int64_t random_positions = 0;
    uint64_t data_fingerprint = 0;                            // FNV-1a of every shard's (n_tokens, checksum), in order
    uint64_t epoch = 0, shard_cursor = 0, window_cursor = 0;  // epoch mode
    std::array<uint64_t, 4> rng{};                            // random mode
    uint64_t batches = 0;                                     // next_batch() calls so far

    std::string to_json() const;                      // one line: {"seed": 1, "batch_size": 8, ...}
    static State from_json(const std::string& json);  // throws naming the missing/bad key
    bool operator==(const State&) const = default;
  };

  // Reads every shard's header now, so a damaged or mismatched shard is reported (by path) here.
  TokenLoader(std::vector<std::string> shard_paths, const LoaderConfig& cfg);

  // [B*(T+1)] tokens, row-major: row b is tokens [b*(T+1), (b+1)*(T+1)).
  std::vector<int32_t> next_batch();

  State state() const;
  void restore(const State& s);  // throws if s was saved with a different seed, B, T, mode or shard set

  int64_t vocab_size() const { return vocab_size_; }
  int64_t n_tokens() const { return n_tokens_total_; }
  int64_t windows_per_epoch() const { return n_windows_total_; }  // epoch mode: rows per epoch
  const std::vector<std::string>& shard_paths() const { return paths_; }

 private:
  int64_t windows_in(size_t shard) const;
  void start_shard();  // epoch mode: load order_[shard_cursor_] and shuffle its windows
  const std::vector<int32_t>& shard_tokens(size_t shard);

  std::vector<std::string> paths_;
  LoaderConfig cfg_;
  std::vector<uint64_t> shard_n_tokens_;
  uint64_t data_fingerprint_ = 0;
  int64_t vocab_size_ = 0, n_tokens_total_ = 0, n_windows_total_ = 0;
  uint64_t batches_ = 0;

  // epoch mode
  uint64_t epoch_ = 0, shard_cursor_ = 0, window_cursor_ = 0;
  std::vector<uint32_t> order_;         // this epoch's shard order
  std::vector<uint32_t> window_order_;  // current shard's window order
  std::vector<int32_t> current_;        // current shard's tokens
  int64_t loaded_ = -1;                 // shard index held in current_, -1 = none

  // random mode
  std::array<uint64_t, 4> rng_state_{};
  std::vector<std::vector<int32_t>> all_;  // every shard, loaded on first use
  std::vector<uint64_t> start_prefix_;     // prefix sums of valid start positions per shard
};

// ---- text files ----------------------------------------------------------------------------------

// The whole file as bytes; a file starting with the zstd magic (28 B5 2F FD) is decompressed as a
// stream (frames without a content size and several concatenated frames are fine).
std::string read_text_file(const std::string& path);
// Writes data as one zstd frame (path + ".tmp", then rename).
void write_zstd_file(const std::string& path, const std::string& data, int zstd_level = 3);

}  // namespace sg::data
