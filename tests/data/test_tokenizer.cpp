// tests/data/test_tokenizer.cpp — byte-level BPE: pre-split, training (against a recount-from-scratch
// reference), encode/decode round trips on arbitrary bytes, special tokens, the file format.
#include <doctest/doctest.h>

#include <algorithm>
#include <map>

#include "data/generators.h"
#include "data/tokenizer.h"
#include "tests/data/temp_dir.h"

using namespace sg::data;
using sg::data::testing::slurp;
using sg::data::testing::spit;
using sg::data::testing::TempDir;

namespace {

std::string random_bytes(sg::Rng& rng, size_t n) {
  std::string s(n, '\0');
  for (char& c : s) c = (char)rng.randint(256);
  return s;
}

// The textbook trainer: recount every adjacent pair of every word from scratch before each merge,
// take the most frequent (ties: smallest (left, right)). Slow and obviously right.
std::vector<std::pair<int32_t, int32_t>> reference_bpe_merges(const std::vector<std::string>& pieces, int n_merges) {
  std::map<std::string, int64_t> freq;
  for (const std::string& piece : pieces)
    for (std::string_view w : pre_tokenize(piece)) ++freq[std::string(w)];
  std::vector<std::pair<std::vector<int32_t>, int64_t>> words;
  for (const auto& [w, f] : freq) {
    std::vector<int32_t> ids;
    for (char c : w) ids.push_back((unsigned char)c);
    words.emplace_back(ids, f);
  }
  std::vector<std::pair<int32_t, int32_t>> merges;
  for (int k = 0; k < n_merges; ++k) {
    std::map<std::pair<int32_t, int32_t>, int64_t> counts;
    for (const auto& [ids, f] : words)
      for (size_t i = 0; i + 1 < ids.size(); ++i) counts[{ids[i], ids[i + 1]}] += f;
    std::pair<int32_t, int32_t> best{-1, -1};
    int64_t best_count = 0;
    for (const auto& [p, c] : counts)  // std::map iterates pairs in increasing order: first max wins ties
      if (c > best_count) best = p, best_count = c;
    if (best_count < 2) break;
    merges.push_back(best);
    const int32_t id = 256 + k;
    for (auto& [ids, f] : words) {
      std::vector<int32_t> out;
      for (size_t i = 0; i < ids.size();) {
        if (i + 1 < ids.size() && ids[i] == best.first && ids[i + 1] == best.second)
          out.push_back(id), i += 2;
        else
          out.push_back(ids[i++]);
      }
      ids = out;
    }
  }
  return merges;
}

}  // namespace

TEST_CASE("pre_tokenize: GPT-2-like words that tile the text") {
  auto words = pre_tokenize("Hello world, it's 12345!\n\n  Bye");
  std::vector<std::string> got(words.begin(), words.end());
  std::vector<std::string> want = {"Hello", " world", ",", " it", "'s", " 123", "45", "!", "\n\n ", " Bye"};
  CHECK(got == want);

  sg::Rng rng(5);
  for (int t = 0; t < 50; ++t) {
    const std::string s = random_bytes(rng, rng.randint(300));
    std::string joined;
    for (auto w : pre_tokenize(s)) {
      CHECK(!w.empty());
      joined += w;
    }
    CHECK(joined == s);
  }
}

