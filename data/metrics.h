// Forecast metrics: how far predicted values are from the actual ones, per feature.
//
// Streaming accumulators, so that a whole test split can be scored batch by batch without
// keeping every prediction: per feature they keep the count, the sums of squared, absolute and
// relative errors, and the target's running mean and variance (Welford), which is enough for
//   MSE  = sum (p - t)^2 / n             RMSE = sqrt(MSE)
//   MAE  = sum |p - t| / n
//   MAPE = 100 * sum |p - t| / max(|t|, 1e-8) / n      (the original run's formula, in percent)
//   R^2  = 1 - sum (p - t)^2 / sum (t - mean t)^2      (0 when the target is constant)
// Accumulation is in float64 whatever the tensors' dtype: a test split has ~10^6 values per
// feature, and float32 sums would lose the 1e-7 differences that separate a model from the
// persistence baseline.
#pragma once

#include <cstdint>
#include <vector>

namespace mt::data {

// |t| is floored at this value in MAPE's denominator, as the original did (z-scores cross 0).
constexpr double kMapeFloor = 1e-8;

struct ForecastMetrics {
  int64_t count = 0;
  double mse = 0, rmse = 0, mae = 0, mape = 0, r2 = 0;
};

class ForecastAccumulator {
 public:
  explicit ForecastAccumulator(int features);

  // pred and target are [rows, features] row-major.
  void add(const double* pred, const double* target, int64_t rows);
  void add(const std::vector<double>& pred, const std::vector<double>& target);

  int features() const { return static_cast<int>(sums_.size()); }
  ForecastMetrics feature(int f) const;
  // Each metric averaged over the features (the "mean" row of the original's table).
  ForecastMetrics average() const;

 private:
  struct Sums {
    int64_t n = 0;
    double sse = 0, sae = 0, sape = 0;
    double mean = 0, m2 = 0;  // Welford: running mean of t and sum of squared deviations
  };
  std::vector<Sums> sums_;
};

// Directional accuracy: the fraction of steps on which the predicted move from the current
// value has the sign of the actual move. Steps where the actual value does not move carry no
// direction and are left out (counted in flat()); on minute closes they are common (~5 %).
class DirectionAccumulator {
 public:
  void add(double current, double predicted_next, double actual_next);
  double accuracy() const;  // in [0, 1]; 0 when nothing was counted
  int64_t count() const { return count_; }
  int64_t flat() const { return flat_; }
  // Counted moves for which no move was predicted (wrong by the rule above): a forecast that
  // keeps the close (persistence, or a blend that keeps the rule's) has accuracy 0.
  int64_t predicted_no_move() const { return no_move_; }

 private:
  int64_t count_ = 0, correct_ = 0, flat_ = 0, no_move_ = 0;
};

// Skill of a model over a baseline for an error metric (lower is better): 1 - model / baseline.
// 1 is perfect, 0 is no better than the baseline, negative is worse. 0 when the baseline is 0.
double skill(double model_error, double baseline_error);

}  // namespace mt::data
