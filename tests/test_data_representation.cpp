// The two representations (data/representation.h) and the naive rules (data/baselines.h): known
// columns on a hand-made series, the float64 round trip of every target between z-space and
// USD / BTC, causality and scale-freeness of the inputs, and the rules' arithmetic.
#include <unistd.h>

#include <cmath>
#include <filesystem>

#include "data/baselines.h"
#include "data/prepared.h"
#include "data/representation.h"
#include "data/synthetic.h"
#include "tests/test_util.h"

using namespace mt;
using namespace mt::data;

namespace {

// Six minutes from 2021-01-04 00:00 UTC (a Monday) with round numbers.
Candles hand_made() {
  const int64_t t0 = 1609718400;
  Candles rows;
  const double ohlcv[6][5] = {{100, 102, 99, 101, 2},  {101, 103, 100, 102, 4},
                              {102, 102, 98, 100, 0},  {100, 105, 100, 104, 6},
                              {104, 104, 101, 103, 1}, {103, 106, 102, 105, 3}};
  for (int i = 0; i < 6; ++i) {
    Candle c{t0 + 60 * i, {}};
    for (int f = 0; f < 5; ++f) c.v[f] = ohlcv[i][f];
    rows.push_back(c);
  }
  return rows;
}

Candles synthetic_rows(int64_t minutes, uint64_t seed, std::vector<Segment>* segments) {
  SyntheticOptions o;
  o.minutes = minutes;
  o.seed = seed;
  Candles rows = read_candles_text(synthetic_csv(o), "synthetic");
  CleanReport report;
  clean_candles(rows, {}, &report);
  *segments = report.segments;
  return rows;
}

}  // namespace

