// train/optim.cpp — AdamW and SGD: the per-parameter bookkeeping here, the arithmetic in the
// kernels adamw_update / sgd_update (ops/optim.h). The math is written out in optim.h.
#include "train/optim.h"

#include <cmath>
#include <cstring>
#include <set>
#include <stdexcept>

#include "ops/fp8.h"
#include "ops/optim.h"

namespace sg {

namespace {

// The gradient of a parameter as a contiguous f32 tensor on the parameter's device, or an undefined tensor when it
// has none.
Tensor usable_grad(const std::string& who, const std::string& name, const Tensor& p) {
  if (!p.requires_grad()) return Tensor();
  Tensor g = p.grad();
  if (!g.defined()) return g;
  if (g.shape() != p.shape())
    throw std::runtime_error("[" + who + "] gradient of '" + name + "' has shape " + shape_str(g.shape()) +
                             " but the parameter has shape " + shape_str(p.shape()));
  if (g.dtype() != DType::f32 || g.device() != p.device())
    throw std::runtime_error("[" + who + "] gradient of '" + name + "' is " + dtype_name(g.dtype()) + " on " +
                             device_name(g.device()) + "; expected f32 on " + device_name(p.device()) + ", the parameter's device");
  return g.is_contiguous() ? g : g.clone_data();
}

// The state tensor `name` of `file`, checked to be F32 with `shape`.
const StTensor& get_typed(const SafeTensorsFile& file, const std::string& name, const Shape& shape,
                          const char* who, StDType want) {
  const StTensor* t = file.find(name);
  if (!t)
    throw std::runtime_error(std::string("[") + who + "] " + file.path + ": missing tensor '" + name + "'");
  if (t->dtype != want)
    throw std::runtime_error(std::string("[") + who + "] " + file.path + ": tensor '" + name + "' is " +
                             st_dtype_name(t->dtype) + ", expected " + st_dtype_name(want) +
                             (want == StDType::BF16 ? " (the optimizer keeps bf16 moments)"
                                                    : " (the optimizer keeps f32 moments)"));
  if (t->shape != shape)
    throw std::runtime_error(std::string("[") + who + "] " + file.path + ": tensor '" + name + "' has shape " +
                             st_shape_str(t->shape) + " but the parameter has shape " + shape_str(shape));
  return *t;
}

const StTensor& get_f32(const SafeTensorsFile& file, const std::string& name, const Shape& shape,
                        const char* who) {
  return get_typed(file, name, shape, who, StDType::F32);
}

// bf16 moments: a contiguous bf16 tensor <-> f32, its raw uint16 codes <-> a BF16 safetensors tensor.
Tensor bf16_to_f32_tensor(const Tensor& h) {
  Tensor out = Tensor::empty(h.shape(), DType::f32);
  const uint16_t* src = static_cast<const uint16_t*>(h.raw_data());
  float* dst = out.data<float>();
  for (int64_t k = 0, n = h.numel(); k < n; ++k) dst[k] = lowp::bf16_to_f32(src[k]);
  return out;
}
void f32_into_bf16(const Tensor& f, Tensor& h) {
  const float* src = f.data<float>();
  uint16_t* dst = static_cast<uint16_t*>(h.raw_data());
  for (int64_t k = 0, n = f.numel(); k < n; ++k) dst[k] = lowp::f32_to_bf16(src[k]);
}
StTensor bf16_st(const std::string& name, const Tensor& h) {
  StTensor t;
  t.name = name;
  t.dtype = StDType::BF16;
  t.shape = h.shape();
  t.bytes.resize((size_t)h.numel() * 2);
  std::memcpy(t.bytes.data(), h.raw_data(), t.bytes.size());
  return t;
}
Tensor tensor_from_bf16(const StTensor& t) {
  Tensor out = Tensor::empty(t.shape, DType::bf16);
  std::memcpy(out.raw_data(), t.bytes.data(), t.bytes.size());
  return out;
}

int64_t get_step(const SafeTensorsFile& file, const std::string& name, const char* who) {
  const StTensor* t = file.find(name);
  if (!t)
    throw std::runtime_error(std::string("[") + who + "] " + file.path + ": missing tensor '" + name + "'");
  std::vector<int64_t> v = to_i64(*t);
  if (v.size() != 1 || v[0] < 0)
    throw std::runtime_error(std::string("[") + who + "] " + file.path + ": tensor '" + name +
                             "' should be one non-negative integer, has shape " + st_shape_str(t->shape));
  return v[0];
}

StTensor step_tensor(const std::string& name, int64_t step) { return from_i64(name, {}, &step); }

Tensor tensor_from(const StTensor& t) {
  Tensor out = Tensor::empty(t.shape, DType::f32);
  std::memcpy(out.data<float>(), t.bytes.data(), t.bytes.size());
  return out;
}

// Every tensor of `file` must be one we asked for: a name we do not know means the file belongs to
// another model (or another optimizer).
void check_no_extra(const SafeTensorsFile& file, const std::set<std::string>& known, const char* who) {
  for (const StTensor& t : file.tensors)
    if (!known.count(t.name))
      throw std::runtime_error(std::string("[") + who + "] " + file.path + ": tensor '" + t.name +
                               "' matches no parameter of this optimizer");
}

}  // namespace

bool decay_weights_only(const std::string& name, const Tensor& param) { return param.param_kind() == ParamKind::weight; }

Optimizer::Optimizer(NamedParameters params, const char* who) : params_(std::move(params)) {
  std::set<std::string> seen;
  for (auto& [name, p] : params_) {
    if (name.empty()) throw std::invalid_argument(std::string("[") + who + "] a parameter has an empty name");
    if (!seen.insert(name).second)
      throw std::invalid_argument(std::string("[") + who + "] parameter name '" + name + "' appears twice");
    if (!p || !p->defined())
      throw std::invalid_argument(std::string("[") + who + "] parameter '" + name + "' is not a tensor");
    if (p->param_kind() == ParamKind::buffer)
      throw std::invalid_argument(std::string("[") + who + "] '" + name +
                                  "' is a buffer (Module::buffers), not a parameter; pass named_parameters()");
    if (p->dtype() != DType::f32 || p->device() == Device::Metal || !p->is_contiguous())
      throw std::invalid_argument(std::string("[") + who + "] parameter '" + name + "' is " + p->describe() +
                                  " on " + device_name(p->device()) + "; expected a contiguous f32 tensor on cpu or cuda");
  }
}

// ---- AdamW ------------------------------------------------------------------------------------

AdamW::AdamW(NamedParameters params, AdamWConfig cfg, DecayPredicate decay)
    : Optimizer(std::move(params), "adamw"), cfg_(cfg), state_(params_.size()) {
  if (!(cfg.beta1 >= 0 && cfg.beta1 < 1) || !(cfg.beta2 >= 0 && cfg.beta2 < 1) || !(cfg.eps >= 0) ||
      !(cfg.weight_decay >= 0))
    throw std::invalid_argument("[adamw] need 0 <= beta1, beta2 < 1 and eps, weight_decay >= 0 (beta1 " +
                                std::to_string(cfg.beta1) + ", beta2 " + std::to_string(cfg.beta2) + ")");
  if (cfg.moment_dtype != DType::f32 && cfg.moment_dtype != DType::bf16)
    throw std::invalid_argument(std::string("[adamw] moment_dtype must be f32 or bf16, got ") +
                                dtype_name(cfg.moment_dtype));
  for (size_t i = 0; i < params_.size(); ++i) {
    const auto& [name, p] = params_[i];
    state_[i].decay = decay ? decay(name, *p) : false;
    // The moments live with the parameter. bf16 moments are decoded and rounded by host loops (below): CPU only.
    if (cfg.moment_dtype == DType::bf16 && p->device() != Device::CPU)
      throw std::invalid_argument("[adamw] parameter '" + name + "' is on " + device_name(p->device()) +
                                  ": bf16 moments are kept on the CPU only; use moment_dtype f32");
    if (p->requires_grad()) {
      state_[i].exp_avg = Tensor::zeros(p->shape(), cfg.moment_dtype, p->device());
      state_[i].exp_avg_sq = Tensor::zeros(p->shape(), cfg.moment_dtype, p->device());
    }
  }
}

bool AdamW::decays(const std::string& name) const {
  for (size_t i = 0; i < params_.size(); ++i)
    if (params_[i].first == name) return state_[i].decay;
  throw std::invalid_argument("[adamw] no parameter named '" + name + "'");
}

void AdamW::step(double lr) {
  ++steps_;
  for (size_t i = 0; i < params_.size(); ++i) {
    const auto& [name, p] = params_[i];
    Tensor g = usable_grad("adamw", name, *p);
    if (!g.defined()) continue;
    ParamState& s = state_[i];
    if (!s.exp_avg.defined()) {  // requires_grad was switched on after the optimizer was built
      s.exp_avg = Tensor::zeros(p->shape(), cfg_.moment_dtype, p->device());
      s.exp_avg_sq = Tensor::zeros(p->shape(), cfg_.moment_dtype, p->device());
    }
    s.step += 1;
    const double t = (double)s.step;
    AdamWUpdateArgs a;
    a.lr = (float)lr;
    a.beta1 = (float)cfg_.beta1;
    a.beta2 = (float)cfg_.beta2;
    a.eps = (float)cfg_.eps;
    a.decay_factor = s.decay ? (float)(1.0 - lr * cfg_.weight_decay) : 1.0f;
    a.step_size = (float)(lr / (1.0 - std::pow(cfg_.beta1, t)));
    a.bias_correction2_sqrt = (float)std::sqrt(1.0 - std::pow(cfg_.beta2, t));
    if (cfg_.moment_dtype == DType::f32) {
      adamw_update(*p, g, s.exp_avg, s.exp_avg_sq, a);
    } else {
      // bf16 moments: decode, the same f32 moment update, store back with RNE, and step p with the
      // ROUNDED moments (as a bf16 exp_avg / exp_avg_sq in PyTorch would be used). Pass 1 runs the
      // kernel on a scratch copy of p for m, v; pass 2 runs it on p with β1 = β2 = 1 and g = 0, which
      // leaves the rounded m, v exactly as they are (1·m + 0·0) and applies decay + update with them.
      Tensor m = bf16_to_f32_tensor(s.exp_avg), v = bf16_to_f32_tensor(s.exp_avg_sq);
      Tensor scratch = p->clone_data();
      adamw_update(scratch, g, m, v, a);
      f32_into_bf16(m, s.exp_avg);
      f32_into_bf16(v, s.exp_avg_sq);
      m = bf16_to_f32_tensor(s.exp_avg), v = bf16_to_f32_tensor(s.exp_avg_sq);
      AdamWUpdateArgs keep = a;
      keep.beta1 = 1.0f, keep.beta2 = 1.0f;
      adamw_update(*p, Tensor::zeros(p->shape()), m, v, keep);
    }
  }
}

int64_t AdamW::state_bytes() const {
  int64_t bytes = 0;
  const int64_t elem = cfg_.moment_dtype == DType::bf16 ? 2 : 4;
  for (const ParamState& s : state_)
    if (s.exp_avg.defined()) bytes += 2 * elem * s.exp_avg.numel();
  return bytes;
}

std::vector<StTensor> AdamW::state_tensors() const {
  std::vector<StTensor> out;
  out.push_back(step_tensor("step", steps_));
  for (size_t i = 0; i < params_.size(); ++i) {
    const ParamState& s = state_[i];
    if (!s.exp_avg.defined()) continue;
    const std::string& name = params_[i].first;
    if (cfg_.moment_dtype == DType::f32) {  // (moments on a device are read back to the host)
      const Tensor m = s.exp_avg.to(Device::CPU), v = s.exp_avg_sq.to(Device::CPU);
      out.push_back(from_f32("exp_avg." + name, m.shape(), m.data<float>()));
      out.push_back(from_f32("exp_avg_sq." + name, v.shape(), v.data<float>()));
    } else {  // the bf16 codes as they are (BF16 on disk)
      out.push_back(bf16_st("exp_avg." + name, s.exp_avg));
      out.push_back(bf16_st("exp_avg_sq." + name, s.exp_avg_sq));
    }
    out.push_back(step_tensor("step." + name, s.step));
  }
  return out;
}

void AdamW::load_state(const SafeTensorsFile& file) {
  // Check everything first; assign only when the whole file fits.
  std::set<std::string> known = {"step"};
  const int64_t steps = get_step(file, "step", "adamw");
  std::vector<ParamState> next(params_.size());
  for (size_t i = 0; i < params_.size(); ++i) {
    const auto& [name, p] = params_[i];
    next[i].decay = state_[i].decay;
    if (!state_[i].exp_avg.defined() && !file.contains("exp_avg." + name)) continue;  // frozen parameter
    if (cfg_.moment_dtype == DType::f32) {
      next[i].exp_avg = tensor_from(get_f32(file, "exp_avg." + name, p->shape(), "adamw")).to(p->device());
      next[i].exp_avg_sq = tensor_from(get_f32(file, "exp_avg_sq." + name, p->shape(), "adamw")).to(p->device());
    } else {
      next[i].exp_avg = tensor_from_bf16(get_typed(file, "exp_avg." + name, p->shape(), "adamw", StDType::BF16));
      next[i].exp_avg_sq =
          tensor_from_bf16(get_typed(file, "exp_avg_sq." + name, p->shape(), "adamw", StDType::BF16));
    }
    next[i].step = get_step(file, "step." + name, "adamw");
    known.insert({"exp_avg." + name, "exp_avg_sq." + name, "step." + name});
  }
  check_no_extra(file, known, "adamw");
  state_ = std::move(next);
  steps_ = steps;
}

// ---- SGD --------------------------------------------------------------------------------------

SGD::SGD(NamedParameters params, SGDConfig cfg) : Optimizer(std::move(params), "sgd"), cfg_(cfg), buf_(params_.size()) {
  if (!(cfg.momentum >= 0) || !(cfg.weight_decay >= 0))
    throw std::invalid_argument("[sgd] need momentum >= 0 and weight_decay >= 0");
  if (cfg.nesterov && cfg.momentum == 0) throw std::invalid_argument("[sgd] nesterov needs momentum > 0");
}

void SGD::step(double lr) {
  ++steps_;
  for (size_t i = 0; i < params_.size(); ++i) {
    const auto& [name, p] = params_[i];
    Tensor g = usable_grad("sgd", name, *p);
    if (!g.defined()) continue;
    bool first = false;
    if (cfg_.momentum != 0 && !buf_[i].defined()) {
      buf_[i] = Tensor::zeros(p->shape(), DType::f32, p->device());
      first = true;
    }
    SGDUpdateArgs a;
    a.lr = (float)lr;
    a.momentum = (float)cfg_.momentum;
    a.weight_decay = (float)cfg_.weight_decay;
    a.nesterov = cfg_.nesterov ? 1 : 0;
    a.first = first ? 1 : 0;
    sgd_update(*p, g, cfg_.momentum != 0 ? buf_[i] : Tensor(), a);
  }
}

std::vector<StTensor> SGD::state_tensors() const {
  std::vector<StTensor> out;
  out.push_back(step_tensor("step", steps_));
  for (size_t i = 0; i < params_.size(); ++i)
    if (buf_[i].defined()) {
      const Tensor b = buf_[i].to(Device::CPU);
      out.push_back(from_f32("momentum_buffer." + params_[i].first, b.shape(), b.data<float>()));
    }
  return out;
}

void SGD::load_state(const SafeTensorsFile& file) {
  std::set<std::string> known = {"step"};
  const int64_t steps = get_step(file, "step", "sgd");
  std::vector<Tensor> next(params_.size());
  for (size_t i = 0; i < params_.size(); ++i) {
    const auto& [name, p] = params_[i];
    const std::string key = "momentum_buffer." + name;
    if (!file.contains(key)) continue;  // never stepped (or no momentum): the buffer starts at the next step
    next[i] = tensor_from(get_f32(file, key, p->shape(), "sgd")).to(p->device());
    known.insert(key);
  }
  check_no_extra(file, known, "sgd");
  buf_ = std::move(next);
  steps_ = steps;
}

}  // namespace sg
