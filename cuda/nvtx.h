// NvtxRange: names a region of host code on the Nsight Systems timeline.
//
//   { cuda::NvtxRange range("rmsnorm_fwd"); ...launch... }
//
// With CUDA it pushes an NVTX3 range (header-only, from the CUDA toolkit) and pops it when the
// object goes out of scope; without CUDA it compiles to nothing. It is a plain C++ header, so
// ops/, training/ and apps/ mark their ops and phases (forward, backward, optimizer, ...) too.
// When no profiler is attached, a push/pop costs a few nanoseconds (NVTX3's injection check).
#pragma once

#ifdef MT_WITH_CUDA
#include <nvtx3/nvToolsExt.h>
#endif

namespace mt::cuda {

class NvtxRange {
 public:
#ifdef MT_WITH_CUDA
  explicit NvtxRange(const char* name) { nvtxRangePushA(name); }
  ~NvtxRange() { nvtxRangePop(); }
#else
  explicit NvtxRange(const char*) {}
#endif
  NvtxRange(const NvtxRange&) = delete;
  NvtxRange& operator=(const NvtxRange&) = delete;
};

}  // namespace mt::cuda
