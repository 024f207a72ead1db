// prepare: Kaggle-layout BTC minute CSV files -> a prepared dataset folder (data/prepared.h).
//
//   prepare --csv btcusd_1-min_data.csv [more.csv.gz ...] --out data_prepared
//   prepare --synthetic --out data_prepared           (no CSV: a synthetic market, said plainly)
//   prepare --bench FILE [--repeat N]                  (parse speed only; writes nothing)
//
// Run with --help for every option. `make data CSV=... DATA=...` calls it.
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <string>
#include <vector>

#include "base/error.h"
#include "data/prepared.h"
#include "data/synthetic.h"

namespace {

using namespace mt::data;

const char* kUsage = R"(usage: prepare --csv FILE... --out DIR [options]
       prepare --synthetic --out DIR [--synthetic-minutes N] [options]
       prepare --bench FILE [--repeat N]

input
  --csv FILE...            Kaggle-layout CSV files (.csv or .csv.gz), merged in time order
  --synthetic              no CSV: write DIR/synthetic_btcusd_1-min.csv first (NOT market data)
  --synthetic-minutes N    rows of the synthetic market (default 200000)
  --on-bad-row error|skip  malformed rows stop with file:line (default) or are skipped, counted
  --from DATE              only minutes from DATE on (YYYY-MM-DD[ HH:MM], UTC)
  --until DATE             only minutes before DATE
output
  --out DIR                the dataset folder (created; files replaced atomically)
cleaning and transform
  --representation R       scale_free (default: ratios to the current close, calendar
                           features, next-minute targets; data/representation.h) or level
                           (the original run's z-scored log levels)
  --max-gap-minutes N      a longer step between rows cuts a segment (default 1)
  --stats train|all        z-score statistics from the training rows (default) or every row
                           (the original's choice: leaks val/test into the inputs)
windows and splits
  --window N               rows per window (default 2048)
  --stride N               rows between window starts (default 512)
  --split A,B,C            train,val,test fractions of time (default 0.8,0.1,0.1)
  --split-dates V,T        chronological: val from date V, test from date T (in place of
                           --split), e.g. 2020-11-01,2021-01-01
  --split-mode M           chronological (default) or shuffled_blocks (the original's, leaky)
  --block-windows N        windows per shuffled block (default 8)
  --seed N                 seed of the shuffled blocks and of the synthetic market (default 1)
)";

void print_line(const std::string& line) { std::printf("prepare: %s\n", line.c_str()); }

struct Args {
  std::vector<std::string> csv;
  std::string out, bench;
  bool synthetic = false;
  int64_t synthetic_minutes = 200000;
  int repeat = 3;
  PrepareOptions options;
};

int64_t to_int(const std::string& flag, const std::string& v) {
  try {
    size_t used = 0;
    const long long x = std::stoll(v, &used);
    if (used == v.size()) return x;
  } catch (const std::exception&) {
  }
  FAIL("{}: expected an integer, got '{}'", flag, v);
}

void parse_fractions(const std::string& v, double out[3]) {
  const int got = std::sscanf(v.c_str(), "%lf,%lf,%lf", &out[0], &out[1], &out[2]);
  CHECK(got == 3, "--split: expected three fractions like 0.8,0.1,0.1, got '{}'", v);
}

Args parse_args(int argc, char** argv) {
  Args a;
  auto value = [&](int& i) -> std::string {
    CHECK(i + 1 < argc, "{} needs a value (see --help)", argv[i]);
    return argv[++i];
  };
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--help" || flag == "-h") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    } else if (flag == "--csv") {
      while (i + 1 < argc && std::string(argv[i + 1]).rfind("--", 0) != 0)
        a.csv.push_back(argv[++i]);
      CHECK(!a.csv.empty(), "--csv needs at least one file");
    } else if (flag == "--out") {
      a.out = value(i);
    } else if (flag == "--bench") {
      a.bench = value(i);
    } else if (flag == "--repeat") {
      a.repeat = static_cast<int>(to_int(flag, value(i)));
    } else if (flag == "--synthetic") {
      a.synthetic = true;
    } else if (flag == "--synthetic-minutes") {
      a.synthetic_minutes = to_int(flag, value(i));
    } else if (flag == "--on-bad-row") {
      const std::string v = value(i);
      CHECK(v == "error" || v == "skip", "--on-bad-row: expected error or skip, got '{}'", v);
      a.options.read.on_bad_row = v == "skip" ? BadRowPolicy::Skip : BadRowPolicy::Error;
    } else if (flag == "--from") {
      a.options.read.from_ts = parse_utc_date(value(i));
    } else if (flag == "--until") {
      a.options.read.until_ts = parse_utc_date(value(i));
    } else if (flag == "--representation") {
      a.options.representation = parse_representation(value(i));
    } else if (flag == "--split-dates") {
      const std::string v = value(i);
      const size_t comma = v.find(',');
      CHECK(comma != std::string::npos,
            "--split-dates: expected two dates like 2020-11-01,2021-01-01, got '{}'", v);
      a.options.split.boundary_ts[0] = parse_utc_date(v.substr(0, comma));
      a.options.split.boundary_ts[1] = parse_utc_date(v.substr(comma + 1));
    } else if (flag == "--max-gap-minutes") {
      a.options.clean.max_gap_minutes = to_int(flag, value(i));
    } else if (flag == "--stats") {
      const std::string v = value(i);
      CHECK(v == "train" || v == "all", "--stats: expected train or all, got '{}'", v);
      a.options.stats_all = v == "all";
    } else if (flag == "--window") {
      a.options.split.window = to_int(flag, value(i));
    } else if (flag == "--stride") {
      a.options.split.stride = to_int(flag, value(i));
    } else if (flag == "--split") {
      parse_fractions(value(i), a.options.split.fractions);
    } else if (flag == "--split-mode") {
      a.options.split.mode = parse_split_mode(value(i));
    } else if (flag == "--block-windows") {
      a.options.split.block_windows = to_int(flag, value(i));
    } else if (flag == "--seed") {
      a.options.split.seed = static_cast<uint64_t>(to_int(flag, value(i)));
    } else {
      FAIL("unknown option '{}' (see --help)", flag);
    }
  }
  return a;
}

// Parse speed only: the reader over FILE, `repeat` times, best wall time reported.
void bench(const Args& a) {
  double best = 1e30, best_cpu = 0;
  ReadReport report;
  for (int r = 0; r < std::max(1, a.repeat); ++r) {
    report = ReadReport();
    const auto t0 = std::chrono::steady_clock::now();
    const std::clock_t c0 = std::clock();
    Candles rows = read_candles({a.bench}, a.options.read, &report);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (s < best) {
      best = s;
      best_cpu = static_cast<double>(std::clock() - c0) / CLOCKS_PER_SEC;
    }
  }
  const SourceInfo& src = report.sources.front();
  std::printf(
      "bench-data: reader %s: %lld rows, %.1f MB text (%.1f MB on disk), best of %d: "
      "%.3f s wall (%.3f s cpu), %.2f M rows/s, %.0f MB/s of text\n",
      a.bench.c_str(), static_cast<long long>(report.rows_read), src.text_bytes / 1e6,
      src.file_bytes / 1e6, std::max(1, a.repeat), best, best_cpu, report.rows_read / best / 1e6,
      src.text_bytes / best / 1e6);
}

int run(int argc, char** argv) {
  Args a = parse_args(argc, argv);
  if (!a.bench.empty()) {
    bench(a);
    return 0;
  }
  CHECK(!a.out.empty(), "--out DIR is required (see --help)");
  CHECK(a.csv.empty() || !a.synthetic, "give either --csv or --synthetic, not both");
  if (a.csv.empty()) {
    CHECK(a.synthetic, "no input: give --csv FILE... or --synthetic (see --help)");
    std::filesystem::create_directories(a.out);
    const std::string path = a.out + "/synthetic_btcusd_1-min.csv";
    SyntheticOptions so;
    so.minutes = a.synthetic_minutes;
    so.seed = a.options.split.seed;
    write_synthetic_csv(path, so);
    print_line(
        fmt::format("SYNTHETIC DATA: no CSV given, so {} minutes of a simulated market "
                    "(GARCH volatility, intraday seasonality, {} gaps) were written to {}. "
                    "This is not Bitcoin data; see docs/data.md for the real Kaggle file.",
                    so.minutes, so.gaps, path));
    a.csv = {path};
    a.options.synthetic = true;
  }
  const auto t0 = std::chrono::steady_clock::now();
  prepare_dataset(a.csv, a.out, a.options, print_line);
  print_line(
      fmt::format("done in {:.2f} s",
                  std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const mt::Error& e) {
    std::fprintf(stderr, "prepare: error: %s\n", e.message().c_str());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "prepare: error: %s\n", e.what());
    return 1;
  }
}
