// FlashAttention's tiled algorithm on the CPU (ops/attention_tiled.cpp): the reference path of
// ops/attention.cpp and the readable twin of the CUDA kernels, with plain loops over tiles of
// query rows and keys. Contiguous [B, T, H, D] inputs of float or double; lse is [B, H, T].
#pragma once

#include <cstdint>

#include "cuda/attention_dropout.h"
#include "ops/attention.h"

namespace mt::ops::tiled {

struct Dims {
  int64_t B, T, H, D;
};

// o = softmax(scale q k^T, causal mask, dropout) v and the row log-sum-exp lse, both written.
template <typename scalar_t>
void forward(const Tensor& q, const Tensor& k, const Tensor& v, Tensor& o, Tensor& lse,
             const Dims& s, double scale, bool causal, const DropoutMask& drop);

// dq, dk, dv from the forward's o and lse and the output's gradient dout, in two passes (keys,
// then queries), each gradient row summed by one loop in a fixed order.
template <typename scalar_t>
AttentionGrads backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& o,
                        const Tensor& lse, const Tensor& dout, const Dims& s, double scale,
                        bool causal, const DropoutMask& drop);

}  // namespace mt::ops::tiled
