// The fused multi-tensor AdamW step: every parameter of the model updated by one kernel launch
// (up to kMaxAdamTensors tensors a launch; more are split over several), float32 parameters,
// gradients and moments. The learning rate and the gradient scale (the clip coefficient) are
// read from device memory, so the host never waits for the GPU to learn them: the optimizer
// step queues behind the backward pass and the gradient-norm kernels with no synchronization.
#pragma once

#include <cstdint>

namespace mt::cuda {

// 48 tensors: 48 x (4 pointers + 1 count) x 8 B = 1.9 KB of kernel parameters, under the
// classic 4 KB limit. A model with more parameter tensors takes ceil(n / 48) launches.
constexpr int kMaxAdamTensors = 48;

struct AdamWTensor {
  float* param;
  const float* grad;
  float* exp_avg;
  float* exp_avg_sq;
  int64_t numel;
};

struct AdamWScalars {
  float beta1, beta2, eps, weight_decay;
  float bias_correction1;  // 1 - beta1^step
  float bias_correction2;  // 1 - beta2^step
};

// lr: one float on the device. grad_scale: one float on the device, or null for 1.
void adamw_step(const AdamWTensor* tensors, int count, const AdamWScalars& scalars, const float* lr,
                const float* grad_scale);

}  // namespace mt::cuda
