// The range timer's device clock in a build without CUDA: there is no stream to time, so only
// RangeClock::Host can record, and asking for events is an Error that says why.
#ifndef MT_WITH_CUDA

#include "base/error.h"
#include "cuda/range_timer.h"

namespace mt::cuda {

namespace {
[[noreturn]] void no_cuda() {
  FAIL(
      "range timer: CUDA events need a build with CUDA support; CPU runs time with the host "
      "clock (RangeClock::Host)");
}
}  // namespace

void timing_events_reserve(size_t) { no_cuda(); }
void timing_event_record(size_t) { no_cuda(); }
void timing_event_wait(size_t) { no_cuda(); }
double timing_event_elapsed_ms(size_t, size_t) { no_cuda(); }

}  // namespace mt::cuda

#endif  // MT_WITH_CUDA