TEST_SUITE("data") {
  TEST_CASE("representation: the scale-free columns of a hand-made series") {
    const Candles rows = hand_made();
    const std::vector<Segment> one{{0, 6}};
    const std::vector<double> t = raw_columns(Representation::ScaleFree, rows, one);
    const int F =
        input_count(Representation::ScaleFree) + stored_target_count(Representation::ScaleFree);
    REQUIRE(F == 17);
    REQUIRE(t.size() == 6u * F);
    auto at = [&](int row, int col) { return t[static_cast<size_t>(row * F + col)]; };
    // Row 0: a segment's first minute has no previous close: return 0.
    CHECK(at(0, 0) == 0.0);
    CHECK(at(1, 0) == doctest::Approx(std::log(102.0 / 101)).epsilon(1e-15));
    CHECK(at(1, 1) == doctest::Approx(std::log(101.0 / 102)).epsilon(1e-15));  // open / close
    CHECK(at(1, 2) == doctest::Approx(std::log(103.0 / 102)).epsilon(1e-15));  // high / close
    CHECK(at(1, 3) == doctest::Approx(std::log(100.0 / 102)).epsilon(1e-15));  // low / close
    // VL of row 2: mean of the volumes so far (2, 4, 0) plus the floor; VD the same here.
    const double vl2 = 2.0 + kVolumeFloor;
    CHECK(at(2, 4) == doctest::Approx(std::log1p(0.0 / vl2)).epsilon(1e-15));
    CHECK(at(2, 5) == doctest::Approx(0.0).scale(1.0));  // the two levels agree this early
    // Calendar: 00:00 on a Monday.
    CHECK(at(0, 6) == doctest::Approx(0.0).scale(1.0));  // sin(minute of day)
    CHECK(at(0, 7) == doctest::Approx(1.0));             // cos
    CHECK(at(0, 8) == doctest::Approx(0.0).scale(1.0));  // the week starts on Monday
    CHECK(at(1, 10) == doctest::Approx(std::sin(2 * M_PI / 60)).epsilon(1e-15));
    // Targets of row 1 describe row 2 against row 1's close and volume level.
    const double vl1 = 3.0 + kVolumeFloor;
    CHECK(at(1, 12) == doctest::Approx(std::log(102.0 / 102)).scale(1.0));
    CHECK(at(1, 13) == doctest::Approx(std::log(102.0 / 102)).scale(1.0));
    CHECK(at(1, 14) == doctest::Approx(std::log(98.0 / 102)).epsilon(1e-15));
    CHECK(at(1, 15) == doctest::Approx(std::log(100.0 / 102)).epsilon(1e-15));
    CHECK(at(1, 16) == doctest::Approx(std::log1p(0.0 / vl1)).scale(1.0));
    CHECK(at(3, 16) == doctest::Approx(std::log1p(1.0 / ((2 + 4 + 0 + 6) / 4.0 + kVolumeFloor))));
    // The last row of a segment has no next minute: its targets are 0 and no window reads them.
    for (int c = 12; c < 17; ++c) CHECK(at(5, c) == 0.0);
    CHECK(target_lookahead(Representation::ScaleFree) == 1);
    CHECK(target_lookahead(Representation::Level) == 0);
    CHECK(parse_representation("scale_free") == Representation::ScaleFree);
    CHECK_THROWS_WITH_TEXT(parse_representation("levels"), "unknown representation 'levels'");
  }

  TEST_CASE("representation: volume levels are exact and forget where a file starts") {
    std::vector<Segment> segs;
    const Candles rows = synthetic_rows(6000, 11, &segs);
    const std::vector<double> all = volume_levels(rows, segs, kVolumeLevelMinutes);
    // The same minutes with the first 500 rows cut off: once 60 rows are back, every level is
    // bit for bit the one computed over the whole history (sums of whole satoshis).
    const Candles tail(rows.begin() + 500, rows.end());
    std::vector<Segment> tail_segs;
    for (const Segment& s : segs) {
      if (s.end > 500) tail_segs.push_back({std::max<int64_t>(s.begin, 500) - 500, s.end - 500});
    }
    const std::vector<double> cut = volume_levels(tail, tail_segs, kVolumeLevelMinutes);
    int64_t compared = 0;
    for (const Segment& s : tail_segs) {
      for (int64_t t = s.begin + kVolumeLevelMinutes; t < s.end; ++t) {
        CHECK(cut[static_cast<size_t>(t)] == all[static_cast<size_t>(t + 500)]);
        ++compared;
      }
    }
    CHECK(compared > 4000);
  }

  TEST_CASE("representation: z-space and USD/BTC round trip in float64, both representations") {
    FeatureStats stats(5);
    const double mean[5] = {1e-5, 2e-4, -2e-4, 1e-6, 0.6}, sd[5] = {3e-4, 4e-4, 4e-4, 6e-4, 0.4};
    for (int f = 0; f < 5; ++f) {
      stats.mean[f] = mean[f];
      stats.std[f] = sd[f];
    }
    for (Representation r : {Representation::ScaleFree, Representation::Level}) {
      INFO(representation_name(r));
      FeatureStats s = stats;
      if (r == Representation::Level) s.mean = {10.0, 10.1, 9.9, 10.0, 2.0};
      const TargetSpace space(r, s);
      const TargetAnchor a{43210.55, 17.25};
      const double candle[5] = {43211.0, 43250.5, 43190.25, 43230.0, 12.5};
      double z[5], back[5];
      space.to_z(candle, a, z);
      space.to_physical(z, a, back);
      for (int f = 0; f < 5; ++f) CHECK(back[f] == doctest::Approx(candle[f]).epsilon(1e-13));
      const double zs[5] = {-1.5, 0.25, 3.0, -0.125, 0.75};
      double p[5], z2[5];
      space.to_physical(zs, a, p);
      space.to_z(p, a, z2);
      for (int f = 0; f < 5; ++f) CHECK(z2[f] == doctest::Approx(zs[f]).epsilon(1e-10));
    }
    // scale_free: price = close * exp(y), volume = VL * expm1(y), y = z * std + mean.
    const TargetSpace sf(Representation::ScaleFree, stats);
    const double zero[5] = {0, 0, 0, 0, 0};
    double p[5];
    sf.to_physical(zero, {200.0, 10.0}, p);
    CHECK(p[0] == doctest::Approx(200.0 * std::exp(1e-5)).epsilon(1e-15));
    CHECK(p[4] == doctest::Approx(10.0 * std::expm1(0.6)).epsilon(1e-15));
    CHECK_THROWS_WITH_TEXT(TargetSpace(Representation::Level, FeatureStats(12)),
                           "expected 5 target statistics");
  }

  TEST_CASE("representation: inputs at minute t depend on minutes <= t only, bit for bit") {
    std::vector<Segment> segs;
    Candles rows = synthetic_rows(4000, 12, &segs);
    const int F = 17;
    const std::vector<double> before = raw_columns(Representation::ScaleFree, rows, segs);
    const int64_t t = 2500;
    for (size_t i = static_cast<size_t>(t) + 1; i < rows.size(); ++i) {
      for (int f = 0; f < 4; ++f) rows[i].v[f] *= 1.5;  // a different future
      rows[i].v[4] = 7.0 * rows[i].v[4] + 3.0;
    }
    const std::vector<double> after = raw_columns(Representation::ScaleFree, rows, segs);
    const int n_in = input_count(Representation::ScaleFree);
    for (int64_t r = 0; r <= t; ++r) {
      for (int c = 0; c < n_in; ++c) {
        CHECK(after[static_cast<size_t>(r * F + c)] == before[static_cast<size_t>(r * F + c)]);
      }
    }
    // The future did change: the inputs after t differ.
    CHECK(after[static_cast<size_t>((t + 1) * F)] != before[static_cast<size_t>((t + 1) * F)]);
  }

  TEST_CASE("representation: prices times 4 (exact) or 3 (rounded) leave the inputs unchanged") {
    std::vector<Segment> segs;
    Candles rows = synthetic_rows(3000, 13, &segs);
    const std::vector<double> base = raw_columns(Representation::ScaleFree, rows, segs);
    for (double k : {4.0, 3.0}) {
      INFO("prices x " << k);
      Candles scaled = rows;
      for (Candle& c : scaled) {
        for (int f = 0; f < 4; ++f) c.v[f] *= k;
      }
      const std::vector<double> s = raw_columns(Representation::ScaleFree, scaled, segs);
      double worst = 0;
      for (size_t i = 0; i < s.size(); ++i) worst = std::max(worst, std::fabs(s[i] - base[i]));
      if (k == 4.0) {
        CHECK(worst == 0.0);  // a power of two scales without rounding
      } else {
        CHECK(worst < 1e-15);  // log ratios of rounded products: an ulp or so
      }
    }
  }

  TEST_CASE("baselines: the naive rules by hand") {
    const Candles rows = hand_made();
    const std::vector<double> r = naive_rule_forecasts(rows, {{0, 3}, {3, 6}}, 1.0, 1.0);
    // Half-life 1: alpha = 1/2. Row 1: EWMA(H/C) = (102/101 + 103/102) / 2, started at row 0.
    const double h1 = 0.5 * (102.0 / 101) + 0.5 * (103.0 / 102);
    CHECK(r[5 + 0] == 102.0);  // open = this close
    CHECK(r[5 + 1] == doctest::Approx(102.0 * h1).epsilon(1e-15));
    CHECK(r[5 + 3] == 102.0);                                // close = this close
    CHECK(r[5 + 4] == doctest::Approx(3.0).epsilon(1e-15));  // EWMA(V) = (2 + 4) / 2
    // Row 3 starts a segment: the averages start again from its own minute.
    CHECK(r[15 + 1] == doctest::Approx(105.0).epsilon(1e-15));  // 104 * (105 / 104)
    CHECK(r[15 + 2] == doctest::Approx(100.0).epsilon(1e-15));
    CHECK(r[15 + 4] == 6.0);
    // The defaults the evaluations use.
    const std::vector<double> d = naive_rule_forecasts(rows, {{0, 6}});
    const double a = 1 - std::exp2(-1.0 / kVolumeHalfLife);
    CHECK(d[5 + 4] == doctest::Approx(2 + a * (4 - 2)).epsilon(1e-15));
    CHECK_THROWS_WITH_TEXT(naive_rule_forecasts(rows, {{0, 6}}, 0.0, 1.0), "half-lives must be");
  }

  TEST_CASE("dates: UTC dates to Unix seconds and back") {
    CHECK(parse_utc_date("1970-01-01") == 0);
    CHECK(parse_utc_date("2020-11-01") == 1604188800);
    CHECK(parse_utc_date("2021-01-01") == 1609459200);
    CHECK(parse_utc_date("2024-02-29 12:30") == 1709209800);
    CHECK(format_utc(parse_utc_date("2023-06-30 23:59")) == "2023-06-30 23:59 UTC");
    CHECK_THROWS_WITH_TEXT(parse_utc_date("2021-02-30"), "is not a calendar date");
    CHECK_THROWS_WITH_TEXT(parse_utc_date("01/02/2021"), "is not a UTC date");
  }

  TEST_CASE("prepare: the scale-free dataset, its target statistics and its windows") {
    const std::filesystem::path dir =
        std::filesystem::temp_directory_path() / ("mt_test_repr_" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    SyntheticOptions so;
    so.minutes = 5000;
    so.seed = 4;
    write_synthetic_csv((dir / "in.csv").string(), so);
    PrepareOptions po;
    po.split.window = 64;
    po.split.stride = 32;
    const nlohmann::json m = prepare_dataset({(dir / "in.csv").string()}, (dir / "p").string(), po);
    CHECK(m["transform"]["representation"] == "scale_free");
    CHECK(m["transform"]["inputs"].size() == 12);
    CHECK(m["transform"]["targets"].size() == 5);
    CHECK(m["target_lookahead"] == 1);
    CHECK(representation_of(m) == Representation::ScaleFree);
    // Every window leaves its next minute inside its split and segment: the last row's target
    // is a real next minute.
    const FeatureStats stats = stats_from_manifest(m);
    CHECK(stats.columns() == 17);
    const int64_t train_end = m["split"]["rows"]["train"][1];
    std::vector<int64_t> starts(static_cast<size_t>(m["split"]["windows"]["train"].get<int64_t>()));
    read_prepared_file((dir / "p").string(), m, "windows_train", starts.data(), starts.size() * 8);
    for (int64_t s : starts) CHECK(s + 64 + 1 <= train_end);
    std::filesystem::remove_all(dir);
  }
}
