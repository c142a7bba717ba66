// tests/fuzz/fuzz_yaml_config.cpp — train/config_yaml.h: parse_pretrain_config() over arbitrary text
// (in memory). yaml-cpp's errors derive from std::runtime_error, so they are documented errors too.
#include <exception>
#include <string>

#include "train/config_yaml.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    (void)sg::parse_pretrain_config(std::string(reinterpret_cast<const char*>(data), size), "fuzz.yaml");
    sg::fuzz::note_accepted();
  } catch (const std::exception& e) {
    sg::fuzz::documented_error(e);
  }
  return 0;
}
