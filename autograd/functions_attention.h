// Differentiable scaled-dot-product attention (ops/attention.h has the layout and the options).
#pragma once

#include "autograd/var.h"
#include "ops/attention.h"

namespace mt {

using AttentionOptions = ops::AttentionOptions;

// softmax(scale * q k^T + causal mask) v with dropout on the probabilities; q, k, v are
// [B, T, H, D] (strided views allowed), the result [B, T, H, D]. CUDA tensors run the
// FlashAttention kernels, CPU tensors the tiled CPU algorithm. Saves out and the row
// log-sum-exp for backward, never the T x T probabilities; the dropout mask is regenerated from
// (seed, offset).
Var scaled_dot_product_attention(const Var& q, const Var& k, const Var& v,
                                 const AttentionOptions& options = {});

}  // namespace mt
