// The two halves of the FlashAttention backward, one .cu file each so that they compile in
// parallel (cuda/flash_attention_bwd_kv.cu, cuda/flash_attention_bwd_q.cu). Internal to cuda/.
#pragma once

#include "cuda/flash_attention.cuh"

namespace mt::cuda::fa {

// dK, dV: one CTA per (64-key block, batch * head), queries streamed (needs p.delta filled);
// with p.dq_accum set, also dQ (atomically, into the zeroed accumulator).
void launch_backward_kv(const FlashAttentionParams& p);
// dQ: one CTA per (64-query block, batch * head), keys streamed; also fills p.delta first.
void launch_backward_q(const FlashAttentionParams& p);
// delta[b, h, t] = sum_d dout[b, t, h, d] * out[b, t, h, d]; zeroes p.dq_accum when set.
void launch_backward_delta(const FlashAttentionParams& p);
// Single pass: dq = p.dq_accum rounded to the element type.
void launch_backward_dq_convert(const FlashAttentionParams& p);

}  // namespace mt::cuda::fa
