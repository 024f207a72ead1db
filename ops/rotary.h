// Rotary position embedding (RoPE), rotate-half convention, as the seed's PyTorch code:
//
//   inv_freq[i] = base^(-2i / R)                      i in [0, R/2), R = rotary_dim
//   theta[t,i]  = (t + position_offset) * inv_freq[i]
//   cos, sin    = cos/sin of cat([theta, theta], -1)  ([T, R])
//   y[..., :R]  = x[..., :R] * cos + rotate_half(x[..., :R]) * sin
//   y[..., R:]  = x[..., R:]                          (channels past R pass through)
//   rotate_half(v) = cat([-v[R/2:], v[:R/2]])
//
// i.e. each pair (c, c + R/2), c < R/2, is rotated by the angle theta[t, c]:
//   y[c]       = x[c] cos - x[c + R/2] sin
//   y[c + R/2] = x[c + R/2] cos + x[c] sin
//
// Layout [B, T, H, D] (any strides), or the packed [B, T, 3, H, D] of the fused QKV projection
// (rotary_qkv_*). The angles, cos and sin are computed in float64 (for a long sequence, float32
// angles would be off by ~1e-4 rad at t = 2048); the products in x's compute type (float32 for
// bfloat16). The output is contiguous with x's shape and dtype. Saved for backward: nothing but
// the options, since the backward is the rotation by -theta.
#pragma once

#include <cstdint>

#include "tensor/tensor.h"

namespace mt::ops {

struct RotaryOptions {
  int64_t rotary_dim = -1;      // R: channels rotated, even, <= D; -1 means all of D
  double base = 10000.0;        // the frequency base
  int64_t position_offset = 0;  // position of t = 0 (e.g. for a continued sequence)
};

// y [B, T, H, D] = rope(x [B, T, H, D]).
Tensor rotary_forward(const Tensor& x, const RotaryOptions& options = {});
// dx = the inverse rotation of dy:  dx[c] = dy[c] cos + dy[c+R/2] sin,
//                                   dx[c+R/2] = dy[c+R/2] cos - dy[c] sin.
Tensor rotary_backward(const Tensor& dy, const RotaryOptions& options = {});

// The model's fused projection: qkv [B, T, 3, H, D] (parts q, k, v; any layout). Returns a new
// contiguous [B, T, 3, H, D] with q and k rotated and v copied: one pass over the packed
// tensor (one kernel on the GPU) in place of two rotations of strided views.
Tensor rotary_qkv_forward(const Tensor& qkv, const RotaryOptions& options = {});
// Its backward, in place on a packed gradient dqkv [B, T, 3, H, D]: the q and k parts rotated
// by -theta (one kernel when q and k are adjacent as in a dense tensor), the v part untouched.
void rotary_qkv_backward_(const Tensor& dqkv, const RotaryOptions& options = {});

// The tables the op uses, [T, R/2] each, float64 on the CPU: cos(theta[t, i]), sin(theta[t, i])
// for t in [0, T). For tests and for a CUDA launcher that wants to upload them.
void rotary_tables(int64_t T, int64_t rotary_dim, double base, int64_t position_offset,
                   Tensor* cos_table, Tensor* sin_table);

}  // namespace mt::ops
