// The gradient global L2 norm over a list of float32 tensors, and the clip coefficient, both
// computed and kept on the device (one float each) so that clipping costs no host sync.
#pragma once

#include <cstdint>

namespace mt::cuda {

struct NormTensor {
  const float* data;
  int64_t numel;
};

// norm[0] = sqrt(sum over tensors of sum(t^2)), accumulated in float64 in a fixed order.
void global_l2_norm(const NormTensor* tensors, int count, float* norm);

// coef[0] = min(1, max_norm / (norm[0] + 1e-6)), as torch.nn.utils.clip_grad_norm_.
void clip_coefficient(const float* norm, float max_norm, float* coef);

}  // namespace mt::cuda
