// RMSNorm over the last dimension (torch.nn.RMSNorm with a weight):
//
//   rstd_n = 1 / sqrt(mean_c x[n,c]^2 + eps)
//   y[n,c] = x[n,c] * rstd_n * w[c]
//
// x is [..., C] (any layout; leading dims are flattened into N rows), w is [C]. The statistics
// are computed in float64 on the CPU and saved as `rstd` [N]: float64 for a float64 x, float32
// otherwise (the precision the seed's bf16-mixed run kept norms in). bfloat16 x computes in
// float32 and stores a bfloat16 y. w may be any floating dtype (a float32 weight with a bfloat16
// x is the mixed-precision case). Saved for backward: x, w and rstd.
#pragma once

#include "tensor/tensor.h"

namespace mt::ops {

// y [..., C] = rmsnorm(x [..., C], w [C]); writes rstd [N] (N = numel / C) when rstd is non-null.
Tensor rmsnorm_forward(const Tensor& x /*[N,C]*/, const Tensor& w /*[C]*/, float eps,
                       Tensor* rstd /*[N]*/);

// Given dy [..., C] and the forward's x, w, rstd:
//   dx[n,c] = rstd_n * (dy[n,c] w[c] - x[n,c] rstd_n^2 / C * sum_k dy[n,k] w[k] x[n,k])
//   dw[c]   = sum_n dy[n,c] x[n,c] rstd_n           (summed in a fixed order: deterministic)
// dx has x's shape and dtype, dw has w's. Either output pointer may be null to skip it.
void rmsnorm_backward(const Tensor& dy, const Tensor& x, const Tensor& w, const Tensor& rstd,
                      Tensor* dx, Tensor* dw);

// The pre-norm block's residual add fused with the norm after it: *h = x + r (x, r [..., C] of
// one shape and dtype; rounded to that dtype), y = rmsnorm(*h, w), *rstd as rmsnorm_forward's;
// one pass over the rows (one kernel on the GPU), with the bits of ops::add followed by
// rmsnorm_forward, which is the CPU reference. h and rstd must be non-null: the backward needs
// them (autograd's add_rmsnorm).
Tensor add_rmsnorm_forward(const Tensor& x /*[N,C]*/, const Tensor& r /*[N,C]*/,
                           const Tensor& w /*[C]*/, float eps, Tensor* h /*[N,C]*/,
                           Tensor* rstd /*[N]*/);

}  // namespace mt::ops
