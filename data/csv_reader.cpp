#include "data/csv_reader.h"

#include <sys/mman.h>

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <new>

#include "base/error.h"
#include "cuda/nvtx.h"
#include "data/clean.h"
#include "data/text_input.h"

namespace mt::data {

const char* const kFeatureNames[kFeatures] = {"open", "high", "low", "close", "volume"};

void* allocate_large(size_t nbytes) {
  constexpr size_t kHuge = size_t{2} << 20;
  if (nbytes < kHuge) {
    void* p = std::malloc(nbytes ? nbytes : 1);
    if (!p) throw std::bad_alloc();
    return p;
  }
  void* p = std::aligned_alloc(kHuge, (nbytes + kHuge - 1) / kHuge * kHuge);
  if (!p) throw std::bad_alloc();
  madvise(p, nbytes, MADV_HUGEPAGE);  // a hint: where THP is off, plain pages are fine
  return p;
}

void deallocate_large(void* p, size_t) { std::free(p); }

int64_t ReadReport::rows_dropped() const {
  int64_t n = 0;
  for (const auto& [reason, count] : dropped) n += count;
  return n;
}

std::string ReadReport::summary() const {
  std::string s =
      fmt::format("read {} rows, kept {}, dropped {}", rows_read, rows_kept, rows_dropped());
  if (!dropped.empty()) {
    std::string parts;
    for (const auto& [reason, count] : dropped) {
      parts += fmt::format("{}{}: {}", parts.empty() ? "" : ", ", reason, count);
    }
    s += " (" + parts + ")";
  }
  return s;
}

namespace {

// Powers of ten that are exact in a double: 10^22 < 2^53 * 2^22 is the largest (Clinger).
constexpr double kPow10[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                               1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                               1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

bool parse_double_slow(const char* begin, const char* end, double* out) {
  if (begin < end && *begin == '+') ++begin;  // from_chars takes no leading '+'
  auto [ptr, ec] = std::from_chars(begin, end, *out);
  return ec == std::errc() && ptr == end;
}

inline bool is_digit(char c) { return static_cast<unsigned>(c - '0') < 10u; }

}  // namespace

namespace {

// Parses the number that starts at p and ends at the next ',' (or e); returns that end, or
// nullptr when the field is not one number. One pass over the digits for the common case.
inline const char* scan_field(const char* p, const char* e, double* out) {
  const char* begin = p;
  bool negative = false;
  if (p < e && (*p == '-' || *p == '+')) negative = *p++ == '-';
  uint64_t mantissa = 0;
  int significant = 0, exp10 = 0;
  bool any_digit = false, truncated = false;
  // 19 significant digits always fit in a uint64 (10^19 < 2^64).
  for (; p < e && is_digit(*p); ++p) {
    any_digit = true;
    if (significant < 19) {
      mantissa = mantissa * 10 + static_cast<uint64_t>(*p - '0');
      significant += mantissa != 0;
    } else {
      ++exp10;
      truncated = true;
    }
  }
  if (p < e && *p == '.') {
    for (++p; p < e && is_digit(*p); ++p) {
      any_digit = true;
      if (significant < 19) {
        mantissa = mantissa * 10 + static_cast<uint64_t>(*p - '0');
        significant += mantissa != 0;
        --exp10;
      } else {
        truncated = true;
      }
    }
  }
  if (any_digit && p < e && (*p == 'e' || *p == 'E')) {
    ++p;
    bool exp_negative = false;
    if (p < e && (*p == '-' || *p == '+')) exp_negative = *p++ == '-';
    if (p == e || !is_digit(*p)) any_digit = false;  // "1e" or "1e+": let the slow path judge
    int x = 0;
    for (; p < e && is_digit(*p); ++p) x = x < 100000 ? x * 10 + (*p - '0') : x;
    exp10 += exp_negative ? -x : x;
  }
  const bool at_end = p == e || *p == ',';
  if (at_end && any_digit && !truncated && mantissa <= (uint64_t{1} << 53) && exp10 >= -22 &&
      exp10 <= 22) {
    double v = static_cast<double>(mantissa);
    v = exp10 < 0 ? v / kPow10[-exp10] : v * kPow10[exp10];
    *out = negative ? -v : v;
    return p;
  }
  // Slow path: empty, nan, inf, long or extreme numbers, or garbage.
  const char* field_end = p;
  while (field_end < e && *field_end != ',') ++field_end;
  if (field_end == begin) {
    *out = std::numeric_limits<double>::quiet_NaN();
    return field_end;
  }
  return parse_double_slow(begin, field_end, out) ? field_end : nullptr;
}

}  // namespace

bool parse_double(const char* begin, const char* end, double* out) {
  return scan_field(begin, end, out) == end;
}

namespace {

constexpr size_t kChunkBytes = size_t{16} << 20;
constexpr int kMaxExamples = 5;
// Timestamps must fall in [1970, 2100): anything else is a unit mix-up (ms, ns) or garbage.
constexpr double kMaxTimestamp = 4102444800.0;

// Slot of a column in the row: 0 timestamp, 1..5 open..volume, -1 ignored.
constexpr const char* kRequired[6] = {"timestamp", "open", "high", "low", "close", "volume"};

std::string lower_trimmed(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '"')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '"')) s.remove_suffix(1);
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string excerpt(const char* b, const char* e) {
  constexpr ptrdiff_t kMax = 120;
  std::string s(b, std::min(e - b, kMax));
  for (char& c : s) {
    if (static_cast<unsigned char>(c) < 32) c = '?';  // keep messages printable
  }
  return e - b > kMax ? s + "..." : s;
}

// Parses one stream of text (one file): the header, then the rows, into `out`.
class CsvParser {
 public:
  CsvParser(std::string name, const ReadOptions& options, Candles& out, ReadReport& report,
            SourceInfo& source)
      : name_(std::move(name)), options_(options), out_(out), report_(report), source_(source) {}

