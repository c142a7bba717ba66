// models/module.h — the smallest possible module system: a module lists its parameters and its
// buffers under dotted names (the official DeepSeek inference names: "layers.0.attn.wkv_a.weight"),
// so a checkpoint, an optimizer or a gradient printout can walk them. No hooks, no registration magic:
// each module's `parameters()` (and, where it has any, `buffers()`) is written out by hand and reads
// like its struct.
//
//   parameter  a tensor the optimizer trains (it gets a gradient): Linear, Embedding and norm weights.
//              Each is registered with its ParamKind (autograd/tensor.h) — weight, embedding, norm,
//              bias — which decides, for instance, whether AdamW decays it (train/optim.h).
//   buffer     state that is saved and loaded with the model but is NOT trained: no gradient, never
//              handed to an optimizer. The one in DeepSeek-V3: the MoE gate's e_score_correction_bias
//              (`gate.bias`), which only the aux-loss-free balancing changes (Gate::update_bias).
//
//   named_parameters()              what an optimizer, clipping and zero_grad take
//   named_buffers()                 the buffers alone
//   named_parameters_and_buffers()  what a checkpoint or a model file holds (the file names and order
//                                   are those of the days when the gate bias was listed as a parameter)
//
// A leaf module registers each tensor with add_parameter(out, name, t, kind) or add_buffer(out, name, t);
// a composite module forwards parameters() to all its children and buffers() to the children that
// have buffers (Gate → MoE → Block → MTPModule, Transformer); a leaf module without buffers writes none.
//
// What this is not: PyTorch's nn.Module (no hooks, no train/eval flag, no automatic discovery).
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "autograd/tensor.h"

namespace sg {

using NamedParameters = std::vector<std::pair<std::string, Tensor*>>;

inline std::string join_name(const std::string& prefix, const std::string& name) {
  return prefix.empty() ? name : prefix + "." + name;
}

// The two registration calls of every leaf module: they append (name, &t) and mark the tensor with
// its kind, so whoever holds the list later (the optimizer, a debugger) can ask t.param_kind().
inline void add_parameter(NamedParameters& out, const std::string& name, Tensor& t, ParamKind kind) {
  if (t.defined()) t.set_param_kind(kind);
  out.push_back({name, &t});
}
inline void add_buffer(NamedParameters& out, const std::string& name, Tensor& t) {
  if (t.defined()) t.set_param_kind(ParamKind::buffer);
  out.push_back({name, &t});
}

struct Module {
  virtual ~Module() = default;
  // Appends (prefix.name, &tensor) for every parameter of this module and its children.
  virtual void parameters(const std::string& prefix, NamedParameters& out) = 0;
  // Appends (prefix.name, &tensor) for every buffer of this module and its children. Default: none.
  virtual void buffers(const std::string& prefix, NamedParameters& out) {}

  NamedParameters named_parameters(const std::string& prefix = "") {
    NamedParameters out;
    parameters(prefix, out);
    return out;
  }
  NamedParameters named_buffers(const std::string& prefix = "") {
    NamedParameters out;
    buffers(prefix, out);
    return out;
  }
  // The parameters, with each buffer placed right after the last parameter of the module that owns
  // it ("layers.1.ffn.gate.bias" after "layers.1.ffn.gate.weight"), as checkpoint files list them.
  NamedParameters named_parameters_and_buffers(const std::string& prefix = "") {
    NamedParameters out = named_parameters(prefix);
    for (auto& buffer : named_buffers(prefix)) {
      const std::string owner = buffer.first.substr(0, buffer.first.rfind('.') + 1);  // "layers.1.ffn.gate."
      size_t at = out.size();
      if (!owner.empty())
        for (size_t i = 0; i < out.size(); i++)
          if (out[i].first.compare(0, owner.size(), owner) == 0) at = i + 1;
      out.insert(out.begin() + (std::ptrdiff_t)at, buffer);
    }
    return out;
  }
  // Moves every parameter and buffer to `device`: each tensor is replaced by its copy there (Tensor::to), its
  // requires_grad and ParamKind kept, so an optimizer built AFTERWARDS sees the moved tensors (one built before
  // holds pointers to the same Tensor objects, but its moments stay where they were made). Gradients are not
  // moved (zero_grad first). A module with device-side tables of its own (the rope table) moves them itself:
  // Transformer::to.
  void move_parameters_to(Device device) {
    for (auto& [name, p] : named_parameters_and_buffers()) {
      if (!p->defined() || p->device() == device) continue;
      const bool grad = p->requires_grad();
      const ParamKind kind = p->param_kind();
      Tensor t = p->detach().to(device);
      if (grad) t.requires_grad_();
      t.set_param_kind(kind);
      *p = t;
    }
  }
  // Elements over the parameters (buffers are not parameters).
  int64_t num_parameters() {
    int64_t n = 0;
    for (auto& [name, t] : named_parameters()) n += t->numel();
    return n;
  }
};

}  // namespace sg
