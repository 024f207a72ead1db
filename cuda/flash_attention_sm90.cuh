// Launchers of the Hopper FlashAttention kernels (cuda/flash_attention_fwd_sm90.cu and
// cuda/flash_attention_bwd_sm90.cu: warpgroup MMA, sm_90a). Plain C++ like
// cuda/flash_attention.cuh, so that tests and benches can call it directly.
#pragma once

#include "cuda/flash_attention.cuh"

namespace mt::cuda::fa {

// Whether the current device has compute capability exactly 9.0 (sm_90a code runs on nothing
// else, not even later GPUs), asked once per device (cuda/flash_attention_fwd_sm90.cu).
bool device_is_sm90();

// Whether the wgmma kernels, forward and backward alike, take p: head dim 64 or 128, no
// dropout, a non-empty problem with B * H <= 65535, an sm_90 device.
bool sm90_handles(const FlashAttentionParams& p);

// Whether flash_attention_forward() tries the sm90 kernel before the mma.sync one (false: the
// mma.sync kernel everywhere, for an A/B; docs/benchmarks.md has the figures).
constexpr bool kUseSm90Forward = true;

// out, lse <- attention(q, k, v) on the wgmma kernel, exactly as flash_attention_forward defines
// them. Returns false, launching nothing, when the kernel does not handle the case
// (!sm90_handles(p)): the sm_90a code runs on no device but compute capability 9.0.
bool launch_forward_sm90(const FlashAttentionParams& p);

// Whether flash_attention_backward() tries the sm90 dK/dV/dQ kernel in place of the mma.sync one
// of cuda/flash_attention_bwd_kv.cu (the delta kernel before it and the dQ rounding after it are
// shared). false: the mma.sync kernel everywhere, for an A/B (docs/benchmarks.md).
constexpr bool kUseSm90Backward = true;

// The single pass's dK, dV and dq_accum (+= scale dS K) on the wgmma kernel, exactly as
// launch_backward_kv computes them; p.delta must hold the delta kernel's output and p.dq_accum
// its zeros. Returns false, launching nothing, for the deterministic backward (p.dq_accum null)
// or a case the kernel does not handle (!sm90_handles(p)).
bool launch_backward_sm90(const FlashAttentionParams& p);

}  // namespace mt::cuda::fa
