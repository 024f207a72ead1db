#include "data/metrics.h"

#include <cmath>

#include "base/error.h"

namespace mt::data {

ForecastAccumulator::ForecastAccumulator(int features) {
  CHECK(features > 0, "ForecastAccumulator: expected at least one feature, got {}", features);
  sums_.resize(static_cast<size_t>(features));
}

void ForecastAccumulator::add(const double* pred, const double* target, int64_t rows) {
  const int F = features();
  for (int64_t r = 0; r < rows; ++r) {
    for (int f = 0; f < F; ++f) {
      const double p = pred[r * F + f], t = target[r * F + f];
      Sums& s = sums_[static_cast<size_t>(f)];
      const double err = p - t;
      s.n += 1;
      s.sse += err * err;
      s.sae += std::fabs(err);
      s.sape += std::fabs(err) / std::fmax(std::fabs(t), kMapeFloor);
      const double delta = t - s.mean;
      s.mean += delta / static_cast<double>(s.n);
      s.m2 += delta * (t - s.mean);
    }
  }
}

void ForecastAccumulator::add(const std::vector<double>& pred, const std::vector<double>& target) {
  CHECK(pred.size() == target.size() && pred.size() % sums_.size() == 0,
        "ForecastAccumulator: prediction ({} values) and target ({} values) must hold the same "
        "whole number of rows of {} features",
        pred.size(), target.size(), sums_.size());
  add(pred.data(), target.data(), static_cast<int64_t>(pred.size() / sums_.size()));
}

ForecastMetrics ForecastAccumulator::feature(int f) const {
  CHECK(f >= 0 && f < features(), "ForecastAccumulator: feature {} out of range [0, {})", f,
        features());
  const Sums& s = sums_[static_cast<size_t>(f)];
  ForecastMetrics m;
  m.count = s.n;
  if (s.n == 0) return m;
  const double n = static_cast<double>(s.n);
  m.mse = s.sse / n;
  m.rmse = std::sqrt(m.mse);
  m.mae = s.sae / n;
  m.mape = 100.0 * s.sape / n;
  m.r2 = s.m2 > 0 ? 1.0 - s.sse / s.m2 : 0.0;
  return m;
}

ForecastMetrics ForecastAccumulator::average() const {
  ForecastMetrics avg;
  const double F = features();
  for (int f = 0; f < features(); ++f) {
    const ForecastMetrics m = feature(f);
    avg.count += m.count;
    avg.mse += m.mse / F;
    avg.rmse += m.rmse / F;
    avg.mae += m.mae / F;
    avg.mape += m.mape / F;
    avg.r2 += m.r2 / F;
  }
  return avg;
}

void DirectionAccumulator::add(double current, double predicted_next, double actual_next) {
  const double actual = actual_next - current;
  if (actual == 0.0) {
    ++flat_;
    return;
  }
  const double predicted = predicted_next - current;
  ++count_;
  if (predicted == 0.0) ++no_move_;
  if ((predicted > 0 && actual > 0) || (predicted < 0 && actual < 0)) ++correct_;
}

double DirectionAccumulator::accuracy() const {
  return count_ == 0 ? 0.0 : static_cast<double>(correct_) / static_cast<double>(count_);
}

double skill(double model_error, double baseline_error) {
  return baseline_error == 0.0 ? 0.0 : 1.0 - model_error / baseline_error;
}

}  // namespace mt::data
