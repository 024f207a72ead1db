#include "training/forecast_eval.h"

#include "base/error.h"

namespace mt::training {

using nlohmann::json;

namespace {

constexpr const char* kWho[] = {"model", "persistence", "naive_rule"};

json metrics_json(const data::ForecastMetrics& m) {
  return json{{"mse", m.mse}, {"rmse", m.rmse}, {"mae", m.mae}, {"mape", m.mape}, {"r2", m.r2}};
}

// The baseline with the lower MSE of a feature: 1 (persistence) or 2 (naive rule).
int best_baseline(const std::vector<data::ForecastAccumulator>& acc, int f) {
  return acc[2].feature(f).mse < acc[1].feature(f).mse ? 2 : 1;
}

json space_json(const std::vector<data::ForecastAccumulator>& acc) {
  json out;
  const auto& names = forecast_feature_names();
  for (int who = 0; who < 3; ++who) {
    for (int f = 0; f < data::kTargets; ++f) {
      out[kWho[who]][names[f]] = metrics_json(acc[who].feature(f));
    }
  }
  for (int f = 0; f < data::kTargets; ++f) {
    const data::ForecastMetrics m = acc[0].feature(f), p = acc[1].feature(f), r = acc[2].feature(f);
    const int best = best_baseline(acc, f);
    out["best_baseline"][names[f]] = kWho[best];
    out["skill"][names[f]] = json{{"mse", data::skill(m.mse, p.mse)},
                                  {"mae", data::skill(m.mae, p.mae)},
                                  {"mse_vs_naive_rule", data::skill(m.mse, r.mse)},
                                  {"mse_vs_best", data::skill(m.mse, acc[best].feature(f).mse)}};
  }
  return out;
}

std::string space_table(const std::vector<data::ForecastAccumulator>& acc) {
  std::string s =
      "| feature | model RMSE | MAE | R² | persistence RMSE | naive rule RMSE | best baseline | "
      "skill vs persistence | skill vs naive rule | skill vs best |\n"
      "|---|---|---|---|---|---|---|---|---|---|\n";
  const auto& names = forecast_feature_names();
  for (int f = 0; f < data::kTargets; ++f) {
    const data::ForecastMetrics m = acc[0].feature(f), p = acc[1].feature(f), r = acc[2].feature(f);
    const int best = best_baseline(acc, f);
    s += fmt::format(
        "| {} | {:.5g} | {:.5g} | {:.5f} | {:.5g} | {:.5g} | {} | {:+.4f} | {:+.4f} | {:+.4f} |\n",
        names[f], m.rmse, m.mae, m.r2, p.rmse, r.rmse, kWho[best], data::skill(m.mse, p.mse),
        data::skill(m.mse, r.mse), data::skill(m.mse, acc[best].feature(f).mse));
  }
  return s;
}

}  // namespace

const std::vector<std::string>& forecast_feature_names() {
  static const std::vector<std::string> names = {"open", "high", "low", "close", "volume"};
  return names;
}

ForecastEvaluator::ForecastEvaluator(data::TargetSpace space)
    : space_(std::move(space)),
      z_(3, data::ForecastAccumulator(data::kTargets)),
      price_(3, data::ForecastAccumulator(data::kTargets)) {}

void ForecastEvaluator::add(const double* model_z, const double* actual, const double* current,
                            const double* rule, const data::TargetAnchor& anchor) {
  constexpr int F = data::kTargets;
  double z[3][F], actual_z[F], model_price[F];
  for (int f = 0; f < F; ++f) z[kModel][f] = model_z[f];
  space_.to_z(current, anchor, z[kPersistence]);
  space_.to_z(rule, anchor, z[kRule]);
  space_.to_z(actual, anchor, actual_z);
  space_.to_physical(model_z, anchor, model_price);
  const double* price[3] = {model_price, current, rule};
  for (int who = 0; who < 3; ++who) {
    z_[who].add(z[who], actual_z, 1);
    price_[who].add(price[who], actual, 1);
  }
  constexpr int kClose = 3;
  direction_.add(current[kClose], model_price[kClose], actual[kClose]);
}

json ForecastEvaluator::report() const {
  return json{{"windows", windows_},
              {"forecasts", forecasts()},
              {"features", forecast_feature_names()},
              {"representation", data::representation_name(space_.representation())},
              {"z", space_json(z_)},
              {"price", space_json(price_)},
              {"directional_accuracy",
               {{"feature", "close"},
                {"accuracy", direction_.accuracy()},
                {"counted", direction_.count()},
                {"flat_excluded", direction_.flat()},
                {"predicted_no_move", direction_.predicted_no_move()}}}};
}

std::string ForecastEvaluator::markdown(const std::string& title) const {
  std::string s = "# " + title + "\n\n";
  s += fmt::format(
      "{} windows, {} next-minute forecasts per feature ({} representation). Baselines: "
      "persistence (next minute = this minute) and the naive rule (open = this close; high, low "
      "= this close times the recent high/close, low/close ratio; close = this close; volume = "
      "recent volume; data/baselines.h). Skill = 1 - MSE_model / MSE_baseline: positive beats "
      "the baseline; \"best\" is the baseline with the lower MSE.\n\n",
      windows_, forecasts(), data::representation_name(space_.representation()));
  s += "## z-space (the model's standardized targets)\n\n" + space_table(z_);
  s += "\n## Prices (USD; volume in BTC)\n\n" + space_table(price_);
  s += fmt::format(
      "\n## Direction\n\nDirectional accuracy of the predicted close: {:.2f} % of {} moves ({} "
      "unchanged minutes left out; the forecast predicted no move for {} of them, which count "
      "as wrong).\n",
      100.0 * direction_.accuracy(), direction_.count(), direction_.flat(),
      direction_.predicted_no_move());
  return s;
}

std::vector<std::string> ForecastEvaluator::summary_lines() const {
  std::vector<std::string> lines;
  const auto& names = forecast_feature_names();
  for (int f = 0; f < data::kTargets; ++f) {
    const int best = best_baseline(price_, f);
    const char* unit = f < 4 ? "USD" : "BTC";
    lines.push_back(fmt::format(
        "{:<6} RMSE model {:.6g} {}, persistence {:.6g}, naive rule {:.6g}; skill vs best "
        "({}) {:+.4f} in {}, {:+.4f} in z-space",
        names[f], price_[0].feature(f).rmse, unit, price_[1].feature(f).rmse,
        price_[2].feature(f).rmse, kWho[best],
        data::skill(price_[0].feature(f).mse, price_[best].feature(f).mse), unit,
        data::skill(z_[0].feature(f).mse, z_[best_baseline(z_, f)].feature(f).mse)));
  }
  return lines;
}

}  // namespace mt::training
