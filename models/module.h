// models/module.h — the smallest possible module system: a module lists its parameters under
// dotted names (the official DeepSeek inference names: "layers.0.attn.wkv_a.weight"), so a
// checkpoint, an optimizer or a gradient printout can walk them. No hooks, no registration magic:
// each module's `parameters()` is written out by hand and reads like its struct.
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

struct Module {
  virtual ~Module() = default;
  // Appends (prefix.name, &tensor) for every parameter of this module and its children.
  virtual void parameters(const std::string& prefix, NamedParameters& out) = 0;
  NamedParameters named_parameters(const std::string& prefix = "") {
    NamedParameters out;
    parameters(prefix, out);
    return out;
  }
  int64_t num_parameters() {
    int64_t n = 0;
    for (auto& [name, t] : named_parameters()) n += t->numel();
    return n;
  }
};

}  // namespace sg
