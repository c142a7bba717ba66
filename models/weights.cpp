// models/weights.cpp — see weights.h.
#include "models/weights.h"

#include <cmath>
#include <cstring>
#include <set>
#include <stdexcept>
#include <vector>

#include "ops/dispatch.h"
#include "ops/shape.h"

namespace sg {

// ---- StTensor <-> Tensor ------------------------------------------------------------------------

Tensor tensor_from_st(const StTensor& st, DType dtype) {
  if (dtype == DType::f8e4m3) {  // the codes themselves, byte for byte (an FP8 checkpoint's weight)
    if (st.dtype != StDType::F8_E4M3)
      throw std::runtime_error("[weights] tensor '" + st.name + "' " + st_shape_str(st.shape) + " is " +
                               st_dtype_name(st.dtype) + ", but an FP8 (f8e4m3) parameter needs F8_E4M3 codes");
    Tensor t = Tensor::empty(st.shape, DType::f8e4m3);
    if ((size_t)t.numel() != st.bytes.size())
      throw std::runtime_error("[weights] tensor '" + st.name + "' " + st_shape_str(st.shape) + " holds " +
                               std::to_string(st.bytes.size()) + " bytes, expected " + std::to_string(t.numel()));
    if (!st.bytes.empty()) std::memcpy(t.fp8_codes(), st.bytes.data(), st.bytes.size());
    return t;
  }
  if (st.dtype == StDType::F8_E4M3 || st.dtype == StDType::F8_E5M2)
    throw std::runtime_error("[weights] tensor '" + st.name + "' " + st_shape_str(st.shape) + " is " +
                             st_dtype_name(st.dtype) + " (FP8 codes): only a linear layer's weight can be FP8, with its "
                             "block scales in '" + st.name + "_scale_inv'; this parameter is " + dtype_name(dtype));
  if (st.dtype != StDType::F32 && st.dtype != StDType::F64 && st.dtype != StDType::F16 && st.dtype != StDType::BF16)
    throw std::runtime_error("[weights] tensor '" + st.name + "' " + st_shape_str(st.shape) + " is " +
                             st_dtype_name(st.dtype) + "; tensor_from_st reads F32, F64, F16 and BF16");
  if (dtype == DType::f32) return Tensor::from_vector(to_f32(st), st.shape);
  if (dtype == DType::f64) return Tensor::from_vector(to_f64(st), st.shape);
  throw std::runtime_error(std::string("[weights] tensor_from_st('") + st.name + "') needs a floating dtype, got " +
                           dtype_name(dtype));
}

StTensor st_from_tensor(const std::string& name, const Tensor& t, std::optional<StDType> st_dtype) {
  if (!t.defined()) throw std::runtime_error("[weights] st_from_tensor('" + name + "'): the tensor is undefined");
  if (t.dtype() == DType::f8e4m3) {  // FP8 codes stored as they are
    if (st_dtype && *st_dtype != StDType::F8_E4M3)
      throw std::runtime_error("[weights] st_from_tensor('" + name + "'): " + t.describe() + " can only be stored as F8_E4M3");
    Tensor c = t.is_contiguous() ? t : t.clone_data();
    StTensor st{name, StDType::F8_E4M3, t.shape(), std::vector<uint8_t>((size_t)t.numel())};
    if (!st.bytes.empty()) std::memcpy(st.bytes.data(), c.fp8_codes(), st.bytes.size());
    return st;
  }
  StDType out = st_dtype.value_or(t.dtype() == DType::f64   ? StDType::F64
                                  : t.dtype() == DType::i64 ? StDType::I64
                                  : t.dtype() == DType::i32 ? StDType::I32
                                                            : StDType::F32);
  if (out == StDType::F64 && t.dtype() == DType::f64) {  // exact: no trip through float
    std::vector<double> v = t.to_f64_vector();
    StTensor st{name, StDType::F64, t.shape(), std::vector<uint8_t>(v.size() * sizeof(double))};
    if (!v.empty()) std::memcpy(st.bytes.data(), v.data(), st.bytes.size());
    return st;
  }
  bool to_float = out == StDType::F32 || out == StDType::F64 || out == StDType::F16 || out == StDType::BF16;
  if (to_float) {
    if (!is_floating(t.dtype()))
      throw std::runtime_error("[weights] st_from_tensor('" + name + "'): " + t.describe() + " cannot be stored as " +
                               st_dtype_name(out));
    std::vector<float> v = t.to_f32_vector();
    return from_f32(name, t.shape(), v.data(), out);
  }
  if (is_floating(t.dtype()))
    throw std::runtime_error("[weights] st_from_tensor('" + name + "'): " + t.describe() + " cannot be stored as " +
                             st_dtype_name(out));
  std::vector<int64_t> v = t.to_i64_vector();
  return from_i64(name, t.shape(), v.data(), out);
}

// ---- names ----------------------------------------------------------------------------------------
// One table of (official, HF) patterns drives both directions. A pattern is a dotted name whose '#'
// components match a decimal number (the layer N, the expert E), carried over to the other side.

namespace {

struct NameRule {
  std::vector<std::string> official, hf;
};

std::vector<std::string> split_dots(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    size_t dot = s.find('.', start);
    out.push_back(s.substr(start, dot == std::string::npos ? std::string::npos : dot - start));
    if (dot == std::string::npos) return out;
    start = dot + 1;
  }
}

std::string join_dots(const std::vector<std::string>& parts, size_t n) {
  std::string s;
  for (size_t i = 0; i < n && i < parts.size(); i++) s += (i ? "." : "") + parts[i];
  return s;
}

bool is_number(const std::string& s) {
  if (s.empty()) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  return true;
}

const std::vector<NameRule>& name_rules() {
  static const std::vector<NameRule> rules = [] {
    std::vector<NameRule> r;
    auto add = [&](const std::string& official, const std::string& hf) { r.push_back({split_dots(official), split_dots(hf)}); };
    // A linear layer: its weight, and its FP8 block scales (*.scale ↔ *.weight_scale_inv).
    auto linear = [&](const std::string& official, const std::string& hf) {
      add(official + ".weight", hf + ".weight");
      add(official + ".scale", hf + ".weight_scale_inv");
    };
    add("embed.weight", "model.embed_tokens.weight");
    add("norm.weight", "model.norm.weight");
    linear("head", "lm_head");

    const std::string L = "layers.#.", HL = "model.layers.#.";
    add(L + "attn_norm.weight", HL + "input_layernorm.weight");
    add(L + "ffn_norm.weight", HL + "post_attention_layernorm.weight");
    // MLA (models/README.md §4)
    linear(L + "attn.wq", HL + "self_attn.q_proj");
    linear(L + "attn.wq_a", HL + "self_attn.q_a_proj");
    add(L + "attn.q_norm.weight", HL + "self_attn.q_a_layernorm.weight");
    linear(L + "attn.wq_b", HL + "self_attn.q_b_proj");
    linear(L + "attn.wkv_a", HL + "self_attn.kv_a_proj_with_mqa");
    add(L + "attn.kv_norm.weight", HL + "self_attn.kv_a_layernorm.weight");
    linear(L + "attn.wkv_b", HL + "self_attn.kv_b_proj");
    linear(L + "attn.wo", HL + "self_attn.o_proj");
    // V3.2 DSA indexer (models/README.md §9, §11): same sub-names on both sides
    linear(L + "attn.indexer.wq_b", HL + "self_attn.indexer.wq_b");
    linear(L + "attn.indexer.wk", HL + "self_attn.indexer.wk");
    add(L + "attn.indexer.k_norm.weight", HL + "self_attn.indexer.k_norm.weight");
    add(L + "attn.indexer.k_norm.bias", HL + "self_attn.indexer.k_norm.bias");
    linear(L + "attn.indexer.weights_proj", HL + "self_attn.indexer.weights_proj");
    // FFN: dense MLP, routed experts, shared experts (SwiGLU: w1 = gate_proj, w3 = up_proj, w2 = down_proj)
    for (const auto& [o, h] : std::vector<std::pair<std::string, std::string>>{
             {"ffn.", "mlp."}, {"ffn.experts.#.", "mlp.experts.#."}, {"ffn.shared_experts.", "mlp.shared_experts."}}) {
      linear(L + o + "w1", HL + h + "gate_proj");
      linear(L + o + "w3", HL + h + "up_proj");
      linear(L + o + "w2", HL + h + "down_proj");
    }
    add(L + "ffn.gate.weight", HL + "mlp.gate.weight");
    add(L + "ffn.gate.bias", HL + "mlp.gate.e_score_correction_bias");
    // MTP modules, stored as layers n_layers + k - 1
    add(L + "enorm.weight", HL + "enorm.weight");
    add(L + "hnorm.weight", HL + "hnorm.weight");
    linear(L + "eh_proj", HL + "eh_proj");
    add(L + "shared_head.norm.weight", HL + "shared_head.norm.weight");
    linear(L + "shared_head.head", HL + "shared_head.head");
    add(L + "embed.weight", HL + "embed_tokens.weight");
    return r;
  }();
  return rules;
}

// Maps `name` from one side of the table to the other, or throws naming the first component that
// no rule knows and what would have been accepted there.
std::string map_name(const std::string& name, bool from_hf) {
  std::vector<std::string> parts = split_dots(name);
  size_t best = 0;
  std::set<std::string> expected;
  for (const NameRule& rule : name_rules()) {
    const std::vector<std::string>& from = from_hf ? rule.hf : rule.official;
    const std::vector<std::string>& to = from_hf ? rule.official : rule.hf;
    std::vector<std::string> numbers;
    size_t m = 0;
    while (m < from.size() && m < parts.size() && (from[m] == "#" ? is_number(parts[m]) : from[m] == parts[m])) {
      if (from[m] == "#") numbers.push_back(parts[m]);
      m++;
    }
    if (m == from.size() && m == parts.size()) {
      std::string out;
      size_t k = 0;
      for (size_t i = 0; i < to.size(); i++) out += (i ? "." : "") + (to[i] == "#" ? numbers[k++] : to[i]);
      return out;
    }
    if (m > best) {
      best = m;
      expected.clear();
    }
    if (m == best) expected.insert(m < from.size() ? (from[m] == "#" ? "<number>" : from[m]) : "<end of name>");
  }
  std::string list;
  for (const std::string& e : expected) list += (list.empty() ? "" : ", ") + e;
  std::string found = best < parts.size() ? "'" + parts[best] + "'" : "the end of the name";
  std::string after = best ? " after '" + join_dots(parts, best) + "'" : " at the start";
  throw std::runtime_error(std::string("[weights] unknown ") + (from_hf ? "HF" : "official") + " parameter name '" + name +
                           "' (" + found + after + "; expected one of: " + list + ")");
}

}  // namespace

