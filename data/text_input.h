// TextInput: reads a text file, plain or gzip-compressed, in large chunks.
//
// zlib's gzread reads both: it inflates a gzip stream and passes any other file through
// unchanged, so `.csv` and `.csv.gz` take the same path (as pandas.read_csv does). Chunks of
// 16 MiB keep the number of read calls small (11 for the 177 MB Kaggle file) while the buffer
// stays far below the file size.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace mt::data {

class TextInput {
 public:
  explicit TextInput(const std::string& path);
  ~TextInput();
  TextInput(const TextInput&) = delete;
  TextInput& operator=(const TextInput&) = delete;

  // Reads up to `capacity` bytes of text into dst; 0 at the end of the file. A corrupt or
  // truncated gzip stream is an Error naming the file.
  size_t read(char* dst, size_t capacity);

  const std::string& path() const { return path_; }
  int64_t file_bytes() const { return file_bytes_; }  // size on disk (compressed for .gz)
  bool compressed() const { return compressed_; }

 private:
  std::string path_;
  void* gz_ = nullptr;  // gzFile, kept opaque so that zlib.h stays out of this header
  int64_t file_bytes_ = 0;
  bool compressed_ = false;
};

// CRC-32 (zlib's) of a byte range, continuing from `crc` (0 to start).
uint32_t crc32_update(uint32_t crc, const void* data, size_t nbytes);

}  // namespace mt::data
