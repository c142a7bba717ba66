// tests/fuzz/fuzz_safetensors.cpp — models/safetensors.h: read_safetensors() over arbitrary file bytes
// (its API takes a path: the bytes go to a scratch file). A file it accepts must convert (to_f32, to_i64
// where the dtype allows) and write back (write_safetensors) to a file that reads back the same.
#include <exception>

#include "models/safetensors.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = sg::fuzz::bytes_to_file("in.safetensors", data, size);
  sg::SafeTensorsFile file;
  try {
    file = sg::read_safetensors(path);
  } catch (const std::exception& e) {
    sg::fuzz::documented_error(e);
    return 0;
  }
  sg::fuzz::note_accepted();
  for (const sg::StTensor& t : file.tensors) {
    sg::fuzz::fuzz_check((int64_t)t.bytes.size() == t.numel() * (int64_t)sg::st_dtype_size(t.dtype),
                         "tensor bytes do not match shape and dtype");
    if (t.numel() > (1 << 20)) continue;  // conversions of huge tensors only cost time
    try {
      (void)sg::to_f32(t);
      (void)sg::to_i64(t);
    } catch (const std::exception& e) {  // FP8 (to_f32), floating dtypes (to_i64): documented errors
      sg::fuzz::documented_error(e);
    }
  }
  try {
    const std::string out = (sg::fuzz::scratch_dir() / "out.safetensors").string();
    sg::write_safetensors(out, file.tensors, file.metadata);
    const sg::SafeTensorsFile back = sg::read_safetensors(out);
    sg::fuzz::fuzz_check(back.tensors.size() == file.tensors.size() && back.metadata == file.metadata,
                         "write_safetensors round trip changes the tensor list or metadata");
    for (size_t i = 0; i < back.tensors.size(); ++i)
      sg::fuzz::fuzz_check(back.tensors[i].name == file.tensors[i].name &&
                               back.tensors[i].dtype == file.tensors[i].dtype &&
                               back.tensors[i].shape == file.tensors[i].shape &&
                               back.tensors[i].bytes == file.tensors[i].bytes,
                           "write_safetensors round trip changes a tensor");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "[fuzz] an accepted file does not write back: %s\n", e.what());
    std::abort();
  }
  return 0;
}
