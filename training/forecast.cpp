#include "training/forecast.h"

#include <filesystem>

#include "base/error.h"
#include "cuda/nvtx.h"
#include "training/eval_series.h"
#include "training/evaluate.h"
#include "training/files.h"
#include "training/forecast_eval.h"

namespace mt::training {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

json candle_json(const double* v) {
  json j;
  const auto& names = forecast_feature_names();
  for (int f = 0; f < data::kTargets; ++f) j[names[f]] = v[f];
  return j;
}

// The last `window` rows must be one gap-free run that ends at the file's last row.
void check_latest_minutes(const data::Candles& rows, const std::vector<data::Segment>& segments,
                          int64_t window, const std::vector<std::string>& paths) {
  const int64_t n = static_cast<int64_t>(rows.size());
  CHECK(n >= window,
        "forecast: {} holds {} minutes after cleaning; the model reads the last {} (the run's "
        "data.window)",
        fmt::join(paths, ", "), n, window);
  const data::Segment& last = segments.back();
  CHECK(last.length() >= window,
        "forecast: the last {} minutes of {} are not consecutive: a gap after {} leaves only {} "
        "minutes since (the model reads {} consecutive minutes ending at the last row)",
        window, fmt::join(paths, ", "),
        data::format_utc(rows[static_cast<size_t>(last.begin - 1)].ts), last.length(), window);
}

}  // namespace

Forecast forecast_next(const ForecastOptions& o) {
  cuda::NvtxRange range("forecast");
  CHECK(!o.csv.empty(), "forecast: no CSV file to read the latest minutes from");
  const json config =
      run_schema().resolve(read_json_file((fs::path(o.run_dir) / "config.json").string()), {});
  TrainerOptions opts = TrainerOptions::from_config(config);
  if (!o.device.empty()) opts.device = o.device;
  const Device device = Device::parse(opts.device);
  const data::Representation rep = data::parse_representation(opts.representation);
  // The checkpoint first: a run that stopped before its first one is told so, as evaluate does.
  Forecast out;
  std::unique_ptr<BTCTransformer> model =
      load_run_model(o.run_dir, o.checkpoint, device, &out.checkpoint);
  const Normalization norm = read_normalization(o.run_dir);
  CHECK(norm.representation == rep,
        "forecast: '{}' was trained on the {} representation but its normalization.json is for {}",
        o.run_dir, data::representation_name(rep), data::representation_name(norm.representation));
  const bool delta = config.at("model").at("target") == "delta";
  const int64_t T = opts.window;

  data::ReadReport report;
  data::Candles rows = data::read_candles(o.csv, o.read, &report);
  data::CleanReport clean;
  data::clean_candles(rows, data::CleanOptions{}, &clean);
  CHECK(!rows.empty(), "forecast: no rows in {} ({})", fmt::join(o.csv, ", "), report.summary());
  check_latest_minutes(rows, clean.segments, T, o.csv);
  EvalSeries es = eval_series_from_candles(std::move(rows), clean.segments, rep, norm.stats);
  es.window = T;
  const int64_t last = es.size() - 1;
  es.starts = {last - T + 1};

  std::vector<double> p;
  {
    NoGradGuard no_grad;
    p = (*model)(Var(es.window_inputs(0, 1, device))).value().to_vector<double>();  // [1, T, 5]
  }
  const data::TargetSpace space(rep, data::target_stats(rep, es.stats));
  const Blend blend = read_blend(o.run_dir);
  double rule[data::kTargets];
  es.rule_z(space, last, rule);
  const int64_t F = es.columns.size(1);
  for (int f = 0; f < data::kTargets; ++f) {
    double z = p[static_cast<size_t>((T - 1) * data::kTargets + f)];
    if (delta) z += es.columns.data<float>()[last * F + f];
    out.model_z[f] = rule[f] + blend.weight[f] * (z - rule[f]);
    out.last[f] = es.rows[static_cast<size_t>(last)].v[f];
    out.persistence[f] = out.last[f];
    out.naive_rule[f] = es.naive_rule[static_cast<size_t>(last * data::kTargets + f)];
  }
  space.to_physical(out.model_z, es.anchor(last), out.model);
  out.last_ts = es.rows[static_cast<size_t>(last)].ts;
  out.ts = out.last_ts + 60;
  out.window = T;
  out.representation = data::representation_name(rep);
  return out;
}

json Forecast::to_json() const {
  return json{{"for_minute_utc", data::format_utc(ts)},
              {"for_minute_ts", ts},
              {"last_minute_utc", data::format_utc(last_ts)},
              {"last_minute_ts", last_ts},
              {"last", candle_json(last)},
              {"model", candle_json(model)},
              {"persistence", candle_json(persistence)},
              {"naive_rule", candle_json(naive_rule)},
              {"window", window},
              {"representation", representation},
              {"checkpoint", checkpoint}};
}

std::string Forecast::table() const {
  std::string s = fmt::format("forecast for the minute {} (after the last row, {})\n",
                              data::format_utc(ts), data::format_utc(last_ts));
  s += fmt::format("{:<12}{:>14}{:>14}{:>14}{:>14}{:>14}\n", "", "open", "high", "low", "close",
                   "volume");
  auto row = [&](const char* name, const double* v) {
    s += fmt::format("{:<12}{:>14.2f}{:>14.2f}{:>14.2f}{:>14.2f}{:>14.4f}\n", name, v[0], v[1],
                     v[2], v[3], v[4]);
  };
  row("model", model);
  row("persistence", persistence);
  row("naive rule", naive_rule);
  s += fmt::format("(USD; volume in BTC. {} representation, {} minutes read, {})\n", representation,
                   window, checkpoint);
  return s;
}

}  // namespace mt::training
