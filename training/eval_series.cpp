#include "training/eval_series.h"

#include <cmath>

#include "base/error.h"
#include "data/baselines.h"
#include "data/prepared.h"

namespace mt::training {

using nlohmann::json;

namespace {

int64_t columns_of(data::Representation r) {
  return data::input_count(r) + data::stored_target_count(r);
}

}  // namespace

data::TargetAnchor EvalSeries::anchor(int64_t t) const {
  const size_t i = static_cast<size_t>(t);
  return {rows[i].v[3], volume_level.empty() ? 0.0 : volume_level[i]};
}

void EvalSeries::compute_baselines() {
  // The level representation anchors nothing (and the tests' in-memory level series have
  // made-up volumes a level could not be taken of).
  if (representation == data::Representation::ScaleFree) {
    volume_level = data::volume_levels(rows, segments, data::kVolumeLevelMinutes);
  }
  naive_rule = data::naive_rule_forecasts(rows, segments);
}

void EvalSeries::rule_z(const data::TargetSpace& space, int64_t r, double* out) const {
  space.to_z(naive_rule.data() + static_cast<size_t>(r) * data::kTargets, anchor(r), out);
}

Tensor EvalSeries::window_inputs(int64_t first, int64_t count, Device device) const {
  const int64_t T = window, F = columns.size(1), n_in = data::input_count(representation);
  CHECK(first >= 0 && count >= 1 && first + count <= static_cast<int64_t>(starts.size()),
        "window_inputs: windows [{}, {}) of {}", first, first + count, starts.size());
  Tensor x = Tensor::empty({count, T, n_in}, kFloat32);
  const float* src = columns.data<float>();
  float* dst = x.data<float>();
  for (int64_t b = 0; b < count; ++b) {
    const int64_t s = starts[static_cast<size_t>(first + b)];
    CHECK(s >= 0 && s + T <= size(), "window_inputs: window [{}, {}) of {} rows", s, s + T, size());
    for (int64_t t = 0; t < T; ++t) {
      for (int64_t c = 0; c < n_in; ++c) dst[(b * T + t) * n_in + c] = src[(s + t) * F + c];
    }
  }
  return x.to(device);
}

EvalSeries eval_series_from_prepared(const std::string& dir, data::Split split, int64_t window,
                                     int64_t stride) {
  const json manifest = data::read_manifest(dir);
  EvalSeries e;
  e.representation = data::representation_of(manifest);
  e.stats = data::stats_from_manifest(manifest);
  e.window = window;
  const int64_t F = columns_of(e.representation);
  const std::vector<int64_t> shape = data::prepared_shape(manifest, "series");
  CHECK(shape.size() == 2 && shape[1] == F, "'{}': series shape {} is not [N, {}]", dir,
        shape_str(shape), F);
  const int64_t n = shape[0];
  e.columns =
      Tensor::from_vector(data::read_prepared_array<float>(dir, manifest, "series"), {n, F});
  const std::vector<double> candles = data::read_prepared_array<double>(dir, manifest, "candles");
  const std::vector<int64_t> ts = data::read_prepared_array<int64_t>(dir, manifest, "timestamps");
  CHECK(static_cast<int64_t>(candles.size()) == n * data::kFeatures &&
            static_cast<int64_t>(ts.size()) == n,
        "'{}': series, candles and timestamps disagree on the number of rows", dir);
  e.rows.resize(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    data::Candle& c = e.rows[static_cast<size_t>(i)];
    c.ts = ts[static_cast<size_t>(i)];
    for (int f = 0; f < data::kFeatures; ++f) c.v[f] = candles[static_cast<size_t>(i * 5 + f)];
  }
  e.segments = data::segments_of(ts, manifest.at("gaps").value("max_gap_minutes", int64_t{1}));
  const std::string name = data::split_name(split);
  if (manifest.at("window").get<int64_t>() == window &&
      manifest.at("stride").get<int64_t>() == stride) {
    e.starts = data::read_prepared_array<int64_t>(dir, manifest, std::string("windows_") + name);
  } else {
    const json& sp = manifest.at("split");
    CHECK(sp.contains("rows"),
          "'{}' was prepared in '{}' mode with windows of {} every {}: windows of {} every {} "
          "can only be re-cut from a chronological split",
          dir, sp.value("mode", "?"), manifest.at("window").get<int64_t>(),
          manifest.at("stride").get<int64_t>(), window, stride);
    const json& r = sp.at("rows").at(name);
    e.starts = window_starts_in(e.segments, {r.at(0).get<int64_t>(), r.at(1).get<int64_t>()},
                                window, stride, data::target_lookahead(e.representation));
  }
  e.description = fmt::format("{} split of {}", name, dir);
  e.compute_baselines();
  return e;
}

EvalSeries eval_series_from_candles(data::Candles rows, std::vector<data::Segment> segments,
                                    data::Representation r, const data::FeatureStats& stats) {
  const int64_t F = columns_of(r);
  CHECK(stats.columns() == F, "{} column statistics for the {} representation's {} columns",
        stats.columns(), data::representation_name(r), F);
  EvalSeries e;
  e.representation = r;
  e.stats = stats;
  const std::vector<double> table = data::raw_columns(r, rows, segments);
  e.columns = Tensor::from_vector(data::standardize(table, static_cast<int>(F), stats),
                                  {static_cast<int64_t>(rows.size()), F});
  e.rows = std::move(rows);
  e.segments = std::move(segments);
  e.compute_baselines();
  return e;
}

EvalSeries eval_series_from_csv(const std::vector<std::string>& paths,
                                const data::ReadOptions& read, data::Representation r,
                                const data::FeatureStats& stats, int64_t window, int64_t stride) {
  data::ReadReport report;
  data::Candles rows = data::read_candles(paths, read, &report);
  data::CleanReport clean;
  data::clean_candles(rows, data::CleanOptions{}, &clean);
  CHECK(!rows.empty(), "no rows left in {} after reading and cleaning ({})", fmt::join(paths, ", "),
        report.summary());
  EvalSeries e = eval_series_from_candles(std::move(rows), clean.segments, r, stats);
  e.window = window;
  e.starts = window_starts_in(e.segments, {0, e.size()}, window, stride, data::target_lookahead(r));
  e.description = fmt::format("{}", fmt::join(paths, ", "));
  return e;
}

EvalSeries eval_series_from_levels(const Series& series, std::vector<int64_t> starts,
                                   int64_t window, const data::FeatureStats& stats) {
  CHECK(series.features == data::kFeatures && stats.columns() == data::kFeatures,
        "eval_series_from_levels: expected a level series of {} columns, got {} (stats {})",
        data::kFeatures, series.features, stats.columns());
  EvalSeries e;
  e.representation = data::Representation::Level;
  e.stats = stats;
  e.window = window;
  const int64_t n = series.rows();
  e.columns = Tensor::from_vector(*series.values, {n, data::kFeatures});
  e.rows.resize(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    data::Candle& c = e.rows[static_cast<size_t>(i)];
    c.ts = 60 * i;
    for (int f = 0; f < data::kFeatures; ++f) {
      c.v[f] = data::from_zscore((*series.values)[static_cast<size_t>(i * 5 + f)], f, stats);
    }
  }
  e.segments = series.segments.empty() ? std::vector<data::Segment>{{0, n}} : series.segments;
  e.starts = std::move(starts);
  e.description = "in-memory level series";
  e.compute_baselines();
  return e;
}

}  // namespace mt::training
