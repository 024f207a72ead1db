// evaluate: scores a trained run on its test split (or on other CSV files) against the
// persistence baseline, writes metrics.json / metrics.md / predictions.csv and draws the plots.
//
//   build/bin/evaluate --run runs/tiny-20260101-120000
//   build/bin/evaluate --run runs/tiny-... --data btcusd_2024.csv   (the run's normalization)
//   build/bin/evaluate --run runs/tiny-... --plots-only             (`make plots RUN=...`)
#include "training/evaluate.h"

#include <cstdio>
#include <filesystem>
#include <string>

#include "base/error.h"
#include "training/plots.h"

namespace {

constexpr const char* kUsage =
    "usage: evaluate --run DIR [--data CSV]... [--from DATE] [--until DATE] [--out DIR]\n"
    "                [--checkpoint best|last] [--max-windows N] [--device cpu|cuda|auto]\n"
    "                [--no-plots] [--plots-only] [--help]\n"
    "\n"
    "  --run DIR          the run folder (train's trainer.out_dir)\n"
    "  --data CSV         score these Kaggle-layout CSV files (.csv or .csv.gz) instead of the\n"
    "                     test split, with the run's own normalization; results go to\n"
    "                     DIR/eval-<name>/ (default: the test split, results in DIR)\n"
    "  --out DIR          write the results into DIR instead\n"
    "  --from DATE        with --data: only minutes from DATE on (YYYY-MM-DD[ HH:MM], UTC)\n"
    "  --until DATE       with --data: only minutes before DATE\n"
    "  --checkpoint NAME  best (default; falls back to last) or last\n"
    "  --max-windows N    score at most N windows (default: all)\n"
    "  --device D         override the run's trainer.device\n"
    "  --no-plots         skip the gnuplot plots\n"
    "  --plots-only       only draw the plots from the run's files\n";

int run(int argc, char** argv) {
  using namespace mt::training;
  EvalOptions o;
  bool plots = true, plots_only = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&](const char* flag) {
      CHECK(i + 1 < argc, "{} needs a value (see --help)", flag);
      return std::string(argv[++i]);
    };
    if (arg == "--help" || arg == "-h") {
      std::printf("%s", kUsage);
      return 0;
    } else if (arg == "--run") {
      o.run_dir = value("--run");
    } else if (arg == "--data") {
      o.csv.push_back(value("--data"));
    } else if (arg == "--out") {
      o.out_dir = value("--out");
    } else if (arg == "--from") {
      o.read.from_ts = mt::data::parse_utc_date(value("--from"));
    } else if (arg == "--until") {
      o.read.until_ts = mt::data::parse_utc_date(value("--until"));
    } else if (arg == "--checkpoint") {
      o.checkpoint = value("--checkpoint");
    } else if (arg == "--max-windows") {
      o.max_windows = std::stoll(value("--max-windows"));
    } else if (arg == "--device") {
      o.device = value("--device");
    } else if (arg == "--no-plots") {
      plots = false;
    } else if (arg == "--plots-only") {
      plots_only = true;
    } else {
      FAIL("unknown argument '{}' (see --help)", arg);
    }
  }
  CHECK(!o.run_dir.empty(), "--run DIR is required (see --help)");
  std::string out_dir = o.run_dir;
  if (!plots_only) {
    const json report = evaluate_run(o);
    out_dir = report.at("out_dir").get<std::string>();
    std::printf("[evaluate] %s: %lld windows, %lld forecasts per feature\n",
                report["data"].get<std::string>().c_str(),
                static_cast<long long>(report["windows"].get<int64_t>()),
                static_cast<long long>(report["forecasts"].get<int64_t>()));
    for (const auto& line : report["summary"]) {
      std::printf("[evaluate] %s\n", line.get<std::string>().c_str());
    }
    std::printf("[evaluate] close direction %.2f %%; wrote %s/metrics.md\n",
                100.0 * report["directional_accuracy"]["accuracy"].get<double>(), out_dir.c_str());
  }
  if (plots || plots_only) {
    const PlotResult r = make_plots(out_dir);
    for (const auto& note : r.notes) std::printf("[plots] %s\n", note.c_str());
    for (const auto& f : r.files) std::printf("[plots] %s\n", f.c_str());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const mt::Error& e) {
    std::fprintf(stderr, "evaluate: error: %s\n", e.message().c_str());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "evaluate: error: %s\n", e.what());
    return 2;
  }
}
