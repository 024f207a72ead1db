// Differentiable scaled-dot-product attention (ops/attention.h has the layout and the options).
#pragma once

#include "autograd/var.h"
#include "ops/attention.h"
#include "ops/rotary.h"

namespace mt {

using AttentionOptions = ops::AttentionOptions;

// softmax(scale * q k^T + causal mask) v with dropout on the probabilities; q, k, v are
// [B, T, H, D] (strided views allowed), the result [B, T, H, D]. CUDA tensors run the
// FlashAttention kernels, CPU tensors the tiled CPU algorithm. Saves out and the row
// log-sum-exp for backward, never the T x T probabilities; the dropout mask is regenerated from
// (seed, offset).
Var scaled_dot_product_attention(const Var& q, const Var& k, const Var& v,
                                 const AttentionOptions& options = {});

// The attention of a fused QKV projection: qkv [B, T, 3, H, D] (a view of Wqkv's output; parts
// q, k, v), rotary embedding on q and k, then scaled_dot_product_attention; returns
// [B, T, H, D]. The same function as rotary(select(qkv, 2, 0)), rotary(select(qkv, 2, 1)),
// select(qkv, 2, 2) into scaled_dot_product_attention, in fewer passes: the forward rotates the
// packed tensor in one kernel (ops::rotary_qkv_forward), and the backward writes dq, dk, dv
// into one packed gradient, rotates its q and k parts back in place and returns it, with no
// zero fill, scatter or sum. Saves: the rotated packed tensor [B, T, 3, H, D] (what the
// attention read), out and the row log-sum-exp; the dropout mask is regenerated.
Var packed_attention(const Var& qkv, const ops::RotaryOptions& rope,
                     const AttentionOptions& options = {});

}  // namespace mt
