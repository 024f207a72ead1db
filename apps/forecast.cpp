// forecast: the next minute's candle from the latest minutes of a CSV file, with a trained run.
//
//   build/bin/forecast --run runs/btc-20261204-120000 --csv latest.csv.gz
//   build/bin/forecast --run runs/btc-... --csv latest.csv --json --device cpu
//
// docs/forecasting.md explains what it prints and how it relates to `evaluate`.
#include <cstdio>
#include <string>

#include "base/error.h"
#include "training/cli.h"
#include "training/forecast.h"

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
    "  --json             one JSON object on stdout, for programs\n";

int run(int argc, char** argv) {
  mt::training::ForecastOptions o;
  bool as_json = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&] { return mt::training::next_flag_value(argc, argv, i); };
    if (arg == "--help" || arg == "-h") {
      std::printf("%s", kUsage);
      return 0;
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
      as_json = true;
    } else {
      FAIL("unknown argument '{}' (see --help)", arg);
    }
  }
  CHECK(!o.run_dir.empty(), "--run DIR is required (see --help)");
  CHECK(!o.csv.empty(), "--csv FILE is required (see --help)");
  const mt::training::Forecast f = mt::training::forecast_next(o);
  if (as_json) {
    std::printf("%s\n", f.to_json().dump(2).c_str());
  } else {
    std::printf("%s", f.table().c_str());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "forecast: error: %s\n", e.what());
    return 2;
  }
}
