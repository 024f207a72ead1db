// Fused multi-tensor AdamW and the optimizer's step counters (see adamw.cuh).
//
// The tensors are laid end to end into one index space of `total` elements; each thread walks
// it with a grid-stride loop, so the element it touches next is always in the same or a later
// tensor and a cursor (not a search) finds the tensor. Adjacent threads touch adjacent
// elements: every load and store is coalesced.
#include "cuda/adamw.cuh"
#include "cuda/kernel_utils.cuh"

namespace mt::cuda {

namespace {

struct AdamWBatch {
  AdamWTensor t[kMaxAdamTensors];
  int64_t start[kMaxAdamTensors + 1];  // prefix sums of numel
  int count;
};

__global__ void adamw_kernel(AdamWBatch batch, AdamWScalars s, const float* lr_ptr,
                             const float* scale_ptr, const int64_t* count_ptr,
                             const float* guard_ptr) {
  // A non-finite guard (the gradient norm) skips the update: every thread of the grid sees the
  // same value and leaves at once, so parameters and moments keep their bits.
  if (guard_ptr && !isfinite(*guard_ptr)) return;
  const float lr = *lr_ptr;
  const float g_scale = scale_ptr ? *scale_ptr : 1.0f;
  // Each thread computes the two bias corrections (~2 log2(t) float64 multiplications each),
  // cheap beside its share of the 28 bytes an element moves.
  const int64_t step = *count_ptr + 1;
  const float bc1 = adam_bias_correction(s.beta1, step);
  const float bc2 = adam_bias_correction(s.beta2, step);
  const int64_t total = batch.start[batch.count];
  int cursor = 0;
  for (int64_t j = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; j < total;
       j += int64_t(gridDim.x) * blockDim.x) {
    while (j >= batch.start[cursor + 1]) ++cursor;
    const AdamWTensor& t = batch.t[cursor];
    const int64_t i = j - batch.start[cursor];
    float p = t.param[i];
    const float g = t.grad[i] * g_scale;
    p -= lr * s.weight_decay * p;  // decoupled weight decay, before the Adam update
    const float m = s.beta1 * t.exp_avg[i] + (1.0f - s.beta1) * g;
    const float v = s.beta2 * t.exp_avg_sq[i] + (1.0f - s.beta2) * g * g;
    t.exp_avg[i] = m;
    t.exp_avg_sq[i] = v;
    p -= lr * (m / bc1) / (sqrtf(v / bc2) + s.eps);
    t.param[i] = p;
  }
}

__global__ void counters_advance_kernel(int64_t* counters, const float* guard_ptr) {
  if (guard_ptr == nullptr || isfinite(*guard_ptr)) {
    counters[0] += 1;  // updates applied: the next update is t = counters[0] + 1
    counters[2] = 0;
  } else {
    counters[1] += 1;  // skipped in all
    counters[2] += 1;  // skipped in a row
  }
}

}  // namespace

void adamw_step(const AdamWTensor* tensors, int count, const AdamWScalars& scalars, const float* lr,
                const float* grad_scale, const int64_t* step_count, const float* nonfinite_guard) {
  NvtxRange range("adamw_step");
  for (int first = 0; first < count; first += kMaxAdamTensors) {
    AdamWBatch batch{};
    batch.count = std::min(kMaxAdamTensors, count - first);
    batch.start[0] = 0;
    for (int k = 0; k < batch.count; ++k) {
      batch.t[k] = tensors[first + k];
      batch.start[k + 1] = batch.start[k] + tensors[first + k].numel;
    }
    const int64_t total = batch.start[batch.count];
    if (total == 0) continue;
    adamw_kernel<<<grid_for(total), kThreads, 0, stream()>>>(batch, scalars, lr, grad_scale,
                                                             step_count, nonfinite_guard);
    LAUNCH_CHECK();
  }
}

void optimizer_counters_advance(int64_t* counters, const float* nonfinite_guard) {
  counters_advance_kernel<<<1, 1, 0, stream()>>>(counters, nonfinite_guard);
  LAUNCH_CHECK();
}

}  // namespace mt::cuda
