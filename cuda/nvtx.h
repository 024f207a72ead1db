// NvtxRange: names a region of host code on the Nsight Systems timeline, and times it for the
// per-op table when the range timer records (cuda/range_timer.h, `trainer.profile_steps`).
//
//   { cuda::NvtxRange range("rmsnorm_fwd"); ...launch... }
//
// With CUDA it pushes an NVTX3 range (header-only, from the CUDA toolkit) and pops it when the
// object goes out of scope. It is a plain C++ header, so ops/, autograd/, training/ and apps/
// mark their ops and phases (forward, backward, optimizer, ...) too. When no profiler is
// attached and the timer is off, a range costs a few nanoseconds (NVTX3's injection check and
// one relaxed atomic load); a CPU-only build has no NVTX, only the timer's check.
#pragma once

#include <cstdint>

#include "cuda/range_timer.h"

#ifdef MT_WITH_CUDA
#include <nvtx3/nvToolsExt.h>
#endif

namespace mt::cuda {

class NvtxRange {
 public:
  explicit NvtxRange(const char* name) {
#ifdef MT_WITH_CUDA
    nvtxRangePushA(name);
#endif
    if (g_range_timing.load(std::memory_order_relaxed)) timed_ = range_timing_begin(name);
  }
  ~NvtxRange() {
    if (timed_ >= 0) range_timing_end(timed_);
#ifdef MT_WITH_CUDA
    nvtxRangePop();
#endif
  }
  NvtxRange(const NvtxRange&) = delete;
  NvtxRange& operator=(const NvtxRange&) = delete;

 private:
  int64_t timed_ = -1;  // the range timer's id for this range, or -1 when not timed
};

}  // namespace mt::cuda
