// The scale-free forecaster end to end on a synthetic market: prepare, train, blend with the
// naive rule, evaluate; the model's causality and scale-freeness; `forecast` against `evaluate`
// for the same minute; the errors that keep the two representations apart.
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "data/metrics.h"
#include "data/prepared.h"
#include "data/synthetic.h"
#include "tests/test_util.h"
#include "tests/train_fixtures.h"
#include "training/evaluate.h"
#include "training/forecast.h"

using namespace mt;
using namespace mt::training;
using testing::OneThread;
using testing::TempDir;

namespace {

constexpr int64_t kT = 64;

// The synthetic market's CSV text, and the same rows as a dataset prepared in `rep`.
std::string prepare_market(const TempDir& tmp, data::Representation rep, const std::string& name) {
  data::SyntheticOptions so;
  so.minutes = 6000;
  so.seed = 21;
  so.gaps = 1;
  std::filesystem::create_directories(tmp.path);
  data::write_synthetic_csv(tmp.sub("market.csv"), so);
  data::PrepareOptions po;
  po.split.window = kT;
  po.split.stride = 32;
  po.representation = rep;
  data::prepare_dataset({tmp.sub("market.csv")}, tmp.sub(name), po);
  return tmp.sub(name);
}

json scale_free_config(const std::string& data_dir, const std::string& out_dir,
                       std::vector<std::string> extra = {}) {
  std::vector<std::string> sets = {"data.representation=scale_free",
                                   "data.dir=" + data_dir,
                                   "data.window=64",
                                   "data.stride=32",
                                   "model.n_inputs=12",
                                   "model.d_model=16",
                                   "model.n_heads=2",
                                   "model.n_layers=1",
                                   "model.d_ff=32",
                                   "optimizer.lr=0.003",
                                   "trainer.loss=mse",
                                   "trainer.loss_weights=[1,1,1,1,1]",
                                   "trainer.epochs=1",
                                   "trainer.batch_size=8",
                                   "trainer.precision=fp32",
                                   "trainer.device=cpu",
                                   "trainer.seed=3",
                                   "trainer.plots=false",
                                   "trainer.progress=none",
                                   "trainer.out_dir=" + out_dir};
  sets.insert(sets.end(), extra.begin(), extra.end());
  return run_schema().resolve(json::object(), sets);
}

// Rows [first, first + count) of the market CSV (with its header) into `path`.
void write_rows(const std::string& market, const std::string& path, int64_t first, int64_t count) {
  std::ifstream in(market);
  std::ofstream out(path);
  std::string line;
  std::getline(in, line);
  out << line << "\n";
  for (int64_t i = 0; std::getline(in, line); ++i) {
    if (i >= first && i < first + count) out << line << "\n";
  }
}

// The predictions.csv row of window 0, position t (1-based in the file).
std::vector<double> predicted_row(const std::string& csv_path, int64_t t) {
  std::ifstream in(csv_path);
  std::string line;
  std::getline(in, line);
  while (std::getline(in, line)) {
    std::stringstream ss(line);
    std::string cell;
    std::vector<double> v;
    while (std::getline(ss, cell, ',')) v.push_back(std::stod(cell));
    if (v[0] == 0 && v[1] == static_cast<double>(t)) return {v.begin() + 7, v.begin() + 12};
  }
  return {};
}

}  // namespace

