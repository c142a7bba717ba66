// autograd/trace_path.cpp — see trace_path.h. Reads top to bottom: the search on the tape, the hooks, the one
// backward sweep, the printing.
#include "autograd/trace_path.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <deque>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <unordered_map>
#include <unordered_set>

namespace sg {

namespace {

struct Tape {
  std::vector<std::shared_ptr<Node>> order;      // topological_order(loss): keeps every node alive
  std::unordered_map<const Node*, int64_t> number;  // index in `order`
};

Tape tape_of(const Tensor& loss) {
  Tape t;
  t.order = topological_order(loss);
  for (size_t i = 0; i < t.order.size(); i++) t.number[t.order[i].get()] = (int64_t)i;
  return t;
}

bool is_param(const Tensor& in, const Tensor& param) { return in.defined() && in.impl() == param.impl(); }

// One hop of the path: a node, and the input of it the path continues through.
struct Hop {
  Node* node;
  int64_t via_input;
};

// Breadth-first from the loss's node over input edges (inputs in order): the first node popped that takes
// `param` directly is one of the nearest, and the parents recorded on the way give the path back to the loss.
std::vector<Hop> shortest_path(const Tensor& loss, const Tensor& param) {
  Node* root = loss.grad_fn().get();
  std::unordered_map<Node*, Hop> parent;  // child -> (its parent, the parent's input that is the child)
  std::unordered_set<Node*> seen = {root};
  std::deque<Node*> queue = {root};
  while (!queue.empty()) {
    Node* n = queue.front();
    queue.pop_front();
    for (size_t j = 0; j < n->inputs.size(); j++) {
      if (!is_param(n->inputs[j], param)) continue;
      std::vector<Hop> path = {{n, (int64_t)j}};
      for (Node* c = n; c != root;) {
        Hop up = parent.at(c);
        path.push_back(up);
        c = up.node;
      }
      std::reverse(path.begin(), path.end());
      return path;
    }
    for (size_t j = 0; j < n->inputs.size(); j++) {
      const Tensor& in = n->inputs[j];
      if (!in.defined() || !in.grad_fn() || !in.requires_grad()) continue;
      Node* c = in.grad_fn().get();
      if (!seen.insert(c).second) continue;
      parent[c] = {n, (int64_t)j};
      queue.push_back(c);
    }
  }
  return {};
}

double norm_of(const Tensor& g) {
  if (!g.defined()) return std::numeric_limits<double>::quiet_NaN();
  double sq = 0;
  for (double x : g.to_f64_vector()) sq += x * x;
  return std::sqrt(sq);
}

std::string name_of(const Tensor& t, const std::unordered_map<const TensorImpl*, std::string>& names) {
  auto f = names.find(t.impl());
  if (f != names.end()) return f->second;
  return t.name().empty() ? std::string("leaf") : t.name();
}

std::string input_text(const Tensor& in, const Tape& tape,
                       const std::unordered_map<const TensorImpl*, std::string>& names) {
  if (!in.defined()) return "-";
  if (in.grad_fn()) {
    auto f = tape.number.find(in.grad_fn().get());
    return f == tape.number.end() ? "%?" : "%" + std::to_string(f->second);
  }
  return name_of(in, names) + " " + shape_str(in.shape()) + (in.requires_grad() ? "" : " const");
}

std::string describe_param(const Tensor& param, const std::string& name) {
  return "'" + name + "' " + shape_str(param.shape()) + " " + dtype_name(param.dtype());
}

// The error for a parameter the loss does not reach, with the reached parameters nearest to its name.
[[noreturn]] void throw_not_reached(const Tensor& loss, const std::string& name, const Tensor& param, const Tape& tape,
                                    const std::unordered_map<const TensorImpl*, std::string>& name_map) {
  std::vector<std::string> reached;
  for (const Tensor& leaf : leaves_reached(loss)) {
    auto f = name_map.find(leaf.impl());
    if (f != name_map.end()) reached.push_back(f->second);
    else if (!leaf.name().empty()) reached.push_back(leaf.name());
  }
  std::ostringstream os;
  os << "[gradient_path] parameter " << describe_param(param, name) << " is not reached by the loss ("
     << loss.grad_fn()->label() << ", a tape of " << tape.order.size() << " nodes): no op on the tape takes it as an input";
  if (!reached.empty()) {
    std::vector<std::string> near = closest_names(name, reached);
    os << "; parameters the loss does reach (" << reached.size() << "), nearest first: ";
    for (size_t i = 0; i < near.size(); i++) os << (i ? ", " : "") << near[i];
    if (near.size() < reached.size()) os << ", ...";
  }
  throw std::runtime_error(os.str());
}

}  // namespace

std::vector<Tensor> leaves_reached(const Tensor& loss) {
  std::vector<Tensor> out;
  std::unordered_set<const TensorImpl*> seen;
  for (const auto& n : topological_order(loss))
    for (const Tensor& in : n->inputs)
      if (in.defined() && !in.grad_fn() && in.requires_grad() && seen.insert(in.impl()).second) out.push_back(in);
  return out;
}

std::vector<int64_t> find_gradient_path(const Tensor& loss, const Tensor& param) {
  if (!loss.defined() || !loss.grad_fn() || !param.defined()) return {};
  Tape tape = tape_of(loss);
  std::vector<int64_t> numbers;
  for (const Hop& h : shortest_path(loss, param)) numbers.push_back(tape.number.at(h.node));
  return numbers;
}

GradientPath gradient_path(const Tensor& loss, const Tensor& param, const TensorNames& names, bool retain_graph) {
  std::unordered_map<const TensorImpl*, std::string> name_map;
  for (const auto& [n, t] : names)
    if (t && t->defined()) name_map.emplace(t->impl(), n);
  if (!param.defined()) throw std::runtime_error("[gradient_path] the parameter is an undefined tensor");
  const std::string name = name_map.count(param.impl()) ? name_map.at(param.impl())
                           : param.name().empty()       ? std::string("parameter")
                                                        : param.name();
  if (!loss.defined() || !loss.grad_fn())
    throw std::runtime_error("[gradient_path] the loss " + (loss.defined() ? loss.describe() : std::string("(undefined)")) +
                             " has no tape (it was computed with no input that requires grad, or under NoGradGuard)");
  if (loss.numel() != 1) throw std::runtime_error("[gradient_path] the loss " + loss.describe() + " is not a scalar");
  if (param.grad_fn())
    throw std::runtime_error("[gradient_path] " + describe_param(param, name) + " is not a leaf (it was computed by " +
                             param.grad_fn()->label() + "); pass a parameter");
  if (!param.requires_grad())
    throw std::runtime_error("[gradient_path] parameter " + describe_param(param, name) +
                             " does not require grad (frozen): no gradient can reach it");

  if (!loss.grad_fn()->backward)
    throw std::runtime_error("[gradient_path] the loss's tape (" + loss.grad_fn()->label() +
                             ") was already freed by a backward; build the loss again (or run that backward with "
                             "retain_graph)");

  // ---- 1. the path, on the tape as the forward pass left it ----
  Tape tape = tape_of(loss);
  std::vector<Hop> hops = shortest_path(loss, param);
  if (hops.empty()) throw_not_reached(loss, name, param, tape, name_map);

  GradientPath path;
  path.param_name = name;
  path.param_shape = param.shape();
  path.tape_nodes = (int64_t)tape.order.size();
  for (size_t i = 0; i < tape.order.size(); i++)
    for (const Tensor& in : tape.order[i]->inputs)
      if (is_param(in, param)) {
        path.consumers.push_back((int64_t)i);
        break;
      }
  for (const Hop& h : hops) {
    GradPathStep s;
    s.number = tape.number.at(h.node);
    s.sequence = h.node->sequence;
    s.op = h.node->op;
    s.scope = h.node->scope;
    s.grad_shape = h.node->out_shape;
    s.grad_norm = std::numeric_limits<double>::quiet_NaN();
    s.via_input = h.via_input;
    for (const Tensor& in : h.node->inputs) s.inputs.push_back(input_text(in, tape, name_map));
    path.steps.push_back(std::move(s));
  }

  // ---- 2. hooks: each path node's incoming gradient, the parameter's total, the last edge's part ----
  std::vector<size_t> hook_at;  // where each path node's hook sits in its Node::hooks
  for (size_t i = 0; i < hops.size(); i++) {
    GradPathStep* step = &path.steps[i];
    hook_at.push_back(hops[i].node->hooks.size());
    hops[i].node->hooks.push_back([step](Tensor& g) {
      step->grad_reached = true;
      step->grad_shape = g.shape();
      step->grad_norm = norm_of(g);
    });
  }
  Node* last = hops.back().node;
  BackwardFn last_backward = last->backward;
  std::vector<double> edge_sum;  // Σ over the last node's inputs that are `param` (x ⊙ x takes it twice)
  last->backward = [&, last_backward](const Tensor& g) {
    std::vector<Tensor> grads = last_backward(g);
    for (size_t j = 0; j < grads.size() && j < last->inputs.size(); j++) {
      if (!is_param(last->inputs[j], param) || !grads[j].defined()) continue;
      std::vector<double> v = grads[j].to_f64_vector();
      if (edge_sum.empty()) edge_sum.assign(v.size(), 0.0);
      for (size_t k = 0; k < v.size(); k++) edge_sum[k] += v[k];
    }
    return grads;
  };
  auto& leaf_hooks = param.impl()->hooks;
  leaf_hooks.push_back([&path](Tensor& g) { path.param_grad = g.clone_data(); });
  const size_t leaf_hook_at = leaf_hooks.size() - 1;

  // ---- 3. the one backward sweep ----
  auto remove_hooks = [&] {
    for (size_t i = 0; i < hops.size(); i++) {
      auto& hooks = hops[i].node->hooks;
      if (hook_at[i] < hooks.size()) hooks.erase(hooks.begin() + (std::ptrdiff_t)hook_at[i]);
    }
    if (last->backward) last->backward = last_backward;  // retain_graph: the tape stays usable
    if (leaf_hook_at < leaf_hooks.size()) leaf_hooks.erase(leaf_hooks.begin() + (std::ptrdiff_t)leaf_hook_at);
  };
  try {
    backward(loss, Tensor(), retain_graph);
  } catch (...) {
    remove_hooks();
    throw;
  }
  remove_hooks();

  path.param_grad_norm = norm_of(path.param_grad);
  double sq = 0;
  for (double v : edge_sum) sq += v * v;
  path.edge_grad_norm = edge_sum.empty() ? std::numeric_limits<double>::quiet_NaN() : std::sqrt(sq);
  return path;
}

// ---- printing ---------------------------------------------------------------------------------------

static std::string sci(double v) {
  if (std::isnan(v)) return "-";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4e", v);
  return buf;
}

static std::string pad(const std::string& s, size_t width) {
  return s.size() >= width ? s + " " : s + std::string(width - s.size(), ' ');
}

std::string format_gradient_path(const GradientPath& p) {
  std::ostringstream os;
  const std::string loss_label = p.steps.empty() ? "?" : p.steps.front().label();
  os << "gradient path: loss (%" << (p.steps.empty() ? -1 : p.steps.front().number) << " " << loss_label << ") -> "
     << p.param_name << " " << shape_str(p.param_shape) << "\n"
     << "  " << p.steps.size() << " nodes of the loss's tape of " << p.tape_nodes
     << " (numbers: tape_to_text's %N); the shortest path, earlier inputs first among equals\n";
  size_t label_width = 10;
  for (const auto& s : p.steps) label_width = std::max(label_width, s.label().size() + 2);
  os << "  " << pad("node", 8) << pad("scope/op", label_width) << pad("grad shape", 18) << pad("grad norm", 12)
     << "inputs (* = the path)\n";
  for (const auto& s : p.steps) {
    std::string inputs;
    const size_t n = s.inputs.size();
    for (size_t j = 0; j < n; j++) {
      const bool show = n <= 8 || j < 4 || (int64_t)j == s.via_input || j + 1 == n;
      if (!show) {
        if (inputs.size() < 5 || inputs.compare(inputs.size() - 5, 5, ", ...") != 0) inputs += ", ...";
        continue;
      }
      if (!inputs.empty()) inputs += ", ";
      inputs += s.inputs[j] + ((int64_t)j == s.via_input ? "*" : "");
    }
    if (n > 8) inputs += "  (" + std::to_string(n) + " inputs)";
    os << "  " << pad("%" + std::to_string(s.number), 8) << pad(s.label(), label_width)
       << pad(shape_str(s.grad_shape), 18) << pad(s.grad_reached ? sci(s.grad_norm) : "no grad", 12) << inputs << "\n";
  }
  os << "  parameter " << p.param_name << ": grad "
     << (p.param_grad.defined() ? shape_str(p.param_grad.shape()) + ", norm " + sci(p.param_grad_norm)
                                : std::string("none (no gradient reached it in this sweep)"))
     << "\n";
  if (!p.steps.empty() && p.param_grad.defined())
    os << "    through the path's last edge (%" << p.steps.back().number << " input " << p.steps.back().via_input
       << "): norm " << sci(p.edge_grad_norm) << "\n";
  os << "    consumed directly by " << p.consumers.size() << (p.consumers.size() == 1 ? " node:" : " nodes:");
  for (size_t i = 0; i < p.consumers.size() && i < 16; i++) os << " %" << p.consumers[i];
  if (p.consumers.size() > 16) os << " ...";
  if (p.consumers.size() > 1) os << "  (its .grad sums all of them)";
  os << "\n";
  return os.str();
}

std::string gradient_path_to_dot(const Tensor& loss, const std::vector<int64_t>& path_numbers) {
  std::string dot = tape_to_dot(loss);
  std::string extra;
  for (int64_t n : path_numbers)
    extra += "  n" + std::to_string(n) + " [color=red, fontcolor=red, penwidth=2];\n";
  const size_t close = dot.rfind('}');
  if (close == std::string::npos) return dot;
  return dot.substr(0, close) + extra + dot.substr(close);
}

// ---- names ---------------------------------------------------------------------------------------------

static std::vector<std::string> dotted_parts(const std::string& s) {
  std::vector<std::string> parts;
  std::string cur;
  for (char c : s) {
    if (c == '.') {
      parts.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  parts.push_back(cur);
  return parts;
}

static size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); j++) row[j] = j;
  for (size_t i = 1; i <= a.size(); i++) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); j++) {
      size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

std::vector<std::string> closest_names(const std::string& target, const std::vector<std::string>& candidates, size_t k) {
  const std::vector<std::string> t = dotted_parts(target);
  struct Scored {
    size_t shared, edits, index;
  };
  std::vector<Scored> scored;
  for (size_t i = 0; i < candidates.size(); i++) {
    const std::vector<std::string> c = dotted_parts(candidates[i]);
    size_t shared = 0;
    while (shared < t.size() && shared < c.size() && t[shared] == c[shared]) shared++;
    scored.push_back({shared, edit_distance(target, candidates[i]), i});
  }
  std::sort(scored.begin(), scored.end(), [](const Scored& a, const Scored& b) {
    if (a.shared != b.shared) return a.shared > b.shared;
    if (a.edits != b.edits) return a.edits < b.edits;
    return a.index < b.index;
  });
  std::vector<std::string> out;
  for (size_t i = 0; i < scored.size() && i < k; i++) out.push_back(candidates[scored[i].index]);
  return out;
}

}  // namespace sg
