// Cleaning a merged candle table: order, duplicates, gaps, segments, invalid prices.
//
//   sort by time (stable, so that among equal timestamps the later file / later line wins);
//   duplicates keep the last row and are counted;
//   the step between consecutive rows, in minutes rounded to nearest, is 1 normally; a step of
//     k > 1 is a gap of k - 1 missing minutes, reported; a step longer than max_gap_minutes cuts
//     the series into segments, so that no window spans it. With the default of 1 every
//     missing minute cuts; the real 2017 data's 20-s shifted run (a step of 20 s, then 60 s)
//     is no gap;
//   a zero price is replaced by 0.01 before the log, as the original run did, and counted
//     (negative prices never get here: the reader rejects them).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/csv_reader.h"

namespace mt::data {

struct CleanOptions {
  int64_t max_gap_minutes = 1;       // a step longer than this cuts a segment
  double invalid_price_fill = 0.01;  // the original's replacement for zero prices
};

struct Gap {
  int64_t after_ts = 0;         // timestamp of the last row before the gap
  int64_t missing_minutes = 0;  // round(step / 60 s) - 1
};

// Rows [begin, end) of the cleaned table, gap-free.
struct Segment {
  int64_t begin = 0;
  int64_t end = 0;
  int64_t length() const { return end - begin; }
};

struct CleanReport {
  int64_t rows_in = 0;
  int64_t rows_out = 0;
  int64_t duplicates = 0;         // rows dropped because a later row had the same timestamp
  bool was_sorted = true;         // false when the input needed sorting
  int64_t zero_price_rows = 0;    // rows with at least one price replaced
  int64_t zero_price_fields = 0;  // prices replaced
  int64_t missing_minutes = 0;    // summed over all gaps
  std::vector<Gap> gaps;          // every step of more than one minute
  std::vector<Segment> segments;  // cut at steps longer than max_gap_minutes
  int64_t first_ts = 0, last_ts = 0;

  const Gap* longest_gap() const;  // nullptr when there is none
  std::string summary() const;
};

// Cleans `rows` in place (see the top of this file) and fills the report.
void clean_candles(Candles& rows, const CleanOptions& options, CleanReport* report);

// The gap-free runs of sorted timestamps by the rule clean_candles uses: a step of more than
// `max_gap_minutes` whole minutes (rounded, so the real data's 80-s steps count as one minute)
// starts a new segment.
std::vector<Segment> segments_of(const std::vector<int64_t>& timestamps, int64_t max_gap_minutes);

// "2023-06-01 00:00 UTC"
std::string format_utc(int64_t unix_seconds);

}  // namespace mt::data
