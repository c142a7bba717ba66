// train/trainer_state.cpp — TrainerState <-> JSON (see trainer_state.h for the layout).
#include "train/trainer_state.h"

#include <charconv>
#include <stdexcept>

#include "data/hash.h"

namespace sg {

namespace {

constexpr const char* kFormat = "seekgrad-trainer-state";
constexpr int64_t kVersion = 1;

[[noreturn]] void fail(const Json& j, const std::string& what) {
  throw std::runtime_error("[trainer_state] " + j.source() + ": " + what);
}

uint64_t hash_from_json(const Json& j) {
  uint64_t v = 0;
  if (!j.is_string() || !data::parse_hash_hex(j.get_string(), v))
    fail(j, "a hash is a string \"0x\" + 16 hex digits (line " + std::to_string(j.line()) + ")");
  return v;
}

Json integrity_to_json(const TrainerState& s) {
  Json files = Json::object();
  for (const auto& [name, f] : s.files) {
    Json o = Json::object();
    o.set("bytes", u64_to_json(f.bytes));
    o.set("fnv1a64", data::hash_hex(f.fnv1a64));
    files.set(name, o);
  }
  Json model;
  if (!s.identity.architecture.empty()) {
    Json args = Json::object();
    for (const auto& [k, v] : s.identity.architecture) args.set(k, v);
    model = Json::object();
    model.set("hash", data::hash_hex(s.identity.architecture_hash()));
    model.set("args", args);
  }
  Json o = Json::object();
  o.set("files", files);
  o.set("model", model);
  o.set("tokenizer", s.identity.tokenizer_hash ? Json(data::hash_hex(s.identity.tokenizer_hash)) : Json());
  return o;
}

void integrity_from_json(const Json& j, TrainerState& s) {
  if (!j.is_object()) fail(j, "\"integrity\" should be an object");
  s.has_integrity = true;
  const Json& files = j.at("files");
  if (!files.is_object()) fail(files, "\"integrity.files\" should be an object");
  for (const auto& [name, f] : files.items()) s.files.push_back({name, {u64_from_json(f.at("bytes")), hash_from_json(f.at("fnv1a64"))}});
  const Json& model = j.at("model");
  if (!model.is_null()) {
    for (const auto& [k, v] : model.at("args").items()) s.identity.architecture.push_back({k, v.get_string()});
    if (hash_from_json(model.at("hash")) != s.identity.architecture_hash())
      fail(model, "\"integrity.model.hash\" does not match its \"args\" (the file was edited or damaged)");
  }
  if (!j.at("tokenizer").is_null()) s.identity.tokenizer_hash = hash_from_json(j.at("tokenizer"));
}

}  // namespace

uint64_t CheckpointIdentity::architecture_hash() const {
  if (architecture.empty()) return 0;
  std::string lines;
  for (const auto& [k, v] : architecture) lines += k + "=" + v + "\n";
  return data::fnv1a64(lines.data(), lines.size());
}

Json u64_to_json(uint64_t v) { return Json(std::to_string(v)); }

uint64_t u64_from_json(const Json& j) {
  if (j.is_int() && j.get_int() >= 0) return (uint64_t)j.get_int();  // accepted for hand-written files
  if (!j.is_string()) fail(j, std::string("expected an unsigned 64-bit integer as a string, found ") + j.type_name());
  const std::string& s = j.get_string();
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size())
    fail(j, "'" + s + "' is not an unsigned 64-bit integer (line " + std::to_string(j.line()) + ")");
  return v;
}

Json rng_state_to_json(const std::array<uint64_t, 4>& s) {
  Json a = Json::array();
  for (uint64_t w : s) a.push_back(u64_to_json(w));
  return a;
}

std::array<uint64_t, 4> rng_state_from_json(const Json& j) {
  if (!j.is_array() || j.size() != 4) fail(j, "an RNG state is an array of 4 strings");
  std::array<uint64_t, 4> s{};
  for (size_t i = 0; i < 4; ++i) s[i] = u64_from_json(j[i]);
  return s;
}

Json loader_state_to_json(const data::TokenLoader::State& s) {
  Json o = Json::object();
  o.set("seed", u64_to_json(s.seed));
  o.set("batch_size", Json((long long)s.batch_size));
  o.set("seq_len", Json((long long)s.seq_len));
  o.set("random_positions", Json((long long)s.random_positions));
  o.set("data_fingerprint", u64_to_json(s.data_fingerprint));
  o.set("epoch", u64_to_json(s.epoch));
  o.set("shard_cursor", u64_to_json(s.shard_cursor));
  o.set("window_cursor", u64_to_json(s.window_cursor));
  o.set("rng", rng_state_to_json(s.rng));
  o.set("batches", u64_to_json(s.batches));
  return o;
}

data::TokenLoader::State loader_state_from_json(const Json& j) {
  if (!j.is_object()) fail(j, std::string("\"loader\" should be an object, found ") + j.type_name());
  data::TokenLoader::State s;
  s.seed = u64_from_json(j.at("seed"));
  s.batch_size = j.at("batch_size").get_int();
  s.seq_len = j.at("seq_len").get_int();
  s.random_positions = j.at("random_positions").get_int();
  s.data_fingerprint = u64_from_json(j.at("data_fingerprint"));
  s.epoch = u64_from_json(j.at("epoch"));
  s.shard_cursor = u64_from_json(j.at("shard_cursor"));
  s.window_cursor = u64_from_json(j.at("window_cursor"));
  s.rng = rng_state_from_json(j.at("rng"));
  s.batches = u64_from_json(j.at("batches"));
  return s;
}

Json TrainerState::to_json() const {
  Json o = Json::object();
  o.set("format", kFormat);
  o.set("version", Json((long long)kVersion));
  o.set("config_name", config_name);
  o.set("optimizer", optimizer);
  o.set("step", Json((long long)step));
  o.set("tokens_seen", Json((long long)tokens_seen));
  o.set("rng", rng_state_to_json(rng));
  o.set("loader", loader ? loader_state_to_json(*loader) : Json());
  o.set("extra", extra);
  if (has_integrity) o.set("integrity", integrity_to_json(*this));
  return o;
}

TrainerState TrainerState::from_json(const Json& j) {
  if (!j.is_object()) fail(j, std::string("expected an object, found ") + j.type_name());
  if (!j.contains("format") || !j.at("format").is_string() || j.at("format").get_string() != kFormat)
    fail(j, std::string("not a trainer state (\"format\" should be \"") + kFormat + "\")");
  if (j.at("version").get_int() != kVersion)
    fail(j, "version " + std::to_string(j.at("version").get_int()) + " (this build reads version " +
                std::to_string(kVersion) + ")");
  TrainerState s;
  s.config_name = j.at("config_name").get_string();
  s.optimizer = j.at("optimizer").get_string();
  s.step = j.at("step").get_int();
  s.tokens_seen = j.at("tokens_seen").get_int();
  if (s.step < 0 || s.tokens_seen < 0) fail(j, "step and tokens_seen must be >= 0");
  s.rng = rng_state_from_json(j.at("rng"));
  if (!j.at("loader").is_null()) s.loader = loader_state_from_json(j.at("loader"));
  s.extra = j.at("extra");
  if (!s.extra.is_object()) fail(j, "\"extra\" should be an object");
  if (const Json* integrity = j.find("integrity")) integrity_from_json(*integrity, s);
  return s;
}

}  // namespace sg
