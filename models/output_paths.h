// models/output_paths.h — writing a command's outputs without losing its inputs or anybody's files.
//
//   refuse_overwrite   an output path that names one of the command's inputs (however spelled) is an error,
//                      raised before anything is read or written
//   replace_dir        swap a complete new directory in for an old one; the old one's other files (a README,
//                      notes, a tokenizer the command did not write) are carried over, never deleted
//   recover_dir        after a kill during replace_dir, put the old directory back and clear the leftovers
//
// Used by save_model_dir (models/transformer.h), `seekgrad import/export/logits/eval` (tools/cli) and
// prepare_data (train/data_prep.h). What this is not: a lock — two commands writing the same directory at
// the same time still race.
#pragma once
#include <string>
#include <vector>

namespace sg {

// One input of a command and what it is, for refuse_overwrite's message.
struct NamedPath {
  std::string path;  // "runs/m/model.safetensors"
  std::string what;  // "the model's weights file"
};

// Whether a and b name the same file or directory: ./x, x/, a symlink and a hard link of it all count.
// Either may not exist yet (then the normalised absolute paths are compared).
bool same_path(const std::string& a, const std::string& b);

// Throws "[who] FLAG OUT is WHAT (PATH): refusing to overwrite an input (give another FLAG)" when `out`
// names one of `inputs` (same_path).
void refuse_overwrite(const std::string& who, const std::string& flag, const std::string& out,
                      const std::vector<NamedPath>& inputs);

// "runs/x/" -> "runs/x", so that "runs/x.tmp" is a sibling of the directory and not a child.
std::string dir_path(const std::string& dir);

// Replaces directory `dir` by `tmp`, a complete new directory next to it (same parent, so the renames
// are in one file system). Each entry of the old `dir` that `tmp` lacks is first hard-linked into `tmp`
// (copied where a link is impossible): a command never deletes a file it did not write. Then
//   1. rename dir -> old      2. rename tmp -> dir      3. remove old
// A kill before 1 leaves the old `dir` (and a partial `tmp`); between 1 and 2, no `dir` but a complete
// `old`, which recover_dir renames back; after 2, the new `dir` (and a leftover `old`). `dir` may not
// exist yet; when it exists it must be a directory. Errors start with "[who]".
void replace_dir(const std::string& tmp, const std::string& dir, const std::string& old, const std::string& who);

// Undoes what a killed replace_dir(tmp, dir, old) left: `old` is renamed back to `dir` when `dir` is
// missing, else removed; `tmp` (never known to be complete) is removed. Only these two names are touched,
// so call it with the names the writer uses for its own temporaries.
void recover_dir(const std::string& dir, const std::string& tmp, const std::string& old);

}  // namespace sg
