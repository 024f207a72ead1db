// Evaluating a trained run: the test split (or other CSV files) scored against persistence.
//
//   evaluate_run({.run_dir = "runs/tiny-..."})            -> <run>/metrics.{json,md},
//   predictions.csv evaluate_run({.run_dir = ..., .csv = {"2024.csv"}})   -> <run>/eval-2024/...
//
// The weights come from checkpoints/best (else last); the model config, precision and window
// from the run's config.json; the normalization from the run's normalization.json, never refit,
// so a CSV from after the training period is scored the way the model sees it. For target
// "delta" the predictions are turned back into levels (x[t] + delta) before scoring, so both
// targets are measured the same way (training/forecast_eval.h has the metrics).
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "training/trainer.h"

namespace mt::training {

struct EvalOptions {
  std::string run_dir;
  std::string checkpoint = "best";  // "best" (falls back to "last") or "last"
  std::vector<std::string> csv;     // score these files instead of the test split
  int64_t max_windows = 0;          // 0: all
  std::string device;               // empty: the run's trainer.device
  int plot_windows = 4;             // windows written to predictions.csv for the plots
};

// Writes metrics.json, metrics.md and predictions.csv; returns the metrics.json object. `data`
// (optional) supplies the test loader and statistics instead of opening them.
nlohmann::json evaluate_run(const EvalOptions& options, RunData* data = nullptr);

// normalization.json of a run folder: the per-feature mean and std of its training data.
void write_normalization(const std::string& run_dir, const data::FeatureStats& stats);
data::FeatureStats read_normalization(const std::string& run_dir);

}  // namespace mt::training
