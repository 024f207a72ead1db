// RMSNorm forward and backward over the last dim of dense x [N, C], weight w [C]
// (cuda/rmsnorm.cu): the GPU side of ops/rmsnorm.cpp. bf16 computes in float32, float64 in
// float64.
#pragma once

#include <cstdint>

#include "cuda/tensor_kernels.cuh"

namespace mt::cuda {

// y = x * rstd * w, rstd [N] = 1 / sqrt(mean(x^2) + eps). rstd is float64 when x is float64,
// else float32. w may have its own floating type (float32 with bf16 x: bf16-mixed).
void launch_rmsnorm_forward(ElemType x_type, ElemType w_type, void* y, void* rstd, const void* x,
                            const void* w, int64_t N, int64_t C, float eps);
// h = x + r (rounded to x's type), y = rmsnorm(h) as launch_rmsnorm_forward computes it from h:
// the residual add and the norm after it in one pass. h, x, r [N, C] of x_type.
void launch_add_rmsnorm_forward(ElemType x_type, ElemType w_type, void* y, void* h, void* rstd,
                                const void* x, const void* r, const void* w, int64_t N, int64_t C,
                                float eps);
// dx (x's type) and dw (w's type) may each be null. dw is reduced deterministically: fixed
// row chunks, then a fixed-order sum of the chunk partials.
void launch_rmsnorm_backward(ElemType x_type, ElemType w_type, void* dx, void* dw, const void* dy,
                             const void* x, const void* w, const void* rstd, int64_t N, int64_t C);

}  // namespace mt::cuda
