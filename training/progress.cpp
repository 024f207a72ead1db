#include "training/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>

#include "base/error.h"

namespace mt::training {

ProgressMode parse_progress_mode(const std::string& name) {
  if (name == "auto") return isatty(fileno(stdout)) ? ProgressMode::Bar : ProgressMode::Plain;
  if (name == "bar") return ProgressMode::Bar;
  if (name == "plain") return ProgressMode::Plain;
  if (name == "none") return ProgressMode::Quiet;
  FAIL("progress mode must be auto, bar, plain or none, got '{}'", name);
}

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const auto s = static_cast<int64_t>(std::llround(seconds));
  if (s >= 3600) return fmt::format("{}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60);
  return fmt::format("{}:{:02}", s / 60, s % 60);
}

namespace {

std::string format_rate(double tokens_per_s) {
  if (tokens_per_s >= 1e6) return fmt::format("{:.2f}M tok/s", tokens_per_s / 1e6);
  if (tokens_per_s >= 1e3) return fmt::format("{:.1f}k tok/s", tokens_per_s / 1e3);
  return fmt::format("{:.0f} tok/s", tokens_per_s);
}

}  // namespace

Progress::Progress(ProgressMode mode, int epoch, int epochs, int64_t steps_in_epoch, std::FILE* out)
    : mode_(mode),
      epoch_(epoch),
      epochs_(epochs),
      steps_in_epoch_(steps_in_epoch),
      out_(out),
      start_(std::chrono::steady_clock::now()) {}

void Progress::set_step_limit(int64_t steps_before_epoch, int64_t max_steps) {
  steps_before_epoch_ = steps_before_epoch;
  max_steps_ = max_steps;
}

std::string Progress::line(int64_t step_in_epoch, double loss, double lr, double tokens_per_s,
                           double elapsed_s) const {
  // What the bar, the count and the ETA measure: this epoch's steps, or the steps to max_steps.
  const bool limited = max_steps_ > 0;
  const int64_t done = limited ? steps_before_epoch_ + step_in_epoch : step_in_epoch;
  const int64_t total = limited ? max_steps_ : steps_in_epoch_;
  const int64_t done_here = step_in_epoch - std::max<int64_t>(first_step_, 0);
  const int64_t left = std::max<int64_t>(total - done, 0);
  const double eta = done_here > 0 ? elapsed_s / static_cast<double>(done_here) * left : NAN;
  std::string s = fmt::format("epoch {}/{} ", epoch_ + 1, epochs_);
  if (mode_ == ProgressMode::Bar) {
    constexpr int kWidth = 24;  // leaves room for the figures in an 80-column terminal
    const int filled =
        total > 0 ? static_cast<int>(kWidth * std::min<int64_t>(done, total) / total) : 0;
    s += "[" + std::string(filled, '#') + std::string(kWidth - filled, '-') + "] ";
  }
  s += fmt::format("{}{}/{}  loss {:.5g}  lr {:.2e}  {}  ETA {}", limited ? "max_steps " : "", done,
                   total, loss, lr, format_rate(tokens_per_s), format_duration(eta));
  return s;
}

void Progress::update(int64_t step_in_epoch, double loss, double lr, double tokens_per_s) {
  if (mode_ == ProgressMode::Quiet) return;
  const auto now = std::chrono::steady_clock::now();
  if (first_step_ < 0) {
    // ETA counts from the first update: steps before it (a resumed epoch) took no time here.
    first_step_ = step_in_epoch;
    start_ = now;
  }
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  const std::string text = line(step_in_epoch, loss, lr, tokens_per_s, elapsed);
  if (mode_ == ProgressMode::Bar) {
    std::fprintf(out_, "\r%s\033[K", text.c_str());  // \033[K clears what a longer line left
    drawn_ = true;
  } else {
    std::fprintf(out_, "%s\n", text.c_str());
  }
  std::fflush(out_);
}

void Progress::finish() {
  if (mode_ == ProgressMode::Bar && drawn_) {
    std::fprintf(out_, "\n");
    std::fflush(out_);
  }
  drawn_ = false;
}

}  // namespace mt::training
