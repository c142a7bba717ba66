// autograd/backward.cpp — THE backward pass: topological sort from the loss, then one reverse
// sweep that calls each node's backward function and accumulates gradients with +=.
//
// Read this file top to bottom once; everything else in autograd is bookkeeping around it.
#include <cmath>
#include <cstdio>
#include <iostream>
#include <sstream>
#include <stdexcept>
#include <unordered_map>
#include <unordered_set>

#include "autograd/node.h"
#include "ops/kernels.h"

namespace sg {

std::vector<std::shared_ptr<Node>> topological_order(const Tensor& root) {
  // Iterative depth-first search (a recursive one overflows the stack on long tapes).
  // Post-order = every node after all the nodes it depends on. The shared_ptrs keep every node
  // alive while backward() releases their edges one by one.
  std::vector<std::shared_ptr<Node>> order;
  if (!root.defined() || !root.grad_fn()) return order;
  std::unordered_set<Node*> visited;
  std::vector<std::pair<std::shared_ptr<Node>, size_t>> stack;  // (node, index of the next input to visit)
  stack.push_back({root.grad_fn(), 0});
  visited.insert(root.grad_fn().get());
  while (!stack.empty()) {
    std::shared_ptr<Node> node = stack.back().first;
    size_t next = stack.back().second++;
    if (next < node->inputs.size()) {
      const Tensor& in = node->inputs[next];
      if (in.defined() && in.grad_fn() && !visited.count(in.grad_fn().get())) {
        visited.insert(in.grad_fn().get());
        stack.push_back({in.grad_fn(), 0});
      }
    } else {
      order.push_back(node);
      stack.pop_back();
    }
  }
  return order;
}

// "x (2, 3) f32 on cpu": describe() names the device only when it is not the CPU.
static std::string located(const Tensor& t) {
  return t.device() == Device::CPU ? t.describe() + " on cpu" : t.describe();
}

// acc + g, elementwise, same shape, on their device. On the CPU a plain loop, kept here (not in ops/) so the
// common case depends on nothing; on another device that device's binary add kernel, through the one device
// dispatch (ops/kernels.h), as one flat run of n values.
template <class T> static void add_loop(const T* pa, const T* pb, T* po, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; i++) po[i] = pa[i] + pb[i];
}
template <class T> static void add_on_device(const Tensor& a, const Tensor& b, const Tensor& out) {
  BinaryArgs<T> args{};
  args.op = BinaryOp::add;
  args.ndim = 1;
  args.shape[0] = out.numel();
  args.a_strides[0] = args.b_strides[0] = 1;
  args.a = a.device_data<T>();
  args.b = b.device_data<T>();
  args.out = out.device_data<T>();
  kernels::binary_forward<T>("backward", out.device(), args);
}
// out = a + b over n contiguous values (out may be a: the in-place update; each element is read, then written,
// by the same iteration or thread).
static void add_contiguous(const Tensor& a, const Tensor& b, const Tensor& out) {
  int64_t n = out.numel();
  if (out.device() != Device::CPU) {
    if (out.dtype() == DType::f32) add_on_device<float>(a, b, out);
    else add_on_device<double>(a, b, out);
  } else if (out.dtype() == DType::f32) {
    add_loop(a.data<float>(), b.data<float>(), out.data<float>(), n);
  } else {
    add_loop(a.data<double>(), b.data<double>(), out.data<double>(), n);
  }
}
static Tensor add_same_shape(const Tensor& acc, const Tensor& g) {
  Tensor a = acc.is_contiguous() ? acc : acc.clone_data();
  Tensor b = g.is_contiguous() ? g : g.clone_data();
  Tensor out = Tensor::empty(acc.shape(), acc.dtype(), acc.device());
  add_contiguous(a, b, out);
  return out;
}

