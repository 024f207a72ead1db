// What the model sees and what it predicts: the two representations of a candle table.
//
// "level" (the original run's recipe): the inputs are the z-scores of
//     log open, log high, log low, log close, log1p volume           (5 columns)
// and the target of minute t is the same five z-scores at minute t + 1. The levels carry the
// absolute price: a model trained on prices under 20k USD meets inputs it has never seen when
// BTC trades at 60k.
//
// "scale_free" (the default): every column is a ratio, so multiplying all prices by a constant
// changes nothing the model sees. Inputs at minute t use minutes <= t only:
//     ret_close        log(C_t / C_{t-1})                     (0 on a segment's first minute)
//     open_rel         log(O_t / C_t)
//     high_rel         log(H_t / C_t)
//     low_rel          log(L_t / C_t)
//     volume_rel       log1p(V_t / VL_t)     VL_t: mean volume of the last 60 minutes (incl. t)
//     volume_level     log(VL_t / VD_t)      VD_t: mean volume of the last 1440 minutes
//     minute_of_day    sin, cos of 2 pi (minute of the UTC day) / 1440
//     day_of_week      sin, cos of 2 pi (minute of the week) / 10080
//     minute_of_hour   sin, cos of 2 pi (minute of the hour) / 60
// and the targets of minute t describe minute t + 1 relative to what is known at t:
//     log(O_{t+1} / C_t), log(H_{t+1} / C_t), log(L_{t+1} / C_t), log(C_{t+1} / C_t),
//     log1p(V_{t+1} / VL_t)
// Every column is standardized with the training rows' mean and std. A prediction maps back to
// USD and BTC exactly: price = C_t exp(y), volume = VL_t expm1(y). docs/forecasting.md says why
// these columns.
//
// The trailing volume means are sums of whole satoshis (int64, exact), so VL_t does not depend
// on where a file or a segment starts once 60 (1440) earlier minutes are there: `forecast` on the
// latest minutes sees the values `prepare` computed on the whole history. Over the first minutes
// of a segment they average what there is. A floor of kVolumeFloor BTC keeps the ratios finite
// after stretches of zero-volume minutes (the 2017-2019 data has 24,003 of them).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/clean.h"
#include "data/csv_reader.h"
#include "data/transform.h"

namespace mt::data {

enum class Representation { Level, ScaleFree };
const char* representation_name(Representation r);  // "level", "scale_free"
Representation parse_representation(const std::string& name);

constexpr int64_t kVolumeLevelMinutes = 60;  // VL: the recent level volume is measured against
constexpr int64_t kVolumeDayMinutes = 1440;  // VD: the day's level VL is measured against
constexpr double kVolumeFloor = 1e-3;        // BTC added to both means (a few USD of trading)
constexpr int kTargets = kFeatures;          // open, high, low, close, volume of minute t + 1

// Column names of the model's inputs and of the stored targets (none for "level", whose targets
// are the next row's inputs).
std::vector<std::string> input_names(Representation r);
std::vector<std::string> stored_target_names(Representation r);
int input_count(Representation r);
int stored_target_count(Representation r);

// The unstandardized columns of a cleaned table, row-major [N, inputs + stored targets], in
// float64. Rows without a next minute in their segment get target 0 (no window uses them: see
// target_lookahead). `segments` must cover the rows (clean_candles' report).
std::vector<double> raw_columns(Representation r, const Candles& rows,
                                const std::vector<Segment>& segments);

// How many rows after a window's last row its targets read: 1 for scale_free (the target of the
// last row is the next minute), 0 for level (targets are inside the window).
int64_t target_lookahead(Representation r);

// VL_t of every row (see the top of this file), in BTC.
std::vector<double> volume_levels(const Candles& rows, const std::vector<Segment>& segments,
                                  int64_t minutes);

// z-space <-> USD and BTC for the five targets of one forecast made at row t. `anchor` is what
// the representation measures row t's targets against: for scale_free the close C_t and the
// volume level VL_t; level needs none.
struct TargetAnchor {
  double close = 0;
  double volume_level = 0;
};

class TargetSpace {
 public:
  // stats: the standardization of the targets (for level: of the five input columns).
  TargetSpace(Representation r, FeatureStats target_stats);
  Representation representation() const { return rep_; }
  // z [5] -> open, high, low, close (USD), volume (BTC).
  void to_physical(const double* z, const TargetAnchor& a, double* out) const;
  // The inverse: a physical forecast [5] in the z-space the model predicts in.
  void to_z(const double* physical, const TargetAnchor& a, double* out) const;

 private:
  Representation rep_;
  FeatureStats stats_;
};

// The statistics of the target columns, taken from the columns' statistics (for level the five
// input columns are also the targets).
FeatureStats target_stats(Representation r, const FeatureStats& column_stats);

}  // namespace mt::data
