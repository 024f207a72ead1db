// Scoring next-minute forecasts: the model against the two naive baselines (data/baselines.h),
// per feature, in z-space and in USD / BTC. Pure arithmetic on host values, so it is tested
// against hand-computed numbers without a model (tests/test_train_eval.cpp).
//
// Each forecast made at a minute t brings, for the five features of minute t + 1:
//   the model's prediction        in the z-space it was trained in (TargetSpace maps it to USD)
//   the actual candle             of minute t + 1, in USD / BTC
//   persistence                   the candle of minute t ("next minute = this minute")
//   the naive rule                data/baselines.h's forecast made at t
// The baselines are mapped into the model's z-space with the same TargetSpace, so both spaces
// score all three alike. Per feature and space: MSE, RMSE, MAE, MAPE, R²; skill = 1 - model /
// baseline against persistence, against the naive rule, and against the better of the two
// ("best": the lower MSE), positive when the model wins. No mean over features is reported: the
// features' z-space errors differ by orders of magnitude and a mean hides which one wins.
// Directional accuracy compares the sign of the predicted close move with the actual one.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "data/metrics.h"
#include "data/representation.h"

namespace mt::training {

class ForecastEvaluator {
 public:
  explicit ForecastEvaluator(data::TargetSpace space);

  // One forecast: model_z [5], actual / current / rule [5] in USD and BTC, the row's anchor.
  void add(const double* model_z, const double* actual, const double* current, const double* rule,
           const data::TargetAnchor& anchor);
  // Counts one scored window (for the report).
  void end_window() { ++windows_; }

  int64_t windows() const { return windows_; }
  int64_t forecasts() const { return z_[0].feature(0).count; }
  // metrics.json: {"windows", "forecasts", "features", "representation", "z": {...},
  // "price": {...}, "directional_accuracy": {...}}; each space holds "model", "persistence",
  // "naive_rule" (metrics per feature), "best_baseline" (its name per feature) and "skill"
  // (per feature: "mse" and "mae" against persistence, "mse_vs_naive_rule", "mse_vs_best").
  nlohmann::json report() const;
  // metrics.md: one table per space, then the directional accuracy.
  std::string markdown(const std::string& title) const;
  // One line per feature in USD / BTC: model, persistence and naive-rule RMSE, skill vs best.
  std::vector<std::string> summary_lines() const;

 private:
  enum Who { kModel = 0, kPersistence = 1, kRule = 2 };
  data::TargetSpace space_;
  int64_t windows_ = 0;
  // [who] per space: z-space and USD / BTC.
  std::vector<data::ForecastAccumulator> z_, price_;
  data::DirectionAccumulator direction_;
};

// The feature names every report uses, in the candle's order.
const std::vector<std::string>& forecast_feature_names();

}  // namespace mt::training
