// The range timer: times every NvtxRange (cuda/nvtx.h) opened while it records, for the per-op
// table of a few training steps (training/profile_table.h, `trainer.profile_steps`).
//
// Two clocks, one record format:
//   - RangeClock::CudaEvents: a range records a CUDA event on the compute stream when it opens
//     and another when it closes; its time is the stream's time between the two, that is the GPU
//     time of the work the range queued plus any gap in which the GPU waited for the host. No
//     host synchronization happens while recording: stop() waits for the last event, once.
//   - RangeClock::Host: std::chrono::steady_clock at open and close; for CPU runs, where every op
//     finishes before it returns.
// Only the thread that called start() records (the training loop's); ranges opened on other
// threads, or while paused, are not timed.
//
//   cuda::range_timing_start(cuda::RangeClock::Host);
//   ... work with NvtxRanges ...
//   std::vector<cuda::TimedRange> ranges = cuda::range_timing_stop();
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace mt::cuda {

enum class RangeClock { Host, CudaEvents };

// One closed range, in the order the ranges opened.
struct TimedRange {
  const char* name;
  int parent;  // index of the enclosing recorded range, or -1
  int depth;   // 0 for a range with no recorded parent
  double ms;
};

// Starts a fresh recording (what an earlier one recorded is dropped) on this thread.
// expected_ranges: how many ranges it will likely record, so that the CUDA events are made now
// rather than inside the timed work.
void range_timing_start(RangeClock clock, size_t expected_ranges = 0);
// While paused, new ranges are not recorded (those already open still close).
void range_timing_pause();
void range_timing_resume();
// Ends the recording: waits for the GPU once (CudaEvents), then returns every closed range.
std::vector<TimedRange> range_timing_stop();

// Read by every NvtxRange: one relaxed load when the timer is off.
extern std::atomic<bool> g_range_timing;
// Called by NvtxRange: the id to close the range with, or -1 when it is not recorded.
int64_t range_timing_begin(const char* name);
void range_timing_end(int64_t id);

// The device clock behind RangeClock::CudaEvents (cuda/range_timer.cu; without CUDA every call
// is an Error): a pool of timing events, slot i recorded on the compute stream.
void timing_events_reserve(size_t count);  // creates events up to `count` slots
void timing_event_record(size_t slot);
void timing_event_wait(size_t slot);  // blocks the host until the event has happened
double timing_event_elapsed_ms(size_t from, size_t to);

}  // namespace mt::cuda
