// Launcher of the head-dim-8 FlashAttention forward (cuda/flash_attention_fwd_d8.cu), which
// flash_attention_forward() calls for D = 8. Internal to cuda/.
#pragma once

#include "cuda/flash_attention.cuh"

namespace mt::cuda::fa {

// out, lse <- attention(q, k, v) for p.D == 8, exactly as flash_attention_forward defines them.
void launch_forward_d8(const FlashAttentionParams& p);

}  // namespace mt::cuda::fa
