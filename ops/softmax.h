// Softmax and log-softmax over one dimension, forward and backward.
//
//   softmax(x)_j     = exp(x_j - m) / sum_k exp(x_k - m)      m = max_k x_k (for stability:
//   log_softmax(x)_j = x_j - m - log(sum_k exp(x_k - m))       exp never overflows)
//
// Any shape; `dim` may be negative. float32 and float64 compute in their own type (sums in
// float64); bfloat16 computes in float32 and stores bfloat16. Outputs are contiguous, same
// dtype and shape as the input. Saved for backward: the output y (not x).
#pragma once

#include "tensor/tensor.h"

namespace mt::ops {

// y = softmax(x) along dim.
Tensor softmax(const Tensor& x, int dim);
// y = log_softmax(x) along dim.
Tensor log_softmax(const Tensor& x, int dim);

// dx = y * (dy - sum_dim(dy * y)), given the forward's output y.
Tensor softmax_backward(const Tensor& dy, const Tensor& y, int dim);
// dx = dy - exp(y) * sum_dim(dy), given the forward's output y = log_softmax(x).
Tensor log_softmax_backward(const Tensor& dy, const Tensor& y, int dim);

}  // namespace mt::ops
