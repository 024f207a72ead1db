// LayerNorm forward and backward over the last dim of dense x [N, C], weight w [C] and bias
// b [C] (cuda/layernorm.cu): the GPU side of ops/layernorm.cpp. bf16 computes in float32,
// float64 in float64.
#pragma once

#include <cstdint>

#include "cuda/tensor_kernels.cuh"

namespace mt::cuda {

// y = (x - mean) * rstd * w + b with mean [N] and rstd [N] = 1 / sqrt(var + eps) of each row,
// written too: float64 when x is float64, else float32. w and b share one floating type, which
// may differ from x's (float32 with bf16 x: bf16-mixed).
void launch_layernorm_forward(ElemType x_type, ElemType w_type, void* y, void* mean, void* rstd,
                              const void* x, const void* w, const void* b, int64_t N, int64_t C,
                              float eps);
// dx (x's type), dw and db (w's type) may each be null. dw and db are reduced deterministically:
// fixed row chunks, then a fixed-order sum of the chunk partials.
void launch_layernorm_backward(ElemType x_type, ElemType w_type, void* dx, void* dw, void* db,
                               const void* dy, const void* x, const void* w, const void* mean,
                               const void* rstd, int64_t N, int64_t C);

}  // namespace mt::cuda
