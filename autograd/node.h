// autograd/node.h — one Node per recorded op, and the switches that shape recording.
//
// The forward pass of every differentiable op (ops/) ends with `record(...)`: it creates a Node
// holding the op's name, the current scope ("layers.2.attn.wkv_b"), the op's inputs (the edges of
// the tape) and a backward function that maps the gradient of the output to one gradient per
// input. Tensors the backward needs are captured inside that function ("saved tensors"); an op that
// saves its own OUTPUT must save `out.detach()`, or the output would own its node and the node the
// output, a reference cycle.
//
// Thread-local switches, all visible in this one struct (AutogradState):
//   grad_enabled   false inside NoGradGuard: ops record nothing.
//   scopes         the ScopeGuard stack, joined with '.' into Node::scope.
//   anomaly        check every op's output in forward and every gradient in backward for NaN/Inf
//                  and throw naming the first op (scope, op, shapes).
//   trace          print the backward sweep node by node (number, scope, op, grad shape, norm, min, max).
//
// Numbering: a node's number is its index in topological_order(root) — "%N" in tape_to_text, "nN" in
// tape_to_dot, "%N" in the backward trace and in gradient_path (autograd/trace_path.h), one numbering.
#pragma once
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

#include "autograd/tensor.h"

namespace sg {

using BackwardFn = std::function<std::vector<Tensor>(const Tensor& grad_output)>;

class Node {
 public:
  std::string op;                       // "matmul", "rms_norm", ...
  std::string scope;                    // "layers.2.attn.wkv_b" ("" at top level)
  std::vector<Tensor> inputs;           // edges to the inputs' nodes / leaves
  BackwardFn backward;                  // grad of output -> one grad per input (undefined = none)
  Shape out_shape;
  DType out_dtype = DType::f32;
  std::string out_name;                 // the output tensor's name when it was set
  std::weak_ptr<TensorImpl> output;     // for retain_grad on non-leaves
  std::vector<GradHook> hooks;          // hooks registered on the (non-leaf) output
  bool retain_grad = false;
  uint64_t sequence = 0;                // creation order, for stable printing

  std::string label() const;            // "layers.2.attn/matmul"
  void release();                       // drop saved tensors and edges (after backward)
};

struct AutogradState {
  bool grad_enabled = true;
  std::vector<std::string> scopes;
  bool anomaly = false;
  bool trace = false;
  std::ostream* trace_out = nullptr;    // nullptr = std::cerr
  uint64_t next_sequence = 0;
};
AutogradState& autograd_state();  // this thread's state

bool grad_enabled();
std::string current_scope();

// True when an op with these inputs must record a node.
bool needs_grad(const std::vector<Tensor>& inputs);
inline bool needs_grad(const Tensor& a) { return grad_enabled() && a.requires_grad(); }

// Attach a Node to `output` (sets output.requires_grad and output.grad_fn).
void record(const std::string& op, Tensor& output, std::vector<Tensor> inputs, BackwardFn backward);

// Called by ops after computing an output: in anomaly mode throws on NaN/Inf naming the op.
void check_anomaly_forward(const std::string& op, const Tensor& output, const std::vector<Tensor>& inputs);

class NoGradGuard {
 public:
  NoGradGuard() : prev_(autograd_state().grad_enabled) { autograd_state().grad_enabled = false; }
  ~NoGradGuard() { autograd_state().grad_enabled = prev_; }
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool prev_;
};

class ScopeGuard {
 public:
  explicit ScopeGuard(const std::string& name) { autograd_state().scopes.push_back(name); }
  ~ScopeGuard() { autograd_state().scopes.pop_back(); }
  ScopeGuard(const ScopeGuard&) = delete;
  ScopeGuard& operator=(const ScopeGuard&) = delete;
};

class AnomalyGuard {
 public:
  explicit AnomalyGuard(bool on = true) : prev_(autograd_state().anomaly) { autograd_state().anomaly = on; }
  ~AnomalyGuard() { autograd_state().anomaly = prev_; }

 private:
  bool prev_;
};

class TraceGuard {
 public:
  explicit TraceGuard(std::ostream* out = nullptr);
  ~TraceGuard();

 private:
  bool prev_;
  std::ostream* prev_out_;
};

// The one backward sweep (autograd/backward.cpp).
void backward(const Tensor& root, const Tensor& grad = Tensor(), bool retain_graph = false);

// Nodes reachable from `root`, inputs before the ops that consume them.
std::vector<std::shared_ptr<Node>> topological_order(const Tensor& root);

// The tape as Graphviz DOT: one box per op (scope/op, output shape), one ellipse per leaf.
std::string tape_to_dot(const Tensor& root);
// The tape as text, one node per line in topological order: "%N = scope/op(inputs) -> shape dtype".
std::string tape_to_text(const Tensor& root);

// True if the environment asks for a trace (SEEKGRAD_TRACE=1).
bool trace_requested_by_env();

}  // namespace sg
