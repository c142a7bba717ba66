// tests/fuzz/fuzz_json.cpp — models/json.h: Json::parse over arbitrary bytes (in memory). A text it
// accepts must dump and parse back to the same dump, compact and indented (the writer's promise).
#include <exception>
#include <string_view>

#include "models/json.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  sg::Json j;
  try {
    j = sg::Json::parse(text, "fuzz.json");
  } catch (const std::exception& e) {
    sg::fuzz::documented_error(e);
    return 0;  // a documented error
  }
  sg::fuzz::note_accepted();
  const std::string compact = j.dump(), indented = j.dump(2);
  try {
    sg::fuzz::fuzz_check(sg::Json::parse(compact, "compact").dump() == compact, "dump() does not read back");
    sg::fuzz::fuzz_check(sg::Json::parse(indented, "indented").dump() == compact, "dump(2) does not read back");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "[fuzz] dump of an accepted value does not parse: %s\n", e.what());
    std::abort();
  }
  return 0;
}
