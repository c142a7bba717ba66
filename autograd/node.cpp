// autograd/node.cpp — Node, recording, scopes, anomaly mode. See node.h.
#include "autograd/node.h"

#include <cmath>
#include <cstdlib>
#include <iostream>
#include <stdexcept>

namespace sg {

AutogradState& autograd_state() {
  thread_local AutogradState state;
  return state;
}

bool grad_enabled() { return autograd_state().grad_enabled; }

std::string current_scope() {
  std::string s;
  for (const auto& part : autograd_state().scopes) {
    if (part.empty()) continue;
    if (!s.empty()) s += '.';
    s += part;
  }
  return s;
}

bool needs_grad(const std::vector<Tensor>& inputs) {
  if (!grad_enabled()) return false;
  for (const auto& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

std::string Node::label() const { return scope.empty() ? op : scope + "/" + op; }

void Node::release() {
  backward = nullptr;
  inputs.clear();
}

// Returns a description of the first NaN/Inf in t ("NaN at flat index 3"), or "" if all finite.
static std::string first_non_finite(const Tensor& t) {
  if (!t.defined() || !is_floating(t.dtype())) return "";  // a tensor on a device is copied to the host first
  std::vector<double> v = t.to_f64_vector();
  for (size_t i = 0; i < v.size(); i++)
    if (!std::isfinite(v[i])) return std::string(std::isnan(v[i]) ? "NaN" : "Inf") + " at flat index " + std::to_string(i);
  return "";
}

static std::string input_shapes(const std::vector<Tensor>& inputs) {
  std::string s;
  for (size_t i = 0; i < inputs.size(); i++) {
    if (i) s += ", ";
    s += inputs[i].defined() ? inputs[i].describe() : "-";
  }
  return s;
}

void check_anomaly_forward(const std::string& op, const Tensor& output, const std::vector<Tensor>& inputs) {
  if (!autograd_state().anomaly) return;
  std::string bad = first_non_finite(output);
  if (bad.empty()) return;
  std::string scope = current_scope();
  throw std::runtime_error("[anomaly] forward of " + (scope.empty() ? op : scope + "/" + op) + " produced " + bad +
                           " in its output " + shape_str(output.shape()) + "; inputs: " + input_shapes(inputs));
}

void record(const std::string& op, Tensor& output, std::vector<Tensor> inputs, BackwardFn backward) {
  check_anomaly_forward(op, output, inputs);
  auto node = std::make_shared<Node>();
  node->op = op;
  node->scope = current_scope();
  node->inputs = std::move(inputs);
  node->backward = std::move(backward);
  node->out_shape = output.shape();
  node->out_dtype = output.dtype();
  node->out_name = output.name();
  node->output = output.impl_ptr();
  node->sequence = autograd_state().next_sequence++;
  output.impl()->grad_fn = node;
  output.impl()->requires_grad = true;
}

TraceGuard::TraceGuard(std::ostream* out) : prev_(autograd_state().trace), prev_out_(autograd_state().trace_out) {
  autograd_state().trace = true;
  autograd_state().trace_out = out;
}
TraceGuard::~TraceGuard() {
  autograd_state().trace = prev_;
  autograd_state().trace_out = prev_out_;
}

bool trace_requested_by_env() {
  const char* v = std::getenv("SEEKGRAD_TRACE");
  return v && *v && std::string(v) != "0";
}

}  // namespace sg
