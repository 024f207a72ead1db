// GELU forward and backward over n dense elements (cuda/activation.cu): the GPU side of
// ops/activation.cpp. tanh_approx picks the tanh form, else the exact erf form. Floating element
// types; bf16 computes in float32, float64 in float64.
#pragma once

#include <cstdint>

#include "cuda/tensor_kernels.cuh"

namespace mt::cuda {

// y = gelu(x).
void launch_gelu_forward(ElemType type, void* y, const void* x, int64_t n, bool tanh_approx);
// dx = dy * gelu'(x).
void launch_gelu_backward(ElemType type, void* dx, const void* dy, const void* x, int64_t n,
                          bool tanh_approx);

}  // namespace mt::cuda
