// train/checkpoint.h — a training checkpoint is a DIRECTORY:
//
//   <dir>/model.safetensors       the parameters AND buffers (models/module.h: the MoE gate bias is a
//                                 buffer), under the names the caller passes (HF or official DeepSeek
//                                 names), f32 (f64 tensors stay f64)
//   <dir>/optimizer.safetensors   Optimizer::state_tensors() (AdamW: exp_avg.<name>, exp_avg_sq.<name>,
//                                 step.<name>, step), metadata {"optimizer": "adamw"}
//   <dir>/trainer_state.json      TrainerState (train/trainer_state.h): step, tokens seen, RNG state,
//                                 loader position, config name, extra key/values, and "integrity": the size
//                                 and FNV-1a 64 of the two .safetensors files, the model's architecture
//                                 (checkpoint_identity: ModelArgs fields and their hash) and the tokenizer's hash
//
// Writing is atomic at the directory level: everything goes to `<dir>.tmp`; only when all three
// files are complete is an existing `<dir>` renamed to `<dir>.old`, `<dir>.tmp` renamed to `<dir>`,
// and `<dir>.old` deleted. A failure while writing (an exception, a full disk, a crash) leaves the
// previous checkpoint untouched; the one window between the two renames leaves a complete
// `<dir>.old`, which load_checkpoint() reads when `<dir>` is missing and the next save puts back
// first. (Atomic against crashes of this process, not against power loss: there is no fsync.)
// An existing `<dir>` that is not a checkpoint (no trainer_state.json, not empty) is never
// replaced: the save throws instead.
//
// Loading checks everything before it changes anything: every tensor of the list must be in the file with
// its shape (and no tensor may be left over), the optimizer kind must match, and errors name the
// file: "[checkpoint] runs/x/model.safetensors: no tensor 'layers.0.attn.wq.weight' ...", or the
// safetensors reader's own error (truncated file, bad header) after the path.
//
// Integrity, checked on load before anything changes (the messages are exact, tests/train/test_checkpoint_integrity.cpp):
//   a file whose size or checksum differs from the record:
//     "[checkpoint] DIR/model.safetensors: checksum mismatch (file changed or corrupted since it was written)"
//   another model (the caller passes its identity): "[checkpoint] DIR/trainer_state.json: written for another
//     model: written for dim 64, this model has dim 32; ..." (every differing field)
//   another tokenizer: "[checkpoint] DIR/trainer_state.json: written with tokenizer 0x..., this run's tokenizer is 0x..."
//   NaN/Inf in a loaded parameter, buffer or optimizer moment:
//     "[checkpoint] DIR/model.safetensors: tensor 'layers.0.attn.wq.weight' holds NaN at element 17"
// A side that is not known is not compared (a caller without ModelArgs, a run without a tokenizer). A checkpoint
// of an older build (no "integrity" in trainer_state.json) still loads, after a warning on stderr: refusing
// it would strand every run in progress, and its tensors still get the shape and NaN/Inf checks.
// Cost: one FNV-1a pass per file on save and on load (0.55 GB/s from a cached file: a 100M-parameter f32 run,
// 0.4 GB of model + 0.8 GB of AdamW moments, adds about 2 s to each) plus one scan for non-finite values.
//
// What this is not: sharded or distributed checkpoints, or an export format (models/ writes
// HF-compatible safetensors for the outside world).
#pragma once
#include <string>

#include "data/tokenizer.h"
#include "models/config.h"
#include "models/module.h"
#include "train/optim.h"
#include "train/trainer_state.h"

namespace sg {

// The identity of a run's checkpoints: every ModelArgs field that defines the model (all but the run-time
// settings max_batch_size, fp8 and fp8_weights: the KV-cache batch, the training arithmetic, the way FP8
// weights are loaded), and tok->hash() when there is a tokenizer.
CheckpointIdentity checkpoint_identity(const ModelArgs& args, const data::Tokenizer* tok);

// The usual calls: every parameter and buffer of `model` (Module::named_parameters_and_buffers()),
// the optimizer built over its named_parameters().
// `identity` is recorded on save and compared on load (an empty one compares nothing).
void save_checkpoint(const std::string& dir, Module& model, const Optimizer* optimizer, const TrainerState& state,
                     const CheckpointIdentity& identity = {});
void load_checkpoint(const std::string& dir, Module& model, Optimizer* optimizer, TrainerState& state,
                     const CheckpointIdentity& identity = {});

// Over an explicit list of tensors (parameters and buffers alike). `optimizer` may be null (no
// optimizer.safetensors is written). state.optimizer is filled in from it.
void save_checkpoint(const std::string& dir, const NamedParameters& tensors, const Optimizer* optimizer,
                     const TrainerState& state, const CheckpointIdentity& identity = {});
// Loads into existing tensors (copied in place: the Tensor handles stay the same) and an optimizer
// built over (a subset of) the same list; `optimizer` may be null (its file is then not read).
void load_checkpoint(const std::string& dir, const NamedParameters& tensors, Optimizer* optimizer,
                     TrainerState& state, const CheckpointIdentity& identity = {});
// A directory load_checkpoint() can read (also true for the `<dir>.old` left by a crash mid-rename).
bool checkpoint_exists(const std::string& dir);

}  // namespace sg
