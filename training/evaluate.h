// Evaluating a trained run: the test split (or other CSV files) scored against persistence.
//
//   evaluate_run({.run_dir = "runs/tiny-..."})            -> <run>/metrics.{json,md},
//   predictions.csv evaluate_run({.run_dir = ..., .csv = {"2024.csv"}})   -> <run>/eval-2024/...
//
// The weights come from checkpoints/best (else last); the model config, precision, window and
// representation from the run's config.json; the normalization from the run's
// normalization.json, never refit, so a CSV from after the training period is scored the way
// the model sees it. For target "delta" the predictions are turned back into levels
// (x[t] + delta) before scoring. Every forecast is scored against persistence and the naive
// rule, in z-space and in USD / BTC (training/forecast_eval.h has the metrics).
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "training/eval_series.h"
#include "training/trainer.h"

namespace mt::training {

struct EvalOptions {
  std::string run_dir;
  std::string checkpoint = "best";  // "best" (falls back to "last") or "last"
  std::vector<std::string> csv;     // score these files instead of the test split
  data::ReadOptions read;           // how to read them (e.g. a time range)
  std::string out_dir;              // empty: the run folder (test split) or <run>/eval-<name>
  int64_t max_windows = 0;          // 0: all
  std::string device;               // empty: the run's trainer.device
  int plot_windows = 4;             // windows written to predictions.csv for the plots
};

// Writes metrics.json, metrics.md and predictions.csv; returns the metrics.json object. `data`
// (optional) supplies the test loader and statistics instead of opening them.
nlohmann::json evaluate_run(const EvalOptions& options, RunData* data = nullptr);

// normalization.json of a run folder: its representation, column names and the per-column mean
// and std of its training data. A file without a representation (written before there were two)
// is "level".
struct Normalization {
  data::Representation representation = data::Representation::Level;
  data::FeatureStats stats;
};
void write_normalization(const std::string& run_dir, data::Representation r,
                         const data::FeatureStats& stats);
Normalization read_normalization(const std::string& run_dir);

// The forecaster's last step, fitted on the validation split once training is done: per target
// f, in z-space,
//     forecast_f = rule_f + a_f (model_f - rule_f),    a_f in [0, 1]
// with rule_f the naive rule's forecast (data/baselines.h) and a_f the least-squares weight over
// the validation forecasts, clipped to [0, 1]. a_f = 1 keeps the network's forecast, a_f = 0
// the rule's: where the network's deviation from the rule is mostly noise (the open, whose
// minute-to-minute gap to the last close is a few cents), its weight shrinks. The weight is kept
// only when the blend's gain over the rule is significant across the validation days: the mean
// of the daily MSE gains at least kBlendMinT standard errors above 0; otherwise a_f = 0 and the
// forecast of that target is the rule's. A run without blend.json forecasts with a_f = 1.
constexpr double kBlendMinT = 2.0;
struct Blend {
  double weight[data::kTargets] = {1, 1, 1, 1, 1};
  bool fitted = false;
};
// Fits the blend of the run's best checkpoint on `series` (its validation rows) and writes
// <run>/blend.json.
Blend fit_blend(const std::string& run_dir, const EvalSeries& series, Device device,
                int64_t batch_size);
Blend read_blend(const std::string& run_dir);

// The model of a run folder: config.json's model, the weights of checkpoints/<which> ("best"
// falls back to "last"), on `device` in the run's precision, in eval mode. `checkpoint_dir`
// receives the folder the weights came from.
std::unique_ptr<BTCTransformer> load_run_model(const std::string& run_dir, const std::string& which,
                                               Device device, std::string* checkpoint_dir,
                                               Checkpoint* checkpoint = nullptr);

}  // namespace mt::training
