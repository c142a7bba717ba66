// train/checkpoint.cpp — save/load the checkpoint directory described in checkpoint.h.
#include "train/checkpoint.h"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <fstream>
#include <set>
#include <sstream>
#include <stdexcept>

#include "autograd/node.h"
#include "data/hash.h"
#include "models/safetensors.h"
#include "ops/shape.h"

namespace fs = std::filesystem;

namespace sg {

namespace {

constexpr const char* kModelFile = "model.safetensors";
constexpr const char* kOptimizerFile = "optimizer.safetensors";
constexpr const char* kStateFile = "trainer_state.json";

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw std::runtime_error("[checkpoint] " + path + ": " + what);
}

StTensor param_tensor(const std::string& name, const Tensor* p) {
  if (!p || !p->defined()) throw std::runtime_error("[checkpoint] parameter '" + name + "' is not a tensor");
  // (A parameter on a device is read back to the host: to_f32_vector / to_f64_vector copy it.)
  if (p->dtype() == DType::f32) {
    std::vector<float> v = p->to_f32_vector();
    return from_f32(name, p->shape(), v.data());
  }
  if (p->dtype() == DType::f64) {
    std::vector<double> v = p->to_f64_vector();
    StTensor t{name, StDType::F64, p->shape(), std::vector<uint8_t>(v.size() * sizeof(double))};
    std::memcpy(t.bytes.data(), v.data(), t.bytes.size());
    return t;
  }
  throw std::runtime_error("[checkpoint] parameter '" + name + "' is " + p->describe() +
                           "; checkpoints hold f32 or f64 parameters");
}

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) fail(path.string(), "cannot open for writing");
  f.write(text.data(), (std::streamsize)text.size());
  f.close();
  if (!f) fail(path.string(), "write failed (disk full?)");
}

SafeTensorsFile read_file(const fs::path& path) {
  if (!fs::exists(path)) fail(path.string(), "missing file");
  try {
    return read_safetensors(path.string());
  } catch (const std::exception& e) {
    fail(path.string(), std::string("cannot read it: ") + e.what());
  }
}

// "NaN", "inf" or "-inf" for a non-finite value; "" for a finite one.
std::string non_finite_name(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  return "";
}

// The first NaN/Inf of a floating tensor (F64, F32, BF16, F16), as "tensor 'x' holds NaN at element 17".
// One pass over the bytes it already holds; integer and FP8 tensors have no such values to find here.
void check_finite(const std::string& path, const StTensor& t) {
  const size_t n = (size_t)t.numel();
  auto report = [&](size_t i, double v) {
    fail(path, "tensor '" + t.name + "' holds " + non_finite_name(v) + " at element " + std::to_string(i));
  };
  const uint8_t* p = t.bytes.data();
  switch (t.dtype) {
    case StDType::F64:
      for (size_t i = 0; i < n; i++) {
        double v;
        std::memcpy(&v, p + 8 * i, 8);
        if (!std::isfinite(v)) report(i, v);
      }
      break;
    case StDType::F32:
      for (size_t i = 0; i < n; i++) {
        float v;
        std::memcpy(&v, p + 4 * i, 4);
        if (!std::isfinite(v)) report(i, v);
      }
      break;
    case StDType::BF16:
    case StDType::F16:
      for (size_t i = 0; i < n; i++) {
        uint16_t h;
        std::memcpy(&h, p + 2 * i, 2);
        const float v = t.dtype == StDType::BF16 ? bf16_to_f32(h) : f16_to_f32(h);
        if (!std::isfinite(v)) report(i, v);
      }
      break;
    default:
      break;
  }
}

// The recorded size and checksum of `name` in the checkpoint directory against the file (when recorded).
void verify_file(const fs::path& path, const TrainerState& state) {
  for (const auto& [name, rec] : state.files) {
    if (name != path.filename().string()) continue;
    const data::FileHash got = data::hash_file(path.string(), "checkpoint");
    if (got.bytes != rec.bytes || got.fnv1a64 != rec.fnv1a64)
      fail(path.string(), "checksum mismatch (file changed or corrupted since it was written)");
    return;
  }
  if (state.has_integrity) fail(path.string(), "no checksum for it in trainer_state.json");
}

// The caller's identity against the checkpoint's; a side that is empty is not compared.
void verify_identity(const fs::path& state_path, const CheckpointIdentity& have, const CheckpointIdentity& want) {
  if (!have.architecture.empty() && !want.architecture.empty() &&
      have.architecture_hash() != want.architecture_hash()) {
    std::string diff;
    auto value_in = [](const CheckpointIdentity& id, const std::string& key) -> std::string {
      for (const auto& [k, v] : id.architecture)
        if (k == key) return v;
      return "(none)";
    };
    for (const auto& [k, v] : want.architecture) {
      const std::string old = value_in(have, k);
      if (old != v) diff += (diff.empty() ? "" : "; ") + ("written for " + k + " " + old + ", this model has " + k + " " + v);
    }
    for (const auto& [k, v] : have.architecture)
      if (value_in(want, k) == "(none)") diff += (diff.empty() ? "" : "; ") + ("written with " + k + " " + v + ", unknown to this build");
    fail(state_path.string(), "written for another model: " + (diff.empty() ? "the architecture hash differs" : diff) +
                                  " (another run's checkpoint in this directory? give the run its own out_dir)");
  }
  if (have.tokenizer_hash && want.tokenizer_hash && have.tokenizer_hash != want.tokenizer_hash)
    fail(state_path.string(), "written with tokenizer " + data::hash_hex(have.tokenizer_hash) + ", this run's tokenizer is " +
                                  data::hash_hex(want.tokenizer_hash));
}

