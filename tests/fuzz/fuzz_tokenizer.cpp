// tests/fuzz/fuzz_tokenizer.cpp — data/tokenizer.h: Tokenizer::load() over arbitrary file bytes (a path
// API: the bytes go to a scratch file). A tokenizer it accepts must encode and decode a text back to the
// same bytes, and save to a file that loads back to the same vocabulary.
#include <exception>
#include <string>

#include "data/tokenizer.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = sg::fuzz::bytes_to_file("tokenizer.txt", data, size);
  sg::data::Tokenizer tok;
  try {
    tok = sg::data::Tokenizer::load(path);
  } catch (const std::exception& e) {
    sg::fuzz::documented_error(e);
    return 0;
  }
  sg::fuzz::note_accepted();
  try {
    // Some of the input itself (its last bytes: the merge and special lines' text) plus a fixed text.
    const size_t tail = size < 64 ? size : 64;
    const std::string text = "Once upon a time, 12 + 30 = 42. <think> x </think>\n" +
                             std::string(reinterpret_cast<const char*>(data) + size - tail, tail);
    sg::fuzz::fuzz_check(tok.decode(tok.encode(text, false)) == text, "decode(encode(text)) != text");
    sg::fuzz::fuzz_check(tok.decode(tok.encode(text, true)) == text, "decode(encode(text, specials)) != text");
    const std::string out = (sg::fuzz::scratch_dir() / "tokenizer_out.txt").string();
    tok.save(out);
    const sg::data::Tokenizer back = sg::data::Tokenizer::load(out);
    sg::fuzz::fuzz_check(back.vocab_size() == tok.vocab_size() && back.special_tokens() == tok.special_tokens(),
                         "save/load round trip changes the vocabulary");
    for (int32_t id = 0; id < tok.vocab_size(); ++id)
      sg::fuzz::fuzz_check(back.id_to_bytes(id) == tok.id_to_bytes(id), "save/load round trip changes a token");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "[fuzz] an accepted tokenizer fails: %s\n", e.what());
    std::abort();
  }
  return 0;
}