TEST_CASE("bpe: first merges on a hand-made corpus are the most frequent pairs") {
  // Words: "hug", " hug" x2, " pug", " pun", " bun", " hugs".
  // Pair counts: (u,g)=5 (hug x3, pug, hugs), (h,u)=4, (' ',h)=3, (' ',p)=(p,u)=(u,n)=2, the rest 1.
  //   merge 0: u+g -> "ug"
  //   then (h,ug)=4 (hug x3, hugs), (' ',h)=3          -> merge 1: h+ug -> "hug"
  //   then (' ',hug)=3 (" hug" x2, " hugs"), (u,n)=2    -> merge 2: ' '+hug -> " hug"
  BpeTrainOptions opt;
  opt.vocab_size = 256 + 3;
  opt.special_tokens = {};
  Tokenizer tok = Tokenizer::train("hug hug hug pug pun bun hugs", opt);
  REQUIRE(tok.n_merges() == 3);
  CHECK(tok.merge(0) == std::make_pair((int32_t)'u', (int32_t)'g'));
  CHECK(tok.id_to_bytes(256) == "ug");
  CHECK(tok.merge(1) == std::make_pair((int32_t)'h', 256));
  CHECK(tok.id_to_bytes(257) == "hug");
  CHECK(tok.id_to_bytes(258) == " hug");
  CHECK(tok.encode("hug hugs") == std::vector<int32_t>{257, 258, 's'});
}

TEST_CASE("bpe: equal counts are broken by the smallest (left, right) ids") {
  // "xy xy ab ab": (x,y), (' ',a), (a,b) all occur twice. (' ',a) = (32,97) is smallest -> " a";
  // then (" a",b)=2 and (x,y)=2 tie again: (120,121) < (256,98) -> "xy".
  BpeTrainOptions opt;
  opt.vocab_size = 256 + 2;
  opt.special_tokens = {};
  Tokenizer tok = Tokenizer::train("xy xy ab ab", opt);
  REQUIRE(tok.n_merges() == 2);
  CHECK(tok.id_to_bytes(256) == " a");
  CHECK(tok.id_to_bytes(257) == "xy");
}

TEST_CASE("bpe: incremental training matches the recount-from-scratch reference") {
  const std::string corpus = generate_story_corpus(11, 60);
  BpeTrainOptions opt;
  opt.vocab_size = 256 + 150 + 10;
  Tokenizer tok = Tokenizer::train(corpus, opt);
  // The reference gets the pieces between the special tokens, as training sees them.
  std::vector<std::string> pieces;
  size_t start = 0;
  for (size_t p; (p = corpus.find("<|endoftext|>", start)) != std::string::npos; start = p + 13)
    pieces.push_back(corpus.substr(start, p - start));
  pieces.push_back(corpus.substr(start));
  const auto want = reference_bpe_merges(pieces, 150);
  REQUIRE(want.size() == 150);
  REQUIRE(tok.n_merges() == 150);
  for (int k = 0; k < 150; ++k) {
    INFO("merge " << k << ": got \"" << escape_bytes(tok.id_to_bytes(256 + k)) << "\"");
    CHECK(tok.merge(k) == want[k]);
  }
  CHECK(tok.vocab_size() == 256 + 150 + 10);
}

TEST_CASE("bpe: training on the story corpus compresses it") {
  const std::string corpus = generate_story_corpus(3, 2000);
  BpeTrainStats stats;
  BpeTrainOptions opt;
  opt.vocab_size = 1024;
  Tokenizer tok = Tokenizer::train(corpus, opt, &stats);
  CHECK(tok.vocab_size() == 1024);
  CHECK(stats.n_merges == 1024 - 256 - 10);
  const std::string held_out = generate_story_corpus(4, 200);
  const auto ids = tok.encode(held_out);
  const double bytes_per_token = (double)held_out.size() / (double)ids.size();
  MESSAGE("generated stories: " << bytes_per_token << " bytes/token at vocab 1024 (" << stats.seconds
                                << " s to train)");
  CHECK(bytes_per_token > 3.5);
  CHECK(tok.decode(ids) == held_out);
  CHECK(std::count(ids.begin(), ids.end(), tok.token_id("<|endoftext|>")) == 200);
}