  // Parses every line of [b, e); the last line may lack its '\n' only when final is true.
  void feed(const char* b, const char* e) {
    while (b < e) {
      const char* nl = static_cast<const char*>(std::memchr(b, '\n', static_cast<size_t>(e - b)));
      const char* line_end = nl ? nl : e;
      const char* content_end = line_end;
      if (content_end > b && content_end[-1] == '\r') --content_end;
      ++line_no_;
      if (!have_header_) {
        parse_header(b, content_end);
      } else if (content_end == b) {
        ++report_.blank_lines;
      } else {
        parse_row(b, content_end);
      }
      b = nl ? nl + 1 : e;
    }
  }

  void finish() {
    CHECK(line_no_ > 0, "'{}': empty file (expected a header {})", name_, expected_header());
    CHECK(source_.rows_read > 0, "'{}': a header and no data rows", name_);
  }

 private:
  static std::string expected_header() { return "Timestamp,Open,High,Low,Close,Volume"; }

  void parse_header(const char* b, const char* e) {
    if (e - b >= 3 && std::memcmp(b, "\xEF\xBB\xBF", 3) == 0) b += 3;  // UTF-8 byte-order mark
    for (const char* p = b; p < e; ++p) {
      unsigned char c = static_cast<unsigned char>(*p);
      CHECK(c >= 32 && c != 127,
            "'{}': not a CSV text file (byte 0x{:02x} at offset {} of the "
            "first line); expected a header {}",
            name_, c, p - b, expected_header());
    }
    std::string_view header(b, static_cast<size_t>(e - b));
    int found[6] = {-1, -1, -1, -1, -1, -1};
    size_t start = 0;
    for (int col = 0;; ++col) {
      size_t comma = header.find(',', start);
      std::string name = lower_trimmed(header.substr(start, comma - start));
      int slot = -1;
      for (int s = 0; s < 6; ++s) {
        if (name == kRequired[s]) slot = s;
      }
      CHECK(slot < 0 || found[slot] < 0, "'{}': column '{}' appears twice in the header '{}'",
            name_, kRequired[slot], excerpt(b, e));
      if (slot >= 0) found[slot] = col;
      slots_.push_back(static_cast<int8_t>(slot));
      if (comma == std::string_view::npos) break;
      start = comma + 1;
    }
    std::string missing;
    for (int s = 0; s < 6; ++s) {
      if (found[s] < 0) missing += fmt::format("{}{}", missing.empty() ? "" : ", ", kRequired[s]);
    }
    CHECK(missing.empty(), "'{}': missing column(s) {} in the header '{}' (expected {})", name_,
          missing, excerpt(b, e), expected_header());
    have_header_ = true;
  }

