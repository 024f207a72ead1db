#include "data/baselines.h"

#include <cmath>

#include "base/error.h"

namespace mt::data {

std::vector<double> naive_rule_forecasts(const Candles& rows, const std::vector<Segment>& segments,
                                         double range_half_life, double volume_half_life) {
  CHECK(range_half_life > 0 && volume_half_life > 0,
        "naive_rule_forecasts: half-lives must be positive, got {} and {}", range_half_life,
        volume_half_life);
  const double a_range = 1.0 - std::exp2(-1.0 / range_half_life);
  const double a_volume = 1.0 - std::exp2(-1.0 / volume_half_life);
  std::vector<double> out(rows.size() * kFeatures, 0.0);
  for (const Segment& s : segments) {
    CHECK(s.begin >= 0 && s.begin <= s.end && s.end <= static_cast<int64_t>(rows.size()),
          "naive_rule_forecasts: segment [{}, {}) is outside the {} rows", s.begin, s.end,
          rows.size());
    double high = 0, low = 0, volume = 0;  // the three EWMAs
    for (int64_t t = s.begin; t < s.end; ++t) {
      const Candle& c = rows[static_cast<size_t>(t)];
      const double close = c.v[3];
      if (t == s.begin) {
        high = c.v[1] / close;
        low = c.v[2] / close;
        volume = c.v[4];
      } else {
        high += a_range * (c.v[1] / close - high);
        low += a_range * (c.v[2] / close - low);
        volume += a_volume * (c.v[4] - volume);
      }
      double* f = out.data() + static_cast<size_t>(t) * kFeatures;
      f[0] = close;
      f[1] = close * high;
      f[2] = close * low;
      f[3] = close;
      f[4] = volume;
    }
  }
  return out;
}

}  // namespace mt::data