// True when nothing but this one handle can see the numbers: a single owner of the TensorImpl and a single
// view of its storage (no other gradient slot, saved tensor, .grad or user variable). Such a gradient can
// be added into in place, or become a leaf's .grad without a copy.
static bool exclusively_owned(const std::shared_ptr<TensorImpl>& t) {
  return t.use_count() == 1 && t->storage.use_count() == 1;
}

// slot += g. The first gradient is kept as it comes (any layout: a transposed view stays a view, the ops
// downstream read strides). Later ones are added in place when the slot's buffer is exclusively owned
// and contiguous — the usual case once the sweep has moved past the op that produced it — and into a
// new buffer otherwise (the slot may share its buffer: add's backward passes one gradient to both inputs).
// Measured on the bench-small training step (one core): gradient copies and sums ~45 -> ~8 ms per step,
// together with matmul writing each gradient in its input's layout (ops/linalg.cpp).
static void accumulate(std::shared_ptr<TensorImpl>& slot, const Tensor& g) {
  if (!slot) {
    slot = g.impl_ptr();
    return;
  }
  Tensor acc(slot);
  if (acc.device() != g.device())
    throw std::runtime_error("[backward] cannot add a gradient on " + std::string(device_name(g.device())) + " to " +
                             located(acc));
  if (acc.is_contiguous() && g.is_contiguous() && slot.use_count() == 2 && slot->storage.use_count() == 1) {  // 2: the slot and `acc`
    add_contiguous(acc, g, acc);
    return;
  }
  slot = add_same_shape(acc, g).impl_ptr();
}

// A leaf's .grad gets its own buffer: the gradient flowing in may be the caller's seed or the
// very tensor another input received (add passes dy through), and .grad is updated in place
// later (clipping, optimizers) — so it is copied unless exclusively owned and contiguous already.
// Hooks run first, once, on the leaf's total gradient of the sweep. The gradient is on the leaf's device (the
// sweep checks every gradient's device against its input's), and so is the copy.
static void finish_leaf(const Tensor& leaf, std::shared_ptr<TensorImpl> g_impl) {
  if (!leaf.impl()->hooks.empty()) {
    Tensor g(g_impl);
    for (auto& hook : leaf.impl()->hooks) hook(g);
    g_impl = g.impl_ptr();
  }
  if (leaf.impl()->grad) {
    accumulate(leaf.impl()->grad, Tensor(g_impl));
  } else if (exclusively_owned(g_impl) && Tensor(g_impl).is_contiguous()) {
    leaf.impl()->grad = std::move(g_impl);
  } else {
    leaf.impl()->grad = Tensor(g_impl).clone_data().impl_ptr();
  }
}

struct GradStats {
  double norm = 0, min = 0, max = 0;
  bool finite = true;
};
static GradStats stats_of(const Tensor& g) {  // a gradient on a device is copied to the host (trace/anomaly only)
  GradStats s;
  std::vector<double> v = g.to_f64_vector();
  if (v.empty()) return s;
  s.min = s.max = v[0];
  double sq = 0;
  for (double x : v) {
    if (!std::isfinite(x)) s.finite = false;
    sq += x * x;
    s.min = std::min(s.min, x);
    s.max = std::max(s.max, x);
  }
  s.norm = std::sqrt(sq);
  return s;
}

static std::string grad_label(const Node& n) {
  return n.out_name.empty() ? "grad(" + n.label() + ")" : "grad(" + n.out_name + ")";
}

// number: the node's index in topological_order(root), the "%N" tape_to_text prints for it.
static void trace_line(std::ostream& os, size_t number, const Node& n, const Tensor& g) {
  GradStats s = stats_of(g);
  char buf[512];
  std::snprintf(buf, sizeof buf, "  %%%-5zu %-44s %-18s norm %-11.4e min %-11.4e max %-11.4e  %s\n",
                number, n.label().c_str(), shape_str(g.shape()).c_str(), s.norm, s.min,
                s.max, grad_label(n).c_str());
  os << buf;
}

