// models/moe.h — Mixture of Experts: DeepSeekMoE (models/README.md §5–§6) and a standard Switch/GShard MoE
// to compare it with.
//
//   Gate             s = sigmoid(x W_gᵀ) (V3) or softmax (V2) = the "original scores" [N, N_r];
//                    selection on s + b (the bias e_score_correction_bias is used ONLY for selection),
//                    group-limited (keep n_limited_groups of n_expert_groups), top-K;
//                    weights gathered from the ORIGINAL s, renormalised iff sigmoid, × route_scale
//   route_select     steps 2–4 of the gate (which experts), no gradient
//   route_weights    step 5 (how much of each), differentiable w.r.t. the scores
//   Gate::update_bias   aux-loss-free balancing: b_i += γ·sign(mean load − load_i)
//   seq_balance_loss    the complementary sequence-wise balance loss α Σ_i f_i P_i
//   dispatch_experts    the real dispatch: counting sort of the (token, k) assignments by expert, then per
//                       expert with ≥ 1 token: index_select its tokens → one SwiGLU (3 GEMMs) on all of them;
//                       the expert-sorted rows × their gate weights; one index_add puts each row back on its token
//   MoE              DeepSeekMoE = gate + routed experts + shared experts (one SwiGLU of width
//                    n_shared_experts·moe_inter_dim, always added)
//   StandardMoE      the baseline: softmax router, top-k probabilities renormalised, the Switch auxiliary
//                    loss N_e·Σ_i f_i·P_i, an optional capacity factor that drops assignments beyond an
//                    expert's capacity
//   RoutingStats     tokens per expert, max/mean, coefficient of variation, dropped assignments
//
// Official names (models/README.md §11): gate.weight, gate.bias (↔ mlp.gate.e_score_correction_bias),
// experts.E.{w1,w2,w3}.weight, shared_experts.{w1,w2,w3}.weight.
//
// The gate bias is a BUFFER, not a trainable parameter (models/module.h): listed by buffers(), not by
// parameters(), so checkpoints save and load it and no optimizer ever sees it; only update_bias() changes it.
//
// What this is not: expert parallelism (all-to-all, train/parallel/), FP8 experts, a fused grouped GEMM.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "autograd/rng.h"
#include "models/config.h"
#include "models/layers.h"
#include "models/module.h"

namespace sg {

// Load per expert and how uneven it is; each MoE forward returns one with its output (MoEOutput).
struct RoutingStats {
  std::vector<int64_t> tokens_per_expert;  // (token, k) assignments routed to each expert, before dropping
  double max_over_mean = 0;                // max_i load_i / mean load (1 = perfectly balanced)
  double cv = 0;                           // coefficient of variation: population std / mean
  int64_t dropped = 0;                     // assignments dropped by a capacity limit (StandardMoE only)
};
// Counts of each expert id in indices [N, K] (i32/i64), every id checked against n_experts.
std::vector<int64_t> expert_load(const Tensor& indices, int64_t n_experts);
RoutingStats routing_stats(const std::vector<int64_t>& load, int64_t dropped = 0);

// ---- the gate, step by step (models/README.md §5) -------------------------------------------------------
// scores [N, N_r] original scores; bias [N_r] or undefined. Returns indices [N, topk] i64, sorted by
// selection score (largest first). Group-limited when n_groups > 1: group score = sum of the top-2
// member selection scores when a bias exists, else the max member; experts of all but the
// n_limited_groups best groups are set to −inf before the top-k. No gradient (a discrete choice).
Tensor route_select(const Tensor& scores, const Tensor& bias, int64_t n_groups, int64_t n_limited_groups, int64_t topk);
// w = scores[t, indices[t, k]]; if renormalize, w ← w / Σ_k w; then w ← w · route_scale. [N, K],
// differentiable w.r.t. scores.
Tensor route_weights(const Tensor& scores, const Tensor& indices, bool renormalize, double route_scale);

struct GateOutput {
  Tensor weights;  // [N, K] routing weights (differentiable)
  Tensor indices;  // [N, K] i64 chosen experts
  Tensor scores;   // [N, N_r] original scores (sigmoid or softmax, before the bias)
};

struct Gate : Module {
  int64_t dim = 0;
  int64_t topk = 1;            // n_activated_experts
  int64_t n_groups = 1;        // n_expert_groups
  int64_t topk_groups = 1;     // n_limited_groups
  std::string score_func = "softmax";
  double route_scale = 1.0;
  Tensor weight;               // [N_r, dim]
  Tensor bias;                 // [N_r] e_score_correction_bias when args.gate_bias, else undefined; no gradient

