#include "data/windows.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "base/error.h"
#include "base/philox.h"

namespace mt::data {

const char* split_name(Split split) {
  switch (split) {
    case Split::Train:
      return "train";
    case Split::Val:
      return "val";
    case Split::Test:
      return "test";
  }
  return "?";
}

Split parse_split(const std::string& name) {
  if (name == "train") return Split::Train;
  if (name == "val" || name == "valid" || name == "validation") return Split::Val;
  if (name == "test") return Split::Test;
  FAIL("unknown split '{}': expected train, val or test", name);
}

const char* split_mode_name(SplitMode mode) {
  return mode == SplitMode::Chronological ? "chronological" : "shuffled_blocks";
}

SplitMode parse_split_mode(const std::string& name) {
  if (name == "chronological") return SplitMode::Chronological;
  if (name == "shuffled_blocks" || name == "shuffled-blocks") return SplitMode::ShuffledBlocks;
  FAIL("unknown split mode '{}': expected chronological or shuffled_blocks (leaky)", name);
}

int64_t windows_in(int64_t length, int64_t window, int64_t stride) {
  return length >= window ? (length - window) / stride + 1 : 0;
}

std::vector<int64_t> shuffled_order(int64_t n, uint64_t seed, uint64_t stream) {
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), int64_t{0});
  for (int64_t i = n - 1; i > 0; --i) {
    const uint32_t bits = philox4x32(seed, static_cast<uint64_t>(i) >> 2, stream).v[i & 3];
    const int64_t j =
        static_cast<int64_t>((static_cast<uint64_t>(bits) * static_cast<uint64_t>(i + 1)) >> 32);
    std::swap(order[static_cast<size_t>(i)], order[static_cast<size_t>(j)]);
  }
  return order;
}

namespace {

void check_options(const SplitOptions& o) {
  CHECK(o.window >= 2, "split: window must be at least 2 rows, got {}", o.window);
  CHECK(o.stride >= 1, "split: stride must be at least 1 row, got {}", o.stride);
  double sum = 0;
  for (double f : o.fractions) {
    CHECK(f >= 0 && f <= 1, "split: fractions must lie in [0, 1], got [{}, {}, {}]", o.fractions[0],
          o.fractions[1], o.fractions[2]);
    sum += f;
  }
  CHECK(std::fabs(sum - 1) < 1e-6 && o.fractions[0] > 0,
        "split: fractions must sum to 1 with a nonzero train share, got [{}, {}, {}]",
        o.fractions[0], o.fractions[1], o.fractions[2]);
  CHECK(o.lookahead >= 0, "split: lookahead must be >= 0, got {}", o.lookahead);
  CHECK((o.boundary_ts[0] == 0) == (o.boundary_ts[1] == 0) && o.boundary_ts[0] <= o.boundary_ts[1],
        "split: the val and test start times must both be given, val first; got {} and {}",
        o.boundary_ts[0], o.boundary_ts[1]);
  CHECK(o.boundary_ts[0] == 0 || o.mode == SplitMode::Chronological,
        "split: start times for val and test need the chronological mode");
  CHECK(o.block_windows >= 1, "split: block_windows must be >= 1, got {}", o.block_windows);
}

void add_windows(Segment piece, const SplitOptions& o, std::vector<int64_t>& starts) {
  const int64_t n = windows_in(piece.length() - o.lookahead, o.window, o.stride);
  for (int64_t k = 0; k < n; ++k) starts.push_back(piece.begin + k * o.stride);
}

void plan_chronological(const Candles& rows, const std::vector<Segment>& segments,
                        SplitPlan& plan) {
  const SplitOptions& o = plan.options;
  const int64_t first = rows.front().ts;
  const int64_t span = rows.back().ts + 60 - first;  // the last minute counts in full
  const double cut[2] = {o.fractions[0], o.fractions[0] + o.fractions[1]};
  int64_t bounds[4] = {0, 0, 0, static_cast<int64_t>(rows.size())};
  for (int k = 0; k < 2; ++k) {
    plan.boundary_ts[k] = o.boundary_ts[0] != 0
                              ? o.boundary_ts[k]
                              : first + std::llround(cut[k] * static_cast<double>(span));
    auto it = std::lower_bound(rows.begin(), rows.end(), plan.boundary_ts[k],
                               [](const Candle& c, int64_t ts) { return c.ts < ts; });
    bounds[k + 1] = it - rows.begin();
  }
  for (int s = 0; s < kSplits; ++s) {
    plan.rows[s] = {bounds[s], bounds[s + 1]};
    for (const Segment& seg : segments) {
      Segment piece{std::max(seg.begin, bounds[s]), std::min(seg.end, bounds[s + 1])};
      if (piece.begin < piece.end) add_windows(piece, o, plan.starts[s]);
    }
  }
  plan.train_rows = {plan.rows[0]};
}

void plan_shuffled_blocks(const std::vector<Segment>& segments, SplitPlan& plan) {
  const SplitOptions& o = plan.options;
  std::vector<int64_t> all;
  for (const Segment& seg : segments) add_windows(seg, o, all);
  const int64_t n = static_cast<int64_t>(all.size());
  const int64_t blocks = (n + o.block_windows - 1) / o.block_windows;
  const std::vector<int64_t> order = shuffled_order(blocks, o.seed, 0);
  const int64_t n_train = std::llround(o.fractions[0] * static_cast<double>(blocks));
  const int64_t n_val = std::llround(o.fractions[1] * static_cast<double>(blocks));
  for (int64_t k = 0; k < blocks; ++k) {
    const int s = k < n_train ? 0 : k < n_train + n_val ? 1 : 2;
    const int64_t b = order[static_cast<size_t>(k)];
    for (int64_t w = b * o.block_windows; w < std::min(n, (b + 1) * o.block_windows); ++w) {
      plan.starts[s].push_back(all[static_cast<size_t>(w)]);
    }
  }
  for (auto& starts : plan.starts) std::sort(starts.begin(), starts.end());
  // Merge the training windows' rows into disjoint ranges.
  for (int64_t start : plan.starts[0]) {
    const int64_t end = start + o.window;
    if (!plan.train_rows.empty() && start <= plan.train_rows.back().end) {
      plan.train_rows.back().end = std::max(plan.train_rows.back().end, end);
    } else {
      plan.train_rows.push_back({start, end});
    }
  }
}

}  // namespace

SplitPlan plan_splits(const Candles& rows, const std::vector<Segment>& segments,
                      const SplitOptions& options) {
  check_options(options);
  CHECK(!rows.empty() && !segments.empty(), "split: no rows to split");
  SplitPlan plan;
  plan.options = options;
  if (options.mode == SplitMode::Chronological) {
    plan_chronological(rows, segments, plan);
  } else {
    plan_shuffled_blocks(segments, plan);
  }
  int64_t longest = 0;
  for (const Segment& s : segments) longest = std::max(longest, s.length());
  CHECK(!plan.starts[0].empty(),
        "split: the training split has no window of {} rows (the {} rows form {} gap-free "
        "segments, the longest {} rows; train rows: {}). Use a shorter window, more data, or a "
        "larger max_gap_minutes",
        options.window, rows.size(), segments.size(), longest,
        options.mode == SplitMode::Chronological ? plan.rows[0].length() : -1);
  return plan;
}

}  // namespace mt::data
