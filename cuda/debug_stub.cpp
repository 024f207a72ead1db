// The runtime's test hooks in a build without CUDA: nothing is allocated, so nothing to poison,
// and no GEMM reaches cuBLASLt.
#ifndef MT_WITH_CUDA

#include "cuda/debug.h"

namespace mt::cuda {

void set_poison_allocations(bool) {}
int64_t gemm_heuristic_queries() { return 0; }
int64_t gemm_epilogue_fallbacks() { return 0; }
void set_gemm_epilogues(bool) {}

}  // namespace mt::cuda

#endif  // MT_WITH_CUDA
