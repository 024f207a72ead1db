// The range timer's device clock (range_timer.h): a pool of CUDA events recorded on the compute
// stream. Events are created with timing on (no cudaEventDisableTiming) and kept for the life of
// the process, like the caching allocator's blocks.
#include <vector>

#include "cuda/check.cuh"
#include "cuda/range_timer.h"

namespace mt::cuda {

namespace {
std::vector<cudaEvent_t>& pool() {
  static std::vector<cudaEvent_t> events;
  return events;
}

cudaEvent_t slot_event(size_t slot) {
  CHECK(slot < pool().size(), "range timer: event slot {} of a pool of {}", slot, pool().size());
  return pool()[slot];
}
}  // namespace

void timing_events_reserve(size_t count) {
  std::vector<cudaEvent_t>& events = pool();
  while (events.size() < count) {
    cudaEvent_t e = nullptr;
    CUDA_CHECK(cudaEventCreate(&e));
    events.push_back(e);
  }
}

void timing_event_record(size_t slot) { CUDA_CHECK(cudaEventRecord(slot_event(slot), stream())); }

void timing_event_wait(size_t slot) { CUDA_CHECK(cudaEventSynchronize(slot_event(slot))); }

double timing_event_elapsed_ms(size_t from, size_t to) {
  float ms = 0;
  CUDA_CHECK(cudaEventElapsedTime(&ms, slot_event(from), slot_event(to)));
  return ms;
}

}  // namespace mt::cuda
