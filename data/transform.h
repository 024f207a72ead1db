// The feature transform of the original run and its inverse.
//
//   x_f = log(price_f)    for open, high, low, close   (prices > 0: zeros became 0.01)
//   x_4 = log1p(volume)                                 (volume >= 0; zero-volume minutes exist)
//   z_f = (x_f - mean_f) / std_f                        per feature, population std (ddof 0)
//
// The statistics come from the training rows only (no leakage), unless the "all" option asks
// for the original's whole-file statistics. A feature that is constant over those rows has
// std 0; it is given std 1 so that z = x - mean stays finite.
#pragma once

#include <vector>

#include "data/clean.h"
#include "data/csv_reader.h"
#include "tensor/tensor.h"

namespace mt::data {

// Per-column standardization z = (x - mean) / std. The default is the identity on the five
// candle features; a representation with more columns sizes it to its own.
struct FeatureStats {
  std::vector<double> mean, std;
  explicit FeatureStats(int columns = kFeatures)
      : mean(static_cast<size_t>(columns), 0.0), std(static_cast<size_t>(columns), 1.0) {}
  int columns() const { return static_cast<int>(mean.size()); }
};

// In place: prices become log prices and volume log1p(volume).
void to_log_features(Candles& rows);

// Mean and population std of each feature over the rows of `ranges` (two passes in double).
FeatureStats compute_stats(const Candles& features, const std::vector<Segment>& ranges);

// z-scores as float32, row-major [N, 5].
std::vector<float> normalize(const Candles& features, const FeatureStats& stats);

// Mean and population std of columns [first, first + count) of a row-major float64 table
// [N, F], over the rows of `ranges` (two passes). A column constant over those rows gets std 1.
FeatureStats compute_column_stats(const std::vector<double>& table, int F, int first, int count,
                                  const std::vector<Segment>& ranges);

// (table - mean) / std per column, as float32; stats.columns() must be F.
std::vector<float> standardize(const std::vector<double>& table, int F, const FeatureStats& stats);

// The inverse of one value: z -> USD (features 0-3) or BTC (feature 4).
double from_zscore(double z, int feature, const FeatureStats& stats);

// The inverse over a tensor whose last dimension is the 5 features (any dtype, any device):
// a float64 CPU tensor of the same shape, in USD and BTC.
Tensor to_prices(const Tensor& z /*[..., 5]*/, const FeatureStats& stats);

}  // namespace mt::data
