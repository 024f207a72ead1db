// The optimizer's arithmetic as ops: one fused AdamW update over a list of tensors, and the
// gradient global norm and clip coefficient, all of which stay on the tensors' device.
//
// Why ops and not plain loops in optim/: on the GPU the whole update is one multi-tensor kernel
// launch, and the learning rate and clip coefficient are read from device memory, so a training
// step never waits for the host (see cuda/adamw.cuh). The CPU versions are the reference.
#pragma once

#include <vector>

#include "tensor/tensor.h"

namespace mt::ops {

struct AdamWHyper {
  float beta1 = 0.9f;
  float beta2 = 0.999f;
  float eps = 1e-8f;
  float weight_decay = 0.01f;  // decoupled: p -= lr * weight_decay * p (0 gives Adam's update)
};

// One AdamW step, in place, over parallel lists of float32 tensors on one device:
//   p    -= lr * wd * p
//   m     = b1 * m + (1 - b1) * g * s          (s = grad_scale, the clip coefficient, or 1)
//   v     = b2 * v + (1 - b2) * (g * s)^2
//   p    -= lr * (m / (1 - b1^step)) / (sqrt(v / (1 - b2^step)) + eps)
// `lr` is a one-element float32 tensor on the parameters' device; `step` counts from 1.
void adamw_step_(std::vector<Tensor>& params, const std::vector<Tensor>& grads,
                 std::vector<Tensor>& exp_avg, std::vector<Tensor>& exp_avg_sq, const Tensor& lr,
                 int64_t step, const AdamWHyper& hyper, const Tensor& grad_scale = Tensor());

// sqrt(sum over all tensors of sum(g^2)), as a one-element float32 tensor on the grads' device.
Tensor grad_global_norm(const std::vector<Tensor>& grads);

// min(1, max_norm / (norm + 1e-6)) as a one-element float32 tensor (torch's clip_grad_norm_).
Tensor clip_coefficient(const Tensor& norm, float max_norm);

}  // namespace mt::ops
