// The naive rules every evaluation puts beside the model. For a forecast made at minute t (of
// minute t + 1), in USD and BTC:
//
//   persistence   the candle of minute t: "next minute = this minute", feature by feature
//   naive rule    open   = C_t                          (a minute opens where the last closed)
//                 high   = C_t * EWMA(H / C)_t          (this close times the recent typical
//                 low    = C_t * EWMA(L / C)_t           excursion above / below the close)
//                 close  = C_t                          (persistence: prices are ~a random walk)
//                 volume = EWMA(V)_t
//
// EWMA(x)_t = m_t with m_t = m_{t-1} + alpha (x_t - m_{t-1}), alpha = 1 - 2^(-1 / half-life),
// started at each segment's first minute (m = x there): minutes <= t only. The half-lives (5
// minutes for the range ratios, 2 for volume) gave the rules their lowest MSE on the training
// period of docs/results.md's out-of-regime check (2017-08 to 2020-10); docs/forecasting.md
// has the table. "The best baseline" of a feature is whichever of the two has the lower MSE.
#pragma once

#include <vector>

#include "data/clean.h"
#include "data/csv_reader.h"

namespace mt::data {

constexpr double kRangeHalfLife = 5.0;   // minutes, for EWMA(H / C) and EWMA(L / C)
constexpr double kVolumeHalfLife = 2.0;  // minutes, for EWMA(V)

// The naive rule's forecasts of every row, row-major [N, 5] (open, high, low, close, volume).
std::vector<double> naive_rule_forecasts(const Candles& rows, const std::vector<Segment>& segments,
                                         double range_half_life = kRangeHalfLife,
                                         double volume_half_life = kVolumeHalfLife);

}  // namespace mt::data
