// Forecast metrics against hand-computed values, the evaluator's model-vs-persistence report,
// metrics.jsonl round trips and the gnuplot plots.
#include <cmath>
#include <filesystem>
#include <fstream>

#include "data/metrics.h"
#include "tests/test_util.h"
#include "training/files.h"
#include "training/forecast_eval.h"
#include "training/plots.h"
#include "training/progress.h"
#include "training/run_log.h"

using namespace mt;
using namespace mt::training;
using nlohmann::json;
namespace fs = std::filesystem;

TEST_SUITE("train") {
  TEST_CASE("metrics: MSE, RMSE, MAE, MAPE and R2 by hand") {
    data::ForecastAccumulator acc(2);
    // feature 0: p = [1, 2, 3], t = [2, 2, 5]: errors -1, 0, -2
    // feature 1: p = [0, 0, 0], t = [1, -1, 0]: MAPE's |t| floor makes the last term 0 / 1e-8
    acc.add({1, 0, 2, 0, 3, 0}, {2, 1, 2, -1, 5, 0});
    const data::ForecastMetrics m = acc.feature(0);
    CHECK(m.count == 3);
    CHECK(m.mse == doctest::Approx(5.0 / 3).epsilon(1e-15));
    CHECK(m.rmse == doctest::Approx(std::sqrt(5.0 / 3)).epsilon(1e-15));
    CHECK(m.mae == doctest::Approx(1.0).epsilon(1e-15));
    CHECK(m.mape == doctest::Approx(100.0 * (0.5 + 0 + 0.4) / 3).epsilon(1e-15));
    CHECK(m.r2 == doctest::Approx(1.0 - (5.0 / 3) / 2.0).epsilon(1e-15));  // SS_tot/n = 6/3
    const data::ForecastMetrics m1 = acc.feature(1);
    CHECK(m1.mse == doctest::Approx(2.0 / 3).epsilon(1e-15));
    CHECK(m1.mape == doctest::Approx(100.0 * 2 / 3).epsilon(1e-15));
    CHECK(m1.r2 == doctest::Approx(0.0).epsilon(1e-15));  // predicting the mean (0)
    const data::ForecastMetrics avg = acc.average();
    CHECK(avg.mse == doctest::Approx((5.0 / 3 + 2.0 / 3) / 2).epsilon(1e-15));
    // A zero target with a non-zero error: the 1e-8 floor, not a division by zero.
    data::ForecastAccumulator z(1);
    z.add({0.5}, {0.0});
    CHECK(z.feature(0).mape == doctest::Approx(100.0 * 0.5 / 1e-8));
    CHECK(std::isfinite(z.feature(0).mape));
    CHECK_THROWS_WITH_TEXT(acc.add({1, 2, 3}, {1, 2, 3}),
                           "must hold the same whole number of rows");
    CHECK(data::skill(1.0, 4.0) == 0.75);
    CHECK(data::skill(4.0, 2.0) == -1.0);
  }

  TEST_CASE("metrics: directional accuracy leaves flat minutes out") {
    data::DirectionAccumulator d;
    d.add(10, 11, 12);  // up, up: right
    d.add(10, 9, 12);   // down, up: wrong
    d.add(10, 9, 8);    // down, down: right
    d.add(10, 10, 9);   // no predicted move, actual down: wrong
    d.add(10, 11, 10);  // actual flat: not counted
    CHECK(d.count() == 4);
    CHECK(d.flat() == 1);
    CHECK(d.predicted_no_move() == 1);  // the fourth
    CHECK(d.accuracy() == doctest::Approx(0.5));
  }

  TEST_CASE("evaluator: the model against persistence and the naive rule, in both spaces") {
    // Level space with identity statistics: z = log(price), log1p(volume). One forecast whose
    // actual candle is e^2 in every price (e^2 - 1 BTC of volume, z = 2 too); the model says
    // z = 1.8, persistence (this minute) z = 1 (volume 1.9), the naive rule z = 1.5 (volume 1).
    const data::TargetSpace space(data::Representation::Level, data::FeatureStats(5));
    ForecastEvaluator ev(space);
    const double e = std::exp(1.0);
    const double actual[5] = {e * e, e * e, e * e, e * e, e * e - 1};
    const double current[5] = {e, e, e, e, std::expm1(1.9)};
    const double rule[5] = {std::exp(1.5), std::exp(1.5), std::exp(1.5), std::exp(1.5),
                            std::expm1(1.0)};
    const double model_z[5] = {1.8, 1.8, 1.8, 1.8, 1.8};
    ev.add(model_z, actual, current, rule, data::TargetAnchor{});
    ev.end_window();
    const json r = ev.report();
    CHECK(r["windows"] == 1);
    CHECK(r["forecasts"] == 1);
    // open, z-space: model (1.8 - 2)^2 = 0.04, persistence 1, naive rule 0.25: the rule is the
    // best baseline and the skill against it 1 - 0.04 / 0.25 = 0.84.
    CHECK(r["z"]["model"]["open"]["mse"].get<double>() == doctest::Approx(0.04).epsilon(1e-12));
    CHECK(r["z"]["persistence"]["open"]["mse"].get<double>() == doctest::Approx(1.0));
    CHECK(r["z"]["naive_rule"]["open"]["mse"].get<double>() == doctest::Approx(0.25));
    CHECK(r["z"]["best_baseline"]["open"] == "naive_rule");
    CHECK(r["z"]["skill"]["open"]["mse"].get<double>() == doctest::Approx(0.96));
    CHECK(r["z"]["skill"]["open"]["mse_vs_naive_rule"].get<double>() == doctest::Approx(0.84));
    CHECK(r["z"]["skill"]["open"]["mse_vs_best"].get<double>() == doctest::Approx(0.84));
    // volume: persistence (z 1.9, MSE 0.01) beats the rule (MSE 1): the model loses to the best.
    CHECK(r["z"]["best_baseline"]["volume"] == "persistence");
    CHECK(r["z"]["skill"]["volume"]["mse_vs_best"].get<double>() ==
          doctest::Approx(1 - 0.04 / 0.01));
    // Prices: the model's e^1.8 against e^2 USD.
    const double d = std::exp(1.8) - e * e;
    CHECK(r["price"]["model"]["close"]["mse"].get<double>() == doctest::Approx(d * d));
    CHECK(r["price"]["persistence"]["close"]["mse"].get<double>() ==
          doctest::Approx((e - e * e) * (e - e * e)));
    CHECK(r["price"]["model"]["volume"]["mse"].get<double>() ==
          doctest::Approx((std::expm1(1.8) - (e * e - 1)) * (std::expm1(1.8) - (e * e - 1))));
    // The predicted close moves up from e, as the actual one does.
    CHECK(r["directional_accuracy"]["accuracy"].get<double>() == doctest::Approx(1.0));
    CHECK(r["directional_accuracy"]["counted"] == 1);
    CHECK(!r["z"]["model"].contains("mean"));  // no mean over features: it hides who wins
    const std::string md = ev.markdown("test");
    CHECK(md.find("| open | 0.2 |") != std::string::npos);
    CHECK(md.find("| naive_rule | +0.9600 | +0.8400 | +0.8400 |") != std::string::npos);
    CHECK(md.find("100.00 % of 1 moves") != std::string::npos);
    CHECK(r["directional_accuracy"]["predicted_no_move"] == 0);
    const std::vector<std::string> lines = ev.summary_lines();
    REQUIRE(lines.size() == 5);
    CHECK(lines[4].find("volume RMSE model") == 0);
    CHECK(lines[4].find("BTC") != std::string::npos);
  }

  TEST_CASE("run log: append, read back, truncate after a step") {
    const fs::path dir = fs::temp_directory_path() / "mt_test_runlog";
    fs::remove_all(dir);
    make_dirs(dir.string());
    RunLog log((dir / "metrics.jsonl").string());
    for (int s = 1; s <= 5; ++s) log.append({{"kind", "train"}, {"step", s}, {"loss", 1.0 / s}});
    log.append({{"kind", "epoch"}, {"step", 5}, {"val_loss", 0.3}, {"epoch", 0}});
    CHECK(read_run_log(log.path()).size() == 6);
    log.truncate_after(3);
    const auto kept = read_run_log(log.path());
    REQUIRE(kept.size() == 3);
    CHECK(kept[2]["step"] == 3);
    CHECK(kept[2]["loss"].get<double>() == 1.0 / 3);  // doubles round-trip exactly
    // A torn last line (a run killed mid-write) is dropped; a torn line before it is an error.
    { std::ofstream(log.path(), std::ios::app) << "{\"kind\":\"tr"; }
    CHECK(read_run_log(log.path()).size() == 3);
    { std::ofstream(log.path(), std::ios::app) << "\n{\"kind\":\"train\",\"step\":4}\n"; }
    CHECK_THROWS_WITH_TEXT(read_run_log(log.path()), "metrics.jsonl:4: not a JSON object");
    fs::remove_all(dir);
  }

  TEST_CASE("progress: the bar and plain lines carry step, loss, lr, rate and ETA") {
    Progress bar(ProgressMode::Bar, 0, 3, 100, nullptr);
    const std::string line = bar.line(50, 0.0123, 5e-5, 81234, 10.0);
    CHECK(line.find("epoch 1/3 [############------------] 50/100") == 0);
    CHECK(line.find("loss 0.0123") != std::string::npos);
    CHECK(line.find("lr 5.00e-05") != std::string::npos);
    CHECK(line.find("81.2k tok/s") != std::string::npos);
    CHECK(line.find("ETA 0:10") != std::string::npos);  // 50 steps in 10 s, 50 to go
    Progress plain(ProgressMode::Plain, 1, 3, 10, nullptr);
    CHECK(plain.line(5, 1.5, 1e-3, 2.5e6, 5.0).find("epoch 2/3 5/10  loss 1.5") == 0);
    // A run that stops at step 150, half-way through epoch 2 of 10: the line counts toward it.
    Progress limited(ProgressMode::Bar, 1, 10, 100, nullptr);
    limited.set_step_limit(100, 150);
    const std::string l = limited.line(25, 0.5, 1e-3, 1000, 10.0);
    CHECK(l.find("epoch 2/10 [####################----] max_steps 125/150  loss 0.5") == 0);
    CHECK(l.find("ETA 0:10") != std::string::npos);  // 25 steps in 10 s, 25 to go
    CHECK(format_duration(3725) == "1:02:05");
    CHECK(format_duration(65) == "1:05");
    CHECK_THROWS_WITH_TEXT(parse_progress_mode("fancy"), "progress mode must be");
  }

  TEST_CASE("plots: loss and prediction charts as PNG and SVG") {
    if (!gnuplot_available()) {
      MESSAGE("gnuplot with pngcairo not installed: plot test skipped");
      return;
    }
    const fs::path dir = fs::temp_directory_path() / "mt_test_plots";
    fs::remove_all(dir);
    make_dirs(dir.string());
    RunLog log((dir / "metrics.jsonl").string());
    for (int s = 1; s <= 20; ++s) {
      log.append({{"kind", "train"}, {"epoch", s / 10}, {"step", s}, {"loss", 1.0 / s}});
      if (s % 10 == 0)
        log.append({{"kind", "epoch"}, {"epoch", s / 10 - 1}, {"step", s}, {"val_loss", 2.0 / s}});
    }
    std::string csv =
        "window,t,actual_open,actual_high,actual_low,actual_close,actual_volume,"
        "predicted_open,predicted_high,predicted_low,predicted_close,"
        "predicted_volume\n";
    for (int w = 0; w < 2; ++w) {
      for (int t = 1; t < 20; ++t) {
        csv += fmt::format("{},{},{},{},{},{},{},{},{},{},{},{}\n", w, t, 100 + t, 101 + t, 99 + t,
                           100 + t, 5, 100.5 + t, 101 + t, 99 + t, 100 + t, 4);
      }
    }
    write_file_atomic((dir / "predictions.csv").string(), csv);
    const PlotResult r = make_plots(dir.string());
    CHECK(r.notes.empty());
    CHECK(r.files.size() == 2 + 2 * 5 + 2);
    for (const std::string& f : r.files) {
      INFO(f);
      CHECK(fs::exists(f));
      CHECK(fs::file_size(f) > 1000);
    }
    fs::remove_all(dir);
  }
}
