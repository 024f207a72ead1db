#include "training/forecast_eval.h"

#include "base/error.h"

namespace mt::training {

using nlohmann::json;

namespace {

json metrics_json(const data::ForecastMetrics& m) {
  return json{{"mse", m.mse}, {"rmse", m.rmse}, {"mae", m.mae}, {"mape", m.mape}, {"r2", m.r2}};
}

json space_json(const std::vector<std::string>& names, const data::ForecastAccumulator& model,
                const data::ForecastAccumulator& persist) {
  json out{{"model", json::object()}, {"persistence", json::object()}, {"skill", json::object()}};
  auto put = [&](const std::string& name, const data::ForecastMetrics& m,
                 const data::ForecastMetrics& p) {
    out["model"][name] = metrics_json(m);
    out["persistence"][name] = metrics_json(p);
    out["skill"][name] =
        json{{"mse", data::skill(m.mse, p.mse)}, {"mae", data::skill(m.mae, p.mae)}};
  };
  for (int f = 0; f < model.features(); ++f) put(names[f], model.feature(f), persist.feature(f));
  put("mean", model.average(), persist.average());
  return out;
}

std::string space_table(const std::vector<std::string>& names, const data::ForecastAccumulator& m,
                        const data::ForecastAccumulator& p) {
  std::string s =
      "| feature | MSE | RMSE | MAE | MAPE % | R² | persistence RMSE | persistence MAE | "
      "persistence R² | skill (MSE) | skill (MAE) |\n"
      "|---|---|---|---|---|---|---|---|---|---|---|\n";
  auto row = [&](const std::string& name, const data::ForecastMetrics& a,
                 const data::ForecastMetrics& b) {
    s += fmt::format(
        "| {} | {:.4g} | {:.4g} | {:.4g} | {:.4g} | {:.5f} | {:.4g} | {:.4g} | {:.5f} "
        "| {:+.4f} | {:+.4f} |\n",
        name, a.mse, a.rmse, a.mae, a.mape, a.r2, b.rmse, b.mae, b.r2, data::skill(a.mse, b.mse),
        data::skill(a.mae, b.mae));
  };
  for (int f = 0; f < m.features(); ++f) row(names[f], m.feature(f), p.feature(f));
  row("**mean**", m.average(), p.average());
  return s;
}

}  // namespace

ForecastEvaluator::ForecastEvaluator(std::vector<std::string> feature_names,
                                     InverseTransform to_prices, int close_feature)
    : names_(std::move(feature_names)),
      to_prices_(std::move(to_prices)),
      close_(close_feature),
      z_model_(static_cast<int>(names_.size())),
      z_persist_(static_cast<int>(names_.size())),
      price_model_(static_cast<int>(names_.size())),
      price_persist_(static_cast<int>(names_.size())) {
  CHECK(close_ >= 0 && close_ < static_cast<int>(names_.size()),
        "ForecastEvaluator: close feature {} out of range for {} features", close_, names_.size());
  CHECK(to_prices_ != nullptr, "ForecastEvaluator: an inverse transform is required");
}

void ForecastEvaluator::add(const std::vector<double>& x, const std::vector<double>& p, int64_t B,
                            int64_t T) {
  const int64_t F = static_cast<int64_t>(names_.size());
  CHECK(T >= 2 && static_cast<int64_t>(x.size()) == B * T * F &&
            static_cast<int64_t>(p.size()) == B * (T - 1) * F,
        "ForecastEvaluator::add: expected x [{}, {}, {}] ({} values) and p [{}, {}, {}] ({} "
        "values), got {} and {}",
        B, T, F, B * T * F, B, T - 1, F, B * (T - 1) * F, x.size(), p.size());
  const int64_t n = T - 1;  // forecasts per window
  for (int64_t b = 0; b < B; ++b) {
    const double* xb = x.data() + b * T * F;
    std::vector<double> current(xb, xb + n * F);     // x[t], the persistence forecast
    std::vector<double> actual(xb + F, xb + T * F);  // x[t+1]
    std::vector<double> pred(p.begin() + b * n * F, p.begin() + (b + 1) * n * F);
    z_model_.add(pred, actual);
    z_persist_.add(current, actual);
    to_prices_(current, n);
    to_prices_(actual, n);
    to_prices_(pred, n);
    price_model_.add(pred, actual);
    price_persist_.add(current, actual);
    for (int64_t t = 0; t < n; ++t) {
      direction_.add(current[t * F + close_], pred[t * F + close_], actual[t * F + close_]);
    }
    ++windows_;
  }
}

json ForecastEvaluator::report() const {
  return json{{"windows", windows_},
              {"positions", z_model_.feature(0).count},
              {"features", names_},
              {"z", space_json(names_, z_model_, z_persist_)},
              {"price", space_json(names_, price_model_, price_persist_)},
              {"directional_accuracy",
               {{"feature", names_[close_]},
                {"accuracy", direction_.accuracy()},
                {"counted", direction_.count()},
                {"flat_excluded", direction_.flat()}}}};
}

std::string ForecastEvaluator::markdown(const std::string& title) const {
  std::string s = "# " + title + "\n\n";
  s += fmt::format(
      "{} windows, {} next-minute forecasts per feature. Persistence: next minute = "
      "this minute. Skill = 1 - model / persistence (positive beats persistence).\n\n",
      windows_, z_model_.feature(0).count);
  s += "## z-space (normalized features)\n\n" + space_table(names_, z_model_, z_persist_);
  s += "\n## Prices (USD; volume in BTC)\n\n" + space_table(names_, price_model_, price_persist_);
  s += fmt::format(
      "\n## Direction\n\nDirectional accuracy of the predicted {}: {:.2f} % of {} "
      "moves ({} unchanged minutes left out).\n",
      names_[close_], 100.0 * direction_.accuracy(), direction_.count(), direction_.flat());
  return s;
}

}  // namespace mt::training
