// Progress output for the training loop: a live bar on a terminal, plain lines otherwise.
//
// On a TTY one line is redrawn in place ("\r") at every update:
//   epoch 3/10 [########----------] 120/400  loss 0.01234  lr 5.00e-05  81.2k tok/s  ETA 0:42
// and finished with a newline at the end of the epoch. When trainer.max_steps ends the run inside
// the epoch, the bar, the count and the ETA are those of the steps toward it instead:
//   epoch 1/10 [########----------] max_steps 120/500  loss 0.01234  ...  ETA 1:03
// (an ETA for the rest of an epoch that will not be finished would mislead). Piped to a file (CI,
// nohup, tee) the same figures come as one plain line per update, so logs stay greppable and never
// fill with carriage returns.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace mt::training {

enum class ProgressMode { Bar, Plain, Quiet };

// "auto" (a bar when stdout is a terminal), "bar", "plain" or "none".
ProgressMode parse_progress_mode(const std::string& name);

// "1:02:03" / "4:05": seconds as h:mm:ss or m:ss.
std::string format_duration(double seconds);

class Progress {
 public:
  Progress(ProgressMode mode, int epoch, int epochs, int64_t steps_in_epoch,
           std::FILE* out = stdout);
  // The run stops at global step `max_steps`, inside this epoch, whose first step is global step
  // steps_before_epoch + 1.
  void set_step_limit(int64_t steps_before_epoch, int64_t max_steps);
  // `step_in_epoch` counts optimizer steps done in this epoch (1-based after the first).
  void update(int64_t step_in_epoch, double loss, double lr, double tokens_per_s);
  // Ends the bar's line (no-op for plain output).
  void finish();
  // The text of one update, without the leading "\r": for tests.
  std::string line(int64_t step_in_epoch, double loss, double lr, double tokens_per_s,
                   double elapsed_s) const;

 private:
  ProgressMode mode_;
  int epoch_, epochs_;
  int64_t steps_in_epoch_;
  int64_t steps_before_epoch_ = 0, max_steps_ = 0;  // max_steps_ 0: no limit inside the epoch
  int64_t first_step_ = -1;  // the first step seen: a resumed epoch starts in the middle
  std::FILE* out_;
  std::chrono::steady_clock::time_point start_;
  bool drawn_ = false;
};

}  // namespace mt::training
