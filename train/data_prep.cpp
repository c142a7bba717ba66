// train/data_prep.cpp — see data_prep.h.
#include "train/data_prep.h"

#include "data/reasoning.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iomanip>
#include <ostream>
#include <set>
#include <sstream>
#include <stdexcept>

#include "data/generators.h"
#include "data/hash.h"
#include "data/shards.h"
#include "models/json.h"
#include "models/output_paths.h"

namespace fs = std::filesystem;

namespace sg {

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

[[noreturn]] void fail(const char* who, const std::string& message) {
  throw std::runtime_error(std::string("[") + who + "] " + message);
}

void write_text(const std::string& path, const std::string& text, const char* who) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  if (!out) fail(who, path + ": write failed");
}

std::string human_bytes(double b) {
  std::ostringstream s;
  s << std::fixed << std::setprecision(1);
  if (b >= 1e6) s << b / 1e6 << " MB";
  else if (b >= 1e3) s << b / 1e3 << " kB";
  else s << std::setprecision(0) << b << " B";
  return s.str();
}

const std::string kEot = "<|endoftext|>";

// Is the text's last non-whitespace content an <|endoftext|>?
bool ends_with_eot(const std::string& s) {
  size_t e = s.find_last_not_of(" \t\r\n");
  if (e == std::string::npos) return false;
  return e + 1 >= kEot.size() && s.compare(e + 1 - kEot.size(), kEot.size(), kEot) == 0;
}

void append_document(std::string& corpus, const std::string& text) {
  if (!corpus.empty() && !ends_with_eot(corpus)) corpus += "\n" + kEot + "\n";
  corpus += text;
}

// A split position of the corpus near `at`: just after an <|endoftext|> (and its newline) when the corpus
// has them, else just after a newline; the first such boundary at or after `at`, else the last before it;
// `at` itself when there is none.
size_t document_boundary(const std::string& s, size_t at) {
  const bool has_eot = s.find(kEot) != std::string::npos;
  const std::string& mark = has_eot ? kEot : std::string("\n");
  auto after = [&](size_t pos) {
    size_t p = pos + mark.size();
    while (p < s.size() && s[p] == '\n') p++;
    return p;
  };
  size_t f = s.find(mark, at);
  if (f != std::string::npos && after(f) < s.size()) return after(f);
  size_t b = at >= mark.size() ? s.rfind(mark, at - mark.size()) : std::string::npos;
  if (b != std::string::npos && after(b) > 0 && after(b) < s.size()) return after(b);
  return at;
}

// The worked solutions as plain-text documents of 16 problems each (PrepareOptions::arithmetic_problems).
std::vector<std::string> arithmetic_documents(uint64_t seed, int64_t n, int level, const std::string& solution) {
  std::vector<data::ReasoningProblem> problems = data::reasoning_split(data::Split::train, seed, (int)n, level);
  data::apply_solution_style(problems, data::parse_solution_style(solution));
  std::vector<std::string> docs;
  for (size_t i = 0; i < problems.size(); i++) {
    if (i % 16 == 0) docs.emplace_back();
    const data::ReasoningProblem& p = problems[i];
    docs.back() += p.question + "\n" + p.think + "\nThe answer is " + std::to_string(p.answer) + ".\n";
  }
  return docs;
}

// The documents of `text` (split after each <|endoftext|>) with `extra` spread evenly between them.
std::string interleave_documents(const std::string& text, const std::vector<std::string>& extra) {
  std::vector<std::string> docs;
  size_t start = 0;
  while (start < text.size()) {
    size_t e = text.find(kEot, start);
    size_t end = e == std::string::npos ? text.size() : e + kEot.size();
    while (end < text.size() && text[end] == '\n') end++;
    docs.push_back(text.substr(start, end - start));
    start = end;
  }
  std::string out;
  const size_t total = docs.size() + extra.size();
  size_t di = 0, xi = 0;
  for (size_t k = 0; k < total; k++) {
    // take an extra document whenever it is behind its even share of the positions so far
    bool take_extra = xi < extra.size() && (di >= docs.size() || (xi + 1) * total <= (k + 1) * extra.size());
    append_document(out, take_extra ? extra[xi++] : docs[di++]);
  }
  return out;
}