TEST_SUITE("train") {
  TEST_CASE("forecast: scale-free training, the blend, evaluation and the next minute") {
    OneThread one;
    TempDir tmp("mt_test_forecast");
    const std::string data_dir = prepare_market(tmp, data::Representation::ScaleFree, "sf");
    const std::string run = tmp.sub("run");
    auto t = Trainer::create(scale_free_config(data_dir, run), "sf");
    const TrainResult r = t->fit();
    REQUIRE(r.stop_reason == "finished");
    t.reset();
    // The blend was fitted on the validation split, one weight in [0, 1] per target.
    const Blend blend = read_blend(run);
    REQUIRE(blend.fitted);
    for (double w : blend.weight) CHECK((w >= 0 && w <= 1));
    // The test split was evaluated against both baselines, per feature, in both spaces.
    const json m = read_json_file(run + "/metrics.json");
    CHECK(m["representation"] == "scale_free");
    CHECK(m["forecasts"].get<int64_t>() == m["windows"].get<int64_t>() * kT);  // every position
    for (const char* f : {"open", "high", "low", "close", "volume"}) {
      for (const char* space : {"z", "price"}) {
        const json& s = m[space];
        const double model = s["model"][f]["mse"], pers = s["persistence"][f]["mse"],
                     rule = s["naive_rule"][f]["mse"];
        const std::string best = s["best_baseline"][f];
        CHECK(best == (rule < pers ? "naive_rule" : "persistence"));
        // (data::skill is 0 for a zero baseline error: the synthetic open is the last close.)
        CHECK(s["skill"][f]["mse_vs_best"].get<double>() ==
              doctest::Approx(data::skill(model, std::min(rule, pers))));
      }
    }

    // `forecast` on the first kT minutes gives the minute after them; `evaluate` on the first
    // kT + 1 minutes scores one window whose last position forecasts that same minute.
    const std::string market = tmp.sub("market.csv");
    {
      const data::Candles first = data::read_candles({market});
      REQUIRE(first[kT].ts - first[0].ts == 60 * kT);  // no synthetic gap in the first minutes
    }
    write_rows(market, tmp.sub("latest.csv"), 0, kT);
    write_rows(market, tmp.sub("eval.csv"), 0, kT + 1);
    ForecastOptions fo;
    fo.run_dir = run;
    fo.csv = {tmp.sub("latest.csv")};
    const Forecast f = forecast_next(fo);
    CHECK(f.window == kT);
    CHECK(f.ts == f.last_ts + 60);
    EvalOptions eo;
    eo.run_dir = run;
    eo.csv = {tmp.sub("eval.csv")};
    const json em = evaluate_run(eo);
    CHECK(em["windows"] == 1);
    const std::vector<double> p = predicted_row(run + "/eval-eval/predictions.csv", kT);
    REQUIRE(p.size() == 5);
    for (int k = 0; k < 5; ++k) CHECK(f.model[k] == doctest::Approx(p[k]).epsilon(1e-9));
    CHECK(f.to_json()["model"]["close"].get<double>() == f.model[3]);
    CHECK(f.table().find("naive rule") != std::string::npos);

    // Too few minutes, or a gap among the last ones: clear errors.
    write_rows(market, tmp.sub("short.csv"), 0, kT - 1);
    fo.csv = {tmp.sub("short.csv")};
    CHECK_THROWS_WITH_TEXT(forecast_next(fo), "the model reads the last 64");

    // A run of one representation refuses data prepared in the other.
    const std::string level_dir = prepare_market(tmp, data::Representation::Level, "lv");
    CHECK_THROWS_WITH_TEXT(Trainer::create(scale_free_config(level_dir, tmp.sub("bad")), "x"),
                           "holds the level representation");
    json cfg = read_json_file(run + "/config.json");
    cfg["data"]["dir"] = level_dir;
    write_json_file(run + "/config.json", cfg);
    eo.csv.clear();
    CHECK_THROWS_WITH_TEXT(evaluate_run(eo), "holds the level representation");
  }

  TEST_CASE("forecast: the model's forecasts are causal and scale-free") {
    OneThread one;
    TempDir tmp("mt_test_forecast_causal");
    const std::string data_dir = prepare_market(tmp, data::Representation::ScaleFree, "sf");
    const std::string run = tmp.sub("run");
    auto t = Trainer::create(
        scale_free_config(data_dir, run, {"trainer.evaluate=false", "trainer.blend=false"}), "c");
    REQUIRE(t->fit().stop_reason == "finished");
    t.reset();
    std::unique_ptr<BTCTransformer> model = load_run_model(run, "best", Device::cpu(), nullptr);
    const Normalization norm = read_normalization(run);
    data::ReadReport rr;
    data::Candles rows = data::read_candles({tmp.sub("market.csv")}, {}, &rr);
    rows.resize(kT);                                             // one window from the first minute
    REQUIRE(rows.back().ts - rows.front().ts == 60 * (kT - 1));  // no synthetic gap in it
    const std::vector<data::Segment> seg{{0, kT}};
    auto predict = [&](const data::Candles& candles) {
      EvalSeries es = eval_series_from_candles(candles, seg, norm.representation, norm.stats);
      es.window = kT;
      es.starts = {0};
      NoGradGuard no_grad;
      return (*model)(Var(es.window_inputs(0, 1, Device::cpu()))).value().to_vector<double>();
    };
    const std::vector<double> base = predict(rows);
    // Another future after minute 40: every forecast made at minutes <= 40 is bit for bit the
    // same.
    data::Candles other = rows;
    for (int64_t i = 41; i < kT; ++i) {
      for (int f = 0; f < 4; ++f) other[static_cast<size_t>(i)].v[f] *= 1.01;
      other[static_cast<size_t>(i)].v[4] += 50.0;
    }
    const std::vector<double> changed = predict(other);
    for (size_t i = 0; i < 41 * 5; ++i) CHECK(changed[i] == base[i]);
    CHECK(changed[45 * 5] != base[45 * 5]);
    // Prices x 4 (exact in binary): the same z-space forecasts, bit for bit, hence prices
    // exactly 4x; prices x 3: the same forecasts to float rounding.
    for (double k : {4.0, 3.0}) {
      data::Candles scaled = rows;
      for (data::Candle& c : scaled) {
        for (int f = 0; f < 4; ++f) c.v[f] *= k;
      }
      const std::vector<double> s = predict(scaled);
      double worst = 0;
      for (size_t i = 0; i < s.size(); ++i) worst = std::max(worst, std::fabs(s[i] - base[i]));
      INFO("prices x " << k);
      if (k == 4.0) {
        CHECK(worst == 0.0);
        const data::TargetSpace space(norm.representation,
                                      data::target_stats(norm.representation, norm.stats));
        const double vl = 10.0;
        double p1[5], p4[5];
        space.to_physical(&base[0], {rows[0].v[3], vl}, p1);
        space.to_physical(&s[0], {scaled[0].v[3], vl}, p4);
        for (int f = 0; f < 4; ++f) CHECK(p4[f] == 4.0 * p1[f]);
        CHECK(p4[4] == p1[4]);  // volume does not scale with prices
      } else {
        CHECK(worst < 1e-4);
      }
    }
  }
}

