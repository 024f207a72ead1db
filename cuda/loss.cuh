// The regression losses over dense pred, target [N, F] (cuda/loss.cu): the GPU side of
// ops/loss.cpp.
//
// weight: [F] float64 or null (all ones). beta < 0 selects MSE, else weighted smooth L1:
//   smooth L1: loss = (1/N) sum_n sum_f w[f] l(pred - target);  MSE: mean((pred - target)^2).
// loss: one element, float64 for float64 inputs, else float32. Sums in float64, reduced in a
// fixed order (per-block partials, then one block adds them): the same bits every run.
#pragma once

#include <cstdint>

#include "cuda/tensor_kernels.cuh"

namespace mt::cuda {

void launch_loss_forward(ElemType type, void* loss, const void* pred, const void* target,
                         const double* weight, int64_t N, int64_t F, float beta);
// dpred = dloss * dl/dpred; dloss is one float64 element on the device (no host read).
void launch_loss_backward(ElemType type, void* dpred, const double* dloss, const void* pred,
                          const void* target, const double* weight, int64_t N, int64_t F,
                          float beta);

}  // namespace mt::cuda
