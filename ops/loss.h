// Regression losses, reduced to a scalar, with their gradient w.r.t. the prediction.
//
// Weighted smooth L1 (Huber with beta), as the seed's
//   (F.smooth_l1_loss(p, t, reduction="none", beta=beta) * W).sum(-1).mean():
//   d = pred - target,  l(d) = |d| < beta ? 0.5 d^2 / beta : |d| - 0.5 beta   (beta = 0: |d|)
//   loss = (1 / N) sum_n sum_f w[f] l(d[n, f])         pred, target [..., F]; N = numel / F
// i.e. the mean over positions of the weighted sum over features (not the mean over elements).
// An undefined `weight` means all ones.
//
// MSE: loss = mean over all elements of (pred - target)^2, as F.mse_loss.
//
// pred and target share shape and dtype, any layout. The loss is a 0-dim tensor: float64 for
// float64 inputs, float32 otherwise (losses stay in float32 under bf16-mixed); sums run in
// float64. The gradients have pred's shape and dtype. Saved for backward: pred, target, weight.
// Since l is even, the gradient w.r.t. target is the gradient w.r.t. pred with the two swapped.
#pragma once

#include "tensor/tensor.h"

namespace mt::ops {

// The weighted smooth-L1 loss above; beta >= 0; weight [F] or undefined.
Tensor smooth_l1_loss(const Tensor& pred, const Tensor& target, float beta,
                      const Tensor& weight = Tensor());
// dpred[n, f] = dloss * w[f] * l'(d[n, f]) / N,  l'(d) = |d| < beta ? d / beta : sign(d).
// dloss is a one-element tensor (the upstream gradient of the scalar loss).
Tensor smooth_l1_loss_backward(const Tensor& dloss, const Tensor& pred, const Tensor& target,
                               float beta, const Tensor& weight = Tensor());

// mean((pred - target)^2).
Tensor mse_loss(const Tensor& pred, const Tensor& target);
// dpred = dloss * 2 (pred - target) / numel.
Tensor mse_loss_backward(const Tensor& dloss, const Tensor& pred, const Tensor& target);

}  // namespace mt::ops