// ---- writing DIR without a moment where it is half old, half new -------------------------------------
// prepare_data writes everything into DIR.prepare-tmp, the manifest (prepare.json) last, and then swaps it
// in for DIR with two renames (replace_dir, models/output_paths.h): a kill leaves the complete old DIR, or
// the complete new one, or (between the renames) no DIR and a complete DIR.prepare-old, which the next
// prepare_data / open_prepared puts back. These two names are the only leftovers it ever cleans up.
std::string tmp_of(const std::string& dir) { return dir + ".prepare-tmp"; }
std::string old_of(const std::string& dir) { return dir + ".prepare-old"; }

// After a kill between replace_dir's two renames: DIR.prepare-old is a complete preparation; put it back.
// (DIR.prepare-tmp is left alone here: a prepare running right now may be writing it.)
void restore_interrupted(const std::string& dir) {
  std::error_code ec;
  if (!fs::exists(dir) && fs::is_directory(old_of(dir))) fs::rename(old_of(dir), dir, ec);
}

// What prepare writes into DIR. A directory holding only these (and no prepare.json) is a preparation
// that was killed before the swap scheme above existed; it may be replaced like a complete one.
bool is_prepare_name(const std::string& name) {
  return name == "tokenizer.bpe" || name == "train" || name == "val" || name == "prepare.json";
}

