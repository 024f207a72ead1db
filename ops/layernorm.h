// LayerNorm over the last dimension (torch.nn.LayerNorm with a weight and a bias):
//
//   mean_n = sum_c x[n,c] / C
//   rstd_n = 1 / sqrt(sum_c (x[n,c] - mean_n)^2 / C + eps)
//   y[n,c] = (x[n,c] - mean_n) * rstd_n * w[c] + b[c]
//
// x is [..., C] (any layout; leading dims are flattened into N rows), w and b are [C]. The
// statistics are summed in float64 and saved as `mean` and `rstd` [N]: float64 for a float64 x,
// float32 otherwise. bfloat16 x computes in float32 and stores a bfloat16 y. w and b share one
// floating dtype, which may differ from x's (a float32 weight with a bfloat16 x is the
// mixed-precision case). Saved for backward: x, w, mean and rstd.
#pragma once

#include "tensor/tensor.h"

namespace mt::ops {

// y [..., C] = layernorm(x [..., C], w [C], b [C]); writes mean [N] and rstd [N] (N = numel / C)
// when the pointers are non-null.
Tensor layernorm_forward(const Tensor& x /*[N,C]*/, const Tensor& w /*[C]*/,
                         const Tensor& b /*[C]*/, float eps, Tensor* mean /*[N]*/,
                         Tensor* rstd /*[N]*/);

// Given dy [..., C] and the forward's x, w, mean, rstd, with xhat = (x - mean) rstd and
// g = dy w:
//   dx[n,c] = rstd_n * (g[n,c] - sum_k g[n,k] / C - xhat[n,c] * sum_k g[n,k] xhat[n,k] / C)
//   dw[c]   = sum_n dy[n,c] xhat[n,c]          (summed in a fixed order: deterministic)
//   db[c]   = sum_n dy[n,c]
// dx has x's shape and dtype, dw and db have w's. Any output pointer may be null to skip it.
void layernorm_backward(const Tensor& dy, const Tensor& x, const Tensor& w, const Tensor& mean,
                        const Tensor& rstd, Tensor* dx, Tensor* dw, Tensor* db);

}  // namespace mt::ops