TEST_CASE("bpe: encode/decode round trip on arbitrary bytes") {
  Tokenizer tok = Tokenizer::train(generate_story_corpus(1, 300), 600);
  sg::Rng rng(42);
  for (int t = 0; t < 200; ++t) {
    std::string s = random_bytes(rng, rng.randint(200));
    if (t % 3 == 0) s += std::string("\0\xff\xfe<|endoftext|>\xc3(", 18);  // NUL, invalid UTF-8, a special
    CHECK(tok.decode(tok.encode(s)) == s);
    CHECK(tok.decode(tok.encode(s, /*allow_special=*/false)) == s);
    for (int32_t id : tok.encode(s)) CHECK((id >= 0 && id < tok.vocab_size()));
  }
  CHECK(tok.encode("").empty());
  CHECK(tok.decode({}).empty());
}

TEST_CASE("bpe: special tokens are whole tokens unless disabled") {
  Tokenizer tok = Tokenizer::train(generate_story_corpus(2, 300), 700);
  CHECK(tok.special_tokens() == default_special_tokens());
  const int32_t think = tok.token_id("<think>"), end_think = tok.token_id("</think>");
  CHECK(think == 256 + tok.n_merges() + 1);
  CHECK(tok.is_special(think));
  CHECK(tok.id_to_bytes(think) == "<think>");

  const std::string text = "<|user|>What is 2 + 3?<|assistant|><think>2 + 3 = 5</think>The answer is 5.<|endoftext|>";
  const auto ids = tok.encode(text);
  CHECK(ids.front() == tok.token_id("<|user|>"));
  CHECK(ids.back() == tok.token_id("<|endoftext|>"));
  CHECK(std::count(ids.begin(), ids.end(), think) == 1);
  CHECK(std::count(ids.begin(), ids.end(), end_think) == 1);
  CHECK(tok.decode(ids) == text);

  const auto plain = tok.encode(text, /*allow_special=*/false);
  for (int32_t id : plain) CHECK(!tok.is_special(id));
  CHECK(tok.decode(plain) == text);

  const auto partial = tok.encode("<thin k> <think");
  for (int32_t id : partial) CHECK(!tok.is_special(id));
  CHECK_THROWS_WITH_AS(tok.token_id("<nope>"), doctest::Contains("<nope>"), std::out_of_range);
  CHECK_THROWS_AS(tok.decode({tok.vocab_size()}), std::out_of_range);
}

TEST_CASE("bpe: the heap encoder matches the naive loop") {
  Tokenizer tok = Tokenizer::train(generate_story_corpus(5, 300), 800);
  sg::Rng rng(9);
  const std::string letters = "aaaabbbeeeetthhnns ";
  for (int t = 0; t < 300; ++t) {
    std::string w;
    const size_t n = rng.randint(120);
    for (size_t i = 0; i < n; ++i) w += t % 2 ? letters[rng.randint(letters.size())] : (char)rng.randint(256);
    CHECK(tok.encode_word_fast(w) == tok.encode_word_naive(w));
  }
  const std::string long_word(5000, 'e');
  CHECK(tok.encode_word_fast(long_word) == tok.encode_word_naive(long_word));
  CHECK(tok.decode(tok.encode(long_word)) == long_word);
}

TEST_CASE("bpe: save/load round trip gives identical encodings") {
  TempDir dir("tok_roundtrip");
  BpeTrainOptions opt;
  opt.vocab_size = 700;
  opt.special_tokens = default_special_tokens();
  opt.special_tokens.push_back(std::string("<odd \"quote\"\\ \n\x01\xff>", 17));
  Tokenizer tok = Tokenizer::train(generate_story_corpus(6, 300), opt);
  const std::string path = dir.file("tok.txt");
  tok.save(path);
  CHECK(!std::filesystem::exists(path + ".tmp"));
  Tokenizer back = Tokenizer::load(path);
  CHECK(back.vocab_size() == tok.vocab_size());
  CHECK(back.n_merges() == tok.n_merges());
  CHECK(back.special_tokens() == tok.special_tokens());
  for (int32_t id = 0; id < tok.vocab_size(); ++id) CHECK(back.id_to_bytes(id) == tok.id_to_bytes(id));
  const std::string text = generate_story_corpus(99, 20) + opt.special_tokens.back() + "\xff\xfe";
  CHECK(back.encode(text) == tok.encode(text));
  CHECK(slurp(path).rfind("seekgrad-bpe 1\n", 0) == 0);
}

