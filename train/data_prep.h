// train/data_prep.h — DATA_PREP, the one path from text to training data: `seekgrad prepare` and
// `seekgrad train` (train/pretrain.h) both call prepare_data(), so a corpus prepared once can be trained on by
// several configs (train.data.dir), and a run that prepares its own data writes the same layout:
//
//   DIR/tokenizer.bpe          the byte-level BPE (data/tokenizer.h), trained on the TRAIN part only
//   DIR/train/shard_*.bin      zstd token shards (data/shards.h)
//   DIR/val/shard_*.bin
//   DIR/prepare.json           what was read and made, the options' signature, the tokenizer's hash
//                              (Tokenizer::hash, also in every shard header) and the manifest ("files":
//                              every file above with its size and FNV-1a 64 checksum): open_prepared refuses
//                              a changed, missing or extra file and a shard or tokenizer.bpe from another
//                              preparation, naming the file
//
// The whole directory is written as DIR.prepare-tmp and swapped in for DIR by two renames
// (models/output_paths.h replace_dir), so a killed prepare leaves the complete old dataset or the complete
// new one, never a mix; files in DIR that prepare does not write (notes, a README) are kept.
//
// What this is not: a tokenizer converter (HF tokenizer.json is not read) or a streaming pipeline (the
// corpus is held in memory: fine for the corpora here).
#pragma once
#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

#include "data/tokenizer.h"

namespace sg {


struct PrepareOptions {
  std::vector<std::string> text_paths;  // any text files; zstd-compressed ones are decompressed
  int64_t generated_stories = 0;        // > 0: also this many stories of data::generate_story_corpus
  uint64_t seed = 1;                    // for the generated stories and arithmetic
  // > 0: also this many worked arithmetic solutions of arithmetic_level, all from the TRAIN split of
  // data/reasoning.h (so no held-out problem is ever pretrained on), as plain text — not the chat template:
  //   "What is 37 + 48 * 2?\n48 * 2 = 96\n37 + 96 = 133\nThe answer is 133.\n"
  // in documents of 16 problems, interleaved evenly with the stories (so the validation part has both).
  int64_t arithmetic_problems = 0;
  int arithmetic_level = 1;
  std::string arithmetic_solution = "steps";  // data/reasoning.h SolutionStyle: "steps" | "columns"
  std::string out_dir;
  int vocab_size = 4096;                // BPE target: 256 bytes + merges + special tokens
  std::string tokenizer_path;           // non-empty: encode with this tokenizer instead of training one
                                        // (new data for an existing model); it is copied to DIR/tokenizer.bpe
  double val_fraction = 0.05;           // the last part of the corpus (cut at a document boundary)
  int64_t max_bytes = 0;                // use only the first N bytes of the corpus (0 = all)
  int64_t shard_tokens = 1 << 22;       // tokens per shard file
};

struct PrepareResult {
  int64_t n_bytes = 0;                  // corpus bytes used (train + val)
  int64_t n_train_bytes = 0, n_val_bytes = 0;
  int64_t n_train_tokens = 0, n_val_tokens = 0;
  int vocab_size = 0;                   // the tokenizer's real vocabulary (may be < the target)
  double bytes_per_token = 0;           // over the whole corpus
  double read_seconds = 0, train_seconds = 0, encode_seconds = 0, seconds = 0;
  std::string tokenizer_path;
  std::vector<std::string> train_shards, val_shards;
};

// Reads every source, joins them (an <|endoftext|> between two files unless the first already ends
// with one), cuts the corpus to max_bytes, splits off the validation part at the first <|endoftext|>
// (or newline) after the (1 − val_fraction) point, trains the BPE on the TRAIN part only (or loads
// tokenizer_path), encodes both and writes DIR (see the top of this file: DIR/train and DIR/val are
// replaced as a whole). DIR must be missing, empty or a preparation; anything else (`--out .`) is refused,
// as is an --out that names an input. log (may be null) receives a few progress lines.
PrepareResult prepare_data(const PrepareOptions& opt, std::ostream* log = nullptr);

// One line that says everything the prepared data depends on (sources, seed, vocabulary, split, limits);
// stored in prepare.json as "signature". A training run reuses its own out_dir/data only when it matches.
std::string prepare_signature(const PrepareOptions& opt);

// A prepared directory, opened for training: the tokenizer and the shard lists.
struct PreparedData {
  std::string dir;
  data::Tokenizer tokenizer;
  std::vector<std::string> train_shards, val_shards;
  int64_t train_tokens = 0, val_tokens = 0;
  std::string signature;  // prepare.json's
};
// Throws "[prepare] DIR: ..." naming the missing file (and how to make it) when DIR is not complete, and
// "[prepare] FILE: ..." when a file differs from the manifest (missing, truncated, changed) or a shard is
// not in it. A preparation whose prepare.json has no manifest (made before there was one) is not checked.
// A DIR left missing by a prepare killed between its two renames is put back first.
PreparedData open_prepared(const std::string& dir);
// True when DIR holds a complete preparation (prepare.json) whose signature is `signature`.
bool prepared_matches(const std::string& dir, const std::string& signature);

}  // namespace sg