static void check_grad(const char* where, const Node& n, size_t input, const Tensor& g) {
  if (!autograd_state().anomaly) return;
  GradStats s = stats_of(g);
  if (s.finite) return;
  std::string which = input == (size_t)-1 ? "the incoming gradient " + grad_label(n)
                                          : "the gradient for input " + std::to_string(input) + " (" +
                                                (n.inputs[input].defined() ? n.inputs[input].describe() : "-") + ")";
  throw std::runtime_error(std::string("[anomaly] ") + where + " of " + n.label() + ": " + which + " " +
                           shape_str(g.shape()) + " holds NaN/Inf");
}

void backward(const Tensor& root, const Tensor& grad, bool retain_graph) {
  if (!root.defined()) throw std::runtime_error("[backward] called on an undefined tensor");
  if (!root.requires_grad())
    throw std::runtime_error("[backward] " + root.describe() + " does not require grad (no input of it does)");
  Tensor seed = grad;
  if (!seed.defined()) {
    if (root.numel() != 1)
      throw std::runtime_error("[backward] " + root.describe() +
                               " is not a scalar: pass the gradient of the output explicitly");
    seed = Tensor::ones(root.shape(), root.dtype(), root.device());
  } else if (seed.shape() != root.shape()) {
    throw std::runtime_error("[backward] gradient " + shape_str(seed.shape()) + " does not match " + root.describe());
  } else if (seed.device() != root.device()) {
    throw std::runtime_error("[backward] gradient " + seed.describe() + " and " + root.describe() +
                             " are on different devices (" + device_name(seed.device()) + " and " +
                             device_name(root.device()) + "): pass the gradient on the root's device");
  }

  // A leaf root: its gradient is the seed.
  if (!root.grad_fn()) {
    finish_leaf(root, seed.impl_ptr());
    return;
  }

  NoGradGuard no_grad;  // backward functions are written in ops; they must not record
  bool trace = autograd_state().trace || trace_requested_by_env();
  std::ostream& out = autograd_state().trace_out ? *autograd_state().trace_out : std::cerr;

  std::vector<std::shared_ptr<Node>> order = topological_order(root);
  std::unordered_map<Node*, std::shared_ptr<TensorImpl>> grads;  // gradient of each node's output
  std::unordered_map<TensorImpl*, std::shared_ptr<TensorImpl>> leaf_grads;  // summed over the sweep
  std::vector<Tensor> leaves;                                               // in the order reached
  grads[root.grad_fn().get()] = seed.impl_ptr();
  if (trace) out << "backward sweep: " << order.size() << " nodes from " << root.grad_fn()->label() << "\n";

  for (size_t k = order.size(); k-- > 0;) {
    Node* node = order[k].get();
    auto found = grads.find(node);
    if (found == grads.end()) continue;  // no gradient reached this node
    Tensor g(found->second);
    grads.erase(found);
    for (auto& hook : node->hooks) hook(g);
    if (node->retain_grad)
      if (auto o = node->output.lock()) o->grad = g.impl_ptr();
    if (trace) trace_line(out, k, *node, g);
    check_grad("backward", *node, (size_t)-1, g);
    if (!node->backward)
      throw std::runtime_error("[backward] the graph through " + node->label() +
                               " was already freed; call backward(grad, /*retain_graph=*/true) the first time");

    std::vector<Tensor> input_grads = node->backward(g);
    if (input_grads.size() != node->inputs.size())
      throw std::runtime_error("[backward] " + node->label() + " returned " + std::to_string(input_grads.size()) +
                               " gradients for " + std::to_string(node->inputs.size()) + " inputs");
    for (size_t i = 0; i < node->inputs.size(); i++) {
      const Tensor& in = node->inputs[i];
      const Tensor& gi = input_grads[i];
      if (!gi.defined() || !in.defined() || !in.requires_grad()) continue;
      if (gi.shape() != in.shape())
        throw std::runtime_error("[backward] " + node->label() + " produced a gradient of shape " +
                                 shape_str(gi.shape()) + " for input " + std::to_string(i) + " " + in.describe());
      if (gi.device() != in.device())
        throw std::runtime_error("[backward] " + node->label() + " produced a gradient on " + device_name(gi.device()) +
                                 " for input " + std::to_string(i) + " " + located(in) +
                                 ": gradients accumulate on their tensor's device");
      check_grad("backward", *node, i, gi);
      if (in.grad_fn()) {
        accumulate(grads[in.grad_fn().get()], gi);
      } else {  // a leaf: sum its gradient here; hooks and .grad once the sweep is done
        auto [slot, first] = leaf_grads.try_emplace(in.impl());
        if (first) leaves.push_back(in);
        accumulate(slot->second, gi);
      }
    }
    input_grads.clear();  // before the next node's accumulations, so the slots are the only owners
    if (!retain_graph) node->release();
  }
  for (const Tensor& leaf : leaves) {
    auto found = leaf_grads.find(leaf.impl());
    std::shared_ptr<TensorImpl> g = std::move(found->second);
    leaf_grads.erase(found);
    finish_leaf(leaf, std::move(g));
  }
}

