// Launcher of the Hopper FlashAttention forward (cuda/flash_attention_fwd_sm90.cu: warpgroup MMA,
// sm_90a). Plain C++ like cuda/flash_attention.cuh, so that tests and benches can call it directly.
#pragma once

#include "cuda/flash_attention.cuh"

namespace mt::cuda::fa {

// Whether flash_attention_forward() tries the sm90 kernel before the mma.sync one. Off until the
// GPU tests (tests/test_cuda_attention_sm90.cpp) pass on an H100; flip to true to A/B the two.
constexpr bool kUseSm90Forward = false;

// out, lse <- attention(q, k, v) on the wgmma kernel, exactly as flash_attention_forward defines
// them. Returns false, launching nothing, when the kernel does not handle the case: head dim
// other than 64 or 128, dropout on, an empty problem, B * H > 65535, or a device whose compute
// capability is not exactly 9.0 (the sm_90a code runs nowhere else).
bool launch_forward_sm90(const FlashAttentionParams& p);

}  // namespace mt::cuda::fa