  // Malformed row: an Error, or under the Skip policy a count (and an example message).
  void bad_row(const char* reason, const std::string& what, const char* b, const char* e) {
    std::string message =
        fmt::format("{}:{}: {} in row '{}'", name_, line_no_, what, excerpt(b, e));
    CHECK(options_.on_bad_row == BadRowPolicy::Skip,
          "{} [{}] (`prepare --on-bad-row skip` drops such rows and counts them)", message, reason);
    ++report_.dropped[reason];
    if (report_.examples.size() < kMaxExamples) report_.examples.push_back(message);
  }

  void parse_row(const char* b, const char* e);

  std::string name_;
  const ReadOptions& options_;
  Candles& out_;
  ReadReport& report_;
  SourceInfo& source_;
  std::vector<int8_t> slots_;
  bool have_header_ = false;
  int64_t line_no_ = 0;
};

void CsvParser::parse_row(const char* b, const char* e) {
  ++source_.rows_read;
  ++report_.rows_read;
  double v[6];
  const int ncols = static_cast<int>(slots_.size());
  const char* p = b;
  for (int col = 0; col < ncols; ++col) {
    const int slot = slots_[static_cast<size_t>(col)];
    const char* q;
    if (slot >= 0) {
      q = scan_field(p, e, &v[slot]);
      if (q == nullptr) {
        const char* field_end = p;
        while (field_end < e && *field_end != ',') ++field_end;
        return bad_row("bad_number",
                       fmt::format("unparsable number '{}' in column {}", excerpt(p, field_end),
                                   kRequired[slot]),
                       b, e);
      }
    } else {
      q = p;
      while (q < e && *q != ',') ++q;
    }
    if (q == e && col + 1 < ncols) {
      return bad_row("field_count", fmt::format("expected {} fields, got {}", ncols, col + 1), b,
                     e);
    }
    if (q != e && col + 1 == ncols) {
      int extra = 1;
      for (const char* r = q + 1; r < e; ++r) extra += *r == ',';
      return bad_row("field_count", fmt::format("expected {} fields, got {}", ncols, ncols + extra),
                     b, e);
    }
    p = q + 1;
  }
  const double ts = v[0];
  // Whole seconds, not necessarily on a minute boundary: the real 2017 data has a run of 21,602
  // rows 20 s off the minute (1512367220, 1512367280, ...), which are kept as they are.
  if (!(ts >= 0 && ts < kMaxTimestamp) || ts != std::floor(ts)) {
    return bad_row("bad_timestamp",
                   fmt::format("timestamp {} is not whole Unix seconds in [1970, 2100)", ts), b, e);
  }
  const double* ohlcv = v + 1;
  for (int f = 0; f < kFeatures; ++f) {
    if (std::isnan(ohlcv[f])) {
      ++report_.dropped["missing_value"];  // a minute with no trade: not malformed
      return;
    }
    if (std::isinf(ohlcv[f])) {
      return bad_row("bad_number", fmt::format("infinite {}", kFeatureNames[f]), b, e);
    }
  }
  for (int f = 0; f < 4; ++f) {
    if (ohlcv[f] < 0) {
      return bad_row("negative_price",
                     fmt::format("negative price {} = {}", kFeatureNames[f], ohlcv[f]), b, e);
    }
  }
  if (ohlcv[4] < 0) {
    return bad_row("negative_volume", fmt::format("negative volume {}", ohlcv[4]), b, e);
  }
  if (ohlcv[1] < ohlcv[2]) {
    return bad_row("high_below_low", fmt::format("high {} below low {}", ohlcv[1], ohlcv[2]), b, e);
  }
  if (ts < static_cast<double>(options_.from_ts) || ts >= static_cast<double>(options_.until_ts)) {
    ++report_.dropped["outside_time_range"];  // asked for: not malformed
    return;
  }
  out_.push_back(
      Candle{static_cast<int64_t>(ts), {ohlcv[0], ohlcv[1], ohlcv[2], ohlcv[3], ohlcv[4]}});
  ++report_.rows_kept;
}

// Checks the first bytes of a file for NUL, which no CSV text contains.
void check_not_binary(const char* b, size_t n, const std::string& name) {
  const size_t probe = std::min<size_t>(n, 65536);
  const void* nul = std::memchr(b, '\0', probe);
  CHECK(nul == nullptr, "'{}': not a CSV text file (NUL byte at offset {}); expected a header {}",
        name, static_cast<const char*>(nul) - b, "Timestamp,Open,High,Low,Close,Volume");
}

void read_one_file(const std::string& path, const ReadOptions& options, Candles& out,
                   ReadReport& report) {
  TextInput input(path);
  report.sources.push_back({path, input.file_bytes(), 0, 0, 0});
  SourceInfo& source = report.sources.back();
  // About 53 bytes a Kaggle row, and gzip packs this text about 2.9x: reserve close to the need.
  const int64_t text_guess = input.compressed() ? input.file_bytes() * 3 : input.file_bytes();
  out.reserve(out.size() + static_cast<size_t>(text_guess / 50));

  CsvParser parser(path, options, out, report, source);
  std::unique_ptr<char[]> buffer(new char[kChunkBytes]);
  size_t carried = 0;  // bytes of an unfinished line kept at the front of the buffer
  bool first = true;
  for (;;) {
    size_t got = input.read(buffer.get() + carried, kChunkBytes - carried);
    if (options.checksum) source.crc32 = crc32_update(source.crc32, buffer.get() + carried, got);
    source.text_bytes += static_cast<int64_t>(got);
    if (first) check_not_binary(buffer.get(), got, path);
    first = false;
    const size_t filled = carried + got;
    if (got == 0) {
      parser.feed(buffer.get(), buffer.get() + filled);  // the last line, with no '\n'
      break;
    }
    const char* last_nl = static_cast<const char*>(memrchr(buffer.get(), '\n', filled));
    CHECK(last_nl != nullptr || filled < kChunkBytes,
          "'{}': a line longer than {} MiB: not a CSV text file", path, kChunkBytes >> 20);
    const size_t complete = last_nl ? static_cast<size_t>(last_nl - buffer.get()) + 1 : 0;
    parser.feed(buffer.get(), buffer.get() + complete);
    carried = filled - complete;
    std::memmove(buffer.get(), buffer.get() + complete, carried);
  }
  parser.finish();
}

}  // namespace

