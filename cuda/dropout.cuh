// Dropout over n dense elements (cuda/dropout.cu): the GPU side of ops/dropout.cpp.
//
//   y[i] = philox_uniform_at(seed, stream, i) >= p ? x[i] / (1 - p) : 0
//
// the CPU op's mask bit for bit (base/philox.h). The backward is the same call on dy. Floating
// element types; bf16 computes in float32, float64 in float64.
#pragma once

#include <cstdint>

#include "cuda/tensor_kernels.cuh"

namespace mt::cuda {

void launch_dropout(ElemType type, void* y, const void* x, int64_t n, float p, uint64_t seed,
                    uint64_t stream);
// mask[i] = 1 where element i is kept, else 0 (float32).
void launch_dropout_mask(float* mask, int64_t n, float p, uint64_t seed, uint64_t stream);

}  // namespace mt::cuda
