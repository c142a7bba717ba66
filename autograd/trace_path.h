// autograd/trace_path.h — the path of the gradient from a loss to ONE parameter, measured in one backward sweep.
//
// gradient_path(loss, param) walks the tape BEFORE backward runs and picks one chain of ops
//     loss's node → ... → the node that takes `param` as an input
// — the SHORTEST such chain (fewest nodes); among equally short ones the one through earlier inputs (a
// breadth-first search that visits every node's inputs in order), so the same tape always gives the same path.
// It then hooks every node on the chain (Node::hooks: they see the total gradient of the node's output, after
// every consumer has added its part), hooks the parameter (its total gradient of the sweep) and wraps the last
// node's backward function (the part of the parameter's gradient that comes through THIS path's last edge),
// runs backward(loss) once, and removes the hooks again.
//
// Numbering: a node's number is its index in topological_order(loss) — the "%N" of tape_to_text(loss), the
// "nN" of tape_to_dot(loss) and the "%N" of the backward trace (TraceGuard / SEEKGRAD_TRACE=1), so a path step
// can be looked up in the tape listing. (Node::sequence, the creation counter gdb shows, is in the step too.)
//
// A parameter reached by several routes (the embedding table used by the main model and by MTP, a weight
// shared by two layers) has several direct consumers; the path shows one, and `consumers` lists them all. Its
// .grad gets the sum over all of them; edge_grad_norm is the part through the path's own last edge.
//
// What this is not: a profiler or a second backward; it runs THE backward (autograd/backward.cpp) once, so the
// parameters' .grad afterwards are exactly what a training step's backward leaves (accumulated as usual).
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "autograd/node.h"

namespace sg {

// Names for tensors, as a model lists its parameters (models/module.h NamedParameters is this type).
using TensorNames = std::vector<std::pair<std::string, Tensor*>>;

struct GradPathStep {
  int64_t number = 0;               // index in topological_order(loss) = tape_to_text's %N
  uint64_t sequence = 0;            // Node::sequence (creation order)
  std::string op, scope;            // "matmul", "layers.0.attn.wkv_a"
  Shape grad_shape;                 // the gradient of the node's output (= its output's shape)
  double grad_norm = 0;             // its L2 norm (NaN if no gradient reached the node)
  bool grad_reached = false;        // false: backward never got a gradient to this node (undefined upstream)
  std::vector<std::string> inputs;  // one per input: "%12", "layers.0.attn.wkv_a.weight (48, 16)", "x (3) const", "-"
  int64_t via_input = 0;            // which input the path continues through (the last step: the parameter)
  std::string label() const { return scope.empty() ? op : scope + "/" + op; }
};

struct GradientPath {
  std::vector<GradPathStep> steps;  // steps[0] = the loss's node ... steps.back() consumes the parameter
  std::string param_name;           // from `names`, else the tensor's name, else "parameter"
  Shape param_shape;
  Tensor param_grad;                // the parameter's gradient from this sweep (all routes summed)
  double param_grad_norm = 0;       // NaN if the sweep gave the parameter no gradient
  double edge_grad_norm = 0;        // the part of it through the path's last edge (steps.back(), via_input)
  std::vector<int64_t> consumers;   // numbers of every node that takes the parameter directly as an input
  int64_t tape_nodes = 0;           // nodes of the loss's tape
};

// Finds the path, runs backward(loss) once (retain_graph as given) capturing the gradient flowing into every
// node of it, and returns it. `names` (optional) names the parameter and the other leaves in `inputs`.
// Throws "[gradient_path] ..." when loss has no tape, when param is not a leaf or does not require grad, and
// when no op on the loss's tape takes param as an input — naming it and listing the parameters of `names` that
// the loss does reach, nearest names first.
GradientPath gradient_path(const Tensor& loss, const Tensor& param, const TensorNames& names = {},
                           bool retain_graph = false);

// The path as text: a header (parameter, tape size), one line per step (number, scope/op, grad shape, norm,
// inputs with the path's one marked '*'), then the parameter's gradient (shape, norm, the last edge's part,
// the direct consumers).
std::string format_gradient_path(const GradientPath& path);

// tape_to_dot(loss) with the path's nodes drawn red (call it before backward: backward frees the tape).
std::string gradient_path_to_dot(const Tensor& loss, const std::vector<int64_t>& path_numbers);
// The numbers of the nodes gradient_path would show, without running backward (the tape stays intact).
std::vector<int64_t> find_gradient_path(const Tensor& loss, const Tensor& param);

// Leaves that require grad and that some op on the loss's tape takes as an input, in topological order of
// their first consumer (each once).
std::vector<Tensor> leaves_reached(const Tensor& loss);

// Up to k of `candidates` nearest to `target`: most leading dotted components in common first
// ("layers.0.attn" shared), then fewest single-character edits, then the candidates' order.
std::vector<std::string> closest_names(const std::string& target, const std::vector<std::string>& candidates,
                                       size_t k = 6);

}  // namespace sg