fs::path old_dir(const fs::path& dir) { return fs::path(dir.string() + ".old"); }

// "runs/x/" -> "runs/x", so that "<dir>.tmp" and "<dir>.old" are siblings of the directory.
fs::path checkpoint_dir(const std::string& dir) {
  fs::path d(dir);
  if (!d.empty() && !d.has_filename()) d = d.parent_path();
  if (d.empty() || !d.has_filename() || d.filename() == "." || d.filename() == "..")
    throw std::invalid_argument("[checkpoint] '" + dir + "' does not name a checkpoint directory");
  return d;
}

// If a save crashed between its two renames, put the previous checkpoint back at `dir`.
void recover(const fs::path& dir) {
  if (!fs::exists(dir) && fs::exists(old_dir(dir))) fs::rename(old_dir(dir), dir);
}

}  // namespace

CheckpointIdentity checkpoint_identity(const ModelArgs& args, const data::Tokenizer* tok) {
  CheckpointIdentity id;
  for (const ModelArgField& f : model_arg_fields()) {
    const std::string name = f.name;
    if (name == "max_batch_size" || name == "fp8" || name == "fp8_weights") continue;  // run-time settings
    id.architecture.push_back({name, model_arg_to_string(args, f)});
  }
  if (tok) id.tokenizer_hash = tok->hash();
  return id;
}

void save_checkpoint(const std::string& dir, Module& model, const Optimizer* optimizer, const TrainerState& state,
                     const CheckpointIdentity& identity) {
  save_checkpoint(dir, model.named_parameters_and_buffers(), optimizer, state, identity);
}
void load_checkpoint(const std::string& dir, Module& model, Optimizer* optimizer, TrainerState& state,
                     const CheckpointIdentity& identity) {
  load_checkpoint(dir, model.named_parameters_and_buffers(), optimizer, state, identity);
}

bool checkpoint_exists(const std::string& dir) {
  const fs::path d = checkpoint_dir(dir);
  return fs::exists(d / kStateFile) || fs::exists(old_dir(d) / kStateFile);
}

void save_checkpoint(const std::string& dir_str, const NamedParameters& params, const Optimizer* optimizer,
                     const TrainerState& state, const CheckpointIdentity& identity) {
  const fs::path dir = checkpoint_dir(dir_str);
  const fs::path tmp(dir.string() + ".tmp");
  recover(dir);
  // Never delete a directory that is not a checkpoint (say, a run directory with plots in it).
  if (fs::exists(dir) && !(fs::is_directory(dir) && (fs::exists(dir / kStateFile) || fs::is_empty(dir))))
    fail(dir.string(), "exists and is not a checkpoint (no trainer_state.json); refusing to replace it");
  fs::remove_all(tmp);  // left over from a crashed save
  if (dir.has_parent_path()) fs::create_directories(dir.parent_path());
  fs::create_directories(tmp);
  try {
    std::vector<StTensor> tensors;
    tensors.reserve(params.size());
    for (const auto& [name, p] : params) tensors.push_back(param_tensor(name, p));
    write_safetensors((tmp / kModelFile).string(), tensors, {{"format", "pt"}});
    tensors.clear();

    TrainerState st = state;
    st.has_integrity = true;
    st.identity = identity;
    st.files.clear();
    auto record = [&](const char* name) {
      const data::FileHash h = data::hash_file((tmp / name).string(), "checkpoint");
      st.files.push_back({name, {h.bytes, h.fnv1a64}});
    };
    record(kModelFile);
    if (optimizer) {
      st.optimizer = optimizer->kind();
      write_safetensors((tmp / kOptimizerFile).string(), optimizer->state_tensors(),
                        {{"optimizer", optimizer->kind()}});
      record(kOptimizerFile);
    } else {
      st.optimizer = "";
    }
    write_text(tmp / kStateFile, st.to_json().dump(2) + "\n");
  } catch (...) {
    std::error_code ec;
    fs::remove_all(tmp, ec);
    throw;
  }
  // Commit: the only moment without a complete checkpoint at `dir` is between these two renames.
  const fs::path old = old_dir(dir);
  fs::remove_all(old);
  if (fs::exists(dir)) fs::rename(dir, old);
  fs::rename(tmp, dir);
  fs::remove_all(old);
}

