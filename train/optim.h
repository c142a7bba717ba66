// train/optim.h — the optimizers: AdamW (DeepSeek-V3's: β1 = 0.9, β2 = 0.95, weight decay 0.1) and
// SGD with momentum, over a NamedParameters list (models/module.h).
//
// AdamW (Loshchilov & Hutter, "Decoupled Weight Decay Regularization", Algorithm 2), per element,
// at this parameter's step t = 1, 2, ...:
//   p ← p · (1 − lr·λ)                    decoupled decay; only where decay(name, p) is true
//                                          (default: p.param_kind() == ParamKind::weight)
//   m ← β1·m + (1 − β1)·g
//   v ← β2·v + (1 − β2)·g²
//   p ← p − (lr / (1 − β1^t)) · m / ( sqrt(v) / sqrt(1 − β2^t) + ε )
// This is the order and the placement of ε of PyTorch's torch.optim.AdamW, so a run can be
// compared with it number for number. m and v ("exp_avg", "exp_avg_sq") are shaped like p and f32 by
// default.
//
// BF16 moments (DeepSeek-V3 §3.3: "we adopt BF16 instead of FP32 to track the first and second
// moments in the AdamW optimizer"): AdamWConfig::moment_dtype = DType::bf16 (train YAML: `moments:
// bf16` in the train section) stores m and v as bf16 tensors. A step decodes them, runs the same f32
// moment update, rounds the new m and v to bf16 (RNE) and updates p with the ROUNDED moments; p (the
// master weights) stays f32. state_bytes() halves (8 → 4 bytes per parameter element); checkpoints
// hold the moments as BF16 safetensors tensors, and resuming gives the same bits as not stopping
// (tests/train/test_adamw_bf16.cpp). Measured on the 4×3 quadratic of tests/train (400 steps, lr 0.05
// then 0.005): final loss 4.6e-9 with f32 moments vs 6.5e-9 with bf16, max |Δp| 1.2e-4; the micro
// pretrain run of tests/train/test_pretrain.cpp (6 steps): final loss 6.84766 vs 6.84764.
//
// SGD (PyTorch's torch.optim.SGD, dampening 0):
//   g ← g + λ·p                           coupled L2 decay (only where weight_decay > 0)
//   b ← g at the first step, else μ·b + g  the momentum buffer
//   p ← p − lr·(nesterov ? g + μ·b : b)
//
// Which parameters are stepped: those with requires_grad() and a defined .grad(); the others are
// left alone and their step count does not advance (a MoE expert that received no token this step
// keeps its moments as they were, as in PyTorch). Parameters must be contiguous f32 tensors on the CPU
// or CUDA; the state lives with each parameter (bf16 moments: CPU only).
// The arithmetic is a kernel like every other: ops/optim.h's adamw_update / sgd_update (the device
// dispatch, ops/kernels.h; the CPU loops over raw floats in ops/cpu/optim.cpp); this file keeps the bookkeeping.
//
// Checkpoints: state_tensors() lists the state as safetensors tensors with stable names
// ("exp_avg.<param name>", "exp_avg_sq.<param name>", "step.<param name>", "step"), and
// load_state() checks every name, shape and dtype before it changes anything.
//
// What this is not: a parameter-group system or a fused/foreach kernel. One config for all
// parameters; the decay predicate is the only per-parameter choice.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "autograd/tensor.h"
#include "models/module.h"
#include "models/safetensors.h"