TEST_CASE("bpe: a damaged tokenizer file is an error naming the file and line") {
  TempDir dir("tok_damaged");
  Tokenizer tok = Tokenizer::train(generate_story_corpus(7, 100), 400);
  const std::string good = dir.file("good.txt");
  tok.save(good);
  const std::string text = slurp(good);

  SUBCASE("truncated") {
    const std::string path = dir.file("truncated.txt");
    spit(path, text.substr(0, text.size() / 2));
    CHECK_THROWS_WITH_AS(Tokenizer::load(path), doctest::Contains(path.c_str()), std::runtime_error);
    CHECK_THROWS_WITH_AS(Tokenizer::load(path), doctest::Contains("truncated"), std::runtime_error);
  }
  SUBCASE("truncated mid-line") {
    const std::string path = dir.file("midline.txt");
    const size_t cut = text.find("merge 300 ");
    spit(path, text.substr(0, cut + 12));
    CHECK_THROWS_WITH_AS(Tokenizer::load(path), doctest::Contains((path + ":").c_str()), std::runtime_error);
  }
  SUBCASE("bad merge line names the line number") {
    std::string bad = text;
    const size_t at = bad.find("merge 260 ");
    bad.replace(at, 9, "merge 260 x");  // "merge 260 x<left> ..." is not a number
    const int line = (int)std::count(bad.begin(), bad.begin() + (long)at, '\n') + 1;
    const std::string path = dir.file("badline.txt");
    spit(path, bad);
    CHECK_THROWS_WITH_AS(Tokenizer::load(path), doctest::Contains((path + ":" + std::to_string(line) + ":").c_str()),
                         std::runtime_error);
  }
  SUBCASE("wrong magic, wrong version, missing file") {
    const std::string path = dir.file("magic.txt");
    spit(path, "hello\n" + text);
    CHECK_THROWS_WITH_AS(Tokenizer::load(path), doctest::Contains("seekgrad-bpe"), std::runtime_error);
    spit(path, "seekgrad-bpe 7\n");
    CHECK_THROWS_WITH_AS(Tokenizer::load(path), doctest::Contains("version"), std::runtime_error);
    CHECK_THROWS_WITH_AS(Tokenizer::load(dir.file("absent.txt")), doctest::Contains("absent.txt"), std::runtime_error);
  }
}

TEST_CASE("bpe: bad training arguments") {
  CHECK_THROWS_AS(Tokenizer::train("abc", 260), std::invalid_argument);  // 256 + 10 specials > 260
  CHECK_THROWS_AS(Tokenizer::train("abc", 300, {"<a>", "<a>"}), std::invalid_argument);
  CHECK_THROWS_AS(Tokenizer::train("abc", 300, {""}), std::invalid_argument);
  // A corpus too small for the requested vocabulary stops early (no pair occurs twice).
  // Several texts train like their concatenation with a word break between them.
  const Tokenizer two = Tokenizer::train(std::vector<std::string>{"low lower", " lowest low"}, 262, {});
  const Tokenizer one = Tokenizer::train(std::string_view("low lower lowest low"), 262, {});
  REQUIRE(two.n_merges() == one.n_merges());
  CHECK(two.n_merges() == 4);  // l+o, lo+w, " "+low, " low"+e: then no pair occurs twice
  for (int k = 0; k < one.n_merges(); ++k) CHECK(two.merge(k) == one.merge(k));
  Tokenizer tiny = Tokenizer::train("abcd", 1000, {});
  CHECK(tiny.n_merges() == 0);
  CHECK(tiny.vocab_size() == 256);
}
