// forecast: the next minute's candle from the latest minutes of a CSV file, with a trained run.
//
//   build/bin/forecast --run runs/btc-20261204-120000 --csv latest.csv.gz
//   build/bin/forecast --run runs/btc-... --csv latest.csv --json --device cpu
//
// docs/forecasting.md explains what it prints and how it relates to `evaluate`.
// Exit codes (training/cli.h): 0 done, 1 a failure at run time (a run without a checkpoint, too
// few or gapped minutes), 2 a bad flag.
#include "training/forecast.h"

#include <cstdio>
#include <cstdlib>
#include <string>

#include "base/error.h"
#include "training/cli.h"

namespace {

constexpr const char* kUsage =
    "usage: forecast --run DIR --csv FILE... [--until DATE] [--checkpoint best|last]\n"
    "                [--device cpu|cuda|auto] [--json] [--help]\n"
    "\n"
    "  --run DIR          the run folder (train's trainer.out_dir)\n"
    "  --csv FILE...      Kaggle-layout CSV files (.csv or .csv.gz) whose last rows are the\n"
    "                     latest minutes: at least the run's data.window of them, gap-free\n"
    "  --until DATE       forecast as of DATE: only minutes before it (YYYY-MM-DD[ HH:MM], UTC)\n"
    "  --checkpoint NAME  best (default; falls back to last) or last\n"
    "  --device D         override the run's trainer.device\n"
    "  --json             one JSON object on stdout, for programs\n"
    "\n"
    "Exit codes: 0 done, 1 failure, 2 bad flag.\n";

struct Args {
  mt::training::ForecastOptions options;
  bool as_json = false;
};

Args parse_args(int argc, char** argv) {
  Args a;
  mt::training::ForecastOptions& o = a.options;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&] { return mt::training::next_flag_value(argc, argv, i); };
    if (arg == "--help" || arg == "-h") {
      std::printf("%s", kUsage);
      std::exit(0);
    } else if (arg == "--run") {
      o.run_dir = value();
    } else if (arg == "--csv") {
      while (i + 1 < argc && std::string(argv[i + 1]).rfind("--", 0) != 0)
        o.csv.push_back(argv[++i]);
      CHECK(!o.csv.empty(), "--csv needs at least one file");
    } else if (arg == "--until") {
      o.read.until_ts = mt::data::parse_utc_date(value());
    } else if (arg == "--checkpoint") {
      o.checkpoint = value();
    } else if (arg == "--device") {
      o.device = value();
    } else if (arg == "--json") {
      a.as_json = true;
    } else {
      FAIL("unknown argument '{}' (see --help)", arg);
    }
  }
  CHECK(!o.run_dir.empty(), "--run DIR is required (see --help)");
  CHECK(!o.csv.empty(), "--csv FILE is required (see --help)");
  return a;
}

int run(int argc, char** argv) {
  const Args a = mt::training::usage_phase([&] { return parse_args(argc, argv); });
  const mt::training::Forecast f = mt::training::forecast_next(a.options);
  if (a.as_json) {
    std::printf("%s\n", f.to_json().dump(2).c_str());
  } else {
    std::printf("%s", f.table().c_str());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return mt::training::run_app("forecast", run, argc, argv); }
