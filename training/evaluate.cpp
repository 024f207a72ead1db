#include "training/evaluate.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <map>

#include "base/error.h"
#include "cuda/nvtx.h"
#include "data/prepared.h"
#include "training/eval_series.h"
#include "training/files.h"
#include "training/forecast_eval.h"

namespace mt::training {

namespace fs = std::filesystem;
using nlohmann::json;

void write_normalization(const std::string& run_dir, data::Representation r,
                         const data::FeatureStats& stats) {
  std::vector<std::string> columns = data::input_names(r);
  for (const std::string& t : data::stored_target_names(r)) columns.push_back(t);
  json j{{"representation", data::representation_name(r)},
         {"columns", columns},
         {"transform", "z = (x - mean) / std per column (data/representation.h)"},
         {"mean", stats.mean},
         {"std", stats.std}};
  write_json_file((fs::path(run_dir) / "normalization.json").string(), j);
}

Normalization read_normalization(const std::string& run_dir) {
  const std::string path = (fs::path(run_dir) / "normalization.json").string();
  const json j = read_json_file(path);
  Normalization n;
  n.representation = data::parse_representation(j.value("representation", std::string("level")));
  const size_t columns = static_cast<size_t>(data::input_count(n.representation) +
                                             data::stored_target_count(n.representation));
  CHECK(j.contains("mean") && j.contains("std") && j["mean"].size() == columns &&
            j["std"].size() == columns,
        "'{}': expected 'mean' and 'std' with {} values each (the {} representation)", path,
        columns, data::representation_name(n.representation));
  n.stats = data::FeatureStats(0);
  n.stats.mean = j["mean"].get<std::vector<double>>();
  n.stats.std = j["std"].get<std::vector<double>>();
  return n;
}

std::unique_ptr<BTCTransformer> load_run_model(const std::string& run_dir, const std::string& which,
                                               Device device, std::string* checkpoint_dir,
                                               Checkpoint* checkpoint) {
  const json config =
      run_schema().resolve(read_json_file((fs::path(run_dir) / "config.json").string()), {});
  const TrainerOptions opts = TrainerOptions::from_config(config);
  const std::string best = (fs::path(run_dir) / "checkpoints" / "best").string();
  const std::string last = (fs::path(run_dir) / "checkpoints" / "last").string();
  CHECK(which == "best" || which == "last", "checkpoint must be best or last, got '{}'", which);
  std::string dir = last;
  if (which == "best" && checkpoint_exists(best)) dir = best;
  CHECK(checkpoint_exists(dir),
        "'{}' holds no checkpoint: its run stopped before the first one. Resume it (`make train "
        "RESUME={}` starts it over) or evaluate another run",
        run_dir, run_dir);
  Checkpoint ck = load_weights(dir);
  const ModelConfig mc = ModelConfig::from_json(config.at("model"));
  Generator init(0);  // the initial values are overwritten by the checkpoint's
  auto model = std::make_unique<BTCTransformer>(mc, init, kFloat32);
  model->load_state_dict(ck.model, /*strict=*/true);
  model->to(device);
  model->set_model_precision(parse_precision(opts.precision));
  model->eval();
  if (checkpoint_dir != nullptr) *checkpoint_dir = dir;
  if (checkpoint != nullptr) *checkpoint = std::move(ck);
  return model;
}

namespace {

// One row of predictions.csv: the window, the position, the actual and predicted candle.
void append_prediction(std::string& csv, int64_t window_index, int64_t t, const double* actual,
                       const double* predicted) {
  csv += fmt::format("{},{}", window_index, t + 1);
  for (int f = 0; f < data::kTargets; ++f) csv += fmt::format(",{:.10g}", actual[f]);
  for (int f = 0; f < data::kTargets; ++f) csv += fmt::format(",{:.10g}", predicted[f]);
  csv += "\n";
}

// What one forecast of a window brings: its window (index into es.starts), position t, row
// r = start + t, and the model's z-space prediction of row r + 1's targets.
using ForecastVisitor =
    std::function<void(int64_t window, int64_t t, int64_t r, const double* model_z)>;

// Runs the model over the first `max_windows` windows of `es` (0: all), `batch` at a time, and
// visits every forecast that has a target: positions 0 .. T-2 for level (the targets are the
// window's next rows; "delta" predictions are turned into levels), every position for scale_free.
void for_each_forecast(BTCTransformer& model, const EvalSeries& es, int64_t batch,
                       int64_t max_windows, Device device, bool delta,
                       const ForecastVisitor& visit) {
  NoGradGuard no_grad;
  const int64_t T = es.window, F = es.columns.size(1), K = data::kTargets;
  const int64_t positions = es.representation == data::Representation::Level ? T - 1 : T;
  int64_t total = static_cast<int64_t>(es.starts.size());
  if (max_windows > 0) total = std::min(total, max_windows);
  const float* columns = es.columns.data<float>();
  for (int64_t first = 0; first < total; first += batch) {
    const int64_t B = std::min(batch, total - first);
    const std::vector<double> p =
        model(Var(es.window_inputs(first, B, device))).value().to_vector<double>();
    for (int64_t b = 0; b < B; ++b) {
      const int64_t s = es.starts[static_cast<size_t>(first + b)];
      for (int64_t t = 0; t < positions; ++t) {
        double z[data::kTargets];
        for (int64_t f = 0; f < K; ++f) {
          z[f] = p[static_cast<size_t>((b * T + t) * K + f)];
          if (delta) z[f] += columns[(s + t) * F + f];  // level[t+1] = x[t] + delta
        }
        visit(first + b, t, s + t, z);
      }
    }
  }
}

bool model_target_is_delta(const std::string& run_dir) {
  const json config =
      run_schema().resolve(read_json_file((fs::path(run_dir) / "config.json").string()), {});
  return config.at("model").at("target") == "delta";
}

void check_representation(data::Representation rep, const EvalSeries& es) {
  CHECK(es.representation == rep,
        "the run was trained on the {} representation, but {} holds the {} "
        "representation: evaluate on data prepared with `prepare --representation {}`, or on CSV "
        "files (--data), which are turned into the run's representation",
        data::representation_name(rep), es.description,
        data::representation_name(es.representation), data::representation_name(rep));
}

// The test split scored must be the one of the data the run was trained on: data.dir may hold
// another dataset by now (metrics.md would then silently describe other data).
void check_same_data(const std::string& run_dir, const json& identity) {
  const std::string path = (fs::path(run_dir) / "dataset.json").string();
  if (!path_exists(path)) return;  // a run from before dataset.json
  const std::string diff = dataset_difference(read_json_file(path), identity);
  CHECK(diff.empty(),
        "data.dir holds other data than run '{}' was trained on:\n{}\nPrepare the run's data "
        "again (its dataset.json names the files), or score other data with --data CSV",
        run_dir, diff);
}

}  // namespace

namespace {

// Per UTC day of the validation rows and per target: the sums the blend's weight and its
// day-by-day gain need (d = model - rule, e = actual - rule, in z-space).
struct DaySums {
  double de[data::kTargets] = {0, 0, 0, 0, 0};
  double dd[data::kTargets] = {0, 0, 0, 0, 0};
};

// The t-statistic of the mean daily MSE gain of rule + w d over the rule alone:
// gain_day = sum over the day of e^2 - (e - w d)^2 = 2 w de - w^2 dd.
double daily_gain_t(const std::map<int64_t, DaySums>& days, int f, double w) {
  const double n = static_cast<double>(days.size());
  if (days.size() < 2 || w == 0) return 0;
  double sum = 0, sq = 0;
  for (const auto& [day, s] : days) {
    const double g = 2 * w * s.de[f] - w * w * s.dd[f];
    sum += g;
    sq += g * g;
  }
  const double mean = sum / n, var = (sq - n * mean * mean) / (n - 1);
  return var > 0 ? mean / std::sqrt(var / n) : 0;
}

}  // namespace

Blend fit_blend(const std::string& run_dir, const EvalSeries& es, Device device,
                int64_t batch_size) {
  std::unique_ptr<BTCTransformer> model = load_run_model(run_dir, "best", device, nullptr);
  const data::TargetSpace space(es.representation, data::target_stats(es.representation, es.stats));
  std::map<int64_t, DaySums> days;
  for_each_forecast(*model, es, batch_size, 0, device, model_target_is_delta(run_dir),
                    [&](int64_t, int64_t, int64_t r, const double* z) {
                      double rule[data::kTargets], actual[data::kTargets];
                      es.rule_z(space, r, rule);
                      space.to_z(es.rows[static_cast<size_t>(r + 1)].v, es.anchor(r), actual);
                      DaySums& day = days[es.rows[static_cast<size_t>(r)].ts / 86400];
                      for (int f = 0; f < data::kTargets; ++f) {
                        const double d = z[f] - rule[f];
                        day.de[f] += d * (actual[f] - rule[f]);
                        day.dd[f] += d * d;
                      }
                    });
  Blend blend;
  blend.fitted = true;
  json weights = json::object(), fit = json::object();
  for (int f = 0; f < data::kTargets; ++f) {
    double de = 0, dd = 0;
    for (const auto& [day, s] : days) {
      de += s.de[f];
      dd += s.dd[f];
    }
    const double w = std::min(1.0, std::max(0.0, dd > 0 ? de / dd : 0.0));
    const double t = daily_gain_t(days, f, w);
    // The network's part is kept only where it helped on most validation days, not on a few:
    // a mean daily gain under kBlendMinT standard errors leaves the naive rule alone.
    blend.weight[f] = t >= kBlendMinT ? w : 0.0;
    const std::string& name = forecast_feature_names()[f];
    weights[name] = blend.weight[f];
    fit[name] = {{"least_squares_weight", w}, {"daily_gain_t", t}};
  }
  write_json_file((fs::path(run_dir) / "blend.json").string(),
                  json{{"weights", weights},
                       {"fit", fit},
                       {"days", days.size()},
                       {"min_t", kBlendMinT},
                       {"fitted_on", es.description},
                       {"rule", "data/baselines.h"},
                       {"formula", "z = rule + w (model - rule), per target, z-space"}});
  return blend;
}

Blend read_blend(const std::string& run_dir) {
  Blend blend;
  const std::string path = (fs::path(run_dir) / "blend.json").string();
  if (!path_exists(path)) return blend;
  const json j = read_json_file(path);
  for (int f = 0; f < data::kTargets; ++f) {
    const double w = j.at("weights").at(forecast_feature_names()[f]).get<double>();
    CHECK(w >= 0 && w <= 1, "'{}': weight {} of {} is outside [0, 1]", path, w,
          forecast_feature_names()[f]);
    blend.weight[f] = w;
  }
  blend.fitted = true;
  return blend;
}

json evaluate_run(const EvalOptions& o, RunData* data) {
  cuda::NvtxRange range("evaluate");
  const json config =
      run_schema().resolve(read_json_file((fs::path(o.run_dir) / "config.json").string()), {});
  TrainerOptions opts = TrainerOptions::from_config(config);
  if (!o.device.empty()) opts.device = o.device;
  const Device device = Device::parse(opts.device);
  std::string ck_dir;
  Checkpoint ck;
  std::unique_ptr<BTCTransformer> model =
      load_run_model(o.run_dir, o.checkpoint, device, &ck_dir, &ck);
  const ModelConfig mc = ModelConfig::from_json(config.at("model"));
  const bool delta = mc.target == "delta";
  const data::Representation rep = data::parse_representation(opts.representation);

  // The rows: other CSV files under the run's normalization, the caller's, or the test split.
  EvalSeries owned;
  const EvalSeries* es = &owned;
  std::string out_dir = o.run_dir;
  if (!o.csv.empty()) {
    const Normalization norm = read_normalization(o.run_dir);
    CHECK(norm.representation == rep,
          "'{}' was trained on the {} representation but its normalization.json is "
          "for {}",
          o.run_dir, data::representation_name(rep),
          data::representation_name(norm.representation));
    owned = eval_series_from_csv(o.csv, o.read, rep, norm.stats, opts.window, opts.stride);
    out_dir = (fs::path(o.run_dir) / ("eval-" + fs::path(o.csv[0]).stem().string())).string();
  } else if (data != nullptr && data->test_eval != nullptr) {
    es = data->test_eval.get();
  } else {
    owned = eval_series_from_prepared(opts.data_dir, data::Split::Test, opts.window, opts.stride);
    check_representation(rep, owned);
    check_same_data(o.run_dir, prepared_dataset_identity(data::read_manifest(opts.data_dir)));
  }
  check_representation(rep, *es);
  CHECK(!es->starts.empty(), "the {} has no gap-free window of {} minutes", es->description,
        opts.window);
  if (!o.out_dir.empty()) out_dir = o.out_dir;
  make_dirs(out_dir);

  const data::TargetSpace space(rep, data::target_stats(rep, es->stats));
  const Blend blend = read_blend(o.run_dir);
  ForecastEvaluator eval(space);
  std::string csv =
      "window,t,actual_open,actual_high,actual_low,actual_close,actual_volume,"
      "predicted_open,predicted_high,predicted_low,predicted_close,predicted_volume\n";
  int64_t last_window = -1;
  for_each_forecast(*model, *es, opts.batch_size, o.max_windows, device, delta,
                    [&](int64_t window, int64_t t, int64_t r, const double* model_z) {
                      if (window != last_window && last_window >= 0) eval.end_window();
                      last_window = window;
                      double z[data::kTargets], rule[data::kTargets];
                      es->rule_z(space, r, rule);
                      for (int f = 0; f < data::kTargets; ++f) {
                        z[f] = rule[f] + blend.weight[f] * (model_z[f] - rule[f]);
                      }
                      const data::TargetAnchor a = es->anchor(r);
                      const double* actual = es->rows[static_cast<size_t>(r + 1)].v;
                      eval.add(z, actual, es->rows[static_cast<size_t>(r)].v,
                               es->naive_rule.data() + static_cast<size_t>(r) * data::kTargets, a);
                      if (window < o.plot_windows) {
                        double predicted[data::kTargets];
                        space.to_physical(z, a, predicted);
                        append_prediction(csv, window, t, actual, predicted);
                      }
                    });
  if (last_window >= 0) eval.end_window();
  json report = eval.report();
  report["run"] = o.run_dir;
  report["checkpoint"] = ck_dir;
  report["step"] = ck.state.step;
  report["target"] = mc.target;
  report["data"] = es->description;
  report["window"] = opts.window;
  report["summary"] = eval.summary_lines();
  json weights = json::object();
  for (int f = 0; f < data::kTargets; ++f) {
    weights[forecast_feature_names()[f]] = blend.weight[f];
  }
  report["blend"] = {{"fitted", blend.fitted}, {"weights", weights}};
  write_json_file((fs::path(out_dir) / "metrics.json").string(), report);
  std::string md = eval.markdown(
      fmt::format("Forecast metrics: {} ({} representation, target {}, {} at step {})",
                  es->description, data::representation_name(rep), mc.target,
                  fs::path(ck_dir).filename().string(), ck.state.step));
  md +=
      blend.fitted
          ? fmt::format(
                "\n## Blend\n\nThe forecast is the naive rule + w (network - naive rule) "
                "per target in z-space, w fitted on the validation split "
                "(blend.json): open {:.4f}, high {:.4f}, low {:.4f}, close {:.4f}, "
                "volume {:.4f}.\n",
                blend.weight[0], blend.weight[1], blend.weight[2], blend.weight[3], blend.weight[4])
          : "\n## Blend\n\nNone (no blend.json): the network's forecast as it is.\n";
  write_file_atomic((fs::path(out_dir) / "metrics.md").string(), md);
  write_file_atomic((fs::path(out_dir) / "predictions.csv").string(), csv);
  report["out_dir"] = out_dir;
  return report;
}

}  // namespace mt::training
