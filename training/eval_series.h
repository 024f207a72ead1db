// The rows an evaluation (or a forecast) runs the model over, with what scoring needs besides
// the model's inputs: the cleaned candles in USD / BTC (the actual values, persistence, the naive
// rules of data/baselines.h and each row's TargetAnchor all come from them).
//
// Three sources, one shape:
//   - a prepared folder's split (its columns and candles.f64);
//   - CSV files, cleaned and turned into the run's representation with the run's statistics
//     (never refit: a later year is seen the way the model was trained to see it);
//   - an in-memory level series (the trainer tests): the candles are the inverse transform of
//     the z-scored levels.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/clean.h"
#include "data/csv_reader.h"
#include "data/representation.h"
#include "data/windows.h"
#include "tensor/tensor.h"
#include "training/data_source.h"

namespace mt::training {

struct EvalSeries {
  data::Representation representation = data::Representation::Level;
  data::FeatureStats stats;  // of every column: inputs, then stored targets
  Tensor columns;            // [N, columns] float32 on the CPU, standardized
  data::Candles rows;        // [N] the cleaned candles
  std::vector<data::Segment> segments;
  std::vector<int64_t> starts;  // first rows of the windows to score, ascending
  int64_t window = 0;
  std::string description;  // "test split of data_prepared", "2021.csv", ...

  int64_t size() const { return static_cast<int64_t>(rows.size()); }
  // Row t's anchor for TargetSpace (its close and trailing volume level).
  data::TargetAnchor anchor(int64_t t) const;
  std::vector<double> volume_level;  // VL of every row (scale_free only; data/representation.h)
  std::vector<double> naive_rule;    // [N, 5] data/baselines.h's forecasts
  // Fills volume_level and naive_rule from rows and segments.
  void compute_baselines();
  // The naive rule's forecast made at row r, in the z-space of `space`.
  void rule_z(const data::TargetSpace& space, int64_t r, double* out) const;
  // Windows [first, first + count) of `starts` as the model's inputs [count, T, inputs].
  Tensor window_inputs(int64_t first, int64_t count, Device device) const;
};

// Split `split` of a prepared folder, windows of `window` every `stride` (re-cut from the split's
// rows when they differ from the prepared ones).
EvalSeries eval_series_from_prepared(const std::string& dir, data::Split split, int64_t window,
                                     int64_t stride);

// CSV files read with `read` (e.g. a time range), cleaned, in the representation `r` with
// `stats`; windows of `window` every `stride` in each gap-free segment.
EvalSeries eval_series_from_csv(const std::vector<std::string>& paths,
                                const data::ReadOptions& read, data::Representation r,
                                const data::FeatureStats& stats, int64_t window, int64_t stride);

// The columns of cleaned candles in representation `r` with `stats` (no windows yet).
EvalSeries eval_series_from_candles(data::Candles rows, std::vector<data::Segment> segments,
                                    data::Representation r, const data::FeatureStats& stats);

// An in-memory level series (the tests' synthetic one) and its windows: the candles are
// exp / expm1 of the de-standardized levels.
EvalSeries eval_series_from_levels(const Series& series, std::vector<int64_t> starts,
                                   int64_t window, const data::FeatureStats& stats);

}  // namespace mt::training
