// tests/fuzz/fuzz_checkpoint.cpp — train/checkpoint.h: load_checkpoint() of a directory one of whose
// three files is the fuzz input (a directory API: the files go to a scratch directory).
//
// The first input byte picks the file (mod 3: model.safetensors, optimizer.safetensors,
// trainer_state.json); the rest is its content. The other two files are those of the reference
// checkpoint (checkpoint_fixture.h, written once). For a .safetensors input, unless bit 0 of byte/3 is set,
// the reference trainer_state.json's integrity record is rewritten to the input's size and FNV-1a first
// (as fuzz_shards.cpp does for the shard header checksum): else every mutation would stop at "checksum
// mismatch", and the tensor checks after it (names, shapes, NaN/Inf, the optimizer's load_state) would never
// run. A checkpoint it accepts must save and load back to the same trainer state and tensor bytes.
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "tests/fuzz/checkpoint_fixture.h"
#include "data/hash.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

const char* const kFiles[3] = {"model.safetensors", "optimizer.safetensors", "trainer_state.json"};

// The reference checkpoint's directory, written on first use.
const std::filesystem::path& reference_dir() {
  static const std::filesystem::path dir = [] {
    const auto d = sg::fuzz::scratch_dir() / "reference_ckpt";
    sg::fuzz::CheckpointFixture run(true);
    sg::save_checkpoint(d.string(), run.tensors, run.optimizer.get(), run.state);
    return d;
  }();
  return dir;
}

// The reference trainer state (with its integrity record), read once.
const sg::TrainerState& reference_state() {
  static const sg::TrainerState state = [] {
    std::ifstream f(reference_dir() / kFiles[2], std::ios::binary);
    std::stringstream text;
    text << f.rdbuf();
    return sg::TrainerState::from_json(sg::Json::parse(text.str(), "reference trainer_state.json"));
  }();
  return state;
}

// What must survive a save/load round trip: the state without what save_checkpoint recomputes (the
// integrity record: the re-written file may differ in bytes from an accepted input, say its JSON spacing).
std::string state_without_integrity(sg::TrainerState s) {
  s.has_integrity = false;
  s.files.clear();
  s.identity = {};
  return s.to_json().dump();
}

bool same_bytes(const sg::Tensor& a, const sg::Tensor& b) {
  return a.shape() == b.shape() && a.dtype() == b.dtype() &&
         std::memcmp(a.data<float>(), b.data<float>(), (size_t)a.numel() * sizeof(float)) == 0;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const int which = data[0] % 3;
  const auto dir = sg::fuzz::scratch_dir() / "ckpt";
  std::filesystem::create_directories(dir);
  for (int i = 0; i < 3; ++i)
    if (i != which)
      std::filesystem::copy_file(reference_dir() / kFiles[i], dir / kFiles[i],
                                 std::filesystem::copy_options::overwrite_existing);
  sg::fuzz::write_file(dir / kFiles[which], data + 1, size - 1);
  if (which != 2 && ((data[0] / 3) & 1) == 0) {
    sg::TrainerState st = reference_state();
    for (auto& [name, rec] : st.files)
      if (name == kFiles[which]) rec = {(uint64_t)(size - 1), sg::data::fnv1a64(data + 1, size - 1)};
    const std::string text = st.to_json().dump(2) + "\n";
    sg::fuzz::write_file(dir / kFiles[2], text.data(), text.size());
  }

  sg::fuzz::CheckpointFixture into(false);
  try {
    sg::load_checkpoint(dir.string(), into.tensors, into.optimizer.get(), into.state);
  } catch (const std::exception& e) {
    sg::fuzz::documented_error(e);
    return 0;
  }
  sg::fuzz::note_accepted();
  try {
    const auto again = sg::fuzz::scratch_dir() / "ckpt_again";
    sg::save_checkpoint(again.string(), into.tensors, into.optimizer.get(), into.state);
    sg::fuzz::CheckpointFixture back(false);
    sg::load_checkpoint(again.string(), back.tensors, back.optimizer.get(), back.state);
    sg::fuzz::fuzz_check(state_without_integrity(back.state) == state_without_integrity(into.state),
                         "trainer state changes in a save/load round trip");
    sg::fuzz::fuzz_check(same_bytes(back.wq, into.wq) && same_bytes(back.norm, into.norm) &&
                             same_bytes(back.gate_bias, into.gate_bias),
                         "a tensor changes in a save/load round trip");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "[fuzz] an accepted checkpoint does not save and load back: %s\n", e.what());
    std::abort();
  }
  return 0;
}
