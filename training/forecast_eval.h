// Scoring next-minute forecasts: the model against the persistence baseline, in z-space and in
// prices, per feature and averaged. Pure arithmetic on host arrays, so it is tested against
// hand-computed values without a model (tests/test_train_eval.cpp).
//
// For a window x [T, F] and the model's predictions p [T-1, F] of x[1:], every position
// t = 0 .. T-2 is one forecast of x[t+1]:
//   model        p[t]                  (for target "delta", already x[t] + delta: the level)
//   persistence  x[t]                  ("next minute = this minute")
// Both are scored in z-space (comparable with the original's table) and, after the inverse
// transform, in USD (open, high, low, close) and BTC (volume). Skill = 1 - model / persistence
// for MSE and MAE (positive: the model beats persistence). Directional accuracy compares the
// sign of the predicted close move p[t] - x[t] with the actual x[t+1] - x[t], in prices.
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "data/metrics.h"

namespace mt::training {

// Converts rows [n, F] of z-scores to prices in place (the dataset's inverse transform).
using InverseTransform = std::function<void(std::vector<double>& rows, int64_t n)>;

class ForecastEvaluator {
 public:
  // `close_feature`: the column whose direction is scored (3 in open/high/low/close/volume).
  ForecastEvaluator(std::vector<std::string> feature_names, InverseTransform to_prices,
                    int close_feature = 3);

  // x [B, T, F] windows and p [B, T-1, F] predictions of x[:, 1:], row-major, z-space.
  void add(const std::vector<double>& x, const std::vector<double>& p, int64_t B, int64_t T);

  int64_t windows() const { return windows_; }
  // metrics.json: {"windows", "positions", "features", "z": {...}, "price": {...},
  // "directional_accuracy": {...}} with model / persistence / skill per feature and "mean".
  nlohmann::json report() const;
  // metrics.md: one table per space, then the directional accuracy.
  std::string markdown(const std::string& title) const;

 private:
  std::vector<std::string> names_;
  InverseTransform to_prices_;
  int close_;
  int64_t windows_ = 0;
  data::ForecastAccumulator z_model_, z_persist_, price_model_, price_persist_;
  data::DirectionAccumulator direction_;
};

}  // namespace mt::training
