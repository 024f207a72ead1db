// The CSV reader: layouts, number parsing, gz, several files, and every bad-input case.
#include <unistd.h>
#include <zlib.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>

#include "data/csv_reader.h"
#include "tests/test_util.h"

using namespace mt;
using namespace mt::data;

namespace {

const char* kHeader = "Timestamp,Open,High,Low,Close,Volume\n";

// A fresh folder under the system temp dir, removed at scope exit.
struct TempDir {
  std::filesystem::path path;
  TempDir() {
    path =
        std::filesystem::temp_directory_path() /
        ("mt_test_data_reader_" + std::to_string(::getpid()) + "_" + std::to_string(counter()++));
    std::filesystem::create_directories(path);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  static int& counter() {
    static int c = 0;
    return c;
  }
  std::string file(const std::string& name, const std::string& text) const {
    const std::string p = (path / name).string();
    std::ofstream(p, std::ios::binary) << text;
    return p;
  }
  std::string gz_file(const std::string& name, const std::string& text) const {
    const std::string p = (path / name).string();
    gzFile gz = gzopen(p.c_str(), "wb");
    gzwrite(gz, text.data(), static_cast<unsigned>(text.size()));
    gzclose(gz);
    return p;
  }
};

Candles read_text(const std::string& text, ReadReport* report = nullptr,
                  BadRowPolicy policy = BadRowPolicy::Error) {
  ReadOptions o;
  o.on_bad_row = policy;
  return read_candles_text(text, "t.csv", o, report);
}

}  // namespace

TEST_SUITE("data") {
  TEST_CASE("data reader: parse_double matches strtod on awkward numbers") {
    const char* cases[] = {"0",
                           "-0.5",
                           "27210.36",
                           "56.34942",
                           "1e3",
                           "1.5E-7",
                           "+2.25",
                           "0.000012345",
                           "123456789012345678901234",
                           "4.9e-324",
                           "1.7976931348623157e308",
                           "0.1",
                           "9007199254740993",
                           "3.14159265358979323846264338327950288"};
    for (const char* c : cases) {
      double got = 0;
      INFO(c);
      REQUIRE(parse_double(c, c + std::strlen(c), &got));
      CHECK(got == std::strtod(c, nullptr));  // bit-exact: correctly rounded
    }
    double v = 0;
    CHECK(parse_double("nan", "nan" + 3, &v));
    CHECK(std::isnan(v));
    const char* nan2 = "NaN";
    CHECK(parse_double(nan2, nan2 + 3, &v));
    CHECK(std::isnan(v));
    const char* empty = "";
    CHECK(parse_double(empty, empty, &v));
    CHECK(std::isnan(v));
    for (const char* bad : {"abc", "1.2.3", "1e", "--1", "12a", "1,5", " 1"}) {
      INFO(bad);
      CHECK_FALSE(parse_double(bad, bad + std::strlen(bad), &v));
    }
  }

  TEST_CASE("data reader: the plain Kaggle layout, known values") {
    ReadReport r;
    Candles c = read_text(std::string(kHeader) +
                              "1685577600,27210.36,27224.55,27210.35,27215.53,56.34942\n"
                              "1685577660,27215.54,27221.91,27214.87,27221.91,6.44807\n",
                          &r);
    REQUIRE(c.size() == 2);
    CHECK(c[0].ts == 1685577600);
    CHECK(c[0].v[0] == 27210.36);
    CHECK(c[0].v[1] == 27224.55);
    CHECK(c[0].v[2] == 27210.35);
    CHECK(c[0].v[3] == 27215.53);
    CHECK(c[0].v[4] == 56.34942);
    CHECK(c[1].ts == 1685577660);
    CHECK(c[1].v[4] == 6.44807);
    CHECK(r.rows_read == 2);
    CHECK(r.rows_kept == 2);
    CHECK(r.rows_dropped() == 0);
  }

  TEST_CASE("data reader: float timestamps, datetime column, CRLF, BOM, scientific notation") {
    const std::string text =
        "\xEF\xBB\xBFTimestamp,Open,High,Low,Close,Volume,datetime\r\n"
        "1325412060.0,4.58,4.58,4.58,4.58,0.0,2012-01-01 10:01:00+00:00\r\n"
        "1325412120.0,4.58e0,4.6E+0,4.5,4.59,1.5e-3,2012-01-01 10:02:00+00:00\r\n";
    Candles c = read_text(text);
    REQUIRE(c.size() == 2);
    CHECK(c[0].ts == 1325412060);
    CHECK(c[0].v[4] == 0.0);
    CHECK(c[1].ts == 1325412120);
    CHECK(c[1].v[1] == 4.6);
    CHECK(c[1].v[4] == 0.0015);
  }

  TEST_CASE("data reader: columns found by name in any order, extra columns ignored") {
    Candles c = read_text(
        "volume,close,extra,LOW,High,open,timestamp\n"
        "2.5,10.5,zzz,9.5,11,10,1700000040\n");
    REQUIRE(c.size() == 1);
    CHECK(c[0].ts == 1700000040);
    CHECK(c[0].v[0] == 10);
    CHECK(c[0].v[1] == 11);
    CHECK(c[0].v[2] == 9.5);
    CHECK(c[0].v[3] == 10.5);
    CHECK(c[0].v[4] == 2.5);
  }

  TEST_CASE("data reader: NaN and empty fields drop the row as missing_value, counted") {
    ReadReport r;
    Candles c = read_text(std::string(kHeader) +
                              "60,1,2,1,2,3\n"
                              "120,NaN,NaN,NaN,NaN,NaN\n"
                              "180,1,2,1,2,\n"
                              "240,nan,2,1,2,3\n"
                              "\n"
                              "300,1,2,1,2,3\n",
                          &r);
    CHECK(c.size() == 2);
    CHECK(r.rows_read == 5);
    CHECK(r.rows_kept == 2);
    CHECK(r.dropped["missing_value"] == 3);
    CHECK(r.blank_lines == 1);
    CHECK(r.summary().find("missing_value: 3") != std::string::npos);
  }

  TEST_CASE("data reader: malformed rows are errors naming file:line and the text") {
    auto bad = [](const std::string& row) {
      return read_text(std::string(kHeader) + "60,1,2,1,2,3\n" + row);
    };
    CHECK_THROWS_WITH_TEXT(bad("120,1,2,1,2\n"),
                           "t.csv:3: expected 6 fields, got 5 in row '120,1,2,1,2'");
    CHECK_THROWS_WITH_TEXT(bad("120,1,2,1,2,3,4\n"), "expected 6 fields, got 7");
    CHECK_THROWS_WITH_TEXT(bad("120,1,2,x1,2,3\n"),
                           "t.csv:3: unparsable number 'x1' in column low");
    CHECK_THROWS_WITH_TEXT(bad("120,-1,2,1,2,3\n"), "negative price open = -1");
    CHECK_THROWS_WITH_TEXT(bad("120,1,2,1,2,-3\n"), "negative volume -3");
    CHECK_THROWS_WITH_TEXT(bad("120,1,1,2,1,3\n"), "high 1 below low 2");
    CHECK_THROWS_WITH_TEXT(bad("120.5,1,2,1,2,3\n"), "timestamp 120.5 is not whole Unix seconds");
    CHECK_THROWS_WITH_TEXT(bad("1700000000000,1,2,1,2,3\n"),
                           "not whole Unix seconds in [1970, 2100)");
    CHECK_THROWS_WITH_TEXT(bad(",1,2,1,2,3\n"), "bad_timestamp");
    CHECK_THROWS_WITH_TEXT(bad("120,inf,2,1,2,3\n"), "infinite open");
  }

  TEST_CASE("data reader: the skip policy drops and counts malformed rows by reason") {
    ReadReport r;
    Candles c = read_text(std::string(kHeader) +
                              "60,1,2,1,2,3\n"
                              "120,1,2,1,2\n"
                              "180,1,2,x,2,3\n"
                              "240,-1,2,1,2,3\n"
                              "300,1,1,2,1,3\n"
                              "360,1,2,1,2,-1\n"
                              "420,1,2,1,2,3\n",
                          &r, BadRowPolicy::Skip);
    CHECK(c.size() == 2);
    CHECK(r.rows_read == 7);
    CHECK(r.rows_kept == 2);
    CHECK(r.rows_dropped() == 5);
    CHECK(r.dropped["field_count"] == 1);
    CHECK(r.dropped["bad_number"] == 1);
    CHECK(r.dropped["negative_price"] == 1);
    CHECK(r.dropped["high_below_low"] == 1);
    CHECK(r.dropped["negative_volume"] == 1);
    REQUIRE(r.examples.size() == 5);
    CHECK(r.examples[0].find("t.csv:3:") != std::string::npos);
  }

  TEST_CASE("data reader: empty, header-only, missing columns and binary inputs are errors") {
    CHECK_THROWS_WITH_TEXT(read_text(""), "empty file");
    CHECK_THROWS_WITH_TEXT(read_text(kHeader), "a header and no data rows");
    CHECK_THROWS_WITH_TEXT(read_text("Timestamp,Open,High,Low\n60,1,2,1\n"),
                           "missing column(s) close, volume");
    CHECK_THROWS_WITH_TEXT(read_text("Timestamp,Open,Open,High,Low,Close,Volume\n"),
                           "column 'open' appears twice");
    CHECK_THROWS_WITH_TEXT(read_text(std::string("\x1f\x8b\x08\x00garbage", 12)),
                           "not a CSV text file");
    CHECK_THROWS_WITH_TEXT(read_text(std::string("PK\x03\x04\x00\x00zip", 9)),
                           "NUL byte at offset 4");
  }

  TEST_CASE("data reader: .csv.gz is read like .csv, several files are merged in order") {
    TempDir dir;
    const std::string a =
        dir.gz_file("a.csv.gz", std::string(kHeader) + "60,1,2,1,2,3\n120,1,2,1,2,4\n");
    const std::string b = dir.file("b.csv", std::string(kHeader) + "180,1,2,1,2,5");  // no final \n
    ReadReport r;
    Candles c = read_candles({a, b}, {}, &r);
    REQUIRE(c.size() == 3);
    CHECK(c[0].ts == 60);
    CHECK(c[1].v[4] == 4);
    CHECK(c[2].ts == 180);
    CHECK(c[2].v[4] == 5);
    REQUIRE(r.sources.size() == 2);
    CHECK(r.sources[0].rows_read == 2);
    CHECK(r.sources[1].rows_read == 1);
    CHECK(r.sources[0].text_bytes == static_cast<int64_t>(std::strlen(kHeader) + 27));
    CHECK(r.sources[0].file_bytes != r.sources[0].text_bytes);  // compressed on disk
    CHECK(r.sources[0].crc32 != 0);
    CHECK_THROWS_WITH_TEXT(read_candles({(dir.path / "nope.csv").string()}), "no such file");
  }

  TEST_CASE("data reader: a truncated gzip file is an error, not a short read") {
    TempDir dir;
    std::string text = kHeader;
    for (int i = 1; i <= 2000; ++i) text += std::to_string(60 * i) + ",1.25,2.5,1,2,3.75\n";
    const std::string gz = dir.gz_file("t.csv.gz", text);
    std::filesystem::resize_file(gz, std::filesystem::file_size(gz) / 2);
    CHECK_THROWS_WITH_TEXT(read_candles({gz}), "corrupt or truncated gzip");
  }

  TEST_CASE("data reader: rows spanning the 16 MiB read chunks are parsed whole") {
    // ~19 MB of text: at least one line crosses the chunk boundary.
    TempDir dir;
    std::string text = kHeader;
    const int n = 400000;
    text.reserve(static_cast<size_t>(n) * 50);
    for (int i = 1; i <= n; ++i) {
      text +=
          fmt::format("{},{}.25,{}.5,{}.125,{}.375,{}.0625\n", 60 * i, i, i + 1, i - 1, i, i % 7);
    }
    Candles c = read_candles({dir.file("big.csv", text)});
    REQUIRE(c.size() == static_cast<size_t>(n));
    bool all_ok = true;
    for (int i = 1; i <= n && all_ok; ++i) {
      const Candle& k = c[static_cast<size_t>(i - 1)];
      all_ok = k.ts == 60 * i && k.v[0] == i + 0.25 && k.v[1] == i + 1.5 &&
               k.v[2] == i - 1 + 0.125 && k.v[3] == i + 0.375 && k.v[4] == i % 7 + 0.0625;
    }
    CHECK(all_ok);
  }

}  // TEST_SUITE
