// Reductions on the GPU: the input is viewed as a dense [outer, K, inner] block and reduced over
// K, giving a dense [outer, inner] output. ops/ brings any dims list to this form (the reduced
// dims made adjacent by a permute + contiguous when they are not already).
//
// Accumulation is in float64 for every input type, as the CPU reference does: a float32 sum of
// 10^6 terms would otherwise drift by ~1e-4 relative. Reductions are memory-bound, and an H100's
// float64 adds (67 TFLOP/s) are far from the limit. Fixed reduction order: deterministic bits.
#pragma once

#include <cstdint>

#include "cuda/tensor_kernels.cuh"

namespace mt::cuda {

enum class ReduceKind : uint8_t {
  Sum,  // scale * sum_k x           (scale = 1 for sum, 1/K for mean)
  Max,  // max_k x, NaN wins
  Var,  // (sum_k x^2 - (sum_k x)^2 / K) * scale   (scale = 1/(K-1) or 1/K)
};

void launch_reduce(ReduceKind kind, ElemType type, void* out, const void* x, int64_t outer,
                   int64_t K, int64_t inner, double scale);

// out[o, i] = the first k with the largest x[o, k, i] (NaN counts as largest), as int64.
void launch_argmax(ElemType type, int64_t* out, const void* x, int64_t outer, int64_t K,
                   int64_t inner);

}  // namespace mt::cuda
