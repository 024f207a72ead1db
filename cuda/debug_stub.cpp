// The allocator test hooks in a build without CUDA: nothing is allocated, so nothing to poison.
#ifndef MT_WITH_CUDA

#include "cuda/debug.h"

namespace mt::cuda {

void set_poison_allocations(bool) {}

}  // namespace mt::cuda

#endif  // MT_WITH_CUDA
