// Windows and splits: which rows the model sees, and in which split.
//
// A window is `window` consecutive rows of one gap-free segment; windows start every `stride`
// rows from the start of their piece (the original: 2048 rows every 512). A piece of L rows
// holds
//     windows_in(L) = L >= window ? (L - window) / stride + 1 : 0
// windows.
//
// Chronological split (default): the time from the first row to one minute past the last is cut
// at fractions (0.8, 0.1, 0.1); a row belongs to the split its timestamp falls in. Windows are
// laid out inside (segment x split) pieces, so a window never crosses a split boundary (the
// purge) and no window of one split shares a row with a window of another.
//
// Shuffled blocks (the original's scheme, LEAKY): windows are laid out over whole segments,
// grouped into blocks of `block_windows` consecutive windows, the blocks shuffled with the seed
// and dealt 0.8/0.1/0.1. Neighbouring blocks overlap by window - stride rows, so validation
// windows share rows with training windows; it exists to reproduce the original's numbers.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/clean.h"

namespace mt::data {

enum class Split { Train = 0, Val = 1, Test = 2 };
constexpr int kSplits = 3;
const char* split_name(Split split);  // "train", "val", "test"
Split parse_split(const std::string& name);

enum class SplitMode { Chronological, ShuffledBlocks };
const char* split_mode_name(SplitMode mode);  // "chronological", "shuffled_blocks"
SplitMode parse_split_mode(const std::string& name);

struct SplitOptions {
  int64_t window = 2048;
  int64_t stride = 512;
  // Rows after a window's last row that its targets read (data/representation.h's
  // target_lookahead): a piece of L rows holds windows_in(L - lookahead) windows.
  int64_t lookahead = 0;
  double fractions[kSplits] = {0.8, 0.1, 0.1};
  // Chronological only: when set (non-zero), the first Unix second of val and of test, in place
  // of the fractions (e.g. val from 2020-11-01, test from 2021-01-01).
  int64_t boundary_ts[2] = {0, 0};
  SplitMode mode = SplitMode::Chronological;
  int64_t block_windows = 8;  // shuffled blocks only
  uint64_t seed = 0;          // shuffled blocks only
};

struct SplitPlan {
  SplitOptions options;
  // Chronological: row s of split k satisfies boundary_ts[k-1] <= ts < boundary_ts[k]; the
  // row ranges [begin, end) of each split. Unused (0) for shuffled blocks.
  int64_t boundary_ts[2] = {0, 0};  // first timestamp of val, of test
  Segment rows[kSplits];
  std::vector<int64_t> starts[kSplits];  // window start rows, ascending
  // The rows the z-score statistics come from when only training data may be used: the train
  // rows (chronological) or the rows covered by training windows (shuffled blocks).
  std::vector<Segment> train_rows;

  int64_t windows(Split s) const {
    return static_cast<int64_t>(starts[static_cast<int>(s)].size());
  }
};

int64_t windows_in(int64_t length, int64_t window, int64_t stride);

// Lays out the windows of every split over the cleaned rows and their segments. An Error when
// the options are inconsistent or the training split gets no window.
SplitPlan plan_splits(const Candles& rows, const std::vector<Segment>& segments,
                      const SplitOptions& options);

// A permutation of [0, n) by Fisher-Yates on Philox numbers: a pure function of (seed, stream),
// the same on every machine. (32-bit draws scaled to the range: the bias, under n / 2^32, is
// below 2e-6 for the ~6,500 windows of the full data.)
std::vector<int64_t> shuffled_order(int64_t n, uint64_t seed, uint64_t stream);

}  // namespace mt::data