// DIR is replaced as a whole (its other files are kept, replace_dir): refuse one that is not a
// preparation at all, such as `--out .` or a home directory.
void check_replaceable(const std::string& dir) {
  if (!fs::exists(dir)) return;
  if (!fs::is_directory(dir)) fail("prepare", dir + ": exists and is not a directory");
  if (fs::is_regular_file(fs::path(dir) / "prepare.json")) return;
  for (const fs::directory_entry& e : fs::directory_iterator(dir))
    if (!is_prepare_name(e.path().filename().string()))
      fail("prepare", dir + ": exists and is not a prepared dataset (no prepare.json; it holds " +
                          e.path().filename().string() + "); refusing to replace it (give a new or empty --out)");
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("prepare", path + ": cannot open");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// FNV-1a 64 of a whole file (data/hash.h), as prepare.json writes it: "0x" and 16 hex digits.
std::string file_checksum(const std::string& path) { return data::hash_hex(data::hash_file(path, "prepare").fnv1a64); }

// The manifest of prepare.json: every regular file under `root` (relative path with '/', sorted), its
// size and checksum. open_prepared checks it, so a missing, truncated or changed file is named.
Json manifest_of(const std::string& root) {
  std::vector<std::string> rel;
  for (const fs::directory_entry& e : fs::recursive_directory_iterator(root))
    if (e.is_regular_file()) rel.push_back(e.path().lexically_relative(root).generic_string());
  std::sort(rel.begin(), rel.end());
  Json files = Json::array();
  for (const std::string& r : rel) {
    const std::string path = (fs::path(root) / r).string();
    Json f = Json::object();
    f.set("path", r);
    f.set("bytes", (int64_t)fs::file_size(path));
    f.set("fnv1a64", file_checksum(path));
    files.push_back(f);
  }
  return files;
}

// Checks DIR against its manifest: every listed file present with its size and FNV-1a checksum, and no shard
// that is not listed (left there by hand or by another preparation).
void check_manifest(const std::string& dir, const Json& files, const std::string& meta_path) {
  std::set<std::string> listed;
  for (size_t i = 0; i < files.size(); i++) {
    const Json& f = files[i];
    const std::string rel = f.at("path").get_string(), path = (fs::path(dir) / rel).string();
    listed.insert(rel);
    if (!fs::is_regular_file(path)) fail("prepare", path + ": missing (listed in " + meta_path + "); prepare again");
    const int64_t want = f.at("bytes").get_int(), got = (int64_t)fs::file_size(path);
    if (got != want)
      fail("prepare", path + ": " + std::to_string(got) + " bytes but " + meta_path + " lists " + std::to_string(want) +
                          " (truncated or changed since it was prepared); prepare again");
    const std::string sum = file_checksum(path);
    if (sum != f.at("fnv1a64").get_string())
      fail("prepare", path + ": checksum mismatch (the file has " + sum + ", " + meta_path + " lists " +
                          f.at("fnv1a64").get_string() + "): changed or corrupted since it was prepared; prepare again");
  }
  for (const char* split : {"train", "val"})
    for (const std::string& s : data::list_shards((fs::path(dir) / split).string()))
      if (!listed.count(fs::path(s).lexically_relative(dir).generic_string()))
        fail("prepare", s + ": not listed in " + meta_path + " (not part of this preparation); remove it or prepare again");
}

// The tokenizer the shards were encoded with: prepare.json's "tokenizer_hash" and each shard header's (version-2
// shards) must be the hash of DIR/tokenizer.bpe (Tokenizer::hash: its merges and specials).
void verify_tokenizer(const Json& meta, const std::string& meta_path, uint64_t tok_hash, const std::string& tok_path,
                      const std::vector<std::string>& shards) {
  if (const Json* t = meta.find("tokenizer_hash")) {
    uint64_t want = 0;
    if (!t->is_string() || !data::parse_hash_hex(t->get_string(), want)) fail("prepare", meta_path + ": bad \"tokenizer_hash\"");
    if (want != tok_hash)
      fail("prepare", tok_path + ": tokenizer hash " + data::hash_hex(tok_hash) + ", but " + meta_path +
                          " says the shards were made with tokenizer " + data::hash_hex(want) + ": they were not made together");
  }
  for (const std::string& s : shards) {
    const data::ShardHeader h = data::read_shard_header(s);
    if (h.tokenizer_hash && h.tokenizer_hash != tok_hash)
      fail("prepare", s + ": written with tokenizer " + data::hash_hex(h.tokenizer_hash) + ", but " + tok_path + " is " +
                          data::hash_hex(tok_hash) + ": they were not made together");
  }
}

// DIR/tokenizer.bpe, DIR/{train,val}/shard_*.bin, then DIR/prepare.json with the manifest of them all.
void write_prepared(const std::string& dir, const data::Tokenizer& tok, const std::vector<int32_t>& train_ids,
                    const std::vector<int32_t>& val_ids, const PrepareOptions& opt, const PrepareResult& r) {
  std::error_code ec;
  tok.save((fs::path(dir) / "tokenizer.bpe").string());
  for (const char* name : {"train", "val"}) {
    const std::string split = (fs::path(dir) / name).string();
    fs::create_directories(split, ec);
    if (ec) fail("prepare", split + ": cannot create the directory: " + ec.message());
    const std::vector<int32_t>& ids = std::string(name) == "train" ? train_ids : val_ids;
    if (!ids.empty()) data::write_shards(split, ids, r.vocab_size, opt.shard_tokens, 3, tok.hash());
  }

  Json sources = Json::array();
  for (const std::string& p : opt.text_paths) sources.push_back(Json(p));
  if (opt.generated_stories > 0) sources.push_back(Json("generated:" + std::to_string(opt.generated_stories) + " stories, seed " + std::to_string(opt.seed)));
  if (opt.arithmetic_problems > 0)
    sources.push_back(Json("generated:" + std::to_string(opt.arithmetic_problems) + " arithmetic solutions, level " +
                           std::to_string(opt.arithmetic_level) + ", seed " + std::to_string(opt.seed)));
  Json meta = Json::object();
  meta.set("sources", sources);
  meta.set("bytes", r.n_bytes);
  meta.set("train_bytes", r.n_train_bytes);
  meta.set("val_bytes", r.n_val_bytes);
  meta.set("train_tokens", r.n_train_tokens);
  meta.set("val_tokens", r.n_val_tokens);
  meta.set("vocab_size", (int64_t)r.vocab_size);
  meta.set("bytes_per_token", r.bytes_per_token);
  meta.set("val_fraction", opt.val_fraction);
  meta.set("signature", prepare_signature(opt));
  meta.set("tokenizer_hash", data::hash_hex(tok.hash()));
  meta.set("files", manifest_of(dir));
  write_text((fs::path(dir) / "prepare.json").string(), meta.dump(2) + "\n", "prepare");
}

}  // namespace

