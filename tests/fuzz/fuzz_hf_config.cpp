// tests/fuzz/fuzz_hf_config.cpp — models/config.h: ModelArgs from a config.json's bytes, dispatched as
// load_model_args_json() does (official_ModelArgs / HF "hidden_size" / official names), in memory. Args
// it accepts must export (model_args_to_hf_config) to a config.json that reads back and exports the same.
#include <exception>
#include <string>

#include "models/config.h"
#include "models/json.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string src = "config.json";
  sg::ModelArgs args;
  try {
    const sg::Json j = sg::Json::parse(std::string_view(reinterpret_cast<const char*>(data), size), src);
    if (j.contains("official_ModelArgs"))
      args = sg::model_args_from_official_json(j.at("official_ModelArgs"), src);
    else if (j.contains("hidden_size"))
      args = sg::model_args_from_hf_config(j, src);
    else
      args = sg::model_args_from_official_json(j, src);
  } catch (const std::exception& e) {
    sg::fuzz::documented_error(e);
    return 0;
  }
  sg::fuzz::note_accepted();
  try {
    const sg::Json exported = sg::model_args_to_hf_config(args);
    const sg::ModelArgs back = sg::model_args_from_hf_config(sg::Json::parse(exported.dump(), "exported"), "exported");
    // Fields HF does not carry (or writes only when they matter) may change: the exported file may not.
    sg::fuzz::fuzz_check(sg::model_args_to_hf_config(back).dump() == exported.dump(),
                         "exported config.json reads back as different args");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "[fuzz] accepted args do not export and read back: %s\n", e.what());
    std::abort();
  }
  return 0;
}
