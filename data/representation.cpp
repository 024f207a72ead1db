#include "data/representation.h"

#include <cmath>

#include "base/error.h"

namespace mt::data {

namespace {

constexpr double kTwoPi = 6.283185307179586;
constexpr int64_t kMinutesPerDay = 1440;
constexpr int64_t kMinutesPerWeek = 7 * kMinutesPerDay;
// 1970-01-01 was a Thursday: three days after a Monday, so the week's angle starts on Monday.
constexpr int64_t kEpochMinuteOfWeek = 3 * kMinutesPerDay;
constexpr double kSatoshisPerBtc = 1e8;

// The scale-free inputs of row t into out[0..12): see the top of representation.h.
void scale_free_inputs(const Candles& rows, int64_t t, int64_t segment_begin, double vl, double vd,
                       double* out) {
  const Candle& c = rows[static_cast<size_t>(t)];
  const double close = c.v[3];
  const double prev_close = t > segment_begin ? rows[static_cast<size_t>(t - 1)].v[3] : close;
  out[0] = std::log(close / prev_close);
  out[1] = std::log(c.v[0] / close);
  out[2] = std::log(c.v[1] / close);
  out[3] = std::log(c.v[2] / close);
  out[4] = std::log1p(c.v[4] / vl);
  out[5] = std::log(vl / vd);
  // floor(ts / 60): the 2017 data's rows shifted by 20 s stay in their minute.
  const int64_t minute = c.ts >= 0 ? c.ts / 60 : -((-c.ts + 59) / 60);
  auto angle = [](int64_t m, int64_t period) {
    const int64_t r = ((m % period) + period) % period;
    return kTwoPi * static_cast<double>(r) / static_cast<double>(period);
  };
  const double day = angle(minute, kMinutesPerDay);
  const double week = angle(minute + kEpochMinuteOfWeek, kMinutesPerWeek);
  const double hour = angle(minute, 60);
  out[6] = std::sin(day);
  out[7] = std::cos(day);
  out[8] = std::sin(week);
  out[9] = std::cos(week);
  out[10] = std::sin(hour);
  out[11] = std::cos(hour);
}

// The scale-free targets of row t (the next minute against row t) into out[0..5).
void scale_free_targets(const Candle& now, const Candle& next, double vl, double* out) {
  const double close = now.v[3];
  for (int f = 0; f < 4; ++f) out[f] = std::log(next.v[f] / close);
  out[4] = std::log1p(next.v[4] / vl);
}

}  // namespace

const char* representation_name(Representation r) {
  return r == Representation::Level ? "level" : "scale_free";
}

Representation parse_representation(const std::string& name) {
  if (name == "level") return Representation::Level;
  if (name == "scale_free" || name == "scale-free") return Representation::ScaleFree;
  FAIL("unknown representation '{}': expected \"scale_free\" or \"level\"", name);
}

std::vector<std::string> input_names(Representation r) {
  if (r == Representation::Level) return {"open", "high", "low", "close", "volume"};
  return {"ret_close",       "open_rel",        "high_rel",           "low_rel",
          "volume_rel",      "volume_level",    "minute_of_day_sin",  "minute_of_day_cos",
          "day_of_week_sin", "day_of_week_cos", "minute_of_hour_sin", "minute_of_hour_cos"};
}

std::vector<std::string> stored_target_names(Representation r) {
  if (r == Representation::Level) return {};
  return {"open_next", "high_next", "low_next", "close_next", "volume_next"};
}

int input_count(Representation r) { return static_cast<int>(input_names(r).size()); }
int stored_target_count(Representation r) {
  return static_cast<int>(stored_target_names(r).size());
}

int64_t target_lookahead(Representation r) { return r == Representation::Level ? 0 : 1; }

std::vector<double> volume_levels(const Candles& rows, const std::vector<Segment>& segments,
                                  int64_t minutes) {
  CHECK(minutes >= 1, "volume_levels: the trailing span must be >= 1 minute, got {}", minutes);
  std::vector<double> level(rows.size(), 0.0);
  std::vector<int64_t> sat(rows.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    const double v = rows[i].v[4] * kSatoshisPerBtc;
    CHECK(v >= 0 && v < 9e18, "volume_levels: row {} has volume {} BTC, outside [0, 9e10]", i,
          rows[i].v[4]);
    sat[i] = std::llround(v);
  }
  for (const Segment& s : segments) {
    int64_t sum = 0;  // satoshis of the last `minutes` rows: exact, so independent of s.begin
    for (int64_t t = s.begin; t < s.end; ++t) {
      sum += sat[static_cast<size_t>(t)];
      if (t - s.begin >= minutes) sum -= sat[static_cast<size_t>(t - minutes)];
      const int64_t count = std::min(t - s.begin + 1, minutes);
      level[static_cast<size_t>(t)] =
          static_cast<double>(sum) / kSatoshisPerBtc / static_cast<double>(count) + kVolumeFloor;
    }
  }
  return level;
}

std::vector<double> raw_columns(Representation r, const Candles& rows,
                                const std::vector<Segment>& segments) {
  const int F = input_count(r) + stored_target_count(r);
  std::vector<double> out(rows.size() * static_cast<size_t>(F), 0.0);
  if (r == Representation::Level) {
    for (size_t i = 0; i < rows.size(); ++i) {
      for (int f = 0; f < 4; ++f) out[i * F + f] = std::log(rows[i].v[f]);
      out[i * F + 4] = std::log1p(rows[i].v[4]);
    }
    return out;
  }
  const std::vector<double> vl = volume_levels(rows, segments, kVolumeLevelMinutes);
  const std::vector<double> vd = volume_levels(rows, segments, kVolumeDayMinutes);
  const int n_in = input_count(r);
  int64_t covered = 0;
  for (const Segment& s : segments) {
    CHECK(s.begin >= 0 && s.begin <= s.end && s.end <= static_cast<int64_t>(rows.size()),
          "raw_columns: segment [{}, {}) is outside the {} rows", s.begin, s.end, rows.size());
    for (int64_t t = s.begin; t < s.end; ++t) {
      const size_t i = static_cast<size_t>(t);
      double* row = out.data() + i * F;
      scale_free_inputs(rows, t, s.begin, vl[i], vd[i], row);
      if (t + 1 < s.end) scale_free_targets(rows[i], rows[i + 1], vl[i], row + n_in);
    }
    covered += s.length();
  }
  CHECK(covered == static_cast<int64_t>(rows.size()),
        "raw_columns: the segments cover {} of the {} rows", covered, rows.size());
  return out;
}

FeatureStats target_stats(Representation r, const FeatureStats& column_stats) {
  const int first = r == Representation::Level ? 0 : input_count(r);
  CHECK(column_stats.columns() >= first + kTargets,
        "target_stats: {} column statistics, the {} representation needs {}",
        column_stats.columns(), representation_name(r), first + kTargets);
  FeatureStats s(kTargets);
  for (int f = 0; f < kTargets; ++f) {
    s.mean[f] = column_stats.mean[first + f];
    s.std[f] = column_stats.std[first + f];
  }
  return s;
}

TargetSpace::TargetSpace(Representation r, FeatureStats target_stats)
    : rep_(r), stats_(std::move(target_stats)) {
  CHECK(stats_.columns() == kTargets, "TargetSpace: expected {} target statistics, got {}",
        kTargets, stats_.columns());
}

void TargetSpace::to_physical(const double* z, const TargetAnchor& a, double* out) const {
  for (int f = 0; f < kTargets; ++f) {
    const double y = z[f] * stats_.std[f] + stats_.mean[f];
    if (rep_ == Representation::Level) {
      out[f] = f < 4 ? std::exp(y) : std::expm1(y);  // inverse of log and log1p
    } else {
      out[f] = f < 4 ? a.close * std::exp(y) : a.volume_level * std::expm1(y);
    }
  }
}

void TargetSpace::to_z(const double* physical, const TargetAnchor& a, double* out) const {
  for (int f = 0; f < kTargets; ++f) {
    double y;
    if (rep_ == Representation::Level) {
      y = f < 4 ? std::log(physical[f]) : std::log1p(physical[f]);
    } else {
      y = f < 4 ? std::log(physical[f] / a.close) : std::log1p(physical[f] / a.volume_level);
    }
    out[f] = (y - stats_.mean[f]) / stats_.std[f];
  }
}

}  // namespace mt::data