PrepareResult prepare_data(const PrepareOptions& opt, std::ostream* log) {
  const auto t0 = Clock::now();
  if (opt.text_paths.empty() && opt.generated_stories <= 0 && opt.arithmetic_problems <= 0)
    fail("prepare", "nothing to read: give --text FILE (one or more) or --generated-stories N");
  if (opt.out_dir.empty()) fail("prepare", "no output directory (--out DIR)");
  if (!(opt.val_fraction >= 0.0 && opt.val_fraction < 1.0))
    fail("prepare", "--val-fraction " + std::to_string(opt.val_fraction) + " must be in [0, 1)");
  if (opt.shard_tokens <= 0) fail("prepare", "--shard-tokens must be > 0");
  const std::string out = dir_path(opt.out_dir), tmp = tmp_of(out), old = old_of(out);
  std::vector<NamedPath> inputs = {{opt.tokenizer_path, "the --tokenizer file"}};
  for (const std::string& p : opt.text_paths) inputs.push_back({p, "a --text file"});
  refuse_overwrite("prepare", "--out", out, inputs);
  recover_dir(out, tmp, old);  // what a killed prepare left: its old DIR back, its partial DIR.prepare-tmp gone
  check_replaceable(out);
  PrepareResult r;

  // 1. read and join the sources
  std::string corpus;
  for (const std::string& path : opt.text_paths) {
    if (!fs::is_regular_file(path)) fail("prepare", path + ": no such file");
    std::string text = data::read_text_file(path);  // zstd-aware; errors name the path
    if (log) *log << "  read " << path << ": " << human_bytes((double)text.size())
                  << (fs::file_size(path) < text.size() ? " (zstd, " + human_bytes((double)fs::file_size(path)) + " on disk)" : "")
                  << "\n";
    append_document(corpus, text);
    if (opt.max_bytes > 0 && (int64_t)corpus.size() >= opt.max_bytes) break;
  }
  if (opt.generated_stories > 0) {
    std::string stories = data::generate_story_corpus(opt.seed, (int)opt.generated_stories);
    if (log) *log << "  generated " << opt.generated_stories << " stories (seed " << opt.seed << "): "
                  << human_bytes((double)stories.size()) << "\n";
    append_document(corpus, stories);
  }
  if (opt.arithmetic_problems > 0) {
    std::vector<std::string> docs = arithmetic_documents(opt.seed, opt.arithmetic_problems, opt.arithmetic_level, opt.arithmetic_solution);
    size_t bytes = 0;
    for (auto& d : docs) bytes += d.size();
    if (log) *log << "  generated " << opt.arithmetic_problems << " worked arithmetic solutions (level " << opt.arithmetic_level
                  << ", " << opt.arithmetic_solution << ", train split): " << human_bytes((double)bytes) << ", interleaved\n";
    corpus = interleave_documents(corpus, docs);
  }
  if (opt.max_bytes > 0 && (int64_t)corpus.size() > opt.max_bytes) {
    size_t nl = corpus.rfind('\n', (size_t)opt.max_bytes - 1);
    corpus.resize(nl != std::string::npos && nl > (size_t)opt.max_bytes / 2 ? nl + 1 : (size_t)opt.max_bytes);
  }
  if (corpus.empty()) fail("prepare", "the input is empty");
  r.read_seconds = seconds_since(t0);

  // 2. split off the validation part at a document boundary
  size_t cut = corpus.size();
  if (opt.val_fraction > 0) {
    cut = document_boundary(corpus, (size_t)((double)corpus.size() * (1.0 - opt.val_fraction)));
    if (cut == 0 || cut >= corpus.size()) fail("prepare", "cannot split " + std::to_string(corpus.size()) + " bytes into train and val");
  }
  std::string_view train_text(corpus.data(), cut), val_text(corpus.data() + cut, corpus.size() - cut);
  r.n_bytes = (int64_t)corpus.size();
  r.n_train_bytes = (int64_t)train_text.size();
  r.n_val_bytes = (int64_t)val_text.size();

  // 3. the tokenizer, trained on the train part only (or an existing one)
  auto t1 = Clock::now();
  data::Tokenizer tok;
  if (!opt.tokenizer_path.empty()) {
    if (!fs::is_regular_file(opt.tokenizer_path)) fail("prepare", opt.tokenizer_path + ": no such tokenizer file");
    tok = data::Tokenizer::load(opt.tokenizer_path);
    if (log) *log << "  tokenizer " << opt.tokenizer_path << ": vocab " << tok.vocab_size() << " (not retrained)\n";
  } else {
    data::BpeTrainOptions bpe;
    bpe.vocab_size = opt.vocab_size;
    data::BpeTrainStats bst;
    tok = data::Tokenizer::train(train_text, bpe, &bst);
    if (log) *log << "  BPE: " << bst.n_merges << " merges over " << bst.n_unique_words << " distinct words -> vocab "
                  << tok.vocab_size() << " (" << std::fixed << std::setprecision(2) << seconds_since(t1) << " s)\n"
                  << std::defaultfloat;
  }
  r.train_seconds = seconds_since(t1);
  r.vocab_size = tok.vocab_size();

  // 4. encode and write
  auto t2 = Clock::now();
  std::vector<int32_t> train_ids = tok.encode(train_text), val_ids = tok.encode(val_text);
  r.encode_seconds = seconds_since(t2);
  r.n_train_tokens = (int64_t)train_ids.size();
  r.n_val_tokens = (int64_t)val_ids.size();
  r.bytes_per_token = (double)r.n_bytes / (double)std::max<int64_t>(1, r.n_train_tokens + r.n_val_tokens);

  // Everything goes into DIR.prepare-tmp (see tmp_of), prepare.json with its manifest last.
  std::error_code ec;
  fs::create_directories(tmp, ec);
  if (ec) fail("prepare", tmp + ": cannot create the directory: " + ec.message());
  try {
    write_prepared(tmp, tok, train_ids, val_ids, opt, r);
  } catch (...) {
    fs::remove_all(tmp, ec);
    throw;
  }
  replace_dir(tmp, out, old, "prepare");
  r.tokenizer_path = (fs::path(out) / "tokenizer.bpe").string();
  r.train_shards = data::list_shards((fs::path(out) / "train").string());
  r.val_shards = data::list_shards((fs::path(out) / "val").string());
  r.seconds = seconds_since(t0);
  return r;
}

