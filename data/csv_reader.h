// Reading minute candles in the layout of Kaggle's btcusd_1-min_data.csv.
//
//   Timestamp,Open,High,Low,Close,Volume[,datetime]
//   1325412060.0,4.58,4.58,4.58,4.58,0.0,2012-01-01 10:01:00+00:00
//
// Accepted: integer or float Unix-second timestamps (whole seconds), LF or CRLF line
// ends, a UTF-8 byte-order mark, columns in any order (found by name, case-insensitive), extra
// columns (ignored), NaN / nan / empty fields, scientific notation, .csv.gz (zlib), and several
// files merged in the order given.
//
// What happens to each row (the ReadReport counts every case):
//   - a row with a NaN or empty price or volume is dropped as "missing_value": Kaggle's early
//     years have such rows for minutes with no trade; they become gaps;
//   - a malformed row ("field_count", "bad_number", "bad_timestamp", "negative_price",
//     "negative_volume", "high_below_low") is an Error naming file:line and the offending text,
//     or under BadRowPolicy::Skip, dropped and counted under its reason.
// An empty file, a header with no rows, a missing column or a binary file is always an Error.
#pragma once

#include <climits>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace mt::data {

// The five features of a candle, in the order used everywhere in data/ (and in the prepared
// series' last dimension).
constexpr int kFeatures = 5;
extern const char* const kFeatureNames[kFeatures];  // "open", "high", "low", "close", "volume"

// One minute candle. Rows rather than columns: the parser appends one 48-byte record per line,
// and cleaning, sorting and the feature transform all walk row by row.
struct Candle {
  int64_t ts;           // Unix seconds of the minute's open (a few real rows are off by 20 s)
  double v[kFeatures];  // open, high, low, close (USD), volume (BTC)
};

// std::allocator, except that blocks of 2 MiB and more ask the kernel for transparent huge
// pages: the 3.34 M-row table is 160 MB, and first-touch page faults of 4 KiB pages took a
// fifth of the parse time on the 1-core budget machine.
template <typename T>
struct LargeAllocator {
  using value_type = T;
  LargeAllocator() = default;
  template <typename U>
  LargeAllocator(const LargeAllocator<U>&) {}
  T* allocate(size_t n);
  void deallocate(T* p, size_t n);
  bool operator==(const LargeAllocator&) const { return true; }
  bool operator!=(const LargeAllocator&) const { return false; }
};

using Candles = std::vector<Candle, LargeAllocator<Candle>>;

enum class BadRowPolicy { Error, Skip };

struct ReadOptions {
  BadRowPolicy on_bad_row = BadRowPolicy::Error;
  bool checksum = true;  // CRC-32 of each file's text, for the manifest
  // Only rows with from_ts <= timestamp < until_ts are kept; the others are counted as
  // "outside_time_range" (e.g. one year of a longer file).
  int64_t from_ts = INT64_MIN;
  int64_t until_ts = INT64_MAX;
};

// "2020-11-01" or "2020-11-01 12:30" (UTC) as Unix seconds; an Error names the text otherwise.
int64_t parse_utc_date(const std::string& text);

struct SourceInfo {
  std::string path;
  int64_t file_bytes = 0;  // on disk (compressed size for .gz)
  int64_t text_bytes = 0;  // after decompression
  uint32_t crc32 = 0;      // of the text; 0 when ReadOptions::checksum is off
  int64_t rows_read = 0;
};

// What reading did, summed over all files.
struct ReadReport {
  std::vector<SourceInfo> sources;
  int64_t rows_read = 0;  // data lines (not the header, not blank lines)
  int64_t rows_kept = 0;
  int64_t blank_lines = 0;
  std::map<std::string, int64_t> dropped;  // reason -> rows
  std::vector<std::string> examples;       // the first few skipped rows, as error messages

  int64_t rows_dropped() const;
  std::string summary() const;  // one line: "read N, kept N, dropped N (reason: n, ...)"
};

// Reads and merges the files (rows appended in file order; sorting is clean_candles' job).
Candles read_candles(const std::vector<std::string>& paths, const ReadOptions& options = {},
                     ReadReport* report = nullptr);

// The same on text in memory; `name` stands for the file name in messages. For tests.
Candles read_candles_text(std::string_view text, const std::string& name,
                          const ReadOptions& options = {}, ReadReport* report = nullptr);

void* allocate_large(size_t nbytes);
void deallocate_large(void* p, size_t nbytes);

template <typename T>
T* LargeAllocator<T>::allocate(size_t n) {
  return static_cast<T*>(allocate_large(n * sizeof(T)));
}
template <typename T>
void LargeAllocator<T>::deallocate(T* p, size_t n) {
  deallocate_large(p, n * sizeof(T));
}

// Parses one decimal number in [begin, end): optional sign, digits with an optional fraction,
// optional exponent; "nan" (any case) and an empty range give NaN. False when the text is not
// exactly one number. Correctly rounded: the common case (digits forming an integer below 2^53,
// |exponent| <= 22) takes one exact multiply or divide (Clinger's fast path), the rest
// std::from_chars.
bool parse_double(const char* begin, const char* end, double* out);

}  // namespace mt::data
