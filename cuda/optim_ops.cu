// The optimizer's kernels (see optim_ops.cuh): fused multi-tensor AdamW, the step counters, the
// gradients' global norm and the clip coefficient.
//
// AdamW: the tensors are laid end to end into one index space of `total` elements; each thread
// walks it with a grid-stride loop, so the element it touches next is always in the same or a
// later tensor and a cursor (not a search) finds the tensor. Adjacent threads touch adjacent
// elements: every load and store is coalesced.
//
// The global norm: one launch covers up to kMaxNormTensors tensors. Each tensor gets a fixed
// number of blocks (by its size), laid end to end in blockIdx.x, and each block writes one
// float64 partial sum of squares; one final block adds the partials in order. No atomics: the
// same gradients always give the same norm, so a training run is reproducible bit for bit.
#include "cuda/kernel_utils.cuh"
#include "cuda/optim_ops.cuh"

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

// 16 Ki elements a block (64 per thread): a 400k-element weight gets 25 blocks, and the
// partials array stays small (a 10M-parameter model: ~600 partials).
constexpr int64_t kElemsPerBlock = 16384;
// 48 tensors x (8 B pointer + 8 B count + 8 B first block) = 1.2 KB of kernel parameters.
constexpr int kMaxNormTensors = 48;

struct NormBatch {
  const float* data[kMaxNormTensors];
  int64_t numel[kMaxNormTensors];
  int64_t first_block[kMaxNormTensors + 1];  // prefix sums of each tensor's block count
  int count;
};

__global__ void sum_squares_kernel(double* partial, NormBatch batch, int64_t partial_offset) {
  // The tensor this block belongs to: a scan over at most 48 prefix sums (uniform per block).
  int t = 0;
  while (blockIdx.x >= batch.first_block[t + 1]) ++t;
  const float* data = batch.data[t];
  const int64_t n = batch.numel[t];
  const int64_t begin = (blockIdx.x - batch.first_block[t]) * kElemsPerBlock;
  const int64_t end = begin + kElemsPerBlock < n ? begin + kElemsPerBlock : n;
  double s = 0;
  for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) {
    const double v = data[i];
    s += v * v;
  }
  s = block_sum(s);
  if (threadIdx.x == 0) partial[partial_offset + blockIdx.x] = s;
}

__global__ void finish_norm_kernel(float* norm, const double* partial, int64_t count) {
  double s = 0;
  for (int64_t j = threadIdx.x; j < count; j += blockDim.x) s += partial[j];
  s = block_sum(s);
  if (threadIdx.x == 0) *norm = float(::sqrt(s));
}

__global__ void clip_coefficient_kernel(const float* norm, float max_norm, float* coef) {
  *coef = fminf(1.0f, max_norm / (*norm + 1e-6f));
}

}  // namespace

void launch_adamw_step(const AdamWTensor* tensors, int count, const AdamWScalars& scalars,
                       const float* lr, const float* grad_scale, const int64_t* step_count,
                       const float* nonfinite_guard) {
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

void launch_optimizer_counters_advance(int64_t* counters, const float* nonfinite_guard) {
  counters_advance_kernel<<<1, 1, 0, stream()>>>(counters, nonfinite_guard);
  LAUNCH_CHECK();
}

void launch_grad_global_norm(const NormTensor* tensors, int count, float* norm) {
  NvtxRange range("grad_norm");
  int64_t total_blocks = 0;
  for (int k = 0; k < count; ++k) {
    total_blocks += (tensors[k].numel + kElemsPerBlock - 1) / kElemsPerBlock;
  }
  double* partial =
      static_cast<double*>(allocate(sizeof(double) * std::max<int64_t>(1, total_blocks)));
  int64_t offset = 0;
  for (int first = 0; first < count; first += kMaxNormTensors) {
    NormBatch batch{};
    batch.count = std::min(kMaxNormTensors, count - first);
    for (int k = 0; k < batch.count; ++k) {
      batch.data[k] = tensors[first + k].data;
      batch.numel[k] = tensors[first + k].numel;
      batch.first_block[k + 1] =
          batch.first_block[k] + (batch.numel[k] + kElemsPerBlock - 1) / kElemsPerBlock;
    }
    const int64_t blocks = batch.first_block[batch.count];
    if (blocks == 0) continue;
    sum_squares_kernel<<<unsigned(blocks), kThreads, 0, stream()>>>(partial, batch, offset);
    LAUNCH_CHECK();
    offset += blocks;
  }
  finish_norm_kernel<<<1, kThreads, 0, stream()>>>(norm, partial, offset);
  LAUNCH_CHECK();
  release(partial);
}

void launch_clip_coefficient(const float* norm, float max_norm, float* coef) {
  clip_coefficient_kernel<<<1, 1, 0, stream()>>>(norm, max_norm, coef);
  LAUNCH_CHECK();
}

}  // namespace mt::cuda