std::string prepare_signature(const PrepareOptions& opt) {
  std::ostringstream s;
  s << "texts=[";
  for (size_t i = 0; i < opt.text_paths.size(); i++) s << (i ? "," : "") << opt.text_paths[i];
  s << "] generated_stories=" << opt.generated_stories << " seed=" << opt.seed;
  if (opt.arithmetic_problems > 0) s << " arithmetic=" << opt.arithmetic_problems << "@" << opt.arithmetic_level << ":" << opt.arithmetic_solution;
  s << " vocab_size=" << opt.vocab_size
    << " tokenizer=" << opt.tokenizer_path << " val_fraction=" << opt.val_fraction << " max_bytes=" << opt.max_bytes
    << " shard_tokens=" << opt.shard_tokens;
  return s.str();
}

static std::string read_signature(const std::string& dir) {
  const std::string meta_path = (fs::path(dir) / "prepare.json").string();
  std::ifstream in(meta_path, std::ios::binary);
  if (!in) return "";
  std::stringstream ss;
  ss << in.rdbuf();
  Json meta = Json::parse(ss.str(), meta_path);
  return meta.contains("signature") ? meta.at("signature").get_string() : std::string();
}

bool prepared_matches(const std::string& dir_in, const std::string& signature) {
  const std::string dir = dir_path(dir_in);
  restore_interrupted(dir);
  if (!fs::is_regular_file(fs::path(dir) / "prepare.json") || !fs::is_regular_file(fs::path(dir) / "tokenizer.bpe"))
    return false;
  return read_signature(dir) == signature;
}

