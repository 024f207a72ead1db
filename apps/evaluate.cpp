// evaluate: scores a trained run on its test split (or on other CSV files) against the
// persistence baseline, writes metrics.json / metrics.md / predictions.csv and draws the plots.
//
//   build/bin/evaluate --run runs/tiny-20260101-120000
//   build/bin/evaluate --run runs/tiny-... --data btcusd_2024.csv   (the run's normalization)
//   build/bin/evaluate --run runs/tiny-... --plots-only             (`make plots RUN=...`)
//   build/bin/evaluate --latest-run runs    the run whose last checkpoint is the newest
//
// Exit codes (training/cli.h): 0 done, 1 a failure at run time, 2 a bad flag.
#include "training/evaluate.h"

#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "base/error.h"
#include "training/cli.h"
#include "training/plots.h"

namespace {

constexpr const char* kUsage =
    "usage: evaluate --run DIR|--latest-run RUNS [--data CSV]... [--from DATE] [--until DATE]\n"
    "                [--out DIR] [--checkpoint best|last] [--max-windows N]\n"
    "                [--device cpu|cuda|auto] [--no-plots] [--plots-only] [--help]\n"
    "\n"
    "  --run DIR          the run folder (train's trainer.out_dir)\n"
    "  --latest-run RUNS  the run folder under RUNS whose last checkpoint is the newest\n"
    "                     (folders without a checkpoint are passed over, and named)\n"
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
    "  --plots-only       only draw the plots from the run's files\n"
    "\n"
    "Exit codes: 0 done, 1 failure, 2 bad flag.\n";

namespace fs = std::filesystem;

// The newest run under `runs`: the folder whose checkpoints/last (or its .old twin, see
// training/checkpoint.h) was written last. Folders without one (a run stopped before its first
// checkpoint) are never picked; they are named when no folder has a checkpoint.
std::string latest_run(const std::string& runs) {
  CHECK(fs::is_directory(runs), "--latest-run {}: no such folder (no run trained yet?)", runs);
  std::string best;
  fs::file_time_type best_time;
  std::vector<std::string> without;
  for (const fs::directory_entry& e : fs::directory_iterator(runs)) {
    if (!e.is_directory() || !fs::exists(e.path() / "config.json")) continue;
    std::error_code ec;
    fs::file_time_type t = fs::last_write_time(e.path() / "checkpoints" / "last", ec);
    if (ec) t = fs::last_write_time(e.path() / "checkpoints" / "last.old", ec);
    if (ec) {
      without.push_back(e.path().string());
      continue;
    }
    if (best.empty() || t > best_time) {
      best = e.path().string();
      best_time = t;
    }
  }
  CHECK(!best.empty(),
        "--latest-run {}: no run folder there has a checkpoint{}{} (a run stopped before its "
        "first checkpoint starts over with `make train RESUME=DIR`)",
        runs, without.empty() ? "" : "; without one: ", fmt::join(without, ", "));
  return best;
}

struct Args {
  mt::training::EvalOptions eval;
  bool plots = true, plots_only = false;
  std::string latest_under;  // --latest-run: resolved by run(), a run-time look at the folder
};

Args parse_args(int argc, char** argv) {
  using namespace mt::training;
  Args a;
  EvalOptions& o = a.eval;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&] { return next_flag_value(argc, argv, i); };
    if (arg == "--help" || arg == "-h") {
      std::printf("%s", kUsage);
      std::exit(0);
    } else if (arg == "--run") {
      o.run_dir = value();
    } else if (arg == "--latest-run") {
      a.latest_under = value();
    } else if (arg == "--data") {
      o.csv.push_back(value());
    } else if (arg == "--out") {
      o.out_dir = value();
    } else if (arg == "--from") {
      o.read.from_ts = mt::data::parse_utc_date(value());
    } else if (arg == "--until") {
      o.read.until_ts = mt::data::parse_utc_date(value());
    } else if (arg == "--checkpoint") {
      o.checkpoint = value();
    } else if (arg == "--max-windows") {
      o.max_windows = parse_int_flag("--max-windows", value());
      CHECK(o.max_windows >= 1, "--max-windows: expected a count >= 1, got {}", o.max_windows);
    } else if (arg == "--device") {
      o.device = value();
    } else if (arg == "--no-plots") {
      a.plots = false;
    } else if (arg == "--plots-only") {
      a.plots_only = true;
    } else {
      FAIL("unknown argument '{}' (see --help)", arg);
    }
  }
  CHECK(o.run_dir.empty() != a.latest_under.empty(),
        "give one of --run DIR and --latest-run RUNS (see --help)");
  CHECK(o.run_dir.empty() || fs::exists(fs::path(o.run_dir) / "config.json"),
        "--run {}: no config.json there (not a run folder?)", o.run_dir);
  return a;
}

int run(int argc, char** argv) {
  using namespace mt::training;
  Args args = usage_phase([&] { return parse_args(argc, argv); });
  if (!args.latest_under.empty()) {
    args.eval.run_dir = latest_run(args.latest_under);
    std::printf("[evaluate] the newest run with a checkpoint: %s\n", args.eval.run_dir.c_str());
  }
  const EvalOptions& o = args.eval;
  const bool plots = args.plots, plots_only = args.plots_only;
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

int main(int argc, char** argv) { return mt::training::run_app("evaluate", run, argc, argv); }
