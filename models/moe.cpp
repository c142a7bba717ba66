// models/moe.cpp — see moe.h. The gate follows models/README.md §5 step by step (the step numbers below are
// the spec's); the dispatch is a counting sort plus one expert call per expert that has tokens.
#include "models/moe.h"

#include <cmath>
#include <stdexcept>

#include "autograd/node.h"
#include "ops/ops.h"

namespace sg {

[[noreturn]] static void moe_error(const char* op, const std::string& message) {
  throw std::invalid_argument(std::string("[") + op + "] " + message);
}

// ---- routing statistics -----------------------------------------------------------------------

std::vector<int64_t> expert_load(const Tensor& indices, int64_t n_experts) {
  std::vector<int64_t> load(n_experts, 0);
  std::vector<int64_t> idx = indices.to_i64_vector();
  for (size_t a = 0; a < idx.size(); a++) {
    if (idx[a] < 0 || idx[a] >= n_experts)
      moe_error("expert_load", "index " + std::to_string(idx[a]) + " at position " + std::to_string(a) + " of indices " +
                                   shape_str(indices.shape()) + " is outside [0, " + std::to_string(n_experts) + ")");
    load[idx[a]]++;
  }
  return load;
}

RoutingStats routing_stats(const std::vector<int64_t>& load, int64_t dropped) {
  RoutingStats st;
  st.tokens_per_expert = load;
  st.dropped = dropped;
  if (load.empty()) return st;
  double total = 0, mx = 0;
  for (int64_t l : load) {
    total += (double)l;
    mx = std::max(mx, (double)l);
  }
  double mean = total / (double)load.size();
  if (mean == 0) return st;
  double var = 0;
  for (int64_t l : load) var += ((double)l - mean) * ((double)l - mean);
  st.max_over_mean = mx / mean;
  st.cv = std::sqrt(var / (double)load.size()) / mean;
  return st;
}

// ---- the gate ---------------------------------------------------------------------------------

Tensor route_select(const Tensor& scores, const Tensor& bias, int64_t n_groups, int64_t n_limited_groups, int64_t k) {
  const char* op = "route_select";
  if (!scores.defined() || scores.dim() != 2 || !is_floating(scores.dtype()))
    moe_error(op, "scores must be a 2-D floating tensor [N, N_r], got " + (scores.defined() ? scores.describe() : "undefined"));
  int64_t N = scores.size(0), n_experts = scores.size(1);
  if (bias.defined() && (bias.dim() != 1 || bias.size(0) != n_experts))
    moe_error(op, "bias " + shape_str(bias.shape()) + " must have shape (" + std::to_string(n_experts) + ") to match scores " +
                      shape_str(scores.shape()));
  if (n_groups < 1 || n_experts % n_groups)
    moe_error(op, "n_groups " + std::to_string(n_groups) + " must divide the " + std::to_string(n_experts) + " experts");
  if (n_limited_groups < 1 || n_limited_groups > n_groups)
    moe_error(op, "n_limited_groups " + std::to_string(n_limited_groups) + " must be in [1, " + std::to_string(n_groups) + "]");
  int64_t per_group = n_experts / n_groups;
  int64_t allowed = n_groups > 1 ? n_limited_groups * per_group : n_experts;
  if (k < 1 || k > allowed)
    moe_error(op, "topk " + std::to_string(k) + " must be in [1, " + std::to_string(allowed) + "] (experts in the kept groups)");

  NoGradGuard no_grad;
  // 2. selection scores: s + b (the bias only ever decides WHICH experts, never how much)
  Tensor s = scores.detach();
  if (bias.defined()) s = add(s, to_dtype(bias.detach(), s.dtype()));
  // 3. group-limited routing
  if (n_groups > 1) {
    Tensor g = reshape(s, {N, n_groups, per_group});
    // group score: sum of the top-2 members with a bias (V3 noaux_tc), the best member without (V2)
    Tensor group_scores = bias.defined() ? sum(topk(g, std::min<int64_t>(2, per_group), -1).values, {-1}) : max(g, {-1});
    Tensor kept = topk(group_scores, n_limited_groups, -1).indices;  // [N, n_limited_groups]
    // drop[t, j] = 1 for every group j not kept: ones, with 1 subtracted at the kept groups
    Tensor drop = scatter_add(Tensor::ones({N, n_groups}, s.dtype()), 1, kept, Tensor::full(kept.shape(), -1.0, s.dtype()));
    s = reshape(masked_fill(g, unsqueeze(drop, -1), -INFINITY), {N, n_experts});
  }
  // 4. the K best experts that are left
  return topk(s, k, -1).indices;
}

Tensor route_weights(const Tensor& scores, const Tensor& indices, bool renormalize, double route_scale) {
  // 5. w = s[idx] from the ORIGINAL scores; renormalised over the K chosen (sigmoid); × route_scale
  Tensor w = gather(scores, 1, indices);
  if (renormalize) w = div(w, sum(w, {-1}, true));
  return route_scale == 1.0 ? w : mul(w, route_scale);
}

Gate::Gate(const ModelArgs& args, Rng& rng, DType dtype)
    : dim(args.dim),
      topk(args.n_activated_experts),
      n_groups(args.n_expert_groups),
      topk_groups(args.n_limited_groups),
      score_func(args.score_func),
      route_scale(args.route_scale) {
  if (score_func != "softmax" && score_func != "sigmoid")
    moe_error("Gate", "score_func must be \"softmax\" or \"sigmoid\", got \"" + score_func + "\"");
  weight = Tensor::randn({args.n_routed_experts, args.dim}, rng, 1.0 / std::sqrt((double)args.dim), dtype).requires_grad_();
  if (args.gate_bias) bias = Tensor::zeros({args.n_routed_experts}, dtype);  // a buffer: no gradient
}

GateOutput Gate::forward(const Tensor& x) const {
  if (x.dim() != 2 || x.size(1) != dim)
    moe_error("Gate", "x " + shape_str(x.shape()) + " must be [N, " + std::to_string(dim) + "] (flattened tokens)");
  // 1. original scores s = sigmoid(u) or softmax(u), u = x W_gᵀ [N, N_r]
  Tensor u = linear(x, weight);
  Tensor s = score_func == "sigmoid" ? sigmoid(u) : softmax(u, -1);
  // 2.–4. which experts
  Tensor idx = route_select(s, bias, n_groups, topk_groups, topk);
  // 5. how much of each
  Tensor w = route_weights(s, idx, score_func == "sigmoid", route_scale);
  return {w, idx, s};
}

// b_i ← b_i + γ · sign(load̄ − load_i)   (models/README.md §6; sign(0) = 0)
void Gate::update_bias(const std::vector<int64_t>& load, double gamma) {
  if (!bias.defined()) moe_error("Gate::update_bias", "this gate has no bias (ModelArgs.gate_bias is false)");
  if ((int64_t)load.size() != n_experts())
    moe_error("Gate::update_bias", "load has " + std::to_string(load.size()) + " entries but the gate has " +
                                       std::to_string(n_experts()) + " experts");
  double mean = 0;
  for (int64_t l : load) mean += (double)l;
  mean /= (double)load.size();
  // N_r numbers, updated on the host and copied back in place (the bias may live on a device; an optimizer or a
  // checkpoint holding this tensor sees the new values).
  Tensor host = bias.device() == Device::CPU ? bias : bias.to(Device::CPU);
  for (int64_t i = 0; i < n_experts(); i++) {
    double d = mean - (double)load[i];
    double sign = d > 0 ? 1.0 : d < 0 ? -1.0 : 0.0;
    host.set_at({i}, host.at({i}) + gamma * sign);
  }
  if (!host.same(bias)) {
    NoGradGuard no_grad;
    copy_into(bias, host.to(bias.device()));
  }
}

Tensor seq_balance_loss(const Tensor& scores, const Tensor& indices, int64_t batch, int64_t seq_len, double alpha) {
  const char* op = "seq_balance_loss";
  if (scores.dim() != 2 || scores.size(0) != batch * seq_len)
    moe_error(op, "scores " + shape_str(scores.shape()) + " must be [batch·seq_len = " + std::to_string(batch * seq_len) + ", N_r]");
  if (indices.dim() != 2 || indices.size(0) != scores.size(0))
    moe_error(op, "indices " + shape_str(indices.shape()) + " must be [" + std::to_string(scores.size(0)) + ", K]");
  int64_t n_experts = scores.size(1), K = indices.size(1), T = seq_len;
  // f[b, i] = N_r/(K·T) · (times expert i was chosen in sequence b) — a count, no gradient
  std::vector<int64_t> idx = indices.to_i64_vector();
  std::vector<double> f(batch * n_experts, 0.0);
  double unit = (double)n_experts / (double)(K * T);
  for (int64_t b = 0; b < batch; b++)
    for (int64_t a = b * T * K; a < (b + 1) * T * K; a++) {
      if (idx[a] < 0 || idx[a] >= n_experts) moe_error(op, "expert index " + std::to_string(idx[a]) + " out of range");
      f[b * n_experts + idx[a]] += unit;
    }
  Tensor f_t = to_dtype(Tensor::from_vector(f, {batch, n_experts}), scores.dtype()).to(scores.device());
  Tensor s_norm = div(scores, sum(scores, {-1}, true));             // s'_{i,t} = s_{i,t} / Σ_j s_{j,t}
  Tensor P = mean(reshape(s_norm, {batch, T, n_experts}), {1});     // P_i = mean_t s'_{i,t}   [B, N_r]
  return mul(sum(mul(f_t, P), {1}), alpha);                         // α Σ_i f_i P_i           [B]
}

// ---- dispatch ---------------------------------------------------------------------------------

Tensor dispatch_experts(const Tensor& x, const Tensor& weights, const Tensor& indices, const std::vector<MLP>& experts,
                        int64_t capacity, RoutingStats* stats) {
  const char* op = "dispatch_experts";
  if (x.dim() != 2) moe_error(op, "x " + shape_str(x.shape()) + " must be [N, dim]");
  int64_t N = x.size(0), dim = x.size(1), E = (int64_t)experts.size();
  if (indices.dim() != 2 || indices.size(0) != N || weights.shape() != indices.shape())
    moe_error(op, "weights " + shape_str(weights.shape()) + " and indices " + shape_str(indices.shape()) +
                      " must both be [N = " + std::to_string(N) + ", K]");
  int64_t K = indices.size(1);

  // 1. count: load[e] = assignments routed to expert e. Assignment a = t·K + k sends token t to idx[a].
  std::vector<int64_t> idx = indices.to_i64_vector();
  std::vector<int64_t> load = expert_load(indices, E);
  // 2. how many each expert keeps (its capacity), and where its segment starts (exclusive prefix sum)
  std::vector<int64_t> kept(E), offset(E + 1, 0);
  for (int64_t e = 0; e < E; e++) {
    kept[e] = capacity < 0 ? load[e] : std::min(load[e], capacity);
    offset[e + 1] = offset[e] + kept[e];
  }
  // 3. place: walking the assignments in token order keeps the sort stable, so each expert's segment
  //    lists its tokens in order and a full expert drops the latest ones.
  std::vector<int64_t> token_sorted(offset[E]), slot_sorted(offset[E]), fill(E, 0);
  int64_t dropped = 0;
  for (int64_t a = 0; a < N * K; a++) {
    int64_t e = idx[a];
    if (fill[e] == kept[e]) {
      dropped++;
      continue;
    }
    int64_t pos = offset[e] + fill[e]++;
    token_sorted[pos] = a / K;
    slot_sorted[pos] = a;
  }
  if (stats) *stats = routing_stats(load, dropped);
  // (the index tensors below are built on the host and moved to x's device, where the ops run)
  const Device dev = x.device();
  if (offset[E] == 0) return Tensor::zeros({N, dim}, x.dtype(), dev);

  // 4. each expert with ≥ 1 token runs once, on all of its tokens:
  //      x_e = x[tokens of e]   [n_e, dim]      (index_select; backward: index_add of dx_e)
  //      h_e = SwiGLU_e(x_e)    [n_e, dim]      (3 GEMMs: w1, w3 [n_e, inter], w2)
  std::vector<Tensor> outs;
  for (int64_t e = 0; e < E; e++) {
    int64_t n_e = kept[e];
    if (n_e == 0) continue;
    ScopeGuard scope("experts." + std::to_string(e));
    Tensor tok_e = Tensor::from_vector(std::vector<int64_t>(token_sorted.begin() + offset[e], token_sorted.begin() + offset[e + 1]), {n_e}).to(dev);
    Tensor x_e = index_select(x, 0, tok_e);
    outs.push_back(experts[e].forward(x_e));
  }
  // 5. combine: row j of the sorted buffer belongs to assignment slot_sorted[j] of token token_sorted[j];
  //      o = h ⊙ weights[slot_sorted]     [A, dim]   (each row times its own gate weight)
  //      y[token_sorted[j]] += o[j]                   (one index_add over all experts' rows)
  Tensor h = cat(outs, 0);
  Tensor w_sorted = index_select(reshape(weights, {N * K}), 0, Tensor::from_vector(slot_sorted, {offset[E]}).to(dev));
  Tensor o = mul(h, unsqueeze(w_sorted, 1));
  return index_add(Tensor::zeros({N, dim}, x.dtype(), dev), 0, Tensor::from_vector(token_sorted, {offset[E]}).to(dev), o);
}

// ---- DeepSeekMoE ------------------------------------------------------------------------------

MoE::MoE(const ModelArgs& args, Rng& rng, DType dtype)
    : dim(args.dim), n_routed_experts(args.n_routed_experts), n_activated_experts(args.n_activated_experts), gate(args, rng, dtype) {
  experts.reserve(n_routed_experts);
  for (int64_t e = 0; e < n_routed_experts; e++) experts.emplace_back(args.dim, args.moe_inter_dim, rng, dtype);
  has_shared = args.n_shared_experts > 0;
  if (has_shared) shared_experts = MLP(args.dim, args.n_shared_experts * args.moe_inter_dim, rng, dtype);
}

// y = Σ_k w_k · Expert_{idx_k}(x) + Shared(x)   (models/README.md §5 step 6)
MoEOutput MoE::forward_routed(const Tensor& x) const {
  if (x.dim() < 2 || x.size(-1) != dim)
    moe_error("MoE", "x " + shape_str(x.shape()) + " must be [..., " + std::to_string(dim) + "]");
  MoEOutput out;
  out.input_shape = x.shape();
  Tensor xf = reshape(x, {-1, dim});  // [N, dim], N = B·S
  {
    ScopeGuard scope("gate");
    out.gate = gate.forward(xf);
  }
  Tensor y = dispatch_experts(xf, out.gate.weights, out.gate.indices, experts, -1, &out.stats);
  if (has_shared) {
    ScopeGuard scope("shared_experts");
    y = add(y, shared_experts.forward(xf));
  }
  out.y = reshape(y, x.shape());
  return out;
}

Tensor MoE::balance_loss(const MoEOutput& out, double alpha) {
  if (out.input_shape.size() != 3 || !out.gate.scores.defined())
    moe_error("MoE::balance_loss", "needs the output of a forward on a [B, S, dim] input (its input: " +
                                       shape_str(out.input_shape) + ")");
  return seq_balance_loss(out.gate.scores, out.gate.indices, out.input_shape[0], out.input_shape[1], alpha);
}

void MoE::parameters(const std::string& prefix, NamedParameters& out) {
  gate.parameters(join_name(prefix, "gate"), out);
  for (int64_t e = 0; e < n_routed_experts; e++) experts[e].parameters(join_name(prefix, "experts." + std::to_string(e)), out);
  if (has_shared) shared_experts.parameters(join_name(prefix, "shared_experts"), out);
}

// ---- the standard MoE baseline ----------------------------------------------------------------

// E · Σ_i f_i · P_i,  f_i = count_i / (N·K) (no gradient),  P_i = mean_t p_{t,i}
Tensor switch_aux_loss(const Tensor& probs, const Tensor& indices) {
  if (probs.dim() != 2 || indices.dim() != 2 || indices.size(0) != probs.size(0))
    moe_error("switch_aux_loss", "probs " + shape_str(probs.shape()) + " must be [N, E] and indices " +
                                     shape_str(indices.shape()) + " [N, K]");
  int64_t N = probs.size(0), E = probs.size(1), K = indices.size(1);
  std::vector<int64_t> load = expert_load(indices, E);
  std::vector<double> f(E);
  for (int64_t i = 0; i < E; i++) f[i] = (double)load[i] / (double)(N * K);
  Tensor f_t = to_dtype(Tensor::from_vector(f, {E}), probs.dtype()).to(probs.device());
  Tensor P = mean(probs, {0});  // [E]
  return mul(sum(mul(f_t, P)), (double)E);
}

StandardMoE::StandardMoE(int64_t dim_, int64_t inter_dim, int64_t n_experts_, int64_t topk_, double capacity_factor_, Rng& rng,
                         DType dtype)
    : dim(dim_), n_experts(n_experts_), topk(topk_), capacity_factor(capacity_factor_), gate(dim_, n_experts_, rng, 0.0, dtype) {
  if (topk < 1 || topk > n_experts)
    moe_error("StandardMoE", "topk " + std::to_string(topk) + " must be in [1, " + std::to_string(n_experts) + "]");
  experts.reserve(n_experts);
  for (int64_t e = 0; e < n_experts; e++) experts.emplace_back(dim, inter_dim, rng, dtype);
}

int64_t StandardMoE::capacity(int64_t n_tokens) const {
  if (capacity_factor <= 0) return -1;
  return (int64_t)std::ceil(capacity_factor * (double)(n_tokens * topk) / (double)n_experts);
}

StandardMoEOutput StandardMoE::forward_routed(const Tensor& x) const {
  if (x.dim() < 2 || x.size(-1) != dim)
    moe_error("StandardMoE", "x " + shape_str(x.shape()) + " must be [..., " + std::to_string(dim) + "]");
  StandardMoEOutput out;
  Tensor xf = reshape(x, {-1, dim});
  {
    ScopeGuard scope("gate");
    Tensor probs = softmax(gate.forward(xf), -1);                 // p [N, E]
    Tensor idx = route_select(probs, Tensor(), 1, 1, topk);        // top-k of p
    Tensor w = route_weights(probs, idx, true, 1.0);               // p[idx] / Σ_k p[idx]
    out.gate = {w, idx, probs};
    out.aux_loss = switch_aux_loss(probs, idx);
  }
  Tensor y = dispatch_experts(xf, out.gate.weights, out.gate.indices, experts, capacity(xf.size(0)), &out.stats);
  out.y = reshape(y, x.shape());
  return out;
}

void StandardMoE::parameters(const std::string& prefix, NamedParameters& out) {
  gate.parameters(join_name(prefix, "gate"), out);
  for (int64_t e = 0; e < n_experts; e++) experts[e].parameters(join_name(prefix, "experts." + std::to_string(e)), out);
}

}  // namespace sg