  Gate() = default;
  Gate(const ModelArgs& args, Rng& rng, DType dtype = DType::f32);
  int64_t n_experts() const { return weight.size(0); }
  // x [N, dim] -> weights, indices, scores.
  GateOutput forward(const Tensor& x) const;
  // Aux-loss-free balancing (models/README.md §6), after a training step: load[i] = assignments routed to
  // expert i over the step's batch; b_i += gamma · sign(mean(load) − load_i) (overloaded ⇒ decrease).
  void update_bias(const std::vector<int64_t>& load, double gamma);
  void parameters(const std::string& prefix, NamedParameters& out) override {
    add_parameter(out, join_name(prefix, "weight"), weight, ParamKind::weight);
  }
  void buffers(const std::string& prefix, NamedParameters& out) override {
    if (bias.defined()) add_buffer(out, join_name(prefix, "bias"), bias);
  }
};

// Sequence-wise balance loss (models/README.md §6), per sequence b of seq_len tokens:
//   f_i = N_r/(K·T) · Σ_t 1[i ∈ indices_t],  s'_{i,t} = s_{i,t} / Σ_j s_{j,t},  P_i = (1/T) Σ_t s'_{i,t},
//   L_b = alpha · Σ_i f_i P_i.
// scores [batch·seq_len, N_r] (token t of sequence b is row b·seq_len + t), indices [batch·seq_len, K].
// Returns [batch]; the training loss is its mean. Gradient flows through P only (f is a count).
Tensor seq_balance_loss(const Tensor& scores, const Tensor& indices, int64_t batch, int64_t seq_len, double alpha);

// ---- dispatch ---------------------------------------------------------------------------------
// x [N, dim], weights [N, K], indices [N, K] -> y [N, dim] with
//   y_t = Σ_k weights[t, k] · experts[indices[t, k]](x_t)     over the assignments that are kept.
// capacity < 0 keeps every assignment; otherwise each expert keeps its first `capacity` assignments in
// token order and the rest are dropped (they contribute nothing). Fills *stats when given (load before
// dropping, dropped count).
Tensor dispatch_experts(const Tensor& x, const Tensor& weights, const Tensor& indices, const std::vector<MLP>& experts,
                        int64_t capacity = -1, RoutingStats* stats = nullptr);

// ---- DeepSeekMoE ------------------------------------------------------------------------------
// What one MoE forward computed: its output and its routing. Nothing of a forward stays in the module,
// so sampling, micro-batches and pipeline stages cannot overwrite each other's statistics.
struct MoEOutput {
  Tensor y;              // same shape as x
  GateOutput gate;       // weights [N, K], indices [N, K], scores [N, N_r] of this forward's N = B·S tokens
  RoutingStats stats;    // load per expert of this forward
  Shape input_shape;     // x's shape ([B, S, dim] for the balance loss)
};

struct MoE : Module {
  int64_t dim = 0;
  int64_t n_routed_experts = 0;
  int64_t n_activated_experts = 0;
  Gate gate;
  std::vector<MLP> experts;    // n_routed_experts SwiGLUs of width moe_inter_dim
  MLP shared_experts;          // one SwiGLU of width n_shared_experts·moe_inter_dim
  bool has_shared = false;     // n_shared_experts > 0

  MoE() = default;
  MoE(const ModelArgs& args, Rng& rng, DType dtype = DType::f32);
  // x [B, S, dim] (or any [..., dim]) -> the output (same shape) and the routing that made it.
  MoEOutput forward_routed(const Tensor& x) const;
  Tensor forward(const Tensor& x) const { return forward_routed(x).y; }
  // seq_balance_loss of that forward (needs a [B, S, dim] input): [B].
  static Tensor balance_loss(const MoEOutput& out, double alpha);
  void parameters(const std::string& prefix, NamedParameters& out) override;
  void buffers(const std::string& prefix, NamedParameters& out) override { gate.buffers(join_name(prefix, "gate"), out); }
};

// ---- the standard MoE baseline (Switch Transformer / GShard) --------------------------------------
// probs p = softmax(x W_gᵀ) [N, E];  idx = top-k(p);  w = p[idx] / Σ_k p[idx]  (renormalised);
// aux loss = E · Σ_i f_i · P_i with f_i = (assignments to i)/(N·K) and P_i = mean_t p_{t,i}
// (1 when perfectly balanced; gradient through P only). With capacity_factor > 0 each expert takes at
// most capacity = ceil(capacity_factor · N·K / E) assignments, in token order; the rest are dropped.
Tensor switch_aux_loss(const Tensor& probs, const Tensor& indices);

struct StandardMoEOutput {
  Tensor y;            // same shape as x
  GateOutput gate;     // weights, indices, scores = the router's probabilities
  RoutingStats stats;  // load before dropping, dropped assignments
  Tensor aux_loss;     // scalar switch_aux_loss of this forward
};

struct StandardMoE : Module {
  int64_t dim = 0;
  int64_t n_experts = 0;
  int64_t topk = 1;
  double capacity_factor = 0;  // 0 = no capacity limit
  Linear gate;                 // [n_experts, dim]
  std::vector<MLP> experts;

  StandardMoE() = default;
  StandardMoE(int64_t dim, int64_t inter_dim, int64_t n_experts, int64_t topk, double capacity_factor, Rng& rng,
              DType dtype = DType::f32);
  int64_t capacity(int64_t n_tokens) const;  // -1 when capacity_factor <= 0
  // x [..., dim] -> the output (same shape), the routing (scores = probabilities) and the aux loss.
  StandardMoEOutput forward_routed(const Tensor& x) const;
  Tensor forward(const Tensor& x) const { return forward_routed(x).y; }
  void parameters(const std::string& prefix, NamedParameters& out) override;
};

}  // namespace sg
