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
//    "extra": {...}}                                    anything else the trainer wants back
//
// What this is not: the model config (that is the trainer's YAML) or the optimizer state (tensors,
// optimizer.safetensors).
#pragma once
#include <array>
#include <cstdint>
#include <optional>
#include <string>

#include "data/shards.h"
#include "models/json.h"

namespace sg {

struct TrainerState {
  int64_t step = 0;         // optimizer steps completed
  int64_t tokens_seen = 0;  // training tokens consumed so far
  std::array<uint64_t, 4> rng{};                     // the trainer's Rng::state()
  std::optional<data::TokenLoader::State> loader;    // TokenLoader::state(), when there is a loader
  std::string config_name;
  std::string optimizer;    // Optimizer::kind() of the run that wrote it ("" if none); checked on load
  Json extra = Json::object();  // other key/values (more RNG states: rng_state_to_json)

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
