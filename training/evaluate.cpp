#include "training/evaluate.h"

#include <cstdio>
#include <filesystem>

#include "base/error.h"
#include "cuda/nvtx.h"
#include "training/files.h"
#include "training/forecast_eval.h"

namespace mt::training {

namespace fs = std::filesystem;
using nlohmann::json;

void write_normalization(const std::string& run_dir, const data::FeatureStats& stats) {
  json j{{"features", {"open", "high", "low", "close", "volume"}},
         {"transform", "log of prices, log1p of volume, then z = (x - mean) / std"},
         {"mean", std::vector<double>(stats.mean, stats.mean + data::kFeatures)},
         {"std", std::vector<double>(stats.std, stats.std + data::kFeatures)}};
  write_json_file((fs::path(run_dir) / "normalization.json").string(), j);
}

data::FeatureStats read_normalization(const std::string& run_dir) {
  const std::string path = (fs::path(run_dir) / "normalization.json").string();
  const json j = read_json_file(path);
  data::FeatureStats s;
  CHECK(j.contains("mean") && j.contains("std") && j["mean"].size() == data::kFeatures &&
            j["std"].size() == data::kFeatures,
        "'{}': expected 'mean' and 'std' with {} values each", path, data::kFeatures);
  for (int f = 0; f < data::kFeatures; ++f) {
    s.mean[f] = j["mean"][f].get<double>();
    s.std[f] = j["std"][f].get<double>();
  }
  return s;
}

namespace {

std::string pick_checkpoint(const std::string& run_dir, const std::string& which) {
  const std::string best = (fs::path(run_dir) / "checkpoints" / "best").string();
  const std::string last = (fs::path(run_dir) / "checkpoints" / "last").string();
  CHECK(which == "best" || which == "last", "checkpoint must be best or last, got '{}'", which);
  if (which == "best" && checkpoint_exists(best)) return best;
  CHECK(checkpoint_exists(last),
        "'{}' holds no checkpoint: its run stopped before the first one. Resume it (`make train "
        "RESUME={}` starts it over) or evaluate another run",
        run_dir, run_dir);
  return last;
}

// The first windows' actual and predicted prices, one row per forecast minute.
void append_predictions(std::string& csv, int64_t window_index, const std::vector<double>& x,
                        const std::vector<double>& p, int64_t b, int64_t T,
                        const InverseTransform& to_prices) {
  const int64_t F = data::kFeatures, n = T - 1;
  std::vector<double> actual(x.begin() + (b * T + 1) * F, x.begin() + (b + 1) * T * F);
  std::vector<double> pred(p.begin() + b * n * F, p.begin() + (b + 1) * n * F);
  to_prices(actual, n);
  to_prices(pred, n);
  for (int64_t t = 0; t < n; ++t) {
    csv += fmt::format("{},{}", window_index, t + 1);
    for (int64_t f = 0; f < F; ++f) csv += fmt::format(",{:.10g}", actual[t * F + f]);
    for (int64_t f = 0; f < F; ++f) csv += fmt::format(",{:.10g}", pred[t * F + f]);
    csv += "\n";
  }
}

// The test split scored must be the one of the data the run was trained on: data.dir may hold
// another dataset by now (metrics.md would then silently describe other data).
void check_same_data(const std::string& run_dir, const RunData& data) {
  const std::string path = (fs::path(run_dir) / "dataset.json").string();
  if (!path_exists(path)) return;  // a run from before dataset.json
  const std::string diff = dataset_difference(read_json_file(path), data.identity);
  CHECK(diff.empty(),
        "data.dir holds other data than run '{}' was trained on:\n{}\nPrepare the run's data "
        "again (its dataset.json names the files), or score other data with --data CSV",
        run_dir, diff);
}

}  // namespace

json evaluate_run(const EvalOptions& o, RunData* data) {
  cuda::NvtxRange range("evaluate");
  const json config =
      run_schema().resolve(read_json_file((fs::path(o.run_dir) / "config.json").string()), {});
  TrainerOptions opts = TrainerOptions::from_config(config);
  if (!o.device.empty()) opts.device = o.device;
  const Device device = Device::parse(opts.device);
  const std::string ck_dir = pick_checkpoint(o.run_dir, o.checkpoint);
  const Checkpoint ck = load_weights(ck_dir);

  const ModelConfig mc = ModelConfig::from_json(config.at("model"));
  Generator init(0);  // the initial values are overwritten by the checkpoint's
  BTCTransformer model(mc, init, kFloat32);
  model.load_state_dict(ck.model, /*strict=*/true);
  model.to(device);
  model.set_model_precision(parse_precision(opts.precision));
  model.eval();
  const bool delta = mc.target == "delta";

  // The data: the caller's, other CSV files under the run's normalization, or the test split.
  std::unique_ptr<RunData> owned;
  SplitLoader* loader = nullptr;
  data::FeatureStats stats;
  std::string out_dir = o.run_dir, source = "test split of " + opts.data_dir;
  if (!o.csv.empty()) {
    stats = read_normalization(o.run_dir);
    Series series = load_csv_series(o.csv, stats);
    std::vector<int64_t> starts = window_starts(series.segments, opts.window, opts.stride);
    CHECK(!starts.empty(), "{} holds no gap-free run of {} minutes", fmt::join(o.csv, ", "),
          opts.window);
    owned = std::make_unique<RunData>();
    owned->test = std::make_unique<ArrayLoader>(series, starts, opts.window, opts.batch_size, false,
                                                0, false, device);
    loader = owned->test.get();
    out_dir = (fs::path(o.run_dir) / ("eval-" + fs::path(o.csv[0]).stem().string())).string();
    source = fmt::format("{}", fmt::join(o.csv, ", "));
  } else if (data != nullptr) {
    loader = data->test.get();
    stats = data->stats;
  } else {
    owned = std::make_unique<RunData>(open_prepared_data(opts, device));
    check_same_data(o.run_dir, *owned);
    loader = owned->test.get();
    stats = owned->stats;
  }
  CHECK(loader->windows() > 0, "the {} has no window of {} minutes", source, opts.window);
  make_dirs(out_dir);

  const InverseTransform to_prices = [stats](std::vector<double>& rows, int64_t n) {
    for (int64_t i = 0; i < n; ++i) {
      for (int f = 0; f < data::kFeatures; ++f) {
        double& v = rows[static_cast<size_t>(i * data::kFeatures + f)];
        v = data::from_zscore(v, f, stats);
      }
    }
  };
  ForecastEvaluator eval({"open", "high", "low", "close", "volume"}, to_prices);
  std::string csv =
      "window,t,actual_open,actual_high,actual_low,actual_close,actual_volume,"
      "predicted_open,predicted_high,predicted_low,predicted_close,predicted_volume\n";
  NoGradGuard no_grad;
  loader->start_epoch(0);
  Tensor batch;
  while (loader->next(batch)) {
    const int64_t T = batch.size(1);
    int64_t B = batch.size(0);
    if (o.max_windows > 0) B = std::min(B, o.max_windows - eval.windows());
    if (B <= 0) break;
    const Tensor x_t = batch.narrow(0, 0, B);
    const Tensor out = model(Var(x_t)).value().narrow(1, 0, T - 1);
    const std::vector<double> x = x_t.to_vector<double>();
    std::vector<double> p = out.to_vector<double>();
    if (delta) {  // level[t+1] = x[t] + delta[t], in float64
      const int64_t F = data::kFeatures;
      for (int64_t b = 0; b < B; ++b) {
        for (int64_t i = 0; i < (T - 1) * F; ++i) p[(b * (T - 1)) * F + i] += x[b * T * F + i];
      }
    }
    for (int64_t b = 0; b < B && eval.windows() + b < o.plot_windows; ++b) {
      append_predictions(csv, eval.windows() + b, x, p, b, T, to_prices);
    }
    eval.add(x, p, B, T);
  }
  json report = eval.report();
  report["run"] = o.run_dir;
  report["checkpoint"] = ck_dir;
  report["step"] = ck.state.step;
  report["target"] = mc.target;
  report["data"] = source;
  report["window"] = opts.window;
  write_json_file((fs::path(out_dir) / "metrics.json").string(), report);
  write_file_atomic(
      (fs::path(out_dir) / "metrics.md").string(),
      eval.markdown(fmt::format("Forecast metrics: {} (target {}, {} at step {})", source,
                                mc.target, fs::path(ck_dir).filename().string(), ck.state.step)));
  write_file_atomic((fs::path(out_dir) / "predictions.csv").string(), csv);
  return report;
}

}  // namespace mt::training