std::string hf_to_official_name(const std::string& hf) { return map_name(hf, true); }
std::string official_to_hf_name(const std::string& official) { return map_name(official, false); }

// ---- loading ------------------------------------------------------------------------------------

namespace {

// NaN/Inf in a loaded weight or scale is refused here, naming the tensor and the element, instead of turning
// every logit into NaN later. One pass over values that were just converted. FP8 (E4M3, "fn": no infinities)
// codes S.1111.111 are its NaN.
void check_finite(const std::string& where, const std::string& hf, const std::string& official, const StTensor& st,
                  const Tensor& src) {
  auto report = [&](int64_t i, const std::string& what, const std::string& note = "") {
    throw std::runtime_error(where + "tensor '" + hf + "' (parameter '" + official + "') holds " + what + " at element " +
                             std::to_string(i) + note);
  };
  auto check = [&](double v, int64_t i) {
    if (std::isnan(v)) report(i, "NaN");
    if (std::isinf(v)) report(i, v > 0 ? "inf" : "-inf");
  };
  if (src.dtype() == DType::f8e4m3) {
    for (size_t i = 0; i < st.bytes.size(); i++)
      if ((st.bytes[i] & 0x7f) == 0x7f) report((int64_t)i, "NaN", st.bytes[i] == 0x7f ? " (E4M3 code 0x7f)" : " (E4M3 code 0xff)");
  } else if (src.dtype() == DType::f32) {
    const float* p = src.data<float>();
    for (int64_t i = 0; i < src.numel(); i++)
      if (!std::isfinite(p[i])) check(p[i], i);
  } else if (src.dtype() == DType::f64) {
    const double* p = src.data<double>();
    for (int64_t i = 0; i < src.numel(); i++)
      if (!std::isfinite(p[i])) check(p[i], i);
  }
}

}  // namespace

