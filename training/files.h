// Small file helpers shared by the trainer: atomic writes and whole-file reads.
//
// Why atomic: a run killed (Ctrl-C, out of time, a crash) while writing must leave the previous
// file intact. Writing to `path.tmp`, flushing it to disk, then rename(2) over `path` gives
// readers either the old or the new file, never half of one (rename is atomic on POSIX).
#pragma once

#include <string>

namespace mt::training {

void write_file_atomic(const std::string& path, const std::string& contents);
std::string read_file(const std::string& path);  // an Error naming the path when unreadable
void make_dirs(const std::string& path);
bool path_exists(const std::string& path);

}  // namespace mt::training
