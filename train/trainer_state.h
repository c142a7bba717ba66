// train/trainer_state.h — where a training run is, as one JSON object (trainer_state.json in a
// checkpoint directory, see checkpoint.h).
//
// Layout (version 1):
//   {"format": "seekgrad-trainer-state", "version": 1,
//    "config_name": "tiny", "optimizer": "adamw",
//    "step": 500, "tokens_seen": 1024000,
//    "rng": ["9214...", "17", "...", "..."],            4 × uint64 xoshiro256** words, as decimal
//                                                       strings: JSON numbers are doubles to many
//                                                       readers, and 2^64 − 1 is not an int64
//    "loader": {"seed": "1", "batch_size": 8, ...} or null   TokenLoader::State, u64 fields as strings
//    "extra": {...},                                    anything else the trainer wants back
//    "integrity": {                                     written by save_checkpoint (train/checkpoint.h)
//      "files": {"model.safetensors": {"bytes": "123", "fnv1a64": "0x..."}, "optimizer.safetensors": {...}},
//      "model": {"hash": "0x...", "args": {"vocab_size": "300", "dim": "64", ...}} or null,
//      "tokenizer": "0x..." or null}}
//
// "integrity" is optional (checkpoints of builds before it lack it: they load with a warning); older builds
// ignore it, so the version stays 1.
//
// What this is not: the model config (that is the trainer's YAML) or the optimizer state (tensors,
// optimizer.safetensors).
#pragma once
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "data/shards.h"
#include "models/json.h"

namespace sg {

// What a checkpoint belongs to: the model's architecture and the tokenizer of the run.
struct CheckpointIdentity {
  // (ModelArgs field, value as model_arg_to_string writes it), in model_arg_fields() order; empty: not known.
  std::vector<std::pair<std::string, std::string>> architecture;
  uint64_t tokenizer_hash = 0;  // Tokenizer::hash(); 0: no tokenizer
  // FNV-1a 64 of the "field=value\n" lines (0 when architecture is empty).
  uint64_t architecture_hash() const;
};

// A file of the checkpoint as it was written.
struct FileRecord {
  uint64_t bytes = 0;
  uint64_t fnv1a64 = 0;
};

struct TrainerState {
  int64_t step = 0;         // optimizer steps completed
  int64_t tokens_seen = 0;  // training tokens consumed so far
  std::array<uint64_t, 4> rng{};                     // the trainer's Rng::state()
  std::optional<data::TokenLoader::State> loader;    // TokenLoader::state(), when there is a loader
  std::string config_name;
  std::string optimizer;    // Optimizer::kind() of the run that wrote it ("" if none); checked on load
  Json extra = Json::object();  // other key/values (more RNG states: rng_state_to_json)
  // "integrity" (filled in by save_checkpoint; has_integrity false when the file had none).
  bool has_integrity = false;
  std::vector<std::pair<std::string, FileRecord>> files;  // file name in the directory -> size and checksum
  CheckpointIdentity identity;

  Json to_json() const;
  // Throws "[trainer_state] <source>: ..." naming the key; `source` is the file name for errors.
  static TrainerState from_json(const Json& j);
};

// 4 × u64 <-> ["...", "...", "...", "..."] (exact).
Json rng_state_to_json(const std::array<uint64_t, 4>& s);
std::array<uint64_t, 4> rng_state_from_json(const Json& j);
// One u64 <-> its decimal string (exact), and the TokenLoader::State object.
Json u64_to_json(uint64_t v);
uint64_t u64_from_json(const Json& j);
Json loader_state_to_json(const data::TokenLoader::State& s);
data::TokenLoader::State loader_state_from_json(const Json& j);

}  // namespace sg
