// Cleaning, the feature transform, windows and splits.
#include <cmath>

#include "data/clean.h"
#include "data/transform.h"
#include "data/windows.h"
#include "tests/test_util.h"

using namespace mt;
using namespace mt::data;

namespace {

Candle candle(int64_t ts, double price, double volume = 1.0) {
  return Candle{ts, {price, price * 1.01, price * 0.99, price, volume}};
}

// n consecutive minutes from ts0, a price that wanders deterministically.
Candles minutes(int64_t ts0, int64_t n, double base = 100.0) {
  Candles c;
  for (int64_t i = 0; i < n; ++i) {
    c.push_back(candle(ts0 + 60 * i, base + 10 * std::sin(0.01 * i) + 0.001 * i, 1 + i % 5));
  }
  return c;
}

}  // namespace

TEST_SUITE("data") {
  TEST_CASE("data clean: sorts, keeps the last duplicate, counts both") {
    Candles c = {candle(180, 3), candle(60, 1), candle(120, 2), candle(120, 22), candle(60, 11)};
    CleanReport r;
    clean_candles(c, {}, &r);
    REQUIRE(c.size() == 3);
    CHECK(c[0].ts == 60);
    CHECK(c[0].v[0] == 11);  // the later of the two rows at 60
    CHECK(c[1].ts == 120);
    CHECK(c[1].v[0] == 22);
    CHECK(c[2].ts == 180);
    CHECK(r.duplicates == 2);
    CHECK_FALSE(r.was_sorted);
    CHECK(r.rows_in == 5);
    CHECK(r.rows_out == 3);
    CHECK(r.gaps.empty());
    REQUIRE(r.segments.size() == 1);
    CHECK(r.segments[0].length() == 3);
  }

  TEST_CASE("data clean: gaps are reported, and cut segments beyond max_gap_minutes") {
    // Steps (minutes): 1, 3 (2 missing), 1, 2 (1 missing), 1, and a 20-s step that is no gap.
    Candles rows = {candle(0, 1),   candle(60, 1),  candle(240, 1), candle(300, 1),
                    candle(420, 1), candle(480, 1), candle(500, 1), candle(560, 1)};
    Candles c = rows;
    CleanReport r;
    clean_candles(c, {}, &r);
    REQUIRE(r.gaps.size() == 2);
    CHECK(r.gaps[0].after_ts == 60);
    CHECK(r.gaps[0].missing_minutes == 2);
    CHECK(r.gaps[1].after_ts == 300);
    CHECK(r.gaps[1].missing_minutes == 1);
    CHECK(r.missing_minutes == 3);
    REQUIRE(r.segments.size() == 3);
    CHECK(r.segments[0].begin == 0);
    CHECK(r.segments[0].end == 2);
    CHECK(r.segments[1].begin == 2);
    CHECK(r.segments[1].end == 4);
    CHECK(r.segments[2].begin == 4);
    CHECK(r.segments[2].end == 8);
    CHECK(r.longest_gap()->missing_minutes == 2);

    Candles c2 = rows;
    CleanOptions o;
    o.max_gap_minutes = 2;  // a step of 2 minutes is tolerated, of 3 cuts
    clean_candles(c2, o, &r);
    REQUIRE(r.segments.size() == 2);
    CHECK(r.segments[0].end == 2);
    CHECK(r.segments[1].length() == 6);
  }

  TEST_CASE("data clean: zero prices become 0.01 and are counted") {
    Candles c = {Candle{60, {0, 2, 0, 1, 5}}, candle(120, 3)};
    CleanReport r;
    clean_candles(c, {}, &r);
    CHECK(c[0].v[0] == 0.01);
    CHECK(c[0].v[2] == 0.01);
    CHECK(c[0].v[1] == 2);
    CHECK(r.zero_price_fields == 2);
    CHECK(r.zero_price_rows == 1);
    Candles empty;
    CHECK_THROWS_WITH_TEXT(clean_candles(empty, {}, &r), "no rows to clean");
  }

  TEST_CASE("data transform: log / log1p / z-score known values and the inverse") {
    Candles c = {
        Candle{0, {1, std::exp(1.0), std::exp(2.0), std::exp(3.0), 0}},
        Candle{60, {std::exp(2.0), std::exp(3.0), std::exp(4.0), std::exp(5.0), std::expm1(2.0)}}};
    to_log_features(c);
    CHECK(c[0].v[0] == 0);
    CHECK(c[1].v[0] == doctest::Approx(2).epsilon(1e-15));
    CHECK(c[1].v[4] == doctest::Approx(2).epsilon(1e-15));
    const FeatureStats s = compute_stats(c, {{0, 2}});
    CHECK(s.mean[0] == doctest::Approx(1.0));
    CHECK(s.std[0] == doctest::Approx(1.0));  // population std of {0, 2}
    CHECK(s.mean[4] == doctest::Approx(1.0));
    const std::vector<float> z = normalize(c, s);
    REQUIRE(z.size() == 10);
    for (int f = 0; f < 5; ++f) {
      CHECK(z[static_cast<size_t>(f)] == doctest::Approx(-1.0));
      CHECK(z[static_cast<size_t>(5 + f)] == doctest::Approx(1.0));
    }
    CHECK(from_zscore(1.0, 3, s) == doctest::Approx(std::exp(5.0)));
    CHECK(from_zscore(-1.0, 4, s) == doctest::Approx(0.0));
    // Over a tensor, batch-shaped.
    Tensor t = Tensor::from_vector(std::vector<float>(z.begin(), z.end()), {1, 2, 5});
    Tensor usd = to_prices(t, s);
    CHECK(usd.dtype() == kFloat64);
    CHECK(usd.shape() == Shape{1, 2, 5});
    const std::vector<double> v = usd.to_vector<double>();
    CHECK(v[0] == doctest::Approx(1.0).epsilon(1e-6));
    CHECK(v[6] == doctest::Approx(std::exp(3.0)).epsilon(1e-6));
    CHECK(v[9] == doctest::Approx(std::expm1(2.0)).epsilon(1e-6));
    CHECK_THROWS_WITH_TEXT(to_prices(Tensor::zeros({2, 4}), s), "expected a tensor [..., 5]");
  }

  TEST_CASE("data transform: a constant feature gets std 1, not a division by zero") {
    Candles c = {Candle{0, {2, 2, 2, 2, 0}}, Candle{60, {2, 2, 2, 2, 0}}};
    to_log_features(c);
    const FeatureStats s = compute_stats(c, {{0, 2}});
    CHECK(s.std[0] == 1.0);
    CHECK_THROWS_WITH_TEXT(compute_stats(c, {{0, 3}}), "outside the 2 rows");
    CHECK_THROWS_WITH_TEXT(compute_stats(c, {}), "no rows");
  }

  TEST_CASE("data windows: the count formula, and windows inside segments") {
    CHECK(windows_in(2047, 2048, 512) == 0);
    CHECK(windows_in(2048, 2048, 512) == 1);
    CHECK(windows_in(2559, 2048, 512) == 1);
    CHECK(windows_in(2560, 2048, 512) == 2);
    CHECK(windows_in(10000, 2048, 512) == (10000 - 2048) / 512 + 1);
    // One split only (1, 0, 0): two segments of 1000 and 700 rows, window 100 stride 30.
    Candles c = minutes(0, 1000);
    Candles tail = minutes(60 * 5000, 700);
    c.insert(c.end(), tail.begin(), tail.end());
    SplitOptions o;
    o.window = 100;
    o.stride = 30;
    o.fractions[0] = 1;
    o.fractions[1] = 0;
    o.fractions[2] = 0;
    const SplitPlan p = plan_splits(c, {{0, 1000}, {1000, 1700}}, o);
    CHECK(p.windows(Split::Train) == windows_in(1000, 100, 30) + windows_in(700, 100, 30));
    CHECK(p.windows(Split::Val) == 0);
    for (int64_t s : p.starts[0]) {
      const bool in_first = s + 100 <= 1000;
      const bool in_second = s >= 1000 && s + 100 <= 1700;
      CHECK((in_first || in_second));
    }
    CHECK(p.starts[0][static_cast<size_t>(windows_in(1000, 100, 30))] == 1000);
  }

  TEST_CASE("data windows: chronological split by time, purged at the boundaries") {
    const int64_t n = 10000;
    Candles c = minutes(600000, n);
    SplitOptions o;
    o.window = 256;
    o.stride = 64;
    const SplitPlan p = plan_splits(c, {{0, n}}, o);
    // 10,000 minutes: boundaries at minute 8,000 and 9,000.
    CHECK(p.boundary_ts[0] == 600000 + 60 * 8000);
    CHECK(p.boundary_ts[1] == 600000 + 60 * 9000);
    CHECK(p.rows[0].end == 8000);
    CHECK(p.rows[1].begin == 8000);
    CHECK(p.rows[1].end == 9000);
    CHECK(p.rows[2].end == n);
    CHECK(p.windows(Split::Train) == windows_in(8000, 256, 64));
    CHECK(p.windows(Split::Val) == windows_in(1000, 256, 64));
    CHECK(p.windows(Split::Test) == windows_in(1000, 256, 64));
    // No window of one split shares a row with another split's rows.
    for (int s = 0; s < 3; ++s) {
      for (int64_t w : p.starts[s]) {
        CHECK(w >= p.rows[s].begin);
        CHECK(w + 256 <= p.rows[s].end);
      }
    }
    REQUIRE(p.train_rows.size() == 1);
    CHECK(p.train_rows[0].end == 8000);
    o.fractions[0] = 0.5;
    CHECK_THROWS_WITH_TEXT(plan_splits(c, {{0, n}}, o), "fractions must sum to 1");
    o.fractions[0] = 0.8;
    o.window = 20000;
    CHECK_THROWS_WITH_TEXT(plan_splits(c, {{0, n}}, o),
                           "the training split has no window of 20000 rows");
  }

  TEST_CASE("data windows: no leakage: train statistics ignore val/test rows") {
    const int64_t n = 5000;
    Candles a = minutes(0, n);
    Candles b = a;
    for (int64_t i = 4200; i < n; ++i) {  // past the 80 % boundary (row 4,000)
      for (double& v : b[static_cast<size_t>(i)].v) v *= 3.0;
    }
    SplitOptions o;
    o.window = 100;
    o.stride = 50;
    const SplitPlan pa = plan_splits(a, {{0, n}}, o);
    const SplitPlan pb = plan_splits(b, {{0, n}}, o);
    to_log_features(a);
    to_log_features(b);
    const FeatureStats sa = compute_stats(a, pa.train_rows);
    const FeatureStats sb = compute_stats(b, pb.train_rows);
    for (int f = 0; f < kFeatures; ++f) {
      CHECK(sa.mean[f] == sb.mean[f]);
      CHECK(sa.std[f] == sb.std[f]);
    }
    // ...whereas whole-file statistics (the original's) do move.
    CHECK(compute_stats(a, {{0, n}}).mean[0] != compute_stats(b, {{0, n}}).mean[0]);
  }

  TEST_CASE("data windows: shuffled blocks are seeded, disjoint, and cover every window") {
    const int64_t n = 6000;
    Candles c = minutes(0, n);
    SplitOptions o;
    o.window = 100;
    o.stride = 50;
    o.mode = SplitMode::ShuffledBlocks;
    o.block_windows = 4;
    o.seed = 7;
    const SplitPlan p1 = plan_splits(c, {{0, n}}, o);
    const SplitPlan p2 = plan_splits(c, {{0, n}}, o);
    o.seed = 8;
    const SplitPlan p3 = plan_splits(c, {{0, n}}, o);
    CHECK(p1.starts[1] == p2.starts[1]);
    CHECK(p1.starts[1] != p3.starts[1]);
    std::vector<int64_t> all;
    for (const auto& s : p1.starts) all.insert(all.end(), s.begin(), s.end());
    std::sort(all.begin(), all.end());
    CHECK(static_cast<int64_t>(all.size()) == windows_in(n, 100, 50));
    CHECK(std::adjacent_find(all.begin(), all.end()) == all.end());
    // Train statistics come from the rows of the training windows.
    int64_t covered = 0;
    for (const Segment& s : p1.train_rows) covered += s.length();
    CHECK(covered >= 100);
    CHECK(covered <= n);
  }

  TEST_CASE("data windows: shuffled_order is a seeded permutation") {
    const std::vector<int64_t> a = shuffled_order(1000, 42, 3);
    CHECK(a == shuffled_order(1000, 42, 3));
    CHECK(a != shuffled_order(1000, 42, 4));
    CHECK(a != shuffled_order(1000, 43, 3));
    std::vector<int64_t> sorted = a;
    std::sort(sorted.begin(), sorted.end());
    for (int64_t i = 0; i < 1000; ++i) CHECK(sorted[static_cast<size_t>(i)] == i);
    int64_t fixed = 0;
    for (int64_t i = 0; i < 1000; ++i) fixed += a[static_cast<size_t>(i)] == i;
    CHECK(fixed < 10);  // a random permutation has ~1 fixed point
  }

  TEST_CASE("data windows: names parse both ways, bad names are errors") {
    CHECK(parse_split("val") == Split::Val);
    CHECK(std::string(split_name(Split::Test)) == "test");
    CHECK(parse_split_mode("shuffled_blocks") == SplitMode::ShuffledBlocks);
    CHECK_THROWS_WITH_TEXT(parse_split("dev"), "unknown split 'dev'");
    CHECK_THROWS_WITH_TEXT(parse_split_mode("random"), "unknown split mode 'random'");
  }

}  // TEST_SUITE
