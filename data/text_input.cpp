#include "data/text_input.h"

#include <zlib.h>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <filesystem>

#include "base/error.h"

namespace mt::data {

TextInput::TextInput(const std::string& path) : path_(path) {
  std::error_code ec;
  CHECK(std::filesystem::is_regular_file(path, ec), "cannot read '{}': no such file", path);
  file_bytes_ = static_cast<int64_t>(std::filesystem::file_size(path, ec));
  // The gzip magic number 1f 8b decides, not the file name.
  if (FILE* f = std::fopen(path.c_str(), "rb")) {
    unsigned char magic[2] = {0, 0};
    compressed_ = std::fread(magic, 1, 2, f) == 2 && magic[0] == 0x1f && magic[1] == 0x8b;
    std::fclose(f);
  }
  gzFile gz = gzopen(path.c_str(), "rb");
  CHECK(gz != nullptr, "cannot open '{}'", path);
  // zlib's own input buffer: 1 MiB instead of the 8 KiB default, fewer read(2) calls.
  gzbuffer(gz, 1 << 20);
  gz_ = gz;
}

TextInput::~TextInput() {
  if (gz_) gzclose(static_cast<gzFile>(gz_));
}

size_t TextInput::read(char* dst, size_t capacity) {
  gzFile gz = static_cast<gzFile>(gz_);
  size_t total = 0;
  while (total < capacity) {
    // gzread takes an unsigned int count: read at most 1 GiB per call.
    unsigned want = static_cast<unsigned>(std::min<size_t>(capacity - total, 1u << 30));
    int got = gzread(gz, dst + total, want);
    if (got < 0) {
      int errnum = 0;
      const char* msg = gzerror(gz, &errnum);
      FAIL("'{}': corrupt or truncated gzip data after {} bytes of text ({})", path_, total,
           msg ? msg : "unknown zlib error");
    }
    if (got == 0) {
      // gzread returns 0 both at a clean end and at a truncated gzip stream; gzerror tells.
      int errnum = 0;
      const char* msg = gzerror(gz, &errnum);
      CHECK(errnum == Z_OK, "'{}': corrupt or truncated gzip data ({})", path_, msg ? msg : "");
      break;
    }
    total += static_cast<size_t>(got);
  }
  return total;
}

uint32_t crc32_update(uint32_t crc, const void* data, size_t nbytes) {
  const auto* p = static_cast<const Bytef*>(data);
  while (nbytes > 0) {
    uInt n = static_cast<uInt>(std::min<size_t>(nbytes, UINT_MAX));
    crc = static_cast<uint32_t>(::crc32(crc, p, n));
    p += n;
    nbytes -= n;
  }
  return crc;
}

}  // namespace mt::data
