// tests/fuzz/fuzz_checkpoint.cpp — train/checkpoint.h: load_checkpoint() of a directory one of whose
// three files is the fuzz input (a directory API: the files go to a scratch directory).
//
// The first input byte picks the file (mod 3: model.safetensors, optimizer.safetensors,
// trainer_state.json); the rest is its content. The other two files are those of the reference
// checkpoint (checkpoint_fixture.h, written once). A checkpoint it accepts must save and load back to
// the same trainer state.
#include <exception>
#include <filesystem>
#include <string>

#include "tests/fuzz/checkpoint_fixture.h"
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

  sg::fuzz::CheckpointFixture into(false);
  try {
    sg::load_checkpoint(dir.string(), into.tensors, into.optimizer.get(), into.state);
  } catch (const std::exception&) {
    return 0;
  }
  try {
    const auto again = sg::fuzz::scratch_dir() / "ckpt_again";
    sg::save_checkpoint(again.string(), into.tensors, into.optimizer.get(), into.state);
    sg::fuzz::CheckpointFixture back(false);
    sg::load_checkpoint(again.string(), back.tensors, back.optimizer.get(), back.state);
    sg::fuzz::fuzz_check(back.state.to_json().dump() == into.state.to_json().dump(),
                         "trainer state changes in a save/load round trip");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "[fuzz] an accepted checkpoint does not save and load back: %s\n", e.what());
    std::abort();
  }
  return 0;
}
