// The per-op time table of `trainer.profile_steps = N` (docs/profiling.md), without Nsight.
//
// The training loop wraps each optimizer step in an NVTX range "step"; inside it are the phases
// (data, forward, loss, backward, optimizer), inside those the autograd functions and backward
// nodes (linear, rmsnorm, ...), and inside those the CUDA launchers' ranges (gemm, convert, ...).
// StepProfiler lets the first step of the session run untimed (a warm-up: caches, cuBLASLt plans,
// the CUDA events), times the next N steps with the range timer (cuda/range_timer.h: CUDA
// events on a GPU run, the steady clock on a CPU run), then prints the table, writes it to the
// run folder (profile.txt, and profile.json for scripts) and lets training continue.
//
// A row is every range with the same path (step/backward/linear/gemm) summed over the N steps:
// calls, total ms, self ms (total minus the ranges directly inside it), % of the step's total,
// and µs per call. A second table sums self time by range name over all paths.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "cuda/nvtx.h"
#include "cuda/range_timer.h"

namespace mt::training {

struct ProfileRow {
  std::string name;  // the range's own name
  std::string path;  // the names from the outermost range down, joined with '/'
  int depth = 0;
  int64_t calls = 0;
  double total_ms = 0;  // summed over the timed steps
  double self_ms = 0;   // total_ms minus the totals of the ranges directly inside
};

// The ranges aggregated by path, in tree order: each row's children follow it, the larger
// total first.
std::vector<ProfileRow> profile_rows(const std::vector<cuda::TimedRange>& ranges);

// The two tables as text. `steps`: how many steps the rows cover; percentages are of the total
// of the top-level "step" row (of all top-level rows when there is none); `clock` names the
// clock in the header.
std::string format_profile_table(const std::vector<ProfileRow>& rows, int64_t steps,
                                 const std::string& clock);

class StepProfiler {
 public:
  StepProfiler() = default;  // times nothing; still marks each step with a "step" range
  ~StepProfiler();           // stops a recording left unfinished (a run that ended early)
  StepProfiler(const StepProfiler&) = delete;
  StepProfiler& operator=(const StepProfiler&) = delete;

  // steps: how many steps to time (0: none); cuda_events: the GPU clock, else the host's;
  // out_dir: where profile.txt and profile.json go ("" for nowhere). The next step begun is
  // the warm-up.
  void configure(int64_t steps, bool cuda_events, std::string out_dir);

  // Around each optimizer step: opens and closes the "step" range, starts, pauses and resumes
  // the timer, and after the N-th timed step prints the table.
  void begin_step();
  void end_step();

  bool done() const { return done_; }
  const std::vector<ProfileRow>& rows() const { return rows_; }

 private:
  void finish();

  int64_t steps_ = 0;
  bool cuda_events_ = false;
  std::string out_dir_;
  int64_t begun_ = 0;         // steps begun this session (the first is the warm-up)
  size_t warmup_ranges_ = 0;  // ranges the warm-up step opened: sizes the event pool
  bool done_ = false;
  std::vector<ProfileRow> rows_;
  std::unique_ptr<cuda::NvtxRange> step_range_;
};

}  // namespace mt::training
