// Inverted dropout with a counter-based mask (base/philox.h):
//
//   keep[i] = philox_uniform_at(seed, stream, i) >= p      (i = row-major index in x)
//   y[i]    = keep[i] ? x[i] * scale : 0                   scale = 1 / (1 - p)
//
// The mask is a pure function of (seed, stream, i), so nothing is stored: the backward
// regenerates it, and the CUDA kernel reproduces exactly these bits. `scale` is computed in the
// compute type (float32 for float32 / bfloat16, float64 for float64). p = 0 is the identity
// (every uniform is >= 0); p = 1 drops everything (gives zeros, not 0 * inf). Saved for
// backward: (p, seed, stream). The output is contiguous with x's shape and dtype.
#pragma once

#include <cstdint>

#include "tensor/tensor.h"

namespace mt::ops {

// y = dropout(x) with the mask of draw (seed, stream); 0 <= p <= 1.
Tensor dropout_forward(const Tensor& x, float p, uint64_t seed, uint64_t stream);
// dx = dy * keep * scale: the same mask, hence the same function applied to dy.
Tensor dropout_backward(const Tensor& dy, float p, uint64_t seed, uint64_t stream);
// The keep mask itself as a float32 tensor of 0s and 1s (for tests and debugging).
Tensor dropout_mask(const Shape& shape, float p, uint64_t seed, uint64_t stream);

}  // namespace mt::ops