TEST_SUITE("cuda") {
  CUDA_TEST_CASE("cuda: the bf16-mixed model trains on the scale-free representation") {
    TempDir tmp("mt_test_cuda_forecast");
    const std::string data_dir = prepare_market(tmp, data::Representation::ScaleFree, "sf");
    const std::string run = tmp.sub("run");
    auto t =
        Trainer::create(scale_free_config(data_dir, run,
                                          {"trainer.device=cuda", "trainer.precision=bf16-mixed",
                                           "trainer.epochs=3", "trainer.log_every=1"}),
                        "gpu");
    const TrainResult r = t->fit();
    t.reset();
    REQUIRE(r.stop_reason == "finished");
    REQUIRE(r.logged_losses.size() >= 6);
    for (const auto& [step, loss] : r.logged_losses) CHECK(std::isfinite(loss));
    // It learns: the last epoch's mean loss is below the first steps'.
    const size_t n = r.logged_losses.size();
    double first = 0, last = 0;
    for (size_t i = 0; i < 3; ++i) first += r.logged_losses[i].second / 3;
    for (size_t i = n - 3; i < n; ++i) last += r.logged_losses[i].second / 3;
    CHECK(last < first);
    CHECK(r.val_losses.back() < r.val_losses.front() * 1.05);
    // The GPU run was blended and evaluated like a CPU one: the synthetic market's high and low
    // follow its GARCH volatility, so the forecast beats "next minute = this minute" there.
    CHECK(read_blend(run).fitted);
    const json m = read_json_file(run + "/metrics.json");
    CHECK(m["z"]["skill"]["high"]["mse"].get<double>() > 0.0);
    CHECK(m["z"]["skill"]["low"]["mse"].get<double>() > 0.0);
  }
}
