// Rotary position embedding on x [B, T, H, D] with any strides, into a dense y (cuda/rotary.cu):
// the GPU side of ops/rotary.cpp. Floating element types; bf16 computes in float32.
#pragma once

#include <cstdint>

#include "cuda/tensor_kernels.cuh"

namespace mt::cuda {

// Rotates channel pairs (c, c + R/2), c < R/2, by theta = (t + position_offset) *
// base^(-2c / R); channels >= R are copied. `inverse` rotates by -theta (the backward).
void launch_rotary(ElemType type, void* y, const void* x, const int64_t* x_strides /*4*/, int64_t B,
                   int64_t T, int64_t H, int64_t D, int64_t R, double base, int64_t position_offset,
                   bool inverse);

}  // namespace mt::cuda