namespace sg {

// Decides which parameters get weight decay. The default (decay_weights_only) asks the parameter's
// KIND, which the module that owns it set when it registered it (models/module.h add_parameter):
// decay iff param.param_kind() == ParamKind::weight — the Linear (and gate) matrices; no decay on
// embeddings, norms or biases. A tensor no module registered (kind none) is not decayed.
using DecayPredicate = std::function<bool(const std::string& name, const Tensor& param)>;
bool decay_weights_only(const std::string& name, const Tensor& param);

// The interface a trainer and a checkpoint need from any optimizer.
class Optimizer {
 public:
  virtual ~Optimizer() = default;
  virtual const char* kind() const = 0;  // "adamw", "sgd": written into the checkpoint and checked
  virtual void step(double lr) = 0;      // one update of every parameter that has a gradient
  int64_t steps() const { return steps_; }  // step() calls so far
  const NamedParameters& params() const { return params_; }
  // The state as named tensors (the order is the parameter order) and back. load_state() checks
  // everything first: on error nothing has changed. Errors name the file and the tensor.
  virtual std::vector<StTensor> state_tensors() const = 0;
  virtual void load_state(const SafeTensorsFile& file) = 0;

 protected:
  // Checks the list: non-null, defined, unique non-empty names, contiguous f32 CPU/CUDA tensors, no
  // buffers (a tensor registered with add_buffer: the gate bias is changed by its own rule only).
  Optimizer(NamedParameters params, const char* who);
  NamedParameters params_;
  int64_t steps_ = 0;
};

struct AdamWConfig {
  double lr = 1e-3;  // used by step() without an argument; a schedule passes lr to step(lr)
  double beta1 = 0.9, beta2 = 0.95, eps = 1e-8, weight_decay = 0.1;
  // Storage of m and v: f32, or bf16 (DeepSeek-V3 §3.3: "BF16 instead of FP32 to track the first and
  // second moments"). With bf16 each step decodes m and v to f32, runs the same f32 update, and stores
  // them back rounded to nearest even; the parameters (master weights) stay f32. Checkpoints hold the
  // moments as BF16 tensors then.
  DType moment_dtype = DType::f32;
};

class AdamW : public Optimizer {
 public:
  AdamW(NamedParameters params, AdamWConfig cfg, DecayPredicate decay = decay_weights_only);

  const char* kind() const override { return "adamw"; }
  void step() { step(cfg_.lr); }
  void step(double lr) override;

  const AdamWConfig& config() const { return cfg_; }
  bool decays(size_t i) const { return state_[i].decay; }  // i indexes params()
  bool decays(const std::string& name) const;
  // The state of params()[i]: moments (undefined for a parameter that had requires_grad false when
  // the optimizer was built and was never stepped) and how many updates it has had.
  const Tensor& exp_avg(size_t i) const { return state_[i].exp_avg; }
  const Tensor& exp_avg_sq(size_t i) const { return state_[i].exp_avg_sq; }
  int64_t param_step(size_t i) const { return state_[i].step; }
  // Bytes held by the moments (m and v of every parameter that has them): 8 per element in f32,
  // 4 in bf16.
  int64_t state_bytes() const;

  std::vector<StTensor> state_tensors() const override;
  void load_state(const SafeTensorsFile& file) override;

 private:
  struct ParamState {
    Tensor exp_avg, exp_avg_sq;  // m, v: cfg_.moment_dtype (f32 or bf16), shaped like the parameter
    int64_t step = 0;            // t: updates this parameter has had
    bool decay = false;
  };
  AdamWConfig cfg_;
  std::vector<ParamState> state_;  // parallel to params_
};

struct SGDConfig {
  double lr = 1e-2;
  double momentum = 0.9;  // μ; 0 = plain SGD (no buffer)
  double weight_decay = 0.0;
  bool nesterov = false;
};

class SGD : public Optimizer {
 public:
  SGD(NamedParameters params, SGDConfig cfg);

  const char* kind() const override { return "sgd"; }
  void step() { step(cfg_.lr); }
  void step(double lr) override;

  const SGDConfig& config() const { return cfg_; }
  const Tensor& momentum_buffer(size_t i) const { return buf_[i]; }  // undefined until first stepped

  // "momentum_buffer.<param name>" for every parameter that has one, and "step".
  std::vector<StTensor> state_tensors() const override;
  void load_state(const SafeTensorsFile& file) override;

 private:
  SGDConfig cfg_;
  std::vector<Tensor> buf_;  // parallel to params_
};

}  // namespace sg