// ---- tape printing --------------------------------------------------------------------------

static std::string leaf_label(const Tensor& t) {
  return (t.name().empty() ? std::string("leaf") : t.name()) + " " + shape_str(t.shape());
}

std::string tape_to_text(const Tensor& root) {
  std::ostringstream os;
  std::vector<std::shared_ptr<Node>> order = topological_order(root);
  std::unordered_map<Node*, int> id;
  for (size_t i = 0; i < order.size(); i++) id[order[i].get()] = (int)i;
  for (size_t i = 0; i < order.size(); i++) {
    Node* n = order[i].get();
    os << "%" << i << " = " << n->label() << "(";
    for (size_t j = 0; j < n->inputs.size(); j++) {
      if (j) os << ", ";
      const Tensor& in = n->inputs[j];
      if (!in.defined()) os << "-";
      else if (in.grad_fn()) os << "%" << id[in.grad_fn().get()];
      else os << leaf_label(in) << (in.requires_grad() ? "" : " const");
    }
    os << ") -> " << shape_str(n->out_shape) << " " << dtype_name(n->out_dtype);
    if (!n->out_name.empty()) os << "  [" << n->out_name << "]";
    os << "\n";
  }
  return os.str();
}

std::string tape_to_dot(const Tensor& root) {
  std::ostringstream os;
  os << "digraph tape {\n  rankdir=BT;\n  node [fontname=\"monospace\", fontsize=10];\n";
  std::vector<std::shared_ptr<Node>> order = topological_order(root);
  std::unordered_map<const void*, std::string> ids;
  int next_leaf = 0;
  for (size_t i = 0; i < order.size(); i++) {
    Node* n = order[i].get();
    ids[n] = "n" + std::to_string(i);
    os << "  n" << i << " [shape=box, label=\"" << n->label() << "\\n" << shape_str(n->out_shape) << "\"];\n";
  }
  for (size_t i = 0; i < order.size(); i++) {
    Node* n = order[i].get();
    for (const Tensor& in : n->inputs) {
      if (!in.defined()) continue;
      std::string src;
      if (in.grad_fn()) {
        src = ids[in.grad_fn().get()];
      } else {
        auto f = ids.find(in.impl());
        if (f == ids.end()) {
          src = "l" + std::to_string(next_leaf++);
          ids[in.impl()] = src;
          os << "  " << src << " [shape=ellipse, " << (in.requires_grad() ? "" : "style=dashed, ") << "label=\""
             << leaf_label(in) << "\"];\n";
        } else {
          src = f->second;
        }
      }
      os << "  " << src << " -> n" << i << ";\n";
    }
  }
  os << "}\n";
  return os.str();
}

}  // namespace sg
