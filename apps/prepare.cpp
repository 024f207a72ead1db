// prepare: Kaggle-layout BTC minute CSV files -> a prepared dataset folder (data/prepared.h).
//
//   prepare --csv btcusd_1-min_data.csv [more.csv.gz ...] --out data_prepared
//   prepare --synthetic --out data_prepared           (no CSV: a synthetic market, said plainly)
//   prepare --bench FILE [--repeat N]                  (parse speed only; writes nothing)
//   prepare --csv FILE --out DIR --reuse               (keeps DIR when it already holds FILE)
//
// Run with --help for every option. `make data CSV=... DATA=...` calls it.
//
// Exit codes (training/cli.h): 0 done, 1 a failure at run time (a missing file, a malformed
// row), 2 a bad flag.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <string>
#include <vector>

#include "base/error.h"
#include "data/prepared.h"
#include "data/synthetic.h"
#include "training/cli.h"
#include "training/config.h"
#include "training/trainer.h"

namespace {

using namespace mt::data;
namespace fs = std::filesystem;
using nlohmann::json;

// Written into a dataset folder when a synthetic market is asked for; removed when real data
// replaces it.
constexpr const char* kSyntheticCsv = "synthetic_btcusd_1-min.csv";
// What the folder was prepared from, for --reuse: written last, after the dataset.
constexpr const char* kRequestFile = "prepare.json";

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
  --reuse                  keep DIR as it is when it was prepared from the same files (path,
                           size, modification time) with the same options (DIR/prepare.json);
                           prepare it otherwise
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
  bool synthetic = false, reuse = false;
  int64_t synthetic_minutes = 200000;
  int repeat = 3;
  PrepareOptions options;
};

int64_t to_int(const std::string& flag, const std::string& v) {
  return mt::training::parse_int_flag(flag, v);
}

void parse_fractions(const std::string& v, double out[3]) {
  const int got = std::sscanf(v.c_str(), "%lf,%lf,%lf", &out[0], &out[1], &out[2]);
  CHECK(got == 3, "--split: expected three fractions like 0.8,0.1,0.1, got '{}'", v);
}

Args parse_args(int argc, char** argv) {
  Args a;
  auto value = [&](int& i) { return mt::training::next_flag_value(argc, argv, i); };
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
    } else if (flag == "--reuse") {
      a.reuse = true;
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
  if (a.bench.empty()) {
    CHECK(!a.out.empty(), "--out DIR is required (see --help)");
    CHECK(a.csv.empty() || !a.synthetic, "give either --csv or --synthetic, not both");
    CHECK(!a.csv.empty() || a.synthetic,
          "no input: give --csv FILE... or --synthetic (see --help)");
  }
  return a;
}

// The inputs as files on disk and every option that shapes the dataset: what --reuse compares.
json request_of(const Args& a) {
  json inputs = json::array();
  for (const std::string& path : a.csv) {
    std::error_code ec;  // a missing file gets -1s here; reading it fails with its own message
    const fs::path abs = fs::weakly_canonical(path, ec);
    const auto bytes = static_cast<int64_t>(fs::file_size(path, ec));
    const auto mtime =
        static_cast<int64_t>(fs::last_write_time(path, ec).time_since_epoch().count());
    inputs.push_back({{"path", abs.string()}, {"bytes", bytes}, {"mtime", mtime}});
  }
  const PrepareOptions& o = a.options;
  return json{{"inputs", inputs},
              {"synthetic_minutes", a.synthetic ? a.synthetic_minutes : 0},
              {"on_bad_row", o.read.on_bad_row == BadRowPolicy::Skip ? "skip" : "error"},
              {"max_gap_minutes", o.clean.max_gap_minutes},
              {"stats", o.stats_all ? "all" : "train"},
              {"window", o.split.window},
              {"stride", o.split.stride},
              {"split", {o.split.fractions[0], o.split.fractions[1], o.split.fractions[2]}},
              {"split_mode", split_mode_name(o.split.mode)},
              {"block_windows", o.split.block_windows},
              {"seed", o.split.seed}};
}

// --reuse: true when out_dir holds a complete dataset prepared from this very request.
bool already_prepared(const std::string& out_dir, const json& request) {
  const fs::path record = fs::path(out_dir) / kRequestFile;
  if (!fs::exists(fs::path(out_dir) / "manifest.json") || !fs::exists(record)) return false;
  try {
    return mt::training::read_json_file(record.string()) == request;
  } catch (const mt::Error&) {
    return false;  // unreadable: prepare again
  }
}

// Says which dataset a new one replaces, so that a folder's change of contents is never silent.
void note_replaced(const std::string& out_dir) {
  if (!fs::exists(fs::path(out_dir) / "manifest.json")) return;
  try {
    const json id = mt::training::prepared_dataset_identity(read_manifest(out_dir));
    print_line(fmt::format("replacing the dataset in {} ({})", out_dir,
                           mt::training::describe_dataset(id)));
  } catch (const mt::Error&) {
    print_line(fmt::format("replacing an unreadable dataset in {}", out_dir));
  }
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
  Args a = mt::training::usage_phase([&] { return parse_args(argc, argv); });
  if (!a.bench.empty()) {
    bench(a);
    return 0;
  }
  const json request = request_of(a);
  if (a.reuse && already_prepared(a.out, request)) {
    print_line(fmt::format(
        "{} already holds {}, prepared with the same options: kept (without --reuse, e.g. `make "
        "data CSV=...`, it is prepared "
        "again)",
        a.out, a.synthetic ? "the synthetic market" : fmt::format("{}", fmt::join(a.csv, ", "))));
    return 0;
  }
  note_replaced(a.out);
  std::error_code ec;
  fs::remove(fs::path(a.out) / kRequestFile, ec);
  const std::string synthetic_csv = (fs::path(a.out) / kSyntheticCsv).string();
  if (a.synthetic) {
    fs::create_directories(a.out);
    const std::string path = synthetic_csv;
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
  const bool is_input = std::any_of(a.csv.begin(), a.csv.end(), [&](const std::string& p) {
    return fs::weakly_canonical(p, ec) == fs::weakly_canonical(synthetic_csv, ec);
  });
  if (!a.synthetic && !is_input && fs::exists(synthetic_csv)) {
    fs::remove(synthetic_csv, ec);
    print_line("removed " + synthetic_csv + ", left by an earlier synthetic dataset");
  }
  mt::training::write_json_file((fs::path(a.out) / kRequestFile).string(), request);
  print_line(
      fmt::format("done in {:.2f} s",
                  std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()));
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return mt::training::run_app("prepare", run, argc, argv); }
