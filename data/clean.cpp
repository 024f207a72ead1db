#include "data/clean.h"

#include <algorithm>
#include <cmath>
#include <ctime>

#include "base/error.h"
#include "cuda/nvtx.h"

namespace mt::data {

const Gap* CleanReport::longest_gap() const {
  const Gap* best = nullptr;
  for (const Gap& g : gaps) {
    if (!best || g.missing_minutes > best->missing_minutes) best = &g;
  }
  return best;
}

std::string CleanReport::summary() const {
  std::string s = fmt::format(
      "{} rows from {} to {}; {} duplicates dropped, {} zero prices replaced in {} rows; {} "
      "gaps ({} missing minutes), {} segments",
      rows_out, format_utc(first_ts), format_utc(last_ts), duplicates, zero_price_fields,
      zero_price_rows, gaps.size(), missing_minutes, segments.size());
  if (const Gap* g = longest_gap()) {
    s += fmt::format("; longest gap {} minutes after {}", g->missing_minutes,
                     format_utc(g->after_ts));
  }
  return s;
}

std::vector<Segment> segments_of(const std::vector<int64_t>& ts, int64_t max_gap_minutes) {
  std::vector<Segment> segs;
  int64_t begin = 0;
  const int64_t n = static_cast<int64_t>(ts.size());
  for (int64_t i = 1; i <= n; ++i) {
    if (i == n || std::llround(static_cast<double>(ts[i] - ts[i - 1]) / 60.0) > max_gap_minutes) {
      segs.push_back({begin, i});
      begin = i;
    }
  }
  return segs;
}

std::string format_utc(int64_t unix_seconds) {
  std::time_t t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M UTC", &tm);
  return buf;
}

namespace {

void sort_and_dedupe(Candles& rows, CleanReport& r) {
  auto by_time = [](const Candle& a, const Candle& b) { return a.ts < b.ts; };
  r.was_sorted = std::is_sorted(rows.begin(), rows.end(), by_time);
  if (!r.was_sorted) std::stable_sort(rows.begin(), rows.end(), by_time);
  // Keep the last of each run of equal timestamps.
  size_t out = 0;
  for (size_t i = 0; i < rows.size(); ++i) {
    if (i + 1 < rows.size() && rows[i + 1].ts == rows[i].ts) {
      ++r.duplicates;
      continue;
    }
    rows[out++] = rows[i];
  }
  rows.resize(out);
}

}  // namespace

void clean_candles(Candles& rows, const CleanOptions& options, CleanReport* report) {
  cuda::NvtxRange range("data_clean");
  CHECK(options.max_gap_minutes >= 1, "clean_candles: max_gap_minutes must be >= 1, got {}",
        options.max_gap_minutes);
  CHECK(options.invalid_price_fill > 0, "clean_candles: invalid_price_fill must be > 0, got {}",
        options.invalid_price_fill);
  CleanReport local;
  CleanReport& r = report ? *report : local;
  r = CleanReport{};
  r.rows_in = static_cast<int64_t>(rows.size());
  CHECK(!rows.empty(),
        "clean_candles: no rows to clean (every row was dropped or the input was "
        "empty)");
  sort_and_dedupe(rows, r);

  for (Candle& c : rows) {
    bool replaced = false;
    for (int f = 0; f < 4; ++f) {
      if (!(c.v[f] > 0)) {
        c.v[f] = options.invalid_price_fill;
        ++r.zero_price_fields;
        replaced = true;
      }
    }
    r.zero_price_rows += replaced;
  }

  int64_t seg_begin = 0;
  const int64_t n = static_cast<int64_t>(rows.size());
  for (int64_t i = 1; i < n; ++i) {
    // Steps in whole minutes, rounded: 80 s out of the real data's 20-s shifted run is one
    // minute, not a missing one.
    const int64_t step_minutes = std::llround((rows[i].ts - rows[i - 1].ts) / 60.0);
    if (step_minutes > 1) {
      r.gaps.push_back({rows[i - 1].ts, step_minutes - 1});
      r.missing_minutes += step_minutes - 1;
    }
    if (step_minutes > options.max_gap_minutes) {
      r.segments.push_back({seg_begin, i});
      seg_begin = i;
    }
  }
  r.segments.push_back({seg_begin, n});
  r.rows_out = n;
  r.first_ts = rows.front().ts;
  r.last_ts = rows.back().ts;
}

}  // namespace mt::data
