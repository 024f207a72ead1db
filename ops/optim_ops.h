// The optimizer's arithmetic as ops: one fused AdamW update over a list of tensors, the
// optimizer's step counters, and the gradient global norm and clip coefficient, all of which
// stay on the tensors' device.
//
// Why ops and not plain loops in optim/: on the GPU the whole update is one multi-tensor kernel
// launch, and the learning rate, clip coefficient, step count and non-finite guard are read from
// device memory, so a training step never waits for the host (see cuda/optim_ops.cuh). The CPU
// versions are the reference.
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
//   t     = step_count + 1                     (the update being applied)
//   p    -= lr * wd * p
//   m     = b1 * m + (1 - b1) * g * s          (s = grad_scale, the clip coefficient, or 1)
//   v     = b2 * v + (1 - b2) * (g * s)^2
//   p    -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
// `lr` (float32) and `step_count` (int64, the updates taken so far) are one-element tensors on
// the parameters' device; the bias corrections 1 - b^t are computed from step_count where the
// update runs (in the kernel on the GPU), and step_count is not changed: the caller advances it
// afterwards with optimizer_counters_advance_. `nonfinite_guard` (optional, one-element float32
// on the same device, e.g. the gradient norm): when it is NaN or Inf nothing is written.
void adamw_step_(std::vector<Tensor>& params, const std::vector<Tensor>& grads,
                 std::vector<Tensor>& exp_avg, std::vector<Tensor>& exp_avg_sq, const Tensor& lr,
                 const Tensor& step_count, const AdamWHyper& hyper,
                 const Tensor& grad_scale = Tensor(), const Tensor& nonfinite_guard = Tensor());

// An optimizer's counters: one int64 [kNumOptimCounters] tensor on its device, so that the host
// reads all of them in one copy. int64 because a count must stay exact: float32 stops counting at
// 2^24 (16.7M steps), and int64 is the type of the host API and of the checkpoint's "step".
enum OptimCounter : int64_t {
  kStepsApplied = 0,   // updates applied (AdamW's t of the next update is this + 1)
  kSkippedTotal = 1,   // steps skipped for a non-finite guard, in all
  kSkippedInARow = 2,  // ... since the last applied update
  kNumOptimCounters = 3,
};

// Counts one optimizer step, after all of its updates were queued: an applied update when
// `nonfinite_guard` is undefined or finite (steps += 1, in a row = 0), else a skip (total and
// in a row += 1). On the GPU a one-thread kernel: no host read.
void optimizer_counters_advance_(Tensor& counters, const Tensor& nonfinite_guard = Tensor());

// 1 where x is finite, 0 where it is NaN or Inf, in x's dtype and on its device (a mask for
// where(); no host read).
Tensor finite_mask(const Tensor& x);

// sqrt(sum over all tensors of sum(g^2)), as a 0-dim float32 tensor on the grads' device: the
// global gradient norm. Sums in float64 in a fixed order (the same bits every run); any floating
// dtype (the GPU converts to float32 first).
Tensor grad_global_norm(const std::vector<Tensor>& grads);

// min(1, max_norm / (norm + 1e-6)) as a one-element float32 tensor (torch's clip_grad_norm_).
Tensor clip_coefficient(const Tensor& norm, float max_norm);

}  // namespace mt::ops