void load_checkpoint(const std::string& dir_str, const NamedParameters& params, Optimizer* optimizer,
                     TrainerState& state, const CheckpointIdentity& identity) {
  fs::path dir = checkpoint_dir(dir_str);
  if (!fs::exists(dir) && fs::exists(old_dir(dir))) dir = old_dir(dir);  // a save crashed mid-rename
  if (!fs::is_directory(dir)) fail(dir.string(), "no such checkpoint directory");

  // 1. Read and check everything.
  const fs::path state_path = dir / kStateFile;
  if (!fs::exists(state_path)) fail(state_path.string(), "missing file");
  std::ifstream f(state_path, std::ios::binary);
  std::stringstream text;
  text << f.rdbuf();
  if (!f) fail(state_path.string(), "cannot read it");
  TrainerState loaded;
  try {
    loaded = TrainerState::from_json(Json::parse(text.str(), state_path.string()));
  } catch (const std::exception& e) {
    fail(state_path.string(), e.what());
  }
  if (!loaded.has_integrity)
    std::cerr << "[checkpoint] warning: " << state_path.string()
              << " has no checksums, architecture or tokenizer record (written by an older build); loading it unverified\n";
  verify_identity(state_path, loaded.identity, identity);

  const fs::path model_path = dir / kModelFile;
  const SafeTensorsFile model = read_file(model_path);  // its own errors first: a truncated file says so
  verify_file(model_path, loaded);
  std::set<std::string> names;
  for (const auto& [name, p] : params) {
    if (!p || !p->defined()) throw std::invalid_argument("[checkpoint] parameter '" + name + "' is not a tensor");
    if (!names.insert(name).second) throw std::invalid_argument("[checkpoint] parameter '" + name + "' appears twice");
    const StTensor* t = model.find(name);
    if (!t)
      fail(model_path.string(), "no tensor '" + name + "' for the parameter of shape " + shape_str(p->shape()) +
                                    " (the file has " + std::to_string(model.tensors.size()) + " tensors)");
    if (t->shape != p->shape())
      fail(model_path.string(), "tensor '" + name + "' has shape " + st_shape_str(t->shape) +
                                    " but the parameter has shape " + shape_str(p->shape()));
    if (p->dtype() != DType::f32 && p->dtype() != DType::f64)
      throw std::runtime_error("[checkpoint] parameter '" + name + "' is " + p->describe() +
                               "; checkpoints hold f32 or f64 parameters");
    if (!p->is_contiguous())
      throw std::runtime_error("[checkpoint] parameter '" + name + "' must be a contiguous tensor to load into");
    if (t->dtype == StDType::F8_E4M3 || t->dtype == StDType::F8_E5M2)
      fail(model_path.string(), "tensor '" + name + "' is FP8; checkpoints hold f32 parameters");
    check_finite(model_path.string(), *t);
  }
  for (const StTensor& t : model.tensors)
    if (!names.count(t.name))
      fail(model_path.string(), "tensor '" + t.name + "' matches no parameter (" + std::to_string(params.size()) +
                                    " parameters given)");

  std::optional<SafeTensorsFile> opt_file;
  if (optimizer) {
    const fs::path opt_path = dir / kOptimizerFile;
    opt_file = read_file(opt_path);
    verify_file(opt_path, loaded);
    for (const StTensor& t : opt_file->tensors) check_finite(opt_path.string(), t);
    if (loaded.optimizer != optimizer->kind())
      fail(state_path.string(), "written by optimizer '" + loaded.optimizer + "', loading into '" +
                                    optimizer->kind() + "'");
    auto kind = opt_file->metadata.find("optimizer");
    if (kind == opt_file->metadata.end() || kind->second != optimizer->kind())
      fail(opt_path.string(), std::string("metadata \"optimizer\" is not \"") + optimizer->kind() + "\"");
  }

  // 2. Change things. The optimizer checks its whole file before it assigns anything.
  if (optimizer) {
    try {
      optimizer->load_state(*opt_file);
    } catch (const std::exception& e) {
      throw std::runtime_error(std::string("[checkpoint] ") + e.what());
    }
  }
  for (const auto& [name, p] : params) {
    const StTensor& t = *model.find(name);
    if (p->device() != Device::CPU) {  // through a host tensor, copied in place (handles held elsewhere see it)
      Tensor host = Tensor::empty(p->shape(), p->dtype());
      if (p->dtype() == DType::f32) {
        std::vector<float> v = to_f32(t);
        std::memcpy(host.data<float>(), v.data(), v.size() * sizeof(float));
      } else {
        std::vector<double> v = to_f64(t);
        std::memcpy(host.data<double>(), v.data(), v.size() * sizeof(double));
      }
      NoGradGuard no_grad;
      copy_into(*p, host.to(p->device()));
      continue;
    }
    if (p->dtype() == DType::f32) {
      if (t.dtype == StDType::F32) {
        std::memcpy(p->data<float>(), t.bytes.data(), t.bytes.size());
      } else {
        std::vector<float> v = to_f32(t);
        std::memcpy(p->data<float>(), v.data(), v.size() * sizeof(float));
      }
    } else {
      std::vector<double> v = to_f64(t);
      std::memcpy(p->data<double>(), v.data(), v.size() * sizeof(double));
    }
  }
  state = std::move(loaded);
}

}  // namespace sg
