// Launcher of the Hopper FlashAttention forward (cuda/flash_attention_fwd_sm90.cu: warpgroup MMA,
// sm_90a). Plain C++ like cuda/flash_attention.cuh, so that tests and benches can call it directly.
#pragma once

#include "cuda/flash_attention.cuh"

namespace mt::cuda::fa {

// Whether flash_attention_forward() tries the sm90 kernel before the mma.sync one (false: the
// mma.sync kernel everywhere, for an A/B). On an H100 the wgmma kernel measured 1.09-1.13x the
// mma.sync one at D = 64 and 1.66-1.76x at D = 128 (docs/benchmarks.md).
constexpr bool kUseSm90Forward = true;

// out, lse <- attention(q, k, v) on the wgmma kernel, exactly as flash_attention_forward defines
// them. Returns false, launching nothing, when the kernel does not handle the case: head dim
// other than 64 or 128, dropout on, an empty problem, B * H > 65535, or a device whose compute
// capability is not exactly 9.0 (the sm_90a code runs nowhere else).
bool launch_forward_sm90(const FlashAttentionParams& p);

}  // namespace mt::cuda::fa
