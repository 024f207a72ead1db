// Rotary position embedding on x [B, T, H, D] into y [B, T, H, D], both with any strides
// (cuda/rotary.cu): the GPU side of ops/rotary.cpp. Floating element types; bf16 computes in
// float32.
#pragma once

#include <cstdint>

#include "cuda/tensor_kernels.cuh"

namespace mt::cuda {

// Rotates channel pairs (c, c + R/2), c < R/2, of the heads h < rotated_heads by theta =
// (t + position_offset) * base^(-2c / R); channels >= R, and every channel of the other heads,
// are copied. `inverse` rotates by -theta (the backward). y may be x itself (same pointer and
// strides: in place). The packed q, k, v of the fused projection is one call: its [B, T, 3 H, D]
// view with rotated_heads = 2 H.
void launch_rotary(ElemType type, void* y, const int64_t* y_strides /*4*/, const void* x,
                   const int64_t* x_strides /*4*/, int64_t B, int64_t T, int64_t H, int64_t D,
                   int64_t R, int64_t rotated_heads, double base, int64_t position_offset,
                   bool inverse);

}  // namespace mt::cuda