Candles read_candles(const std::vector<std::string>& paths, const ReadOptions& options,
                     ReadReport* report) {
  cuda::NvtxRange range("data_read_csv");
  CHECK(!paths.empty(), "read_candles: no input files given");
  ReadReport local;
  ReadReport& r = report ? *report : local;
  Candles out;
  for (const std::string& path : paths) read_one_file(path, options, out, r);
  return out;
}

Candles read_candles_text(std::string_view text, const std::string& name,
                          const ReadOptions& options, ReadReport* report) {
  ReadReport local;
  ReadReport& r = report ? *report : local;
  r.sources.push_back(
      {name, static_cast<int64_t>(text.size()), static_cast<int64_t>(text.size()), 0, 0});
  if (options.checksum) r.sources.back().crc32 = crc32_update(0, text.data(), text.size());
  check_not_binary(text.data(), text.size(), name);
  Candles out;
  CsvParser parser(name, options, out, r, r.sources.back());
  parser.feed(text.data(), text.data() + text.size());
  parser.finish();
  return out;
}

int64_t parse_utc_date(const std::string& text) {
  int y = 0, mo = 0, d = 0, h = 0, mi = 0;
  char tail = 0;
  const int n = std::sscanf(text.c_str(), "%4d-%2d-%2d %2d:%2d%c", &y, &mo, &d, &h, &mi, &tail);
  CHECK((n == 3 || n == 5) && mo >= 1 && mo <= 12 && d >= 1 && d <= 31 && h >= 0 && h < 24 &&
            mi >= 0 && mi < 60 && y >= 1970 && y < 2100,
        "'{}' is not a UTC date: expected YYYY-MM-DD or \"YYYY-MM-DD HH:MM\"", text);
  // Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil).
  const int yy = y - (mo <= 2);
  const int era = yy / 400;
  const int yoe = yy - era * 400;
  const int doy = (153 * (mo + (mo > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  const int64_t days = static_cast<int64_t>(era) * 146097 + doe - 719468;
  const int64_t ts = days * 86400 + h * 3600 + mi * 60;
  CHECK(format_utc(ts).compare(0, 10, text, 0, 10) == 0, "'{}' is not a calendar date",
        text);  // e.g. 2021-02-30
  return ts;
}

}  // namespace mt::data
