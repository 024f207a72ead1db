// GELU, forward and backward, in PyTorch's two flavours (F.gelu(x, approximate=...)):
//
//   exact ("none"): gelu(x) = 0.5 x (1 + erf(x / sqrt(2)))                 = x * Phi(x)
//   tanh:           gelu(x) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
//
// Elementwise over any shape and layout; the output is contiguous with x's shape and dtype.
// float32 / float64 compute in their own type; bfloat16 computes in float32. Saved for
// backward: the input x.
#pragma once

#include "tensor/tensor.h"

namespace mt::ops {

enum class GeluApprox { kNone, kTanh };  // kNone = the exact erf form

// y = gelu(x).
Tensor gelu(const Tensor& x, GeluApprox approx = GeluApprox::kTanh);
// dx = dy * gelu'(x); dy and x have the same shape and dtype.
Tensor gelu_backward(const Tensor& dy, const Tensor& x, GeluApprox approx = GeluApprox::kTanh);
// The same in place: dy *= gelu'(x), for a backward that has no further use for dy (the GELU
// MLP's: one [N, F] tensor fewer at its peak). dy must be contiguous and own its elements (no
// broadcast view); the same bits as gelu_backward.
void gelu_backward_(Tensor& dy, const Tensor& x, GeluApprox approx = GeluApprox::kTanh);

}  // namespace mt::ops
