#include "training/profile_table.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>

#include "base/error.h"
#include "training/files.h"

namespace mt::training {

namespace {

// Children of each row (by index), and the top-level rows, sorted by total, larger first.
void append_subtree(const std::vector<ProfileRow>& rows,
                    const std::vector<std::vector<int>>& children, int row,
                    std::vector<ProfileRow>& out) {
  out.push_back(rows[row]);
  for (int c : children[row]) append_subtree(rows, children, c, out);
}

double step_total_ms(const std::vector<ProfileRow>& rows) {
  double all = 0;
  for (const ProfileRow& r : rows) {
    if (r.depth != 0) continue;
    if (r.name == "step") return r.total_ms;
    all += r.total_ms;
  }
  return all;
}

std::string percent(double part, double whole) {
  return whole > 0 ? fmt::format("{:.1f}", 100.0 * part / whole) : "-";
}

std::string self_by_name_table(const std::vector<ProfileRow>& rows, double step_ms) {
  std::map<std::string, std::pair<int64_t, double>> by_name;  // calls, self ms
  for (const ProfileRow& r : rows) {
    by_name[r.name].first += r.calls;
    by_name[r.name].second += r.self_ms;
  }
  std::vector<std::pair<std::string, std::pair<int64_t, double>>> sorted(by_name.begin(),
                                                                         by_name.end());
  std::stable_sort(sorted.begin(), sorted.end(),
                   [](const auto& a, const auto& b) { return a.second.second > b.second.second; });
  constexpr size_t kTop = 20;
  std::string out = fmt::format("self time by range name, all places summed (top {}):\n", kTop);
  out += fmt::format("{:<32} {:>8} {:>11} {:>7}\n", "range", "calls", "self ms", "% step");
  for (size_t i = 0; i < sorted.size() && i < kTop; ++i) {
    const auto& [name, v] = sorted[i];
    out += fmt::format("{:<32} {:>8} {:>11.3f} {:>7}\n", name, v.first, v.second,
                       percent(v.second, step_ms));
  }
  return out;
}

nlohmann::json rows_json(const std::vector<ProfileRow>& rows, int64_t steps,
                         const std::string& clock) {
  nlohmann::json j = {{"steps", steps}, {"clock", clock}, {"rows", nlohmann::json::array()}};
  for (const ProfileRow& r : rows) {
    j["rows"].push_back({{"name", r.name},
                         {"path", r.path},
                         {"depth", r.depth},
                         {"calls", r.calls},
                         {"total_ms", r.total_ms},
                         {"self_ms", r.self_ms}});
  }
  return j;
}

}  // namespace

std::vector<ProfileRow> profile_rows(const std::vector<cuda::TimedRange>& ranges) {
  std::vector<ProfileRow> rows;
  std::map<std::string, int> row_of;  // path -> row
  std::vector<int> row_of_range(ranges.size());
  std::vector<int> parent_row;  // per row
  std::vector<double> inside_ms(ranges.size(), 0.0);
  for (size_t i = 0; i < ranges.size(); ++i) {
    if (ranges[i].parent >= 0) inside_ms[ranges[i].parent] += ranges[i].ms;
  }
  for (size_t i = 0; i < ranges.size(); ++i) {
    const cuda::TimedRange& t = ranges[i];
    CHECK(t.parent < static_cast<int>(i), "profile: range {} has parent {} after it", i, t.parent);
    const int parent = t.parent < 0 ? -1 : row_of_range[t.parent];
    const std::string path = parent < 0 ? t.name : rows[parent].path + "/" + t.name;
    auto [it, fresh] = row_of.emplace(path, static_cast<int>(rows.size()));
    if (fresh) {
      ProfileRow r;
      r.name = t.name;
      r.path = path;
      r.depth = parent < 0 ? 0 : rows[parent].depth + 1;
      rows.push_back(r);
      parent_row.push_back(parent);
    }
    ProfileRow& r = rows[it->second];
    r.calls += 1;
    r.total_ms += t.ms;
    r.self_ms += t.ms - inside_ms[i];
    row_of_range[i] = it->second;
  }
  // Tree order, larger totals first among siblings.
  std::vector<std::vector<int>> children(rows.size());
  std::vector<int> roots;
  for (size_t r = 0; r < rows.size(); ++r) {
    (parent_row[r] < 0 ? roots : children[parent_row[r]]).push_back(static_cast<int>(r));
  }
  auto by_total = [&rows](int a, int b) { return rows[a].total_ms > rows[b].total_ms; };
  std::stable_sort(roots.begin(), roots.end(), by_total);
  for (auto& c : children) std::stable_sort(c.begin(), c.end(), by_total);
  std::vector<ProfileRow> out;
  for (int r : roots) append_subtree(rows, children, r, out);
  return out;
}

std::string format_profile_table(const std::vector<ProfileRow>& rows, int64_t steps,
                                 const std::string& clock) {
  const double step_ms = step_total_ms(rows);
  std::string out =
      fmt::format("[profile] {} steps after a warm-up step, timed with {}: {:.3f} ms a step\n",
                  steps, clock, steps > 0 ? step_ms / steps : 0.0);
  size_t width = 5;
  for (const ProfileRow& r : rows) width = std::max(width, 2 * r.depth + r.name.size());
  out += fmt::format("{:<{}} {:>8} {:>11} {:>11} {:>7} {:>11}\n", "range", width, "calls",
                     "total ms", "self ms", "% step", "us/call");
  for (const ProfileRow& r : rows) {
    out += fmt::format("{:<{}} {:>8} {:>11.3f} {:>11.3f} {:>7} {:>11.1f}\n",
                       std::string(2 * r.depth, ' ') + r.name, width, r.calls, r.total_ms,
                       r.self_ms, percent(r.total_ms, step_ms),
                       r.calls > 0 ? 1000.0 * r.total_ms / static_cast<double>(r.calls) : 0.0);
  }
  return out + "\n" + self_by_name_table(rows, step_ms);
}

// ---- StepProfiler ---------------------------------------------------------------------------

StepProfiler::~StepProfiler() {
  if (steps_ > 0 && !done_ && begun_ > 0) cuda::range_timing_stop();
}

void StepProfiler::configure(int64_t steps, bool cuda_events, std::string out_dir) {
  CHECK(steps >= 0, "trainer.profile_steps must be >= 0 (0: off), got {}", steps);
  steps_ = steps;
  cuda_events_ = cuda_events;
  out_dir_ = std::move(out_dir);
  begun_ = 0;
  warmup_ranges_ = 0;
  done_ = false;
  rows_.clear();
}

void StepProfiler::begin_step() {
  if (steps_ > 0 && !done_) {
    const cuda::RangeClock clock =
        cuda_events_ ? cuda::RangeClock::CudaEvents : cuda::RangeClock::Host;
    if (begun_ == 0) {
      cuda::range_timing_start(clock);  // the warm-up, recorded only to count its ranges
    } else if (begun_ == 1) {
      cuda::range_timing_start(clock, warmup_ranges_ * static_cast<size_t>(steps_) + 64);
    } else {
      cuda::range_timing_resume();
    }
  }
  ++begun_;
  step_range_ = std::make_unique<cuda::NvtxRange>("step");
}

void StepProfiler::end_step() {
  step_range_.reset();
  if (steps_ == 0 || done_) return;
  if (begun_ == 1) {
    warmup_ranges_ = cuda::range_timing_stop().size();
  } else if (begun_ - 1 < steps_) {
    cuda::range_timing_pause();  // logging, checkpoints and validation between steps: untimed
  } else {
    finish();
  }
}

void StepProfiler::finish() {
  done_ = true;
  rows_ = profile_rows(cuda::range_timing_stop());
  const std::string clock =
      cuda_events_ ? "CUDA events on the compute stream" : "the host's steady clock";
  const std::string table = format_profile_table(rows_, steps_, clock);
  std::printf(
      "%s[profile] training continues (on a fresh run, --set trainer.max_steps=%lld stops "
      "right after the table)\n",
      table.c_str(), static_cast<long long>(steps_ + 1));
  std::fflush(stdout);
  if (out_dir_.empty()) return;
  write_file_atomic(out_dir_ + "/profile.txt", table);
  write_file_atomic(out_dir_ + "/profile.json", rows_json(rows_, steps_, clock).dump(2) + "\n");
}

}  // namespace mt::training