PreparedData open_prepared(const std::string& dir_in) {
  const char* how = " (make it with `seekgrad prepare --out DIR ...`)";
  const std::string dir = dir_path(dir_in);
  restore_interrupted(dir);
  if (!fs::is_directory(dir)) fail("prepare", dir + ": not a directory" + how);
  if (!fs::is_regular_file(fs::path(dir) / "prepare.json"))
    fail("prepare", dir + ": no prepare.json, so the preparation is missing or was interrupted" + how);
  const std::string meta_path = (fs::path(dir) / "prepare.json").string();
  const Json meta = Json::parse(read_text(meta_path), meta_path);
  const Json* files = meta.find("files");
  const bool has_manifest = files && files->is_array();
  if (!has_manifest)  // a preparation made before prepare.json had a manifest: opened without the checks
    std::cerr << "[prepare] warning: " << meta_path << " has no manifest (prepared by an older build); its files are "
              << "not verified until they are read\n";
  auto check_files = [&] {
    if (has_manifest) check_manifest(dir, *files, meta_path);
  };
  const std::string tok = (fs::path(dir) / "tokenizer.bpe").string();
  PreparedData p;
  p.dir = dir;
  // Read the tokenizer and the shard headers; what fails to parse here is reported by the manifest when it
  // explains it (a truncated or changed file). Then the tokenizer's identity, so that a tokenizer.bpe or a shard
  // from another preparation is named by the two tokenizer hashes; then the manifest's sizes and checksums.
  try {
    if (!fs::is_regular_file(tok)) fail("prepare", tok + ": no such file" + how);
    p.tokenizer = data::Tokenizer::load(tok);
    p.signature = read_signature(dir);
    p.train_shards = data::list_shards((fs::path(dir) / "train").string());
    p.val_shards = data::list_shards((fs::path(dir) / "val").string());
    if (p.train_shards.empty()) fail("prepare", dir + "/train: no shard_*.bin files" + std::string(how));
    if (p.val_shards.empty()) fail("prepare", dir + "/val: no shard_*.bin files (prepare with --val-fraction > 0)");
    for (const std::string& s : p.train_shards) {
      data::ShardHeader h = data::read_shard_header(s);
      if ((int64_t)h.vocab_size > p.tokenizer.vocab_size())
        fail("prepare", s + " has vocab_size " + std::to_string(h.vocab_size) + " but " + tok + " has " +
                            std::to_string(p.tokenizer.vocab_size()) + " ids: they were not made together");
      p.train_tokens += (int64_t)h.n_tokens;
    }
    for (const std::string& s : p.val_shards) p.val_tokens += (int64_t)data::read_shard_header(s).n_tokens;
  } catch (const std::exception&) {
    check_files();
    throw;
  }
  std::vector<std::string> all = p.train_shards;
  all.insert(all.end(), p.val_shards.begin(), p.val_shards.end());
  verify_tokenizer(meta, meta_path, p.tokenizer.hash(), tok, all);
  check_files();
  return p;
}

}  // namespace sg
