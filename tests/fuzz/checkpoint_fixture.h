// tests/fuzz/checkpoint_fixture.h — the small training run whose checkpoint the checkpoint target loads
// into (and whose files seed its corpus, tests/fuzz/make_seeds.cpp): two parameters and a buffer under
// model names, AdamW after one step, and a trainer state with a loader position, RNG words and extras.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "autograd/tensor.h"
#include "train/checkpoint.h"
#include "train/optim.h"
#include "train/trainer_state.h"

namespace sg::fuzz {

struct CheckpointFixture {
  Tensor wq, norm, gate_bias;
  NamedParameters params;   // the optimizer's
  NamedParameters tensors;  // what the checkpoint holds: params + the buffer
  std::unique_ptr<AdamW> optimizer;
  TrainerState state;

  // stepped: one AdamW step on fixed gradients (as after a 1-step run); else fresh tensors to load into.
  explicit CheckpointFixture(bool stepped) {
    wq = Tensor::from_vector(std::vector<float>{0.5f, -1.0f, 0.25f, 2.0f, -0.75f, 1.5f}, {2, 3});
    norm = Tensor::from_vector(std::vector<float>{1.0f, 1.0f, 1.0f}, {3});
    gate_bias = Tensor::from_vector(std::vector<float>{0.0f, 0.125f, -0.125f}, {3});
    wq.requires_grad_(true);
    norm.requires_grad_(true);
    params = {{"layers.0.attn.wq.weight", &wq}, {"final_norm.weight", &norm}};
    tensors = params;
    tensors.push_back({"layers.0.ffn.gate.bias", &gate_bias});
    optimizer = std::make_unique<AdamW>(params, AdamWConfig{1e-3});
    if (!stepped) return;
    wq.set_grad(Tensor::from_vector(std::vector<float>{0.1f, 0.2f, -0.3f, 0.4f, -0.5f, 0.6f}, {2, 3}));
    norm.set_grad(Tensor::from_vector(std::vector<float>{-0.01f, 0.02f, 0.03f}, {3}));
    optimizer->step();
    state.step = 1;
    state.tokens_seen = 2 * 64;
    state.rng = {1, 2, 0xffffffffffffffffULL, 0x9e3779b97f4a7c15ULL};
    data::TokenLoader::State ls;
    ls.seed = 7;
    ls.batch_size = 2;
    ls.seq_len = 64;
    ls.data_fingerprint = 0x1234;
    ls.batches = 1;
    ls.window_cursor = 1;
    state.loader = ls;
    state.config_name = "tiny";
    state.extra.set("sample_rng", rng_state_to_json({3, 4, 5, 6}));
    state.extra.set("best_val_loss", Json(5.25));
  }
};

}  // namespace sg::fuzz