void load_parameters(NamedParameters& params, const SafeTensorsFile& f, const std::string& file_path, bool strict) {
  const std::string path = file_path.empty() ? f.path : file_path;
  const std::string where = "[load_parameters] " + path + ": ";
  std::set<std::string> used;
  for (auto& [official, t] : params) {
    std::string hf;
    try {
      hf = official_to_hf_name(official);
    } catch (const std::exception& e) {
      throw std::runtime_error(where + "parameter '" + official + "' has no HF name: " + e.what());
    }
    const StTensor* st = f.find(hf);
    if (!st)
      throw std::runtime_error(where + "no tensor '" + hf + "' for parameter '" + official + "' (the file has " +
                               std::to_string(f.tensors.size()) + " tensors)");
    if (!t || !t->defined())
      throw std::runtime_error(where + "parameter '" + official + "' is an undefined tensor (module not built?)");
    if (st->shape != t->shape())
      throw std::runtime_error(where + "tensor '" + hf + "' (parameter '" + official + "') has shape " +
                               st_shape_str(st->shape) + " but the parameter has shape " + shape_str(t->shape()));
    if (!is_floating(t->dtype()) && t->dtype() != DType::f8e4m3)
      throw std::runtime_error(where + "parameter '" + official + "' " + t->describe() + " is not floating point");
    Tensor src;
    try {
      src = tensor_from_st(*st, t->dtype());
    } catch (const std::exception& e) {
      throw std::runtime_error(where + "parameter '" + official + "': " + e.what());
    }
    check_finite(where, hf, official, *st, src);
    if (t->dtype() == DType::f8e4m3) {  // codes: byte for byte into the (contiguous) parameter
      if (!t->is_contiguous()) throw std::runtime_error(where + "FP8 parameter '" + official + "' is not contiguous");
      if (t->numel()) std::memcpy(t->fp8_codes(), src.fp8_codes(), (size_t)t->numel());
      used.insert(hf);
      continue;
    }
    // In place, through the parameter's own strides: handles held elsewhere (an optimizer) see the new values.
    copy_into(*t, src.to(t->device()));
    used.insert(hf);
  }
  if (!strict) return;
  std::vector<std::string> unused;
  for (const StTensor& st : f.tensors)
    if (!used.count(st.name)) unused.push_back(st.name);
  if (unused.empty()) return;
  std::string list;
  for (size_t i = 0; i < unused.size() && i < 8; i++) list += (i ? ", " : "") + unused[i];
  if (unused.size() > 8) list += ", ...";
  throw std::runtime_error(where + std::to_string(unused.size()) + " tensor(s) in the file match no parameter (strict): " +
                           list);
}

}  // namespace sg
