// models/output_paths.cpp — see output_paths.h.
#include "models/output_paths.h"

#include <filesystem>
#include <stdexcept>

namespace fs = std::filesystem;

namespace sg {

namespace {

[[noreturn]] void fail(const std::string& who, const std::string& message) {
  throw std::runtime_error("[" + who + "] " + message);
}

bool present(const fs::path& p) {
  std::error_code ec;
  return fs::symlink_status(p, ec).type() != fs::file_type::not_found && !ec;
}

// Every entry of from_dir that to_dir lacks, hard-linked (or, failing that, copied) into to_dir. Entries
// to_dir already has are the writer's new versions and win.
void carry_over(const fs::path& from_dir, const fs::path& to_dir, const std::string& who) {
  std::error_code ec;
  for (const fs::directory_entry& e : fs::directory_iterator(from_dir, ec)) {
    const fs::path dst = to_dir / e.path().filename();
    if (present(dst)) continue;
    std::error_code ec_link, ec_copy;
    fs::copy(e.path(), dst, fs::copy_options::recursive | fs::copy_options::copy_symlinks | fs::copy_options::create_hard_links,
             ec_link);
    if (!ec_link) continue;
    fs::remove_all(dst, ec_copy);
    fs::copy(e.path(), dst, fs::copy_options::recursive | fs::copy_options::copy_symlinks, ec_copy);
    if (ec_copy) fail(who, e.path().string() + ": cannot keep it (carry it into " + to_dir.string() + "): " + ec_copy.message());
  }
  if (ec) fail(who, from_dir.string() + ": cannot list the directory: " + ec.message());
}

}  // namespace

bool same_path(const std::string& a, const std::string& b) {
  std::error_code ec;
  if (fs::exists(a, ec) && fs::exists(b, ec)) return fs::equivalent(a, b, ec);
  const fs::path ca = fs::weakly_canonical(fs::absolute(a), ec), cb = fs::weakly_canonical(fs::absolute(b), ec);
  return dir_path(ca.string()) == dir_path(cb.string());
}

void refuse_overwrite(const std::string& who, const std::string& flag, const std::string& out,
                      const std::vector<NamedPath>& inputs) {
  for (const NamedPath& in : inputs)
    if (!in.path.empty() && same_path(out, in.path))
      fail(who, flag + " " + out + " is " + in.what + " (" + in.path + "): refusing to overwrite an input (give another " +
                    flag + ")");
}

std::string dir_path(const std::string& dir) {
  std::string d = fs::path(dir).lexically_normal().string();
  while (d.size() > 1 && d.back() == '/') d.pop_back();
  return d;
}

void replace_dir(const std::string& tmp, const std::string& dir, const std::string& old, const std::string& who) {
  std::error_code ec;
  const bool had_dir = present(dir);
  if (had_dir) {
    if (!fs::is_directory(dir)) fail(who, dir + ": exists and is not a directory");
    carry_over(dir, tmp, who);
  }
  fs::remove_all(old, ec);
  if (had_dir) {
    fs::rename(dir, old, ec);
    if (ec) fail(who, dir + ": cannot move the old directory aside to " + old + ": " + ec.message());
  }
  fs::rename(tmp, dir, ec);
  if (ec) {
    std::error_code ec2;
    if (had_dir) fs::rename(old, dir, ec2);  // put the old one back; tmp stays for a look
    fail(who, tmp + " -> " + dir + ": rename failed: " + ec.message());
  }
  fs::remove_all(old, ec);
}

void recover_dir(const std::string& dir, const std::string& tmp, const std::string& old) {
  std::error_code ec;
  if (present(old)) {
    if (!present(dir)) fs::rename(old, dir, ec);  // killed between replace_dir's two renames
    else fs::remove_all(old, ec);                 // killed after them
  }
  fs::remove_all(tmp, ec);
}

}  // namespace sg
