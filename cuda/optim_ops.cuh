// The optimizer's kernels (cuda/optim_ops.cu): the GPU side of ops/optim_ops.cpp.
//
// The fused multi-tensor AdamW step: every parameter of the model updated by one kernel launch
// (up to kMaxAdamTensors tensors a launch; more are split over several), float32 parameters,
// gradients and moments. Nothing the update needs comes from the host: the learning rate, the
// gradient scale (the clip coefficient), the step count (hence the bias corrections) and the
// non-finite guard are all read from device memory. The optimizer step queues behind the
// backward pass and the gradient-norm kernels with no synchronization, and a captured CUDA graph
// replays it correctly at any step.
//
// The step count is read here and advanced by a separate one-thread kernel
// (launch_optimizer_counters_advance) queued after every update of the step: a multi-block update
// kernel cannot both read the count and increment it (a block that starts after another block
// incremented it would use the wrong bias correction).
#pragma once

#include <cstdint>

#include "base/hostdevice.h"

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
};

// The bias correction 1 - beta^t of update t (t >= 1): beta^t by repeated squaring in float64
// (at most 2 log2(t) multiplications, no pow() whose last bit differs between libm and CUDA),
// rounded once to float32. The CPU reference (ops/optim_ops.cpp) and the kernel call this one
// function, so the two compute the same value.
MT_HOST_DEVICE float adam_bias_correction(float beta, int64_t t) {
  double power = 1.0;
  double base = beta;
  for (; t > 0; t >>= 1) {
    if (t & 1) power *= base;
    base *= base;
  }
  return static_cast<float>(1.0 - power);
}

// lr: one float on the device. grad_scale: one float on the device, or null for 1.
// step_count: the updates taken so far (one int64 on the device); this update is t = count + 1.
// nonfinite_guard: one float on the device, or null: when it is NaN or Inf nothing is written.
void launch_adamw_step(const AdamWTensor* tensors, int count, const AdamWScalars& scalars,
                       const float* lr, const float* grad_scale, const int64_t* step_count,
                       const float* nonfinite_guard);

// The optimizer's device counters, after all the updates of one step (one thread, one launch):
// counters = {updates applied, steps skipped in all, steps skipped in a row}. A finite (or null)
// guard counts an applied update and resets the in-a-row count; a NaN or Inf one counts a skip.
void launch_optimizer_counters_advance(int64_t* counters, const float* nonfinite_guard);

// The global L2 norm of a list of float32 tensors (the gradients), computed and kept on the
// device (one float) so that gradient clipping costs no host sync.
struct NormTensor {
  const float* data;
  int64_t numel;
};

// norm[0] = sqrt(sum over tensors of sum(t^2)), accumulated in float64 in a fixed order.
void launch_grad_global_norm(const NormTensor* tensors, int count, float* norm);

// The clip coefficient from that norm, computed and kept on the device so that clipping costs no
// host sync:
//   coef[0] = min(1, max_norm / (norm[0] + 1e-6)), as torch.nn.utils.clip_grad_norm_.
void launch_clip_coefficient(const float* norm, float max_norm, float* coef);

}  // namespace mt::cuda
